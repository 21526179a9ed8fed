"""What a registered model version is: statuses and their transitions, the approval
policy, the version record and the integrity report (see ``mlops_assets.registry``)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops_assets.naming import require_safe_key

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
REFERENCE_FILE = "reference.parquet"  # optional: the monitoring reference
# the monitoring reference of versions registered before it was Parquet (read, not written)
REFERENCE_CSV_FILE = "reference.csv"
FLEET_GAP_FILE = "fleet_gap.csv"  # optional: the weather's gap to the fleet, training window
OPTIONAL_ARTIFACT_FILES = (REFERENCE_FILE, REFERENCE_CSV_FILE, FLEET_GAP_FILE)

PRUNE_REASON = "retention: artifacts deleted, record and audit log kept"
VERIFY_HINT = "`mlops-assets registry verify` lists every such version"

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
    return f"{require_safe_key(region)}/{check_version(version):04d}/{name}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, numbers.Integral) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    return int(version)


def check_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def audit_event(
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


def supersede(
    at: str, actor: str, region: str, version: int, to_status: str, statuses: dict[int, str]
) -> list[dict[str, Any]]:
    """The archive event of the approved version that ``version`` replaces, if any.

    Logged after the approval: a reader that sees the approval but not yet this line
    still archives the old version in its replay, so it never sees two approved."""
    previous = approved_version(statuses)
    if to_status != APPROVED or previous is None or previous == version:
        return []
    why = f"superseded by {region}:v{version}"
    return [audit_event(at, actor, "archive", region, previous, APPROVED, ARCHIVED, why)]


def approved_version(statuses: dict[int, str]) -> int | None:
    approved = [v for v, s in statuses.items() if s == APPROVED]
    return approved[0] if approved else None


def require_exists(region: str, version: int, statuses: dict[int, str]) -> None:
    if version not in statuses:
        known = f"versions 1..{max(statuses)}" if statuses else "no versions"
        raise RegistryError(f"{region}:v{version} does not exist; {region} has {known}")


_TRANSITIONS = {
    ("approve", PENDING): APPROVED,
    ("reject", PENDING): REJECTED,
    ("rollback", ARCHIVED): APPROVED,
}


def check_transition(label: str, current: str, action: str) -> str:
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
