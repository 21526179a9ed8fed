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
before the files are deleted, and a prune interrupted in between finishes on the next run.

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

On disk (below ``root``)
------------------------
``<region_key>/versions/<NNNN>.json``
    one record per version, written atomically: region, version, status, created_at,
    actor, reasons, artifact URIs and checksums, and the caller's ``record`` (training
    data version and date range, code version, hyper-parameters, features, metrics,
    baseline metrics, run id, source).
``<region_key>/events.jsonl``
    the append-only audit log: one line per registration and status change with ``at``
    (UTC, ISO 8601), ``actor``, ``action``, ``version``, ``from_status``, ``to_status``
    and ``reason``.
``<region_key>/.lock``
    every mutation of a region holds an exclusive ``fcntl.flock`` on this file, so
    concurrent threads and processes (on one machine, or a filesystem with working
    ``flock``) never allocate the same version number or approve two versions.

The audit log is also the commit log. A change is committed by appending its lines to
``events.jsonl`` in one write; statuses are the replay of the log, and the ``status`` in
each version file is a copy brought in step right after (and repaired by the next
mutation should a crash fall in between). Readers take no lock: they read the log once
(ignoring an unfinished last line) and then the immutable parts of the version files, so
every read sees one consistent state - never two approved versions, never none while an
approval replaces another. An approval is logged before the archive it implies, and the
replay archives the previous approved version as soon as it sees the approval.

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

A registration writes the artifacts, then the version file, then commits its log line;
killed before the commit, it leaves files no committed version owns, and possibly an
unfinished write (a hidden ``*.partial.tmp``, see :func:`~mlops_assets.workspace.is_temp_name`).
Every mutation, under the region's lock, first sweeps them (:meth:`ModelRegistry.sweep`;
``verify`` sweeps too). Version numbers come from the committed log (the highest plus
one), so the number of a registration killed before its commit was never taken and the
next registration reuses it: numbers stay dense, and the audit log never names a version
that does not exist.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import numbers
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.model_store import LocalModelStore, ModelStore
from mlops_assets.naming import is_safe_key, require_safe_key
from mlops_assets.workspace import atomic_write_json, is_temp_name

if TYPE_CHECKING:
    import pandas as pd

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

_EVENTS = "events.jsonl"
_PRUNE_REASON = "retention: artifacts deleted, record and audit log kept"
_LOCK = ".lock"
_VERIFY_HINT = "`mlops-assets registry verify` lists every such version"

# what verify reports about a version (or, with version None, about a region's log)
MISSING_RECORD = "missing_record"
MISSING_ARTIFACT = "missing_artifact"
MISSING_CHECKSUM = "missing_checksum"
CHECKSUM_MISMATCH = "checksum_mismatch"
UNREADABLE_LOG = "unreadable_log"
PROBLEM_KINDS = (
    MISSING_RECORD,
    MISSING_ARTIFACT,
    MISSING_CHECKSUM,
    CHECKSUM_MISMATCH,
    UNREADABLE_LOG,
)


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
    """One registered model of one region, as stored in ``versions/<NNNN>.json``."""

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
    """One thing :meth:`ModelRegistry.verify` found wrong: an artifact (``artifact``), a
    version's record (``artifact`` None) or a region's audit log (``version`` None)."""

    region: str
    version: int | None
    artifact: str | None
    kind: str  # one of PROBLEM_KINDS
    detail: str

    @property
    def label(self) -> str:
        return self.region if self.version is None else f"{self.region}:v{self.version}"

    def __str__(self) -> str:
        what = self.artifact or ("events.jsonl" if self.version is None else "record")
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
    """Model versions of every region below ``root``; artifacts kept in ``store``."""

    def __init__(self, root: Path, store: ModelStore) -> None:
        self.root = Path(root).resolve()
        self.store = store

    @classmethod
    def for_workspace(cls, workspace: Workspace) -> ModelRegistry:
        """The registry of a workspace, with artifacts in its local model store."""
        return cls(workspace.registry_dir, LocalModelStore(workspace.models_dir))

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r}, {self.store!r})"

    # ------------------------------------------------------------------ queries

    def artifact_bytes(self, mv: ModelVersion) -> int:
        """Bytes of ``mv``'s artifacts still in the store (0 once pruned)."""
        return sum(
            self.store.size(artifact_key(mv.region, mv.version, name)) for name in mv.artifacts
        )

    def pruned(self, region: str) -> dict[int, str]:
        """Version -> when its artifacts were pruned (UTC, ISO 8601), for ``region``."""
        return _pruned(self._read_events(region))

    def regions(self) -> list[str]:
        """Region keys with at least one registered version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if is_safe_key(p.name) and (p / _EVENTS).is_file() and self._read_events(p.name)
        )

    def versions(self, region: str) -> list[ModelVersion]:
        """Every version of ``region``, oldest first (empty if it has none)."""
        statuses = _replay(self._read_events(region))
        return [self._read_version(region, v, s) for v, s in sorted(statuses.items())]

    def get(self, region: str, version: int) -> ModelVersion:
        """One version; ``RegistryError`` if it does not exist."""
        version = _check_version(version)
        statuses = _replay(self._read_events(region))
        _require_exists(region, version, statuses)
        return self._read_version(region, version, statuses[version])

    def latest_approved(self, region: str) -> ModelVersion | None:
        """THE approved model of ``region``, or ``None`` if no version is approved."""
        statuses = _replay(self._read_events(region))
        approved = _approved(statuses)
        return None if approved is None else self._read_version(region, approved, APPROVED)

    def history(self, region: str) -> list[dict[str, Any]]:
        """The audit log of ``region``, oldest first (one dict per event)."""
        return self._read_events(region)

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
        elif self.root.is_dir():
            regions = sorted(p.name for p in self.root.iterdir() if is_safe_key(p.name))
        else:
            regions = []
        report = IntegrityReport({}, {}, [], [])
        for key in regions:
            if not self._region_dir(key).is_dir():
                continue
            with self._locked(key):
                try:
                    events = self._repair_log(key)
                except RegistryError as exc:  # an audit log that does not parse
                    report.problems.append(
                        IntegrityProblem(key, None, None, UNREADABLE_LOG, str(exc))
                    )
                    continue
                report.swept.extend(self._sweep(key, events))
                if not events:
                    continue
                statuses, pruned = _replay(events), _pruned(events)
                report.checked[key] = [v for v in sorted(statuses) if v not in pruned]
                report.pruned[key] = sorted(v for v in statuses if v in pruned)
                for version in report.checked[key]:
                    report.problems.extend(self._check_version(key, version, statuses[version]))
        return report

    def sweep(self, region: str) -> list[str]:
        """Under ``region``'s lock: remove what interrupted writes and killed registrations
        left (temporary files, version files and artifacts of numbers no committed version
        has); return where they were. Every mutation does this first."""
        require_safe_key(region)
        with self._locked(region):
            return self._sweep(region, self._repair_log(region))

    def _check_version(self, region: str, version: int, status: str) -> list[IntegrityProblem]:
        """The problems of one committed version's record and artifacts."""
        try:
            mv = self._read_version(region, version, status)
        except (RegistryError, ValueError, KeyError) as exc:  # missing, or not a record
            return [IntegrityProblem(region, version, None, MISSING_RECORD, str(exc))]
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

        with self._locked(region):
            events = self._recover(region)
            statuses = _replay(events)
            version = max(statuses, default=0) + 1
            artifacts = {
                name: self.store.put(artifact_key(region, version, name), blob)
                for name, blob in blobs.items()
            }
            checksums = {name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}
            now = _now()
            mv = ModelVersion(
                region=region,
                version=version,
                status=status,
                created_at=now,
                actor=actor,
                reasons=list(reasons),
                artifacts=artifacts,
                record=dict(record),
                checksums=checksums,
            )
            # written before the commit: a crash leaves an uncommitted file nobody reads
            atomic_write_json(self._version_path(region, version), mv.to_dict())
            reason = "; ".join(reasons) or f"registered as {status}"
            new = [_event(now, actor, "register", region, version, None, status, reason)]
            new += _supersede(now, actor, region, version, status, statuses)
            self._commit(region, events, new)
            return self._read_version(region, version, status)

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
        with self._locked(region):
            events = self._recover(region)
            statuses = _replay(events)
            _require_exists(region, version, statuses)
            current = statuses[version]
            to_status = _check_transition(f"{region}:v{version}", current, action)
            when = _pruned(events).get(version)
            if when is not None:
                raise RegistryError(
                    f"{region}:v{version}'s artifacts were pruned at {when} (registry "
                    f"retention); it cannot be {to_status} again - retrain instead"
                )
            now = _now()
            new = [_event(now, actor, action, region, version, current, to_status, reason)]
            new += _supersede(now, actor, region, version, to_status, statuses)
            self._commit(region, events, new)
            return self._read_version(region, version, to_status)

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
        with self._locked(region):
            events = self._recover(region)
            statuses, done = _replay(events), _pruned(events)
            victims = []
            for status, keep in ((ARCHIVED, keep_archived), (REJECTED, keep_rejected)):
                old = sorted((v for v, s in statuses.items() if s == status), reverse=True)
                victims += [v for v in old[keep:] if v not in done]
            victims.sort()
            pruned = [
                PrunedVersion(mv, self.artifact_bytes(mv))
                for mv in (self._read_version(region, v, statuses[v]) for v in victims)
            ]
            if dry_run:
                return pruned
            now = _now()
            new = [
                _event(now, actor, "prune", region, v, statuses[v], statuses[v], _PRUNE_REASON)
                for v in victims
            ]
            if new:
                self._commit(region, events, new)
            # also the versions of a prune that was interrupted after its commit
            for v in sorted({*done, *victims}):
                for name in (*ARTIFACT_FILES, *OPTIONAL_ARTIFACT_FILES):
                    self.store.delete(artifact_key(region, v, name))
            return pruned

    # ---------------------------------------------------------------- internals

    def _region_dir(self, region: str) -> Path:
        return self.root / require_safe_key(region)

    def _version_path(self, region: str, version: int) -> Path:
        return self._region_dir(region) / "versions" / f"{version:04d}.json"

    def _events_path(self, region: str) -> Path:
        return self._region_dir(region) / _EVENTS

    @contextmanager
    def _locked(self, region: str) -> Iterator[None]:
        """Exclusive lock on one region, across threads and processes."""
        region_dir = self._region_dir(region)
        region_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(region_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    def _read_events(self, region: str) -> list[dict[str, Any]]:
        path = self._events_path(region)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        return _parse_events(raw, path)

    def _read_version(self, region: str, version: int, status: str) -> ModelVersion:
        """The version file, with the status the log says (the file's copy may lag)."""
        path = self._version_path(region, version)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise RegistryError(
                f"{region}:v{version} is in the audit log but {path} is missing"
            ) from None
        data["status"] = status
        return ModelVersion.from_dict(data)

    def _recover(self, region: str) -> list[dict[str, Any]]:
        """Under the lock: drop an unfinished last log line left by a crash, sweep what
        killed writers left, bring the version files in step with the log, and return
        the committed events."""
        events = self._repair_log(region)
        self._sweep(region, events)
        self._sync_files(region, events)
        return events

    def _repair_log(self, region: str) -> list[dict[str, Any]]:
        """Under the lock: the committed events, after dropping an unfinished last line."""
        path = self._events_path(region)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = b""
        if raw and not raw.endswith(b"\n"):
            keep = raw.rfind(b"\n") + 1
            os.truncate(path, keep)
            raw = raw[:keep]
        return _parse_events(raw, path)

    def _sweep(self, region: str, events: list[dict[str, Any]]) -> list[str]:
        """Under the lock (no write of ``region`` can be in flight): delete temporary files
        of interrupted writes, version files and artifacts of numbers the log never
        committed (a registration killed before its commit); return where they were."""
        statuses = _replay(events)
        swept = []
        region_dir = self._region_dir(region)
        for folder in (region_dir, region_dir / "versions"):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                number = int(path.stem) if path.suffix == ".json" and path.stem.isdigit() else None
                orphan_record = folder.name == "versions" and number is not None
                if is_temp_name(path.name) or (orphan_record and number not in statuses):
                    path.unlink(missing_ok=True)
                    swept.append(str(path))
        swept += self.store.sweep_temp(region)
        for key in self.store.keys(region):
            parts = key.split("/")
            if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) not in statuses:
                swept.append(self.store.uri(key))
                self.store.delete(key)
        return swept

    def _commit(self, region: str, events: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        """Append ``new`` to the log in one write (the commit), then update the files."""
        for seq, event in enumerate(new, start=len(events) + 1):
            event["seq"] = seq
        data = b"".join(json.dumps(e, sort_keys=True, default=str).encode() + b"\n" for e in new)
        fd = os.open(self._events_path(region), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._sync_files(region, events + new)

    def _sync_files(self, region: str, events: list[dict[str, Any]]) -> None:
        statuses = _replay(events)
        versions_dir = self._region_dir(region) / "versions"
        if not versions_dir.is_dir():
            return
        for path in versions_dir.glob("*.json"):
            number = int(path.stem) if path.stem.isdigit() else None
            if number not in statuses:  # written by a register that never committed
                path.unlink(missing_ok=True)
                continue
            data = json.loads(path.read_text())
            if data.get("status") != statuses[number]:
                data["status"] = statuses[number]
                atomic_write_json(path, data)


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


def _parse_events(raw: bytes, path: Path) -> list[dict[str, Any]]:
    """Complete lines of the log; a last line without newline is still being written
    (or was cut by a crash) and is not committed."""
    lines = raw.split(b"\n")[:-1]
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path} line {number} is not valid JSON: {exc}") from exc
    return events


def _replay(events: list[dict[str, Any]]) -> dict[int, str]:
    """Version -> status after ``events``; approving one version archives the other."""
    statuses: dict[int, str] = {}
    for event in events:
        version, to_status = int(event["version"]), event["to_status"]
        if to_status == APPROVED:
            for other, status in statuses.items():
                if status == APPROVED and other != version:
                    statuses[other] = ARCHIVED
        statuses[version] = to_status
    return statuses


def _pruned(events: list[dict[str, Any]]) -> dict[int, str]:
    """Version -> when its artifacts were pruned, from the log's ``prune`` lines."""
    return {int(e["version"]): e["at"] for e in events if e.get("action") == "prune"}


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
