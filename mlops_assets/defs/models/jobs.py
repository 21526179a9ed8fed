"""Registry operations from the UI (a job with launchpad config) and the weekly retrain."""

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

import dagster as dg
from pydantic import Field

from mlops_assets.defs.launch_config import checked_at_launch
from mlops_assets.defs.models.assets import REGION_MODEL_KEY, notify_status
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource

if TYPE_CHECKING:
    from mlops_assets.registry import ModelRegistry
    from mlops_assets.workspace import Workspace

TRAIN_JOB = "train_job"


class ModelStatusChange(dg.Config):
    """Launchpad form of the registry job."""

    region: str = Field(
        min_length=1,
        description="the region whose model to act on, as in the label `<region>:v<version>` "
        "(a region with at least one registered model)",
    )
    version: int = Field(
        ge=1,
        description="the model version to act on, as in the label `<region>:v<version>` "
        "(`mlops-assets registry list` or the region_model page shows them)",
    )
    action: Literal["approve", "reject", "rollback"] = Field(
        description="approve: a pending_approval version becomes the served model (the "
        "previous one is archived); reject: a pending_approval version is refused for good; "
        "rollback: an archived version is served again"
    )
    reason: str = Field(
        min_length=3, description="why, in words: recorded in the registry's audit log"
    )
    actor: str = Field(
        default="dagster-ui", min_length=1, description="who decided (recorded with the reason)"
    )


def unknown_model_version(registry: "ModelRegistry", region: str, version: int) -> str | None:
    """Why ``region``:v``version`` cannot be acted on (None: it exists)."""
    regions = registry.regions()
    if region not in regions:
        return (
            f"no model of region {region!r} is registered; regions with models: "
            f"{', '.join(regions) or 'none yet'}. Nothing was changed."
        )
    versions = registry.versions(region)
    if version not in {v.version for v in versions}:
        known = ", ".join(f"v{v.version} ({v.status})" for v in versions)
        return (
            f"{region} has no model version {version}; its versions: {known}. Nothing was changed."
        )
    return None


@dg.op(description="Approve, reject or roll back a model version; recorded with who and why.")
def change_model_status(
    context: dg.OpExecutionContext,
    config: ModelStatusChange,
    workspace: WorkspaceResource,
    notifier: NotifierResource,
) -> Iterator[dg.AssetObservation | dg.Output[None]]:
    from mlops_assets.registry import RegistryError

    registry = workspace.registry()
    region = config.region
    # checked again here: the launch-time check and this run may be apart in time
    if problem := unknown_model_version(registry, region, config.version):
        raise dg.Failure(description=problem)
    action = {
        "approve": registry.approve,
        "reject": registry.reject,
        "rollback": registry.rollback,
    }[config.action]
    try:
        mv = action(region, config.version, actor=config.actor, reason=config.reason)
    except RegistryError as exc:
        raise dg.Failure(description=f"{exc} Nothing was changed.") from exc
    context.log.info(f"{config.action}: {mv.label} is now {mv.status} ({config.reason})")
    notify_status(
        notifier,
        mv,
        f"{config.action} by {config.actor}: {config.reason}",
        run_id=context.run.run_id,
    )
    approved = registry.latest_approved(region)
    yield dg.AssetObservation(
        asset_key=REGION_MODEL_KEY,
        partition=region,
        metadata={
            "action": config.action,
            "model_label": mv.label,
            "status": mv.status,
            "approved_version": approved.label if approved else "none",
            "actor": config.actor,
            "reason": config.reason,
        },
    )
    yield dg.Output(None)


def build_registry_job(workspace: "Workspace") -> dg.JobDefinition:
    """The registry job; its launchpad config is checked against ``workspace``'s registry
    when the run is launched (the code server builds the run's plan), so an unknown region
    or version is refused with the reason before any run exists: no red run for a typo."""

    def known_version_only(config: ModelStatusChange) -> str | None:
        from mlops_assets.registry import ModelRegistry

        return unknown_model_version(
            ModelRegistry.for_workspace(workspace), config.region, config.version
        )

    @dg.job(
        config=checked_at_launch(ModelStatusChange, "change_model_status", known_version_only),
        description="Change a model version's status in the registry: fill in the region, "
        "the version, the action and the reason in the launchpad. An unknown region or "
        "version is refused at launch, naming what exists; no run is created.",
    )
    def registry_job() -> None:
        change_model_status()

    return registry_job


class RegistryRetention(dg.Config):
    """Launchpad form of the retention job: empty fields keep the spec's ``retention:``."""

    keep_archived: int | None = Field(
        default=None, ge=0, description="archived versions kept loadable per region"
    )
    keep_rejected: int | None = Field(
        default=None, ge=0, description="rejected versions kept loadable per region"
    )
    dry_run: bool = Field(default=False, description="report what would go, delete nothing")
    actor: str = Field(default="dagster", description="who pruned (recorded in the audit log)")


@dg.op(
    description="Delete the artifacts (model text, monitoring reference) of old archived "
    "and rejected model versions; records and the audit log stay."
)
def prune_registry(
    context: dg.OpExecutionContext, config: RegistryRetention, workspace: WorkspaceResource
) -> Iterator[dg.AssetObservation | dg.Output[None]]:
    keep = workspace.dataset().retention.with_overrides(
        keep_archived=config.keep_archived, keep_rejected=config.keep_rejected
    )
    registry = workspace.registry()
    for region in registry.regions():
        pruned = registry.prune(
            region,
            keep_archived=keep.keep_archived,
            keep_rejected=keep.keep_rejected,
            actor=config.actor,
            dry_run=config.dry_run,
        )
        labels = [p.version.label for p in pruned]
        verb = "would prune" if config.dry_run else "pruned"
        context.log.info(f"{region}: {verb} {labels or 'nothing'}")
        if not labels:
            continue
        yield dg.AssetObservation(
            asset_key=REGION_MODEL_KEY,
            partition=region,
            metadata={
                "retention": f"{verb} {len(labels)} version(s)",
                "pruned_versions": ", ".join(labels) or "none",
                "freed_bytes": dg.MetadataValue.int(sum(p.freed_bytes for p in pruned)),
                "keep_archived": keep.keep_archived,
                "keep_rejected": keep.keep_rejected,
            },
        )
    yield dg.Output(None)


@dg.job(
    description="Registry retention: prune the artifacts of old archived and rejected "
    "model versions (the spec's retention settings; launchpad may override)."
)
def registry_retention_job() -> None:
    prune_registry()


def build_registry_retention_schedule(
    default_status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="registry_retention_schedule",
        cron_schedule="0 6 * * 1",
        job=registry_retention_job,
        default_status=default_status,
        description="Mondays 06:00, after the weekly retrain: prune old model versions' "
        "artifacts per the spec's retention settings.",
    )


def build_weekly_retrain_schedule(
    default_status: dg.DefaultScheduleStatus,
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="weekly_retrain_schedule",
        cron_schedule="0 3 * * 1",
        job_name=TRAIN_JOB,
        default_status=default_status,
        description="Mondays 03:00: retrain every region with the reviewed hyper-parameters "
        "(recalibration, auto-approved when it passes the gate) and re-forecast.",
    )
    def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        day = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return [
            dg.RunRequest(
                partition_key=region,
                run_key=f"weekly-{region}-{day}",
                tags={"mlops/trigger": "weekly_retrain_schedule"},
            )
            for region in context.instance.get_dynamic_partitions("region")
        ]

    return weekly_retrain_schedule
