"""registry_artifacts_intact: a WARN check that a region's registered model artifacts still
match the checksums recorded at registration (the logic is ``ModelRegistry.verify``)."""

import dagster as dg

from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.partitions import region_check_spec
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.naming import require_safe_key
from mlops_assets.registry import IntegrityReport

REGISTRY_CHECK = "registry_artifacts_intact"
_LISTED = 20  # problems spelled out in the description; the count has them all


def integrity_result(region: str, report: IntegrityReport) -> dg.AssetCheckResult:
    """The check result of one region's integrity report: WARN when anything is off (the
    loaders already refuse bad artifacts; this says which versions, before someone needs
    them, e.g. for a rollback)."""
    checked = report.checked.get(region, [])
    problems = [str(p) for p in report.problems]
    if problems:
        lines = problems[:_LISTED] + [f"... and {len(problems) - _LISTED} more"] * (
            len(problems) > _LISTED
        )
        description = (
            f"{len(problems)} problem(s) with {region}'s registered artifacts (`mlops-assets "
            "registry verify` lists them):\n" + "\n".join(lines)
        )
    else:
        description = f"every artifact of {len(checked)} loadable version(s) matches its checksum"
    return dg.AssetCheckResult(
        asset_key=REGION_MODEL_KEY,
        check_name=REGISTRY_CHECK,
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "problems": len(problems),
            "versions_checked": len(checked),
            "versions_pruned": len(report.pruned.get(region, [])),
            "bad_versions": ", ".join(sorted({p.label for p in report.problems})) or "none",
            "leftovers_swept": len(report.swept),
        },
    )


def registry_check_spec() -> dg.AssetCheckSpec:
    """Per region partition, with every ``region_model`` materialization (it is in the
    asset's selection) and on demand from the UI (the op then computes only the check)."""
    return region_check_spec(
        REGISTRY_CHECK,
        REGION_MODEL_KEY,
        blocking=False,
        description="Every artifact (model text, metadata, monitoring reference) of the "
        "region's registered versions that are not pruned matches the SHA-256 recorded "
        "at registration; WARN lists missing artifacts, mismatches and records without "
        "checksums. Also sweeps what killed registrations left behind.",
    )


def check_registry_integrity(workspace: WorkspaceResource, region: str) -> dg.AssetCheckResult:
    region = require_safe_key(region)
    return integrity_result(region, workspace.registry().check_integrity(region))
