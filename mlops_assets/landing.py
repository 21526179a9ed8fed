"""The landing zone: find new files, ingest each distinct content exactly once.

A file's identity is the SHA-256 of its bytes. The manifest (a table in the workspace's
state database, one record per hash; see ``storage.manifest``) says what happened to it:
``ingested`` (normalised rows are in ``raw/<source>/<sha>``) or ``quarantined`` (a copy
and a machine-readable reason sit in ``quarantine/``). A renamed copy or a re-dropped
file has the same hash and is skipped. Outputs are named by hash and written atomically,
so ingesting the same file twice (two overlapping runs, a retried run) produces the same
files, never duplicate rows. Landing files are only read: nothing here modifies or
deletes them. The landing zone and the quarantine are below the storage root when one is
set, else below the workspace folder (``ws.landing_zone``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from mlops_assets.naming import region_key
from mlops_assets.spec import DatasetSpec
from mlops_assets.storage.data_store import StoredTable
from mlops_assets.storage.landing_hashes import LandingHashes
from mlops_assets.storage.landing_zone import LandingFile, LandingZone, stream_sha256
from mlops_assets.storage.manifest import Manifest
from mlops_assets.validation import (
    LandingRejected,
    one_line,
    validate_file,
    without_absolute_paths,
)
from mlops_assets.warehouse import connect
from mlops_assets.workspace import Workspace

LANDING_SUFFIXES = frozenset({".csv", ".parquet", ".txt", ".tsv"})


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return stream_sha256(fh)


def landing_sha256(
    ws: Workspace, source: str, relpath: str, zone: LandingZone | None = None
) -> str:
    """SHA-256 of a landing file, without copying it: ``file_sha256`` of the local file,
    or streamed from the storage root. ``zone``: the workspace's landing zone, when the
    caller hashes many files."""
    zone = zone or ws.landing_zone
    if zone.is_local:
        return file_sha256(zone.local_path(source, relpath))
    return zone.sha256(source, relpath)


def scan_landing(ws: Workspace, spec: DatasetSpec) -> list[LandingFile]:
    """All candidate files below each source's landing folder, in a stable order.

    Hidden files and files still being written under a temporary name (``.*``, ``*.tmp``,
    ``*.part``) are skipped; so are local symlinks, which could point outside the landing
    zone (``LandingZone.files``). Sources are listed stores first, so that a store master
    dropped together with sales is ingested before the sales that reference it.
    """
    zone = ws.landing_zone
    return [lf for source in ingest_order(spec) for lf in zone.files(source)]


def ingest_order(spec: DatasetSpec) -> list[str]:
    """Source names in dependency order: store master and region map before facts."""
    rank = {
        "stores": 0,
        "store_regions": 1,
        "weather": 2,
        "events": 2,
        "sales": 3,
        "future": 4,
        "actuals": 4,
    }
    return sorted(spec.sources, key=lambda name: (rank[spec.sources[name].kind], name))


def read_manifest(ws: Workspace, sha256: str) -> dict[str, Any] | None:
    """The manifest record of a content hash (None: never ingested nor quarantined)."""
    return Manifest.for_workspace(ws).get(sha256)


def known_stores(
    ws: Workspace, spec: DatasetSpec, con: duckdb.DuckDBPyConnection | None = None
) -> set[str] | None:
    """Store ids in the ingested store master, or None if none has been ingested."""
    data = ws.data
    files = [data.location(k) for k in data.keys(ws.raw_folder(spec.source_name("stores")))]
    if not files:
        return None
    with con.cursor() if con is not None else duckdb.connect() as cur:
        rows = (
            data.attach(cur)
            .execute("SELECT DISTINCT store FROM read_parquet($f)", {"f": files})
            .fetchall()
        )
    return {r[0] for r in rows}


@dataclass
class IngestOutcome:
    source: str
    relpath: str
    sha256: str
    status: str  # ingested | quarantined | already_ingested | already_quarantined
    record: dict[str, Any]

    @property
    def new(self) -> bool:
        return not self.status.startswith("already_")


def ingest_file(
    ws: Workspace,
    spec: DatasetSpec,
    source: str,
    relpath: str,
    *,
    run_id: str | None = None,
) -> IngestOutcome:
    """Validate one landing file and record the result in the manifest (see
    ``ingest_files``)."""
    return ingest_files(ws, spec, source, [relpath], run_id=run_id)[0]


def ingest_files(
    ws: Workspace,
    spec: DatasetSpec,
    source: str,
    relpaths: list[str],
    *,
    run_id: str | None = None,
) -> list[IngestOutcome]:
    """Validate landing files of one source and record each result in the manifest.

    Valid: normalised rows go to ``raw/<source>/<sha>.parquet``. Invalid: the bytes are
    copied to ``quarantine/<source>/`` with a ``.reason.json`` beside them. Either way
    the landing file is left as it is. A hash already in the manifest is not redone. The
    files share one DuckDB database (each validated on a connection of its own) and one
    read of the store master: opening DuckDB and reading the master for every file was
    most of a small file's ingest.
    """
    manifest = Manifest.for_workspace(ws)
    with duckdb.connect() as db:
        stores = known_stores(ws, spec, db) if spec.sources[source].kind != "stores" else None
        outcomes = []
        for relpath in relpaths:
            with db.cursor() as con:  # its own temp tables, gone when it closes
                outcomes.append(
                    _ingest_one(ws, spec, source, relpath, run_id, manifest, con, stores)
                )
    return outcomes


def _ingest_one(
    ws: Workspace,
    spec: DatasetSpec,
    source: str,
    relpath: str,
    run_id: str | None,
    manifest: Manifest,
    con: duckdb.DuckDBPyConnection,
    stores: set[str] | None,
) -> IngestOutcome:
    # a remote landing file is downloaded once: what is hashed is what is validated
    with ws.landing_zone.local_copy(source, relpath) as path:
        return _ingest_local(ws, spec, source, relpath, path, run_id, manifest, con, stores)


def _ingest_local(
    ws: Workspace,
    spec: DatasetSpec,
    source: str,
    relpath: str,
    path: Path,
    run_id: str | None,
    manifest: Manifest,
    con: duckdb.DuckDBPyConnection,
    stores: set[str] | None,
) -> IngestOutcome:
    """``_ingest_one`` of the landing file ``relpath``, read from ``path`` on this machine."""
    src_spec = spec.sources[source]
    # hash again: if the file changed since the sensor looked, what is there now is ingested
    sha256 = file_sha256(path)
    previous = manifest.get(sha256)
    if previous is not None:
        return IngestOutcome(source, relpath, sha256, f"already_{previous['status']}", previous)

    now = datetime.now(UTC).isoformat(timespec="seconds")
    record: dict[str, Any] = {
        "sha256": sha256,
        "source": source,
        "kind": src_spec.kind,
        "file": relpath,
        "size": path.stat().st_size,
        "processed_at": now,
        "run_id": run_id,
    }
    try:
        result = validate_file(
            path,
            src_spec,
            known_stores=stores,
            output=StoredTable(ws.data, ws.raw_key(source, sha256)),
            con=con,
        )
    except LandingRejected as exc:
        zone = ws.landing_zone
        copy = zone.quarantine_copy(source, sha256, path)
        details = exc.details
        if not zone.is_local:  # the engine's text names the download, not the landing file
            details = _replaced(details, str(path), zone.location(relpath))
        reason = {
            **record,
            "status": "quarantined",
            "reason": exc.code,
            "message": exc.message,
            "details": details,
            "quarantined_copy": copy,
        }
        zone.write_reason(copy, reason)
        return _recorded(manifest, source, relpath, reason)
    record.update(status="ingested", **result.summary())
    return _recorded(manifest, source, relpath, record)


def _replaced(value: Any, old: str, new: str) -> Any:
    """``value`` (JSON-like) with ``old`` replaced by ``new`` in every string in it."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(v, old, new) for v in value]
    return value


def _recorded(manifest: Manifest, source: str, relpath: str, record: dict) -> IngestOutcome:
    """The outcome once the record is in the manifest: an overlapping run that recorded
    the same content first wins, and this run reports it as already done."""
    stored, new = manifest.add(record)
    status = stored["status"] if new else f"already_{stored['status']}"
    return IngestOutcome(source, relpath, record["sha256"], status, stored)


def reason_line(record: dict[str, Any]) -> str:
    """``code: short message`` of a quarantine record, as the CLI and the UI check show
    it: one line, no absolute paths (also for records written before messages were
    shortened; the engine's full text is in the reason file's ``details``)."""
    message = without_absolute_paths(str(record.get("message", "")))
    return f"{record.get('reason', 'unknown')}: {one_line(message)}"


def quarantined(ws: Workspace) -> list[dict[str, Any]]:
    """Every quarantine record, newest first (for the CLI and asset metadata). A record
    that cannot be read raises ``ValueError`` naming it (relative to the landing zone's
    root)."""
    zone = ws.landing_zone
    records = []
    for relpath in zone.reason_files():
        try:
            records.append(json.loads(zone.read_text(relpath)))
        except (OSError, ValueError) as exc:  # a folder, unreadable, not JSON
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ValueError(f"{relpath}: unreadable quarantine record ({why})") from exc
    return sorted(records, key=lambda r: r["processed_at"], reverse=True)


def requeue(ws: Workspace, sha256: str) -> int:
    """Let a quarantined file be ingested again (e.g. a sales file that arrived before its
    store master). Its manifest record moves to the requeued history, so the history
    stays; the landing sensor then sees the content as new, under a new run key. Returns
    the requeue count ``n``."""
    return Manifest.for_workspace(ws).requeue(sha256)


def requeue_unknown_store_files(ws: Workspace) -> list[str]:
    """Requeue every file quarantined because the store master lacked its stores (reason
    ``unknown_store``): called once a new store master file is ingested, which may have
    them. The landing sensor then ingests them again; one whose stores are still unknown
    is quarantined again (its requeue count says how often). Their landing paths."""
    manifest = Manifest.for_workspace(ws)
    requeued = []
    for record in manifest.records():
        if record["status"] != "quarantined" or record.get("reason") != "unknown_store":
            continue
        try:
            manifest.requeue(record["sha256"])
        except ValueError:  # another run requeued (or ingested) it meanwhile
            continue
        requeued.append(record["file"])
    return requeued


def requeue_counts(ws: Workspace, shas: list[str]) -> dict[str, int]:
    """How many times each content hash has been requeued (part of its ingest run key;
    0 for one never requeued)."""
    counts = Manifest.for_workspace(ws).requeue_counts(shas)
    return {sha: counts.get(sha, 0) for sha in shas}


LANDING_STATES = ("ingested", "quarantined", "pending")
# the landing sensor's tick interval. A tick with 10,000 landing files and nothing new
# plans in 0.08-0.12 s (hashes in the state database, one scandir walk): about 1% of a
# core at 10 s. At 30 s a dropped file waited 15 s on average before its ingest run
LANDING_SENSOR_INTERVAL_S = 10
NOT_REQUESTED_YET = (
    "not in the manifest yet: the landing sensor requests it on its next tick (every "
    f"{LANDING_SENSOR_INTERVAL_S} s while the Dagster daemon runs)"
)
WAITING_FOR_STORE_MASTER = (
    "waiting for the store master: its stores are checked against it and no store master "
    "file is ingested yet; once one lands, both are ingested in one run"
)


def landing_status(
    ws: Workspace,
    spec: DatasetSpec,
    pending_reasons: Callable[[list[str]], dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Every file in the landing zone with its SHA-256, its state and, unless ingested, why.

    ``state`` is ``ingested`` or ``quarantined`` (from the manifest) or ``pending`` (its
    content is not in the manifest). ``pending_reasons(relpaths)`` may explain pending
    files (the CLI asks the Dagster instance which ingest run had them).
    """
    out: list[dict[str, Any]] = []
    manifest = Manifest.for_workspace(ws)
    requeued = manifest.requeue_counts()
    master_ingested = store_master_ingested(ws, spec)
    zone = ws.landing_zone
    cached = LandingHashes.for_workspace(ws).load()  # the landing sensor's hashes
    for lf in scan_landing(ws, spec):
        sha = _cached_sha(cached.get(lf.relpath), lf)
        if sha is None:
            sha = landing_sha256(ws, lf.source, lf.relpath, zone)
        record = manifest.get(sha)
        state = record["status"] if record else "pending"
        reason = None
        if state == "quarantined":
            reason = reason_line(record)
        elif state == "pending":
            reason = NOT_REQUESTED_YET
            if not master_ingested and spec.sources[lf.source].references_stores:
                reason = WAITING_FOR_STORE_MASTER
            if requeued.get(sha):
                reason = "requeued after quarantine; " + reason
        out.append(
            {
                "path": lf.relpath,
                "sha256": sha,
                "source": lf.source,
                "state": state,
                "reason": reason,
            }
        )
    waiting = [f["path"] for f in out if f["state"] == "pending"]
    if waiting and pending_reasons is not None:
        explained = pending_reasons(waiting)
        for f in out:
            if f["path"] in explained:
                f["reason"] = explained[f["path"]]
    return out


@dataclass
class LandingPlan:
    """What a sensor tick should ingest, and the cursor to store afterwards."""

    files: dict[str, list[tuple[str, str]]]  # source -> [(relpath, sha256)]
    cursor: dict[str, Any]
    skipped_known: int = 0
    deferred: int = 0
    in_flight: int = 0
    # files that reference stores, held back until a store master is ingested or requested
    waiting_for_stores: int = 0

    @property
    def shas(self) -> list[str]:
        return sorted(sha for files in self.files.values() for _, sha in files)

    def requested_as(self, run_key: str) -> None:
        """Remember in the cursor that this plan's files were requested under ``run_key``."""
        for sha in self.shas:
            self.cursor["pending"][sha][0] = run_key


InFlight = Callable[[str | None, float], bool]


def plan_landing(
    ws: Workspace,
    spec: DatasetSpec,
    cursor: dict[str, Any] | None,
    *,
    now: float,
    in_flight: InFlight | None = None,
    hash_budget_bytes: int = 2 << 30,
    retry_after_seconds: float = 900.0,
) -> LandingPlan:
    """Decide which landing files to request, without ingesting anything.

    What counts as done is the manifest, never the cursor or a run's status: every landing
    file whose content the manifest does not hold is requested, unless the run it was last
    requested under is still in flight. The cursor holds only ``pending``: the run key and
    time each missing hash was last requested under (nothing once the files are ingested).
    ``in_flight(run_key, requested_at)`` says whether that request may still do its work
    (the landing sensor asks the Dagster instance whether the run is queued or running; the
    default trusts a request for ``retry_after_seconds``). Each path's size, mtime and hash
    are kept in the state database (``LandingHashes``; on object storage with the file's
    ETag, as mtimes there are whole seconds), so unchanged files are not hashed again; the
    ``seen`` map of an older cursor is taken over. A lost cursor or hash cache costs
    re-hashing, never a second ingestion. Before any store master is ingested, files that
    reference stores are requested only with a store master file (validated alone they
    would be quarantined for unknown stores). At most ``hash_budget_bytes`` of new files are
    hashed per call; the rest waits for the next tick (sensor ticks time out after 60 s).
    """
    if in_flight is None:

        def in_flight(_key: str | None, requested_at: float) -> bool:
            return now - requested_at < retry_after_seconds

    cursor = cursor or {}
    hashes = LandingHashes.for_workspace(ws)
    seen = hashes.load()
    changed: dict[str, list] = {}
    for relpath, entry in cursor.get("seen", {}).items():  # an older cursor's hash cache
        if relpath not in seen:
            seen[relpath] = changed[relpath] = list(entry)
    pending: dict[str, list] = {
        sha: entry if isinstance(entry, list) else [None, float(entry)]
        for sha, entry in cursor.get("pending", {}).items()
    }
    plan = LandingPlan(files={}, cursor={})
    known = Manifest.for_workspace(ws).known()
    budget = hash_budget_bytes
    batch: set[str] = set()
    zone = ws.landing_zone
    current = scan_landing(ws, spec)  # a store master comes before the files that need it
    master_ingested = store_master_ingested(ws, spec)
    master_source = spec.source_name("stores")
    for lf in current:
        sha = _cached_sha(seen.get(lf.relpath), lf)
        if sha is None:
            if lf.size > budget and budget < hash_budget_bytes:
                plan.deferred += 1
                continue
            budget -= lf.size
            sha = landing_sha256(ws, lf.source, lf.relpath, zone)
            seen[lf.relpath] = changed[lf.relpath] = [lf.size, lf.mtime_ns, sha, lf.etag]
        if sha in batch or sha in known:
            plan.skipped_known += 1
            continue
        if sha in pending and in_flight(*pending[sha]):
            plan.in_flight += 1
            continue
        if (
            not master_ingested
            and spec.sources[lf.source].references_stores
            and not plan.files.get(master_source)
        ):
            # validated now it would be quarantined for unknown stores: it waits in the
            # landing zone for the store master's file, and is ingested in that file's run
            plan.waiting_for_stores += 1
            continue
        batch.add(sha)
        pending[sha] = [None, now]
        plan.files.setdefault(lf.source, []).append((lf.relpath, sha))
    present = {lf.relpath for lf in current}
    hashes.update(
        {p: v for p, v in changed.items() if p in present}, (p for p in seen if p not in present)
    )
    plan.cursor = {"pending": {s: v for s, v in pending.items() if s not in known}}
    return plan


def store_master_ingested(ws: Workspace, spec: DatasetSpec) -> bool:
    """Whether at least one store master file is ingested."""
    return bool(Manifest.for_workspace(ws).ingested(spec.source_name("stores")))


def _cached_sha(entry: list | None, lf: LandingFile) -> str | None:
    """The SHA-256 in a hash cache entry ``[size, mtime_ns, sha256, etag]`` if the entry
    still describes ``lf``, else None (entries of older cursors have no ETag: ``""``,
    what a local file has)."""
    if not entry:
        return None
    etag = entry[3] if len(entry) > 3 else ""
    unchanged = entry[0] == lf.size and entry[1] == lf.mtime_ns and etag == lf.etag
    return entry[2] if unchanged else None


ALL_REGIONS = "*"


def affected_regions(ws: Workspace, spec: DatasetSpec, source: str, shas: list[str]) -> list[str]:
    """Region keys whose features change because these ingested files arrived.

    ``["*"]`` means every region (the store master, a national event).
    """
    import pandas as pd

    kind = spec.sources[source].kind
    data = ws.data
    keys = [ws.raw_key(source, s) for s in shas]
    files = [data.location(k) for k in keys if data.exists(k)]
    if not files:
        return []
    if kind == "stores":
        return [ALL_REGIONS]
    with duckdb.connect() as con:
        data.attach(con)
        if kind in ("weather", "events", "store_regions"):
            names = [
                r[0]
                for r in con.execute(
                    "SELECT DISTINCT region FROM read_parquet($f)", {"f": files}
                ).fetchall()
            ]
            if kind == "store_regions" or (kind == "events" and "" in names):
                return [ALL_REGIONS]
            return sorted({region_key(n) for n in names if n})
        stores = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT store FROM read_parquet($f)", {"f": files}
            ).fetchall()
        ]
    with connect(ws, spec) as con:
        con.register("_changed", pd.DataFrame({"store": stores}))
        rows = con.execute(
            "SELECT DISTINCT region_key FROM stores JOIN _changed USING (store) "
            "WHERE region_key IS NOT NULL ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def drop_dataset(spec: DatasetSpec, source_dir: Path, ws: Workspace) -> list[str]:
    """Copy a dataset directory's files into the landing zone, as a data engineer would;
    their relpaths.

    Locally each file is copied under a hidden temporary name and renamed into place, and
    an object store creates each object whole, so the landing sensor never sees a
    half-written file. Existing landing files are kept.
    """
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"source directory {source_dir} does not exist")
    zone = ws.landing_zone
    dropped: list[str] = []
    for name in ingest_order(spec):  # a sensor tick between two files sees the master first
        src = spec.sources[name]
        if zone.is_local:  # an empty folder per source shows where files go
            ws.landing_dir(name).mkdir(parents=True, exist_ok=True)
        for pattern in src.files:
            for path in sorted(source_dir.glob(pattern)):
                if path.is_file():
                    dropped.append(zone.put(name, path.name, path))
    return dropped
