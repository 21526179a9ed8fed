"""Per-region model versions with an approval step.

Every trained model of a region becomes a numbered version (``Nord:v1``, ``Nord:v2``, ...)
with a status. :meth:`ModelRegistry.latest_approved` is the one call that resolves "the
approved model of region R"; forecasting and monitoring use nothing else.

Statuses and transitions
------------------------
``pending_approval``  -> ``approved`` (:meth:`~ModelRegistry.approve`)
                      -> ``rejected`` (:meth:`~ModelRegistry.reject`)
``approved``          -> ``archived``, only implicitly, when another version is approved
``archived``          -> ``approved`` (:meth:`~ModelRegistry.rollback`)
``rejected``          -> nothing: a rejected version is never approved; register a new one

Retention (:meth:`ModelRegistry.prune`)
---------------------------------------
A weekly recalibration adds a version per region per week, each with its model text and
monitoring reference (megabytes on real data). ``prune`` deletes the artifacts of old
``archived`` and ``rejected`` versions beyond the newest ``keep_archived`` /
``keep_rejected``; the approved and every pending version are never pruned. The version
record (metrics, parameters, data version) and the audit log stay: a pruned version is
still listed and explained, but it can no longer be rolled back to or loaded. A ``prune``
line in the audit log (status unchanged) records who pruned it and when; it is logged
in the same transaction as the record's ``pruned_at``, before the files are deleted, and a
prune interrupted in between finishes on the region's next mutation.

At most one version of a region is approved at any time. Approving (or rolling back to)
a version archives the one approved before it, in the same step.

Approval policy (:func:`decide_status`)
---------------------------------------
* a model that fails the quality gate is registered ``rejected`` (kept for the audit trail,
  never served);
* a **recalibration** (retraining on new data with the reviewed, fixed hyper-parameters)
  that passes the gate is registered ``approved`` and serves at once - nothing a person
  has not reviewed changed; ``auto_approve_recalibration=False`` makes it wait instead;
* a **tuning** result (new hyper-parameters found by a search) that passes the gate is
  registered ``pending_approval``: a person reviews it and calls ``approve`` or ``reject``.

Storage
-------
Records, statuses and the audit log are rows of the workspace's state database (SQLite in
a local workspace, PostgreSQL in production; tables in
:mod:`mlops_assets.storage.registry_tables`): ``registry_versions`` (one row per version:
region, version, status, created_at, actor, and the record - reasons, artifact URIs and
checksums, and the caller's ``record``: training data version and date range, code
version, hyper-parameters, features, metrics, baseline metrics, run id, source) and
``registry_events``, the append-only audit log (one row per registration and status
change with ``at`` (UTC, ISO 8601), ``actor``, ``action``, ``version``, ``from_status``,
``to_status``, ``reason`` and ``seq``).

Every mutation of a region is one transaction that first locks the region's row in
``registry_regions``: concurrent threads, processes and machines never allocate the same
version number or approve two versions, and a partial unique index in the database
refuses a second approved row for a region whatever the code does. The status change and
its audit lines commit together, so every read sees one consistent state: never two
approved versions, never none while an approval replaces another. Readers take no lock.

Artifacts (the LightGBM text model and its JSON metadata) go through a
:class:`~mlops_assets.model_store.ModelStore` at ``<region>/<NNNN>/model.txt`` and
``<region>/<NNNN>/model.json``; their SHA-256 is recorded and checked on load (see
"Integrity" below). Nothing is pickled. Optionally a third,
``<region>/<NNNN>/reference.csv``: the rows the model was fitted on, as monitoring
compares new data with them (frozen with the model, so a later correction or
recomputation of the feature table does not move the reference); versions registered
without it (older models) have none and monitoring falls back to the feature table's
rows of the training window.

Integrity
---------
Every artifact of a version has a mandatory SHA-256 in its record: loading one whose
record has none (a record from before checksums were recorded) or whose bytes do not
match is refused with :class:`RegistryError`, never trusted. :meth:`ModelRegistry.verify`
checks every version that is not pruned (``mlops-assets registry verify``, and the
``registry_artifacts_intact`` asset check) and lists what does not match.

A registration writes the artifacts inside its transaction, then commits its rows;
killed before the commit, the transaction rolls back and leaves artifacts no committed
version owns, and possibly an unfinished write (a hidden ``*.partial.tmp``, see
:func:`~mlops_assets.workspace.is_temp_name`). Every mutation, under the region's lock,
first sweeps them (:meth:`ModelRegistry.sweep`; ``verify`` sweeps too). Version numbers
come from the committed rows (the highest plus one), so the number of a registration
killed before its commit was never taken and the next registration reuses it: numbers
stay dense, and the audit log never names a version that does not exist.

Workspaces from before the database kept the registry in files
(``registry/<region>/events.jsonl`` and ``versions/<NNNN>.json``); ``for_workspace``
imports them once (``mlops-assets migrate-state`` does it explicitly).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_assets.model_store import LocalModelStore, ModelStore
from mlops_assets.naming import is_safe_key, require_safe_key
from mlops_assets.storage import registry_tables as tables

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine

    from mlops_assets.workspace import Workspace

PENDING = "pending_approval"
APPROVED = "approved"
REJECTED = "rejected"
ARCHIVED = "archived"
STATUSES = (PENDING, APPROVED, REJECTED, ARCHIVED)
REGISTRABLE = (PENDING, APPROVED, REJECTED)

RECALIBRATION = "recalibration"
TUNING = "tuning"
SOURCES = (RECALIBRATION, TUNING)

MODEL_FILE = "model.txt"
META_FILE = "model.json"
ARTIFACT_FILES = (MODEL_FILE, META_FILE)  # every version has them
REFERENCE_FILE = "reference.csv"  # optional: the monitoring reference (CSV text)
FLEET_GAP_FILE = "fleet_gap.csv"  # optional: the weather's gap to the fleet, training window
OPTIONAL_ARTIFACT_FILES = (REFERENCE_FILE, FLEET_GAP_FILE)

_PRUNE_REASON = "retention: artifacts deleted, record and audit log kept"
_VERIFY_HINT = "`mlops-assets registry verify` lists every such version"

# what verify reports about a version
MISSING_RECORD = "missing_record"
MISSING_ARTIFACT = "missing_artifact"
MISSING_CHECKSUM = "missing_checksum"
CHECKSUM_MISMATCH = "checksum_mismatch"
PROBLEM_KINDS = (MISSING_RECORD, MISSING_ARTIFACT, MISSING_CHECKSUM, CHECKSUM_MISMATCH)


class RegistryError(Exception):
    """A registry operation is not allowed (invalid transition, unknown version...)."""


def decide_status(
    gate_passed: bool, source: str, *, auto_approve_recalibration: bool = True
) -> str:
    """The status a freshly trained model is registered with (see the module docstring).

    ==============  ===========  =====================================================
    gate            source       status
    ==============  ===========  =====================================================
    failed          any          ``rejected``
    passed          tuning       ``pending_approval`` (a person approves)
    passed          recalib.     ``approved`` (``pending_approval`` if
                                 ``auto_approve_recalibration`` is false)
    ==============  ===========  =====================================================
    """
    if source not in SOURCES:
        raise ValueError(f"unknown model source {source!r}; expected one of {SOURCES}")
    if gate_passed not in (True, False):
        raise TypeError(f"gate_passed must be a bool, got {gate_passed!r}")
    if not gate_passed:
        return REJECTED
    if source == RECALIBRATION and auto_approve_recalibration:
        return APPROVED
    return PENDING


@dataclass(frozen=True)
class ModelVersion:
    """One registered model of one region (a ``registry_versions`` row)."""

    region: str
    version: int
    status: str
    created_at: str
    actor: str
    reasons: list[str]
    artifacts: dict[str, str]  # artifact name ("model.txt", "model.json", ...) -> URI
    record: dict[str, Any]
    checksums: dict[str, str] = field(default_factory=dict)  # artifact name -> sha256

    @property
    def label(self) -> str:
        return f"{self.region}:v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "version": self.version,
            "status": self.status,
            "created_at": self.created_at,
            "actor": self.actor,
            "reasons": list(self.reasons),
            "artifacts": dict(self.artifacts),
            "checksums": dict(self.checksums),
            "record": dict(self.record),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        return cls(
            region=data["region"],
            version=int(data["version"]),
            status=data["status"],
            created_at=data["created_at"],
            actor=data["actor"],
            reasons=list(data.get("reasons", [])),
            artifacts=dict(data.get("artifacts", {})),
            record=dict(data.get("record", {})),
            checksums=dict(data.get("checksums", {})),
        )


@dataclass(frozen=True)
class PrunedVersion:
    """A version whose artifacts :meth:`ModelRegistry.prune` deleted (or would delete)."""

    version: ModelVersion
    freed_bytes: int


@dataclass(frozen=True)
class IntegrityProblem:
    """One thing :meth:`ModelRegistry.verify` found wrong: an artifact (``artifact``) or a
    version's record (``artifact`` None)."""

    region: str
    version: int
    artifact: str | None
    kind: str  # one of PROBLEM_KINDS
    detail: str

    @property
    def label(self) -> str:
        return f"{self.region}:v{self.version}"

    def __str__(self) -> str:
        what = self.artifact or "record"
        return f"{self.label} {what}: {self.kind}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "version": self.version,
            "label": self.label,
            "artifact": self.artifact,
            "kind": self.kind,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class IntegrityReport:
    """What :meth:`ModelRegistry.check_integrity` did: versions checked and skipped (their
    artifacts pruned) per region, leftovers swept, problems found."""

    checked: dict[str, list[int]]
    pruned: dict[str, list[int]]
    swept: list[str]
    problems: list[IntegrityProblem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "pruned": self.pruned,
            "swept": self.swept,
            "problems": [p.to_dict() for p in self.problems],
        }


def artifact_key(region: str, version: int, name: str) -> str:
    """The store key of one artifact: ``<region>/<NNNN>/<name>``."""
    known = (*ARTIFACT_FILES, *OPTIONAL_ARTIFACT_FILES)
    if name not in known:
        raise ValueError(f"unknown artifact {name!r}; expected one of {known}")
    return f"{require_safe_key(region)}/{_check_version(version):04d}/{name}"


class ModelRegistry:
    """Model versions of every region in the state database; artifacts kept in ``store``."""

    def __init__(self, database: Engine | str, store: ModelStore) -> None:
        from mlops_assets.storage.database import engine_for

        self.engine = engine_for(database) if isinstance(database, str) else database
        self.store = store
        tables.ensure_registry_tables(self.engine)

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> ModelRegistry:
        """The registry of a workspace (its state database), with artifacts in its local
        model store; a registry still in files below ``registry/`` is imported once."""
        from mlops_assets.storage.database import engine_for

        engine = engine_for(workspace.state_database_url)
        tables.import_registry_files(engine, workspace.registry_dir)
        return cls(engine, LocalModelStore(workspace.models_dir))

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
        with self.engine.connect() as con:
            return _pruned(con, require_safe_key(region))

    def regions(self) -> list[str]:
        """Region keys with at least one registered version, sorted."""
        from sqlalchemy import select

        V = tables.VERSIONS
        with self.engine.connect() as con:
            rows = con.execute(select(V.c.region).distinct().order_by(V.c.region)).scalars()
            return [r for r in rows if is_safe_key(r)]

    def versions(self, region: str) -> list[ModelVersion]:
        """Every version of ``region``, oldest first (empty if it has none)."""
        with self.engine.connect() as con:
            return _versions(con, require_safe_key(region))

    def get(self, region: str, version: int) -> ModelVersion:
        """One version; ``RegistryError`` if it does not exist."""
        version = _check_version(version)
        with self.engine.connect() as con:
            return _get(con, require_safe_key(region), version)

    def latest_approved(self, region: str) -> ModelVersion | None:
        """THE approved model of ``region``, or ``None`` if no version is approved."""
        V = tables.VERSIONS
        with self.engine.connect() as con:
            found = _versions(con, require_safe_key(region), V.c.status == APPROVED)
        return found[0] if found else None

    def history(self, region: str) -> list[dict[str, Any]]:
        """The audit log of ``region``, oldest first (one dict per event)."""
        from sqlalchemy import select

        E = tables.EVENTS
        region = require_safe_key(region)
        with self.engine.connect() as con:
            rows = con.execute(select(E).where(E.c.region == region).order_by(E.c.seq))
            return [dict(row._mapping) for row in rows]

    def load_artifacts(self, mv: ModelVersion) -> tuple[str, dict[str, Any]]:
        """The model text (for ``lightgbm.Booster(model_str=...)``) and its metadata."""
        data = {name: self._read_artifact(mv, name) for name in ARTIFACT_FILES}
        return data[MODEL_FILE], json.loads(data[META_FILE])

    def load_reference(
        self, mv: ModelVersion, meta: dict[str, Any] | None = None
    ) -> pd.DataFrame | None:
        """The monitoring reference saved with ``mv`` (its fitted rows, categorical
        columns as text, dates as datetime), or ``None`` if it was registered without one.
        Its checksum is required and checked, as is the metadata's that types it (``meta``:
        the metadata ``load_artifacts`` already returned, not read again)."""
        text = self._optional_artifact(mv, REFERENCE_FILE)
        if text is None:
            return None
        from mlops_assets.training import read_reference_csv

        if meta is None:
            meta = json.loads(self._read_artifact(mv, META_FILE))
        return read_reference_csv(text, list(meta.get("categorical", [])))

    def load_fleet_gap(self, mv: ModelVersion) -> pd.DataFrame | None:
        """The region's weather minus the fleet median, day by day over ``mv``'s training
        window, as it was at registration (``date`` and one column per input), or ``None``
        if it was registered without it. Its checksum is required and checked."""
        text = self._optional_artifact(mv, FLEET_GAP_FILE)
        if text is None:
            return None
        from mlops_assets.training import read_reference_csv

        return read_reference_csv(text, [])

    def _optional_artifact(self, mv: ModelVersion, name: str) -> str | None:
        """An optional artifact's text, None if the version has none; one without a
        recorded checksum is refused (by ``_read_artifact``)."""
        if name not in mv.artifacts:
            return None
        return self._read_artifact(mv, name)

    def _read_artifact(self, mv: ModelVersion, name: str) -> str:
        """One artifact's text, refused if its record holds no checksum for it or it does
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
                f"register a version with checksums ({_VERIFY_HINT})"
            )
        if hashlib.sha256(raw).hexdigest() != expected:
            raise RegistryError(
                f"{mv.label}: artifact {name} does not match the checksum recorded at "
                f"registration; refusing to load it ({_VERIFY_HINT})"
            )
        return raw.decode("utf-8")

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
                versions = _versions(con, key)
                if not versions:
                    continue
                pruned = _pruned(con, key)
                report.checked[key] = [mv.version for mv in versions if mv.version not in pruned]
                report.pruned[key] = [mv.version for mv in versions if mv.version in pruned]
                for mv in versions:
                    if mv.version not in pruned:
                        report.problems.extend(self._check_version(mv))
        return report

    def sweep(self, region: str) -> list[str]:
        """Under ``region``'s lock: remove what interrupted writes and killed registrations
        left (temporary files, artifacts of numbers no committed version has); return
        where they were. Every mutation does this first."""
        require_safe_key(region)
        with self._locked(region) as con:
            return self._sweep(con, region)

    def _check_version(self, mv: ModelVersion) -> list[IntegrityProblem]:
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
        reference_csv: str | None = None,
        fleet_gap_csv: str | None = None,
    ) -> ModelVersion:
        """Store a new version of ``region`` (numbered 1, 2, ...) with its artifacts.

        ``status`` is ``pending_approval``, ``approved`` or ``rejected`` (usually from
        :func:`decide_status`); registering as approved archives the approved version.
        ``reference_csv``: the monitoring reference (``TrainedModel.reference_csv()``),
        stored as ``reference.csv`` with its checksum when given; ``fleet_gap_csv``
        likewise as ``fleet_gap.csv`` (``monitoring.reference_fleet_gap``).
        """
        require_safe_key(region)
        if status not in REGISTRABLE:
            raise ValueError(
                f"a new version of {region} cannot be registered as {status!r}; "
                f"expected one of {REGISTRABLE}"
            )
        actor = _check_text(actor, "actor")
        if not isinstance(reasons, list | tuple) or not all(isinstance(r, str) for r in reasons):
            raise TypeError(f"reasons must be a list of strings, got {reasons!r}")
        if not isinstance(model_text, str) or not model_text.strip():
            raise ValueError(f"model_text of {region} is empty; expected a text model")
        if not isinstance(model_meta, dict) or not isinstance(record, dict):
            raise TypeError("model_meta and record must be dicts")
        for name, text in (("reference_csv", reference_csv), ("fleet_gap_csv", fleet_gap_csv)):
            if text is not None and (not isinstance(text, str) or not text.strip()):
                raise ValueError(f"{name} of {region} must be non-empty CSV text or None")
        source = record.get("source")
        if source is not None and source not in SOURCES:
            raise ValueError(f"record source {source!r} is not one of {SOURCES}")
        blobs = {
            MODEL_FILE: model_text.encode("utf-8"),
            META_FILE: json.dumps(model_meta, indent=2, sort_keys=True, default=str).encode(),
        }
        for name, text in ((REFERENCE_FILE, reference_csv), (FLEET_GAP_FILE, fleet_gap_csv)):
            if text is not None:
                blobs[name] = text.encode("utf-8")
        body = {"reasons": list(reasons), "record": dict(record)}
        # canonical JSON now, so a record that cannot be stored fails before any write
        json.dumps(body, sort_keys=True, default=str)

        with self._locked(region) as con:
            self._recover(con, region)
            statuses = _statuses(con, region)
            version = max(statuses, default=0) + 1
            body["artifacts"] = {
                name: self.store.put(artifact_key(region, version, name), blob)
                for name, blob in blobs.items()
            }
            body["checksums"] = {
                name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()
            }
            now = _now()
            reason = "; ".join(reasons) or f"registered as {status}"
            new = [_event(now, actor, "register", region, version, None, status, reason)]
            new += _supersede(now, actor, region, version, status, statuses)
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
            return _get(con, region, version)

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
        version = _check_version(version)
        actor = _check_text(actor, "actor")
        reason = _check_text(reason, "reason")
        with self._locked(region) as con:
            self._recover(con, region)
            statuses = _statuses(con, region)
            _require_exists(region, version, statuses)
            current = statuses[version]
            to_status = _check_transition(f"{region}:v{version}", current, action)
            when = _pruned(con, region).get(version)
            if when is not None:
                raise RegistryError(
                    f"{region}:v{version}'s artifacts were pruned at {when} (registry "
                    f"retention); it cannot be {to_status} again - retrain instead"
                )
            now = _now()
            new = [_event(now, actor, action, region, version, current, to_status, reason)]
            new += _supersede(now, actor, region, version, to_status, statuses)
            self._commit(con, region, new)
            return _get(con, region, version)

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
        actor = _check_text(actor, "actor")
        for name, keep in (("keep_archived", keep_archived), ("keep_rejected", keep_rejected)):
            if isinstance(keep, bool) or not isinstance(keep, numbers.Integral) or keep < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {keep!r}")
        with self._locked(region) as con:
            self._recover(con, region)
            statuses, done = _statuses(con, region), _pruned(con, region)
            victims = []
            for status, keep in ((ARCHIVED, keep_archived), (REJECTED, keep_rejected)):
                old = sorted((v for v, s in statuses.items() if s == status), reverse=True)
                victims += [v for v in old[keep:] if v not in done]
            victims.sort()
            pruned = [
                PrunedVersion(mv, self.artifact_bytes(mv))
                for mv in (_get(con, region, v) for v in victims)
            ]
            if dry_run:
                return pruned
            now = _now()
            new = [
                _event(now, actor, "prune", region, v, statuses[v], statuses[v], _PRUNE_REASON)
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
            con.execute(_insert_ignore(con, R, {"region": region}))
            con.execute(select(R.c.region).where(R.c.region == region).with_for_update())
            yield con

    def _recover(self, con: Connection, region: str) -> None:
        """Under the lock: sweep what killed writers left and finish an interrupted prune."""
        self._sweep(con, region)
        self._delete_pruned(region, list(_pruned(con, region)))

    def _delete_pruned(self, region: str, versions: list[int]) -> None:
        for v in sorted(set(versions)):
            for name in (*ARTIFACT_FILES, *OPTIONAL_ARTIFACT_FILES):
                self.store.delete(artifact_key(region, v, name))

    def _sweep(self, con: Connection, region: str) -> list[str]:
        """Under the lock (no write of ``region`` can be in flight): delete temporary files
        of interrupted writes and artifacts of numbers no committed version has (a
        registration killed before its commit); return where they were."""
        statuses = _statuses(con, region)
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


# -------------------------------------------------------------------- queries


def _versions(con: Connection, region: str, *where: Any) -> list[ModelVersion]:
    from sqlalchemy import select

    V = tables.VERSIONS
    rows = con.execute(
        select(V).where(V.c.region == region, *where).order_by(V.c.version)
    ).mappings()
    return [_model_version(row) for row in rows]


def _model_version(row: Any) -> ModelVersion:
    body = json.loads(row["body"])
    return ModelVersion(
        region=row["region"],
        version=int(row["version"]),
        status=row["status"],
        created_at=row["created_at"],
        actor=row["actor"],
        reasons=list(body.get("reasons", [])),
        artifacts=dict(body.get("artifacts", {})),
        record=dict(body.get("record", {})),
        checksums=dict(body.get("checksums", {})),
    )


def _get(con: Connection, region: str, version: int) -> ModelVersion:
    V = tables.VERSIONS
    found = _versions(con, region, V.c.version == version)
    if not found:
        _require_exists(region, version, _statuses(con, region))
    return found[0]


def _statuses(con: Connection, region: str) -> dict[int, str]:
    from sqlalchemy import select

    V = tables.VERSIONS
    rows = con.execute(select(V.c.version, V.c.status).where(V.c.region == region))
    return {int(v): s for v, s in rows}


def _pruned(con: Connection, region: str) -> dict[int, str]:
    from sqlalchemy import select

    V = tables.VERSIONS
    rows = con.execute(
        select(V.c.version, V.c.pruned_at).where(V.c.region == region, V.c.pruned_at.is_not(None))
    )
    return {int(v): at for v, at in rows}


def _insert_ignore(con: Connection, table: Any, values: dict[str, Any]) -> Any:
    """INSERT that does nothing when the row exists (SQLite and PostgreSQL)."""
    if con.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**values).on_conflict_do_nothing()


# -------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    return int(version)


def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _event(
    at: str,
    actor: str,
    action: str,
    region: str,
    version: int,
    from_status: str | None,
    to_status: str,
    reason: str,
) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor,
        "action": action,
        "region": region,
        "version": version,
        "from_status": from_status,
        "to_status": to_status,
        "reason": reason,
    }


def _supersede(
    at: str, actor: str, region: str, version: int, to_status: str, statuses: dict[int, str]
) -> list[dict[str, Any]]:
    """The archive event of the approved version that ``version`` replaces, if any.

    Logged after the approval: a reader that sees the approval but not yet this line
    still archives the old version in its replay, so it never sees two approved."""
    previous = _approved(statuses)
    if to_status != APPROVED or previous is None or previous == version:
        return []
    why = f"superseded by {region}:v{version}"
    return [_event(at, actor, "archive", region, previous, APPROVED, ARCHIVED, why)]


def _approved(statuses: dict[int, str]) -> int | None:
    approved = [v for v, s in statuses.items() if s == APPROVED]
    return approved[0] if approved else None


def _require_exists(region: str, version: int, statuses: dict[int, str]) -> None:
    if version not in statuses:
        known = f"versions 1..{max(statuses)}" if statuses else "no versions"
        raise RegistryError(f"{region}:v{version} does not exist; {region} has {known}")


_TRANSITIONS = {
    ("approve", PENDING): APPROVED,
    ("reject", PENDING): REJECTED,
    ("rollback", ARCHIVED): APPROVED,
}


def _check_transition(label: str, current: str, action: str) -> str:
    """The status ``action`` moves a version in ``current`` to; ``RegistryError`` if none."""
    to_status = _TRANSITIONS.get((action, current))
    if to_status is not None:
        return to_status
    if current == APPROVED and action in ("approve", "rollback"):
        raise RegistryError(f"{label} is already the approved version; nothing to do")
    if current == REJECTED and action in ("approve", "rollback"):
        raise RegistryError(
            f"{label} is rejected; a rejected version cannot be approved - "
            "register a new version instead"
        )
    if current == ARCHIVED and action == "approve":
        raise RegistryError(f"{label} is archived; use rollback to approve it again")
    if current == PENDING and action == "rollback":
        raise RegistryError(
            f"{label} is pending_approval and was never approved; use approve, "
            "rollback only re-approves an archived version"
        )
    if action == "reject":
        raise RegistryError(
            f"{label} is {current}; only a pending_approval version can be rejected"
        )
    raise RegistryError(f"{label} is {current}; cannot {action} it")  # pragma: no cover
