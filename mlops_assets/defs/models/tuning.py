"""tuning_job: search one region's hyper-parameters and register the result for review.

Launched from the UI (pick a ``region`` partition; the launchpad may override the spec's
budget) or by a sensor through ``TUNING_JOB``. The tuned model is registered
``pending_approval`` (or ``rejected`` by the gate), never approved: a person approves it
with ``registry_job``.
"""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY, latest_data_version, notify_status
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.naming import require_safe_key

TUNING_JOB = "tuning_job"


class TuningConfig(dg.Config):
    """Launchpad form of the tuning job: empty fields keep the spec's ``tuning:`` values."""

    n_trials: int | None = Field(
        default=None,
        ge=1,
        description="new trials in this run (default: the spec's tuning.n_trials)",
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="no new trial starts after this many seconds (default: the spec's "
        "tuning.timeout_seconds)",
    )


@dg.op(
    description="Continue the region's optuna study for one budget, train with the best "
    "parameters, gate and register the model as pending approval (or rejected)."
)
def tune_region_model(
    context: dg.OpExecutionContext,
    config: TuningConfig,
    workspace: WorkspaceResource,
    notifier: NotifierResource,
) -> Iterator[dg.AssetObservation | dg.Output[None]]:
    # optuna and LightGBM load in the run, not when the code location loads
    from pydantic import ValidationError

    from mlops_assets.tuning import load_region_features, tune_and_register

    ws, ds = workspace.workspace(), workspace.dataset()
    region = require_safe_key(context.partition_key)
    try:
        tuning = ds.tuning.with_overrides(
            n_trials=config.n_trials, timeout_seconds=config.timeout_seconds
        )
        features, fs = load_region_features(ws, ds, region)
    except (ValidationError, FileNotFoundError) as exc:
        raise dg.Failure(str(exc)) from exc
    trigger = context.run.tags.get("mlops/trigger", "launched by a person")
    breach = context.run.tags.get("mlops/breach_week")
    notifier.send(
        "tuning_started",
        f"tuning {region}: up to {tuning.n_trials} trials / {tuning.timeout_seconds:g} s "
        f"({trigger}{f', quality breach in the week of {breach}' if breach else ''})",
        region=region,
        run_id=context.run.run_id,
        trigger=trigger,
        breach_week=breach,
    )
    outcome = tune_and_register(
        features,
        fs,
        ds,
        workspace.registry(),
        region,
        workspace=ws,
        run_id=context.run.run_id,
        features_version=latest_data_version(context.instance, FEATURES_KEY, region),
        tuning=tuning,
    )
    result, mv = outcome.result, outcome.version
    found = result.describe()
    context.log.info(f"registered {mv.label} as {mv.status}; {found}")
    why = "; ".join(mv.reasons) or "passed the quality gate, review and approve it"
    notify_status(
        notifier,
        mv,
        f"{found}; {why}",
        run_id=context.run.run_id,
        study=result.study_name,
        improvement=result.improvement,
    )
    gate_metric = result.gate_metric
    model_metrics = outcome.training.trained.metrics["model"]
    metadata = {
        "model_label": mv.label,
        "model_version": mv.version,
        "status": mv.status,
        "source": "tuning",
        "best_params": dg.MetadataValue.json(result.best_params),
        "reviewed_params": dg.MetadataValue.json(result.baseline_params),
        "validation_metric": result.metric,
        "validation_window": result.validation_window,
        # plain floats: plotted across observations
        "best_value": result.best_value,
        "baseline_value": result.baseline_value,
        "improvement": result.improvement,
        f"best_val_{gate_metric}": result.best_val_gate_metric,
        f"baseline_val_{gate_metric}": result.baseline_val_gate_metric,
        f"holdout_{gate_metric}": model_metrics.get(gate_metric),
        "trials_total": result.n_trials,
        "trials_complete": result.n_complete,
        "trials_pruned": result.n_pruned,
        "trials_failed": result.n_failed,
        "trials_this_run": result.new_trials,
        "stale_trials_failed": result.stale_trials_failed,
        "study_name": result.study_name,
        "study_storage": dg.MetadataValue.text(result.storage_path),
        "tuning_seconds": result.elapsed_seconds,
        "gate_failures": dg.MetadataValue.json(mv.reasons) if mv.reasons else None,
        "notifications": notifier.feed_hint(region),
    }
    yield dg.AssetObservation(
        asset_key=REGION_MODEL_KEY,
        partition=region,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )
    yield dg.Output(None)


@dg.job(
    name=TUNING_JOB,
    partitions_def=region_partitions,
    description="Tune one region's hyper-parameters (persistent optuna study in the "
    "workspace) and register the tuned model for approval; never auto-approved.",
)
def tuning_job() -> None:
    tune_region_model()
