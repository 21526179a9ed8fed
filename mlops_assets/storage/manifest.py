"""The ingestion manifest: one row per distinct file content ever ingested or quarantined.

What counts as ingested is this table, never a sensor cursor or a run's status. ``seq``
is the order in which contents were recorded (later wins where files overlap; see
``warehouse``). A quarantined content that is requeued moves to ``manifest_requeued``
(its history stays), so the landing sensor sees it as new again.

Workspaces written before this table kept one JSON file per record in ``manifest/``;
those are imported once, in one transaction, the first time a process opens the table
(``import_json_records``), and left where they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from mlops_assets.storage.database import engine_for, ensure_tables, reading, run_once

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table
    from sqlalchemy.engine import Engine

    from mlops_assets.workspace import Workspace

JSON_IMPORTED = "manifest_json_imported"


def _tables() -> tuple[Table, Table, Table]:
    from sqlalchemy import Column, Integer, MetaData, String, Table, Text

    meta = MetaData()
    files = Table(
        "manifest_files",
        meta,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("sha256", String(64), nullable=False, unique=True),
        Column("source", String(200), nullable=False, index=True),
        Column("status", String(20), nullable=False),
        Column("processed_at", String(40), nullable=False),
        Column("run_id", String(64)),
        Column("record", Text, nullable=False),
    )
    requeued = Table(
        "manifest_requeued",
        meta,
        Column("sha256", String(64), primary_key=True),
        Column("n", Integer, primary_key=True),
        Column("requeued_at", String(40), nullable=False),
        Column("record", Text, nullable=False),
    )
    state = Table(
        "state_meta",
        meta,
        Column("key", String(200), primary_key=True),
        Column("value", Text, nullable=False),
    )
    return files, requeued, state


FILES, REQUEUED, STATE = _tables()


# hashes per ``IN (...)`` query: far below SQLite's limit on bound parameters
REQUEUE_QUERY_BATCH = 500


class Manifest:
    """The manifest of one workspace (``Manifest.for_workspace``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, FILES.metadata)

    @classmethod
    def for_workspace(cls, ws: Workspace) -> Manifest:
        manifest = cls(engine_for(ws.state_database_url))
        manifest.import_json_records(ws)
        return manifest

    def get(self, sha256: str) -> dict[str, Any] | None:
        with reading(self.engine) as con:
            row = con.execute(_record_of(sha256)).first()
        return json.loads(row[0]) if row else None

    def add(self, record: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a file's outcome: ``(record, True)``; or, if another run recorded the
        same content first, ``(its record, False)`` (the first record is kept)."""
        with self.engine.begin() as con:
            new = _insert_new(con, [record])
            row = con.execute(_record_of(record["sha256"])).first()
        return json.loads(row[0]), bool(new)

    def known(self) -> set[str]:
        """Every content hash with a record (ingested or quarantined)."""
        from sqlalchemy import select

        with reading(self.engine) as con:
            return set(con.execute(select(FILES.c.sha256)).scalars())

    def ingested(self, source: str) -> list[tuple[str, str, int]]:
        """``(sha256, processed_at, seq)`` of a source's ingested contents, oldest first."""
        from sqlalchemy import select

        query = (
            select(FILES.c.sha256, FILES.c.processed_at, FILES.c.seq)
            .where(FILES.c.source == source, FILES.c.status == "ingested")
            .order_by(FILES.c.seq)
        )
        with reading(self.engine) as con:
            return [tuple(row) for row in con.execute(query)]

    def records(self) -> list[dict[str, Any]]:
        """Every record, in the order they were made."""
        from sqlalchemy import select

        with reading(self.engine) as con:
            rows = con.execute(select(FILES.c.record).order_by(FILES.c.seq)).scalars()
            return [json.loads(r) for r in rows]

    def requeue(self, sha256: str) -> int:
        """Move a quarantined content's record to the requeued history, in one transaction;
        returns how many times it has been requeued now."""
        from sqlalchemy import delete, func, insert, select

        with self.engine.begin() as con:
            row = con.execute(_record_of(sha256)).first()
            if row is None:
                raise ValueError(f"{sha256[:16]}... is not in the manifest")
            record = json.loads(row[0])
            if record["status"] != "quarantined":
                raise ValueError(f"{record['file']} was {record['status']}, not quarantined")
            count = select(func.count()).select_from(REQUEUED).where(REQUEUED.c.sha256 == sha256)
            n = con.execute(count).scalar_one() + 1
            con.execute(
                insert(REQUEUED).values(
                    sha256=sha256, n=n, requeued_at=_now(), record=json.dumps(record)
                )
            )
            con.execute(delete(FILES).where(FILES.c.sha256 == sha256))
        return n

    def requeue_counts(self, shas: Iterable[str] | None = None) -> dict[str, int]:
        """How many times each content has been requeued (absent: never); for ``shas``,
        one ``IN (...)`` query per ``REQUEUE_QUERY_BATCH`` of them."""
        from sqlalchemy import func, select

        query = select(REQUEUED.c.sha256, func.count()).group_by(REQUEUED.c.sha256)
        if shas is None:
            batches = [query]
        else:
            wanted = list(shas)
            batches = [
                query.where(REQUEUED.c.sha256.in_(wanted[i : i + REQUEUE_QUERY_BATCH]))
                for i in range(0, len(wanted), REQUEUE_QUERY_BATCH)
            ]
        with reading(self.engine) as con:
            return {sha: n for batch in batches for sha, n in con.execute(batch)}

    def import_json_records(self, ws: Workspace) -> int:
        """Import a workspace's per-file JSON records (``manifest/<sha>.json`` and
        ``manifest/requeued/<sha>.<n>.json``) once; returns how many records were new.
        Safe to run from several processes at once: the first transaction imports, the
        others find the marker it set."""
        result = run_once(self.engine, JSON_IMPORTED, partial(_import_json_records, ws=ws))
        return result["new"] if result else 0


def _import_json_records(con: Connection, ws: Workspace) -> dict[str, Any]:
    from sqlalchemy import insert, select

    from mlops_assets.workspace import Workspace

    legacy = sorted(ws.manifest_dir.glob("*.json")) if ws.manifest_dir.is_dir() else []
    records = [json.loads(p.read_text()) for p in legacy]

    def order(record: dict[str, Any]) -> tuple[str, int, str]:
        # the order the file-based warehouse used: time (1 s resolution), then when the raw
        # Parquet was written
        # a workspace this old keeps its raw files below its own folder
        raw = Workspace(ws.root).raw_path(record["source"], record["sha256"])
        written = raw.stat().st_mtime_ns if raw.exists() else 0
        return record["processed_at"], written, record["sha256"]

    new = _insert_new(con, sorted(records, key=order))
    requeued = ws.manifest_dir / "requeued"
    for path in sorted(requeued.glob("*.json")) if requeued.is_dir() else []:
        sha, _, n = path.stem.partition(".")
        if not con.execute(
            select(REQUEUED.c.n).where(REQUEUED.c.sha256 == sha, REQUEUED.c.n == int(n))
        ).first():
            record = path.read_text()
            con.execute(
                insert(REQUEUED).values(
                    sha256=sha,
                    n=int(n),
                    requeued_at=json.loads(record)["processed_at"],
                    record=record,
                )
            )
    return {"at": _now(), "records": len(records), "new": new}


def _record_of(sha256: str):  # noqa: ANN202
    from sqlalchemy import select

    return select(FILES.c.record).where(FILES.c.sha256 == sha256)


def _insert_new(con: Connection, records: list[dict[str, Any]]) -> int:
    """Insert records whose hash has none yet (in list order); returns how many."""
    if not records:
        return 0
    if con.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [
        {
            "sha256": r["sha256"],
            "source": r["source"],
            "status": r["status"],
            "processed_at": r["processed_at"],
            "run_id": r.get("run_id"),
            "record": json.dumps(r, sort_keys=True, default=str),
        }
        for r in records
    ]
    new = 0
    for row in rows:  # one statement each keeps seq in list order on every backend
        result = con.execute(insert(FILES).values(**row).on_conflict_do_nothing())
        new += result.rowcount or 0
    return new


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
