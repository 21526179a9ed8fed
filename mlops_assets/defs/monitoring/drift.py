"""drift_report: one region's nannyml statistics against its approved model's training data."""

from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.forecasts.assets import FORECAST_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.naming import require_safe_key
from mlops_assets.spec import DatasetSpec

if TYPE_CHECKING:
    from mlops_assets.registry import ModelRegistry, ModelVersion
    from mlops_assets.workspace import Workspace

DRIFT_REPORT_KEY = dg.AssetKey("drift_report")


def drift_report_spec(spec: DatasetSpec) -> dg.AssetSpec:
    """The drift_report asset (computed by ``defs.region_pipeline``)."""
    s = spec.monitoring
    return dg.AssetSpec(
        DRIFT_REPORT_KEY,
        group_name="monitoring",
        partitions_def=region_partitions,
        deps=[FEATURES_KEY, REGION_MODEL_KEY, FORECAST_KEY],
        kinds={"nannyml", "parquet"},
        description=(
            "A region's data and model against the approved model's training data, in weekly "
            "chunks (nannyml): univariate drift of every feature, region-level inputs "
            "(weather) against the other regions, PCA reconstruction error, missing / unseen "
            "/ out-of-range values, the DLE estimate of RMSE and MAE before actuals arrive, "
            f"and the NDCG of the Shapley ranking (alert below {s.ndcg_threshold:g}; a week "
            "whose sampled rows did not change keeps its ranking from the model's last "
            "report, `attribution_weeks_reused`; so does every other signal's week whose "
            "reference and rows did not change, `drift_weeks_reused`, and the univariate and "
            "reconstruction drift thresholds of the same reference rows, "
            "`drift_thresholds_reused`). Raw "
            "statistics only: `monitoring_alerts` compares regions and applies persistence. "
            "Written to `monitoring/<region>/drift_report.parquet`."
        ),
    )


def drift_report_region(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    workspace: WorkspaceResource,
    region: str,
) -> dg.MaterializeResult:
    """One region's drift statistics against its approved model's training data."""
    import lightgbm as lgb
    import pandas as pd

    from mlops_assets import monitoring, reports
    from mlops_assets.metrics import readable_number
    from mlops_assets.plots import markdown_image, markdown_table
    from mlops_assets.warehouse import region_fleet_gap

    ws, ds = workspace.workspace(), workspace.dataset()
    region = require_safe_key(region)
    registry = workspace.registry()
    mv = registry.latest_approved(region)
    if mv is None:
        note = f"region {region} has no approved model: nothing to monitor against"
        context.log.info(note)
        return dg.MaterializeResult(asset_key=DRIFT_REPORT_KEY, metadata={"note": note})
    text, meta = registry.load_artifacts(mv)
    booster = lgb.Booster(model_str=text)
    # the rows the model was fitted on, frozen with it (None: registered without them)
    saved = registry.load_reference(mv, meta)
    saved_gap = registry.load_fleet_gap(mv)  # the weather's gap to the fleet, likewise
    # with the reference saved with the model, only the rows after its training window
    # are read (the analysis): at 40M a region's table is 2M rows, 0.6 GB in pandas
    after_training = [("date", ">", pd.Timestamp(meta["train_date_max"]).date())]
    features = ws.read_features(region, filters=after_training if saved is not None else None)
    cols = monitoring.monitored_columns(meta, ds)
    inputs = monitoring.monitoring_inputs(
        region,
        features,
        booster,
        meta,
        ds,
        saved_reference=saved,
        saved_gap=saved_gap,
        fleet_gap=region_fleet_gap(ws, ds, region, cols.region_level),
    )
    if inputs.analysis.empty or inputs.reference.empty:
        note = (
            f"no rows after {mv.label}'s training window ({meta['train_date_max']}) yet: "
            "nothing to compare"
        )
        context.log.info(note)
        return dg.MaterializeResult(
            asset_key=DRIFT_REPORT_KEY, metadata={"note": note, "model_label": mv.label}
        )
    # this model's last table: unchanged weeks keep their drift, data-quality and Shapley
    # rows (monitoring.refresh; exact TreeSHAP is the costly part of a weekly refresh)
    previous = monitoring.model_drift_report(ws, region, mv.version)
    table = monitoring.region_drift(inputs, booster, meta, ds, previous=previous)
    table["model_version"] = mv.version
    path = ws.data.write_frame(table, monitoring.drift_report_key(ws, region))

    nml_alerts = (
        table[table["nml_alert"] & ~table["ignored"]]
        .groupby("signal")
        .size()
        .reindex(list(monitoring.TABLE_SIGNALS), fill_value=0)
    )
    metadata: dict = {
        "model_label": mv.label,
        "reference": f"{meta['train_date_min']}..{meta['train_date_max']}",
        "reference_rows": len(inputs.reference),
        "reference_source": (
            f"saved with {mv.label}"
            if saved is not None
            else "the feature table's training window (no reference saved with the model)"
        ),
        "fleet_gap_reference": (
            f"saved with {mv.label}"
            if saved_gap is not None
            else "the current weather of every region (none saved with the model)"
        ),
        "analysis_weeks": int(table["week_start"].nunique()),
        "attribution_weeks_reused": monitoring.reused_attribution_weeks(table, previous),
        "drift_thresholds_reused": monitoring.reused_drift_thresholds(table, previous),
        "drift_weeks_reused": monitoring.reused_drift_weeks(table, previous),
        "analysis_rows": len(inputs.analysis),
        "watched_features": len(cols.numeric) + len(cols.categorical) - len(cols.ignored),
        "ignored_features": ", ".join(cols.ignored) or "none",
        "nannyml_alerts_before_fleet_rules": dg.MetadataValue.md(
            markdown_table(nml_alerts.rename("chunks").reset_index())
        ),
        "path": dg.MetadataValue.path(str(path)),
        "drift_heatmap": dg.MetadataValue.md(
            markdown_image(
                monitoring.stored_drift_heatmap(ws, region, table, draw=True),
                "drift per feature by week",
            )
        ),
    }
    report_plots = _draw_report_plots(context, ws, ds, registry, mv, meta)
    # the report's plot (with the holdout RMSE), not drawn a second time for the metadata
    estimated = report_plots.get("estimated_performance") or reports.estimated_performance_plot(
        table
    )
    metadata["estimated_performance"] = dg.MetadataValue.md(
        markdown_image(estimated, "estimated vs realized RMSE")
    )
    latest = table["week_start"].max()
    week = table[table["week_start"] == latest]
    est = week[week["signal"] == "estimated_performance"].set_index("feature")["value"]
    if "rmse" in est:
        metadata["latest_week_estimated_rmse"] = readable_number(est["rmse"])
    if monitoring.OUTSIDE_TRAINING_RANGE in est:
        # the estimate cannot see the error of these rows (see estimate_support)
        metadata["latest_week_outside_training_range_pct"] = round(
            100 * float(est[monitoring.OUTSIDE_TRAINING_RANGE]), 2
        )
    ndcg = table[table["signal"] == "attribution_drift"].dropna(subset=["value"])
    if len(ndcg):
        metadata["latest_week_attribution_ndcg"] = readable_number(ndcg["value"].iloc[-1])
    return dg.MaterializeResult(asset_key=DRIFT_REPORT_KEY, metadata=metadata)


def _draw_report_plots(
    context: dg.AssetExecutionContext,
    ws: "Workspace",
    ds: DatasetSpec,
    registry: "ModelRegistry",
    mv: "ModelVersion",
    meta: dict,
) -> dict[str, str]:
    """Draw the region's report plots here, in its own run: ``monitoring_alerts`` writes
    every region's report in one run and then finds them stored (``storage.plot_store``)
    instead of drawing each region's one after another. Returns them by name (base64
    PNG). Only an optimisation: a failure is logged, and the report draws what it
    misses."""
    from mlops_assets import reports

    try:
        return reports.draw_region_report_plots(ws, ds, registry, mv, meta)
    except Exception:
        context.log.warning(f"{mv.region}: the report's plots were not drawn", exc_info=True)
        return {}
