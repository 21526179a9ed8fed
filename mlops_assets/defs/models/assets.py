"""region_model: one LightGBM model per region, gated by blocking checks and registered."""

from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.partitions import (
    latest_materialization,
    region_check_spec,
    region_partitions,
)
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.gate import GATE_CHECKS
from mlops_assets.naming import require_safe_key
from mlops_assets.registry import ModelVersion
from mlops_assets.spec import DatasetSpec

if TYPE_CHECKING:
    from mlops_assets.region_models import ApprovedComparison

REGION_MODEL_KEY = dg.AssetKey("region_model")
METRIC_ROWS = ("model", "hist_avg", "hist_avg_dow", "seasonal_naive")


def latest_data_version(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> str | None:
    """The data version of an asset partition's latest materialization (for lineage)."""
    latest = latest_materialization(instance, key, partition)
    return latest.tags.get("dagster/data_version") if latest else None


STATUS_NOTIFICATIONS = {
    "approved": "model_approved",
    "pending_approval": "model_pending_approval",
    "rejected": "model_rejected",
}


# the assets whose runs never need LightGBM's scikit-learn API (nannyml does)
TRAINING_ONLY_ASSETS = frozenset({"features", "region_model", "forecast"})


def is_training_only(asset_keys: AbstractSet[dg.AssetKey]) -> bool:
    return bool(asset_keys) and {k.to_user_string() for k in asset_keys} <= TRAINING_ONLY_ASSETS


def load_lightgbm_for_run(context: dg.AssetExecutionContext) -> None:
    """Import LightGBM without scikit-learn and matplotlib (1.9 s less per run process)
    when the run materializes nothing but features, models and forecasts (a train_job
    run); a run with a monitoring step imports it fully."""
    selected = context.run.asset_selection or context.job_def.asset_layer.selected_asset_keys
    if is_training_only(selected):
        from mlops_assets.models.lightgbm_import import import_lightgbm_core

        import_lightgbm_core()


def notify_status(notifier: NotifierResource, mv: ModelVersion, why: str, **details) -> None:
    """Tell people a version was approved, awaits approval, or was rejected (and why)."""
    kind = STATUS_NOTIFICATIONS.get(mv.status)
    if kind:
        notifier.send(
            kind,
            f"{mv.label} is {mv.status}: {why}",
            region=mv.region,
            version=mv.version,
            **details,
        )


def metrics_markdown(metrics: dict[str, dict]) -> str:
    """The model and its baselines side by side (fractions shown as percentages)."""
    cols = ("mape", "wape", "rmspe", "rmse", "rmse_zero")
    lines = ["| forecast | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name in METRIC_ROWS:
        m = metrics[name]
        cells = []
        for c in cols:
            v = m.get(c)
            cells.append("n/a" if v is None else (f"{v:.1%}" if c in cols[:3] else f"{v:.1f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def region_model_spec(spec: DatasetSpec) -> tuple[dg.AssetSpec, list[dg.AssetCheckSpec]]:
    """The region_model asset and its blocking gate checks (computed by
    ``defs.region_pipeline``, with the other region assets)."""
    asset = dg.AssetSpec(
        REGION_MODEL_KEY,
        group_name="models",
        partitions_def=region_partitions,
        deps=[FEATURES_KEY],
        kinds={"lightgbm"},
        description=(
            "One region's LightGBM demand model (reviewed fixed hyper-parameters), evaluated "
            f"on a time-based holdout of the last {spec.horizon} periods against a "
            "historical-average, a weekday-average and a seasonal-naive baseline, then "
            "registered: approved automatically when it passes the gate, rejected with the "
            "reasons otherwise."
        ),
    )
    checks = [
        region_check_spec(name, REGION_MODEL_KEY, blocking=True, description=text)
        for name, text in GATE_CHECKS.items()
    ]
    return asset, checks


def train_region(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    workspace: WorkspaceResource,
    notifier: NotifierResource,
    region: str,
) -> dg.MaterializeResult:
    """Train, gate and register one region's model: its materialization and gate results."""

    from mlops_assets.conditioning import feature_set
    from mlops_assets.metrics import metric_metadata
    from mlops_assets.plots import holdout_series_sparklines, holdout_sparkline
    from mlops_assets.region_models import train_and_register
    from mlops_assets.training import backtest_summary
    from mlops_assets.warehouse import connect, region_fleet_gap

    gate = spec.gate
    ws, ds = workspace.workspace(), workspace.dataset()
    region = require_safe_key(region)
    try:
        features = ws.read_features(region)
    except FileNotFoundError as exc:
        raise dg.Failure(str(exc)) from None
    with connect(ws, ds) as con:
        fs = feature_set(con, ds, list(features.columns))
    outcome = train_and_register(
        features,
        fs,
        ds,
        workspace.registry(),
        region,
        run_id=context.run.run_id,
        features_version=latest_data_version(context.instance, FEATURES_KEY, region),
        fleet_gap=region_fleet_gap(ws, ds, region),
    )
    mv, trained = outcome.version, outcome.trained
    model, base = trained.metrics["model"], trained.metrics["hist_avg"]
    context.log.info(f"registered {mv.label} as {mv.status}")
    notify_status(
        notifier,
        mv,
        "; ".join(mv.reasons) or "passed the quality gate",
        run_id=context.run.run_id,
    )
    importance = list(trained.importance.items())[:10]
    metadata = {
        "model_version": mv.version,
        "model_label": mv.label,
        "status": mv.status,
        "gate_metric": gate.metric,
        # rounded plain floats (percentages for fractions): plotted across materializations
        **metric_metadata(
            {m: model[m] for m in ("mape", "wape", "rmspe", "rmse", "rmse_zero")}
            | {"mape_reduction_vs_baseline": model["mape_reduction_vs_baseline"]}
        ),
        **metric_metadata({"mape": base["mape"]}, prefix="baseline_"),
        "metrics": dg.MetadataValue.md(metrics_markdown(trained.metrics)),
        # small enough for the UI to draw in place; the per-series detail opens on click
        "holdout_plot": dg.MetadataValue.md(holdout_sparkline(trained.holdout)),
        "holdout_series_plot": dg.MetadataValue.md(holdout_series_sparklines(trained.holdout)),
        "importance": dg.MetadataValue.md(
            "| feature | mean abs SHAP |\n|---|---|\n"
            + "\n".join(f"| {k} | {v:.4f} |" for k, v in importance)
        ),
        "holdout": f"{trained.split.holdout_start.date()}..{trained.split.holdout_end.date()}",
        "train_rows": trained.train_rows,
        "num_boost_round": trained.best_iteration,
        # "probe", or the version whose number of trees a retrain reused (reuse_trees_days)
        "trees_from": mv.record.get("trees_from"),
        # what the label-free performance estimate learns the model's error from
        "backtest": backtest_summary(trained.meta),
        "compared_with": compared_with_text(outcome.approved, gate.metric),
        "artifact": dg.MetadataValue.path(mv.artifacts.get("model.txt", "")),
        "notifications": notifier.feed_hint(mv.region),
    }
    return dg.MaterializeResult(
        asset_key=REGION_MODEL_KEY,
        metadata={k: v for k, v in metadata.items() if v is not None},
        data_version=dg.DataVersion(mv.label),
        check_results=[
            dg.AssetCheckResult(
                asset_key=REGION_MODEL_KEY,
                check_name=g.name,
                passed=g.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=g.message,
                metadata={k: v for k, v in g.values.items() if v is not None},
            )
            for g in outcome.gate
        ],
    )


def compared_with_text(approved: "ApprovedComparison", metric: str) -> str:
    """What the gate compared the new model with, in words (never "None (none)")."""
    if approved.label is None:
        return "no approved model yet: the gate compared with the baselines only"
    value = "no value" if approved.value is None else f"{metric} {approved.value:.4g}"
    return f"{approved.label}, {value} ({approved.basis})"
