"""The model registry itself: versions and their audit log in the state database,
artifacts in a model store (see ``mlops_assets.registry`` for the rules)."""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mlops_assets.model_store import ModelStore
from mlops_assets.naming import is_safe_key, require_safe_key
from mlops_assets.registry.versions import (
    APPROVED,
    ARCHIVED,
    ARTIFACT_FILES,
    CHECKSUM_MISMATCH,
    FLEET_GAP_FILE,
    META_FILE,
    MISSING_ARTIFACT,
    MISSING_CHECKSUM,
    MISSING_RECORD,
    MODEL_FILE,
    OPTIONAL_ARTIFACT_FILES,
    PRUNE_REASON,
    REFERENCE_CSV_FILE,
    REFERENCE_FILE,
    REGISTRABLE,
    REJECTED,
    SOURCES,
    VERIFY_HINT,
    IntegrityProblem,
    IntegrityReport,
    ModelVersion,
    PrunedVersion,
    RegistryError,
    artifact_key,
    audit_event,
    check_text,
    check_transition,
    check_version,
    require_exists,
    supersede,
    utc_now,
)
from mlops_assets.storage import registry_tables as tables
from mlops_assets.storage.database import engine_for, reading
from mlops_assets.storage.object_store import model_store_for

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine

    from mlops_assets.workspace import Workspace


class ModelRegistry:
    """Model versions of every region in the state database; artifacts kept in ``store``."""

    def __init__(self, database: Engine | str, store: ModelStore) -> None:
        self.engine = engine_for(database) if isinstance(database, str) else database
        self.store = store
        tables.ensure_registry_tables(self.engine)

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> ModelRegistry:
        """The registry of a workspace (its state database), with artifacts in its model
        store (``storage.object_store.model_store_for``: below the storage root when one is
        set); a registry still in files below ``registry/`` is imported once."""
        engine = engine_for(workspace.state_database_url)
        tables.import_registry_files(engine, workspace.registry_dir)
        return cls(engine, model_store_for(workspace))

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"ModelRegistry({url!r}, {self.store!r})"

    # ------------------------------------------------------------------ queries

    def artifact_bytes(self, mv: ModelVersion) -> int:
        """Bytes of ``mv``'s artifacts still in the store (0 once pruned)."""
        return sum(
            self.store.size(artifact_key(mv.region, mv.version, name)) for name in mv.artifacts
        )

    def pruned(self, region: str) -> dict[int, str]:
        """Version -> when its artifacts were pruned (UTC, ISO 8601), for ``region``."""
        with reading(self.engine) as con:
            return tables.select_pruned(con, require_safe_key(region))

    def regions(self) -> list[str]:
        """Region keys with at least one registered version, sorted."""
        from sqlalchemy import select

        V = tables.VERSIONS
        with reading(self.engine) as con:
            rows = con.execute(select(V.c.region).distinct().order_by(V.c.region)).scalars()
            return [r for r in rows if is_safe_key(r)]

    def versions(self, region: str) -> list[ModelVersion]:
        """Every version of ``region``, oldest first (empty if it has none)."""
        with reading(self.engine) as con:
            return tables.select_versions(con, require_safe_key(region))

    def get(self, region: str, version: int) -> ModelVersion:
        """One version; ``RegistryError`` if it does not exist."""
        version = check_version(version)
        with reading(self.engine) as con:
            return tables.select_version(con, require_safe_key(region), version)

    def latest_approved(self, region: str) -> ModelVersion | None:
        """THE approved model of ``region``, or ``None`` if no version is approved."""
        V = tables.VERSIONS
        with reading(self.engine) as con:
            found = tables.select_versions(con, require_safe_key(region), V.c.status == APPROVED)
        return found[0] if found else None

    def history(self, region: str) -> list[dict[str, Any]]:
        """The audit log of ``region``, oldest first (one dict per event)."""
        from sqlalchemy import select

        E = tables.EVENTS
        region = require_safe_key(region)
        with reading(self.engine) as con:
            rows = con.execute(select(E).where(E.c.region == region).order_by(E.c.seq))
            return [dict(row._mapping) for row in rows]

    def load_artifacts(self, mv: ModelVersion) -> tuple[str, dict[str, Any]]:
        """The model text (for ``lightgbm.Booster(model_str=...)``) and its metadata."""
        data = {name: self._read_artifact(mv, name) for name in ARTIFACT_FILES}
        return data[MODEL_FILE], json.loads(data[META_FILE])

    def load_meta(self, mv: ModelVersion) -> dict[str, Any]:
        """``mv``'s metadata alone (its checksum checked), for readers that need no model:
        the model text is the large artifact (megabytes for a few thousand trees)."""
        return json.loads(self._read_artifact(mv, META_FILE))

    def load_reference(
        self, mv: ModelVersion, meta: dict[str, Any] | None = None
    ) -> pd.DataFrame | None:
        """The monitoring reference saved with ``mv`` (its fitted rows with the feature
        table's dtypes, dates as datetime), or ``None`` if it was registered without one.
        Its checksum is required and checked. Versions registered before the reference was
        Parquet saved it as CSV: read with categorical columns as text, the metadata's
        list typing them (``meta``: what ``load_artifacts`` already returned, not read
        again; its checksum is checked too)."""
        from mlops_assets.training import read_reference_csv, read_reference_parquet

        blob = self._optional_artifact(mv, REFERENCE_FILE)
        if blob is not None:
            return read_reference_parquet(blob)
        blob = self._optional_artifact(mv, REFERENCE_CSV_FILE)
        if blob is None:
            return None
        if meta is None:
            meta = self.load_meta(mv)
        return read_reference_csv(blob.decode("utf-8"), list(meta.get("categorical", [])))

    def load_fleet_gap(self, mv: ModelVersion) -> pd.DataFrame | None:
        """The region's weather minus the fleet median, day by day over ``mv``'s training
        window, as it was at registration (``date`` and one column per input), or ``None``
        if it was registered without it. Its checksum is required and checked."""
        blob = self._optional_artifact(mv, FLEET_GAP_FILE)
        if blob is None:
            return None
        from mlops_assets.training import read_reference_csv

        return read_reference_csv(blob.decode("utf-8"), [])

    def _optional_artifact(self, mv: ModelVersion, name: str) -> bytes | None:
        """An optional artifact's bytes, None if the version has none; one without a
        recorded checksum is refused (by ``_artifact_bytes``)."""
        if name not in mv.artifacts:
            return None
        return self._artifact_bytes(mv, name)

    def _read_artifact(self, mv: ModelVersion, name: str) -> str:
        """One text artifact (the model, its metadata), checked (``_artifact_bytes``)."""
        return self._artifact_bytes(mv, name).decode("utf-8")

    def _artifact_bytes(self, mv: ModelVersion, name: str) -> bytes:
        """One artifact's bytes, refused if its record holds no checksum for it or they do
        not match: bytes nobody can vouch for are never handed to LightGBM or monitoring."""
        try:
            raw = self.store.get(artifact_key(mv.region, mv.version, name))
        except FileNotFoundError:
            when = self.pruned(mv.region).get(mv.version)
            if when is None:
                raise RegistryError(
                    f"{mv.label}: artifact {name} is missing from the store"
                ) from None
            raise RegistryError(
                f"{mv.label}: its artifacts were pruned at {when} (registry retention); "
                "the record and audit log remain, the model cannot be loaded"
            ) from None
        expected = mv.checksums.get(name)
        if expected is None:
            raise RegistryError(
                f"{mv.label}: artifact {name} has no recorded checksum (a record from before "
                "checksums were mandatory), so it is not trusted; retrain the region to "
                f"register a version with checksums ({VERIFY_HINT})"
            )
        if hashlib.sha256(raw).hexdigest() != expected:
            raise RegistryError(
                f"{mv.label}: artifact {name} does not match the checksum recorded at "
                f"registration; refusing to load it ({VERIFY_HINT})"
            )
        return raw

    # ---------------------------------------------------------------- integrity

    def verify(self, region: str | None = None) -> list[IntegrityProblem]:
        """Every problem with the artifacts of ``region``'s (default: every region's)
        versions that are not pruned: missing artifact or record, missing checksum,
        checksum mismatch; empty when everything matches. Sweeps leftovers first."""
        return self.check_integrity(region).problems

    def check_integrity(self, region: str | None = None) -> IntegrityReport:
        """:meth:`verify` with what it checked, skipped and swept (for the CLI and the
        asset check). Each region is checked under its lock, so a concurrent prune or
        registration is never mistaken for damage."""
        if region is not None:
            regions = [require_safe_key(region)]
        else:  # with the store's: a first registration killed left artifacts, no rows
            stored = [f for f in self.store.folders() if is_safe_key(f)]
            regions = sorted({*self.regions(), *stored})
        report = IntegrityReport({}, {}, [], [])
        for key in regions:
            with self._locked(key) as con:
                report.swept.extend(self._sweep(con, key))
                versions = tables.select_versions(con, key)
                if not versions:
                    continue
                pruned = tables.select_pruned(con, key)
                report.checked[key] = [mv.version for mv in versions if mv.version not in pruned]
                report.pruned[key] = [mv.version for mv in versions if mv.version in pruned]
                for mv in versions:
                    if mv.version not in pruned:
                        report.problems.extend(self._version_problems(mv))
        return report

    def sweep(self, region: str) -> list[str]:
        """Under ``region``'s lock: remove what interrupted writes and killed registrations
        left (temporary files, artifacts of numbers no committed version has); return
        where they were. Every mutation does this first."""
        require_safe_key(region)
        with self._locked(region) as con:
            return self._sweep(con, region)

    def _version_problems(self, mv: ModelVersion) -> list[IntegrityProblem]:
        """The problems of one committed version's record and artifacts."""
        region, version = mv.region, mv.version
        if not mv.artifacts and not mv.checksums:  # imported without its record file
            detail = "no record: its versions/NNNN.json was missing when it was imported"
            return [IntegrityProblem(region, version, None, MISSING_RECORD, detail)]
        known = (*ARTIFACT_FILES, *OPTIONAL_ARTIFACT_FILES)
        names = [n for n in known if n in ARTIFACT_FILES or n in mv.artifacts or n in mv.checksums]
        problems = []
        for name in names:
            expected = mv.checksums.get(name)
            try:
                actual = hashlib.sha256(self.store.get(artifact_key(region, version, name)))
            except FileNotFoundError:
                kind, detail = MISSING_ARTIFACT, "not in the model store"
            else:
                if expected is None:
                    kind, detail = MISSING_CHECKSUM, "no checksum recorded (an older record)"
                elif actual.hexdigest() != expected:
                    kind = CHECKSUM_MISMATCH
                    detail = (
                        f"sha256 recorded {expected[:12]}..., stored {actual.hexdigest()[:12]}..."
                    )
                else:
                    continue
            problems.append(IntegrityProblem(region, version, name, kind, detail))
        return problems

    # ---------------------------------------------------------------- mutations

    def register(
        self,
        region: str,
        *,
        model_text: str,
        model_meta: dict[str, Any],
        record: dict[str, Any],
        status: str,
        reasons: list[str],
        actor: str,
        reference: bytes | None = None,
        fleet_gap_csv: str | None = None,
    ) -> ModelVersion:
        """Store a new version of ``region`` (numbered 1, 2, ...) with its artifacts.

        ``status`` is ``pending_approval``, ``approved`` or ``rejected`` (usually from
        :func:`decide_status`); registering as approved archives the approved version.
        ``reference``: the monitoring reference (Parquet, ``TrainedModel.reference_parquet()``),
        stored as ``reference.parquet`` with its checksum when given; ``fleet_gap_csv``
        likewise as ``fleet_gap.csv`` (``monitoring.reference_fleet_gap``).
        """
        require_safe_key(region)
        if status not in REGISTRABLE:
            raise ValueError(
                f"a new version of {region} cannot be registered as {status!r}; "
                f"expected one of {REGISTRABLE}"
            )
        actor = check_text(actor, "actor")
        if not isinstance(reasons, list | tuple) or not all(isinstance(r, str) for r in reasons):
            raise TypeError(f"reasons must be a list of strings, got {reasons!r}")
        if not isinstance(model_text, str) or not model_text.strip():
            raise ValueError(f"model_text of {region} is empty; expected a text model")
        if not isinstance(model_meta, dict) or not isinstance(record, dict):
            raise TypeError("model_meta and record must be dicts")
        if reference is not None and (not isinstance(reference, bytes) or not reference):
            raise ValueError(f"reference of {region} must be non-empty Parquet bytes or None")
        if fleet_gap_csv is not None and (
            not isinstance(fleet_gap_csv, str) or not fleet_gap_csv.strip()
        ):
            raise ValueError(f"fleet_gap_csv of {region} must be non-empty CSV text or None")
        source = record.get("source")
        if source is not None and source not in SOURCES:
            raise ValueError(f"record source {source!r} is not one of {SOURCES}")
        blobs = {
            MODEL_FILE: model_text.encode("utf-8"),
            META_FILE: json.dumps(model_meta, indent=2, sort_keys=True, default=str).encode(),
        }
        if reference is not None:
            blobs[REFERENCE_FILE] = reference
        if fleet_gap_csv is not None:
            blobs[FLEET_GAP_FILE] = fleet_gap_csv.encode("utf-8")
        body = {"reasons": list(reasons), "record": dict(record)}
        # canonical JSON now, so a record that cannot be stored fails before any write
        json.dumps(body, sort_keys=True, default=str)

        with self._locked(region) as con:
            self._recover(con, region)
            statuses = tables.select_statuses(con, region)
            version = max(statuses, default=0) + 1
            body["artifacts"] = {
                name: self.store.put(artifact_key(region, version, name), blob)
                for name, blob in blobs.items()
            }
            body["checksums"] = {
                name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()
            }
            now = utc_now()
            reason = "; ".join(reasons) or f"registered as {status}"
            new = [audit_event(now, actor, "register", region, version, None, status, reason)]
            new += supersede(now, actor, region, version, status, statuses)
            self._commit(
                con,
                region,
                new,
                insert_version={
                    "version": version,
                    "status": status,
                    "created_at": now,
                    "actor": actor,
                    "body": json.dumps(body, sort_keys=True, default=str),
                },
            )
            return tables.select_version(con, region, version)

    def approve(self, region: str, version: int, *, actor: str, reason: str) -> ModelVersion:
        """Approve a ``pending_approval`` version; the approved one (if any) is archived."""
        return self._transition(region, version, "approve", actor=actor, reason=reason)

    def reject(self, region: str, version: int, *, actor: str, reason: str) -> ModelVersion:
        """Reject a ``pending_approval`` version; it can never be approved afterwards."""
        return self._transition(region, version, "reject", actor=actor, reason=reason)

    def rollback(self, region: str, version: int, *, actor: str, reason: str) -> ModelVersion:
        """Approve an ``archived`` version again; the approved one is archived."""
        return self._transition(region, version, "rollback", actor=actor, reason=reason)

    def _transition(
        self, region: str, version: int, action: str, *, actor: str, reason: str
    ) -> ModelVersion:
        require_safe_key(region)
        version = check_version(version)
        actor = check_text(actor, "actor")
        reason = check_text(reason, "reason")
        with self._locked(region) as con:
            self._recover(con, region)
            statuses = tables.select_statuses(con, region)
            require_exists(region, version, statuses)
            current = statuses[version]
            to_status = check_transition(f"{region}:v{version}", current, action)
            when = tables.select_pruned(con, region).get(version)
            if when is not None:
                raise RegistryError(
                    f"{region}:v{version}'s artifacts were pruned at {when} (registry "
                    f"retention); it cannot be {to_status} again - retrain instead"
                )
            now = utc_now()
            new = [audit_event(now, actor, action, region, version, current, to_status, reason)]
            new += supersede(now, actor, region, version, to_status, statuses)
            self._commit(con, region, new)
            return tables.select_version(con, region, version)

    def prune(
        self,
        region: str,
        *,
        keep_archived: int,
        keep_rejected: int,
        actor: str,
        dry_run: bool = False,
    ) -> list[PrunedVersion]:
        """Delete the artifacts of ``region``'s ``archived`` versions beyond the newest
        ``keep_archived`` and ``rejected`` ones beyond the newest ``keep_rejected``; return
        the versions pruned now with the bytes freed (with ``dry_run``: those that would
        be, nothing changes).

        Records and the audit log are kept; see "Retention" in the module docstring."""
        require_safe_key(region)
        actor = check_text(actor, "actor")
        for name, keep in (("keep_archived", keep_archived), ("keep_rejected", keep_rejected)):
            if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or keep < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {keep!r}")
        with self._locked(region) as con:
            self._recover(con, region)
            statuses, done = tables.select_statuses(con, region), tables.select_pruned(con, region)
            victims = []
            for status, keep in ((ARCHIVED, keep_archived), (REJECTED, keep_rejected)):
                old = sorted((v for v, s in statuses.items() if s == status), reverse=True)
                victims += [v for v in old[keep:] if v not in done]
            victims.sort()
            pruned = [
                PrunedVersion(mv, self.artifact_bytes(mv))
                for mv in (tables.select_version(con, region, v) for v in victims)
            ]
            if dry_run:
                return pruned
            now = utc_now()
            new = [
                audit_event(now, actor, "prune", region, v, statuses[v], statuses[v], PRUNE_REASON)
                for v in victims
            ]
            if new:
                self._commit(con, region, new)
        # after the commit: a prune interrupted here finishes on the region's next mutation
        self._delete_pruned(region, [*done, *victims])
        return pruned

    # ---------------------------------------------------------------- internals

    @contextmanager
    def _locked(self, region: str) -> Iterator[Connection]:
        """One transaction holding ``region``'s lock (its ``registry_regions`` row), across
        threads, processes and machines; committed when the block ends without error."""
        from sqlalchemy import select

        R = tables.REGIONS
        with self.engine.begin() as con:
            con.execute(tables.insert_ignore(con, R, {"region": region}))
            con.execute(select(R.c.region).where(R.c.region == region).with_for_update())
            yield con

    def _recover(self, con: Connection, region: str) -> None:
        """Under the lock: sweep what killed writers left and finish an interrupted prune."""
        self._sweep(con, region)
        self._delete_pruned(region, list(tables.select_pruned(con, region)))

    def _delete_pruned(self, region: str, versions: list[int]) -> None:
        for v in sorted(set(versions)):
            for name in (*ARTIFACT_FILES, *OPTIONAL_ARTIFACT_FILES):
                self.store.delete(artifact_key(region, v, name))

    def _sweep(self, con: Connection, region: str) -> list[str]:
        """Under the lock (no write of ``region`` can be in flight): delete temporary files
        of interrupted writes and artifacts of numbers no committed version has (a
        registration killed before its commit); return where they were."""
        statuses = tables.select_statuses(con, region)
        swept = self.store.sweep_temp(region)
        for key in self.store.keys(region):
            parts = key.split("/")
            if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) not in statuses:
                swept.append(self.store.uri(key))
                self.store.delete(key)
        return swept

    def _commit(
        self,
        con: Connection,
        region: str,
        new: list[dict[str, Any]],
        insert_version: dict[str, Any] | None = None,
    ) -> None:
        """Write ``new`` events and the status changes they make (and a new version's row)
        in the lock's transaction; archived before approved, so the one-approved index
        never sees two."""
        from sqlalchemy import func, insert, select, update

        V, E = tables.VERSIONS, tables.EVENTS
        last = con.execute(select(func.max(E.c.seq)).where(E.c.region == region)).scalar()
        ordered = sorted(new, key=lambda e: e["to_status"] == APPROVED)
        for event in ordered:
            if insert_version and event["version"] == insert_version["version"]:
                continue
            values = {"status": event["to_status"]}
            if event["action"] == "prune":
                values = {"pruned_at": event["at"]}
            con.execute(
                update(V)
                .where(V.c.region == region, V.c.version == event["version"])
                .values(**values)
            )
        if insert_version:
            con.execute(insert(V).values(region=region, **insert_version))
        for seq, event in enumerate(new, start=(last or 0) + 1):
            event["seq"] = seq
            row = {k: event[k] for k in tables.EVENT_FIELDS}
            con.execute(insert(E).values(region=region, seq=seq, **row))
