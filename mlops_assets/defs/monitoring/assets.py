"""realized_performance: each region's forecasts scored against the ground truth since."""

from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.defs.forecasts.assets import FORECAST_KEY
from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.naming import require_safe_key
from mlops_assets.spec import DatasetSpec

if TYPE_CHECKING:
    import pandas as pd

REALIZED_PERFORMANCE_KEY = dg.AssetKey("realized_performance")
# latest-week metrics emitted as plain floats, so the asset page plots them over time
LATEST_WEEK_METRICS = ("mape", "wape", "rmse", "rmse_zero", "rmspe", "bias")
_TABLE_ORIGINS = 12


def realized_performance_spec(spec: DatasetSpec) -> dg.AssetSpec:
    """The realized_performance asset (computed by ``defs.region_pipeline``)."""
    floor = spec.model.metric_floor
    truth = [raw_asset_key(spec.source_name(k)) for k in ("sales", "actuals") if spec.has(k)]
    return dg.AssetSpec(
        REALIZED_PERFORMANCE_KEY,
        group_name="monitoring",
        partitions_def=region_partitions,
        deps=[FORECAST_KEY, *truth],
        kinds={"pandas", "parquet"},
        description=(
            "A region's forecasts scored against the ground truth (sales and actuals files) "
            "that arrived after them: MAPE/RMSPE (actuals above "
            f"{floor:g}), WAPE, RMSE, RMSE on zero actuals, MAE and bias per forecast "
            "origin (`monitoring/<region>/realized_performance.parquet`) and per target "
            "week on the forecast that was live for it "
            "(`monitoring/<region>/realized_weekly.parquet`, read with "
            "`mlops_assets.realized.read_weekly_realized`). Closed days are not scored. "
            "Incremental: only origins whose forecast file is new or rewritten, or whose "
            "target days' ground truth changed, are read and scored again "
            "(`origins_scored`; `mlops_assets.realized_update`)."
        ),
    )


def realized_performance_region(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    workspace: WorkspaceResource,
    region: str,
) -> dg.MaterializeResult:
    """Score one region's forecasts against the ground truth that arrived since."""
    import pandas as pd

    from mlops_assets import realized
    from mlops_assets.metrics import metric_metadata
    from mlops_assets.plots import markdown_image
    from mlops_assets.realized_update import update_realized

    ws, ds = workspace.workspace(), workspace.dataset()
    region = require_safe_key(region)
    update = update_realized(ws, ds, region, floor=spec.model.metric_floor)
    per_origin, weekly = update.per_origin, update.weekly
    origin_path, weekly_path = (ws.data.location(k) for k in realized.realized_keys(ws, region))

    metadata: dict = {
        "origins": len(per_origin),
        "origins_with_actuals": int((per_origin["n_rows"] > 0).sum()),
        # new, rewritten or with changed ground truth; the others' rows were kept
        "origins_scored": update.origins_scored,
        "forecast_rows": int(per_origin["forecast_rows"].sum()),
        "scored_rows": int(per_origin["n_rows"].sum()),
        "weeks": len(weekly),
        "by_origin": dg.MetadataValue.md(_origin_table(per_origin.tail(_TABLE_ORIGINS))),
        "path": dg.MetadataValue.path(origin_path),
        "weekly_path": dg.MetadataValue.path(weekly_path),
    }
    note = _note(per_origin)
    if note:
        metadata["note"] = note
        context.log.info(note)
    if len(weekly):
        latest = weekly.iloc[-1]
        metadata.update(
            {
                "latest_week_start": str(latest["week_start"].date()),
                "latest_week_origin": str(latest["origin"].date()),
                "latest_week_lead_days": int(latest["lead_days"]),
                "latest_week_days_with_actuals": int(latest["days_with_actuals"]),
                "latest_week_rows": int(latest["n_rows"]),
            }
        )
        metadata.update(
            metric_metadata(
                {m: latest[m] for m in LATEST_WEEK_METRICS if pd.notna(latest[m])},
                prefix="latest_week_",
            )
        )
        metadata["weekly_plot"] = dg.MetadataValue.md(
            markdown_image(
                realized.weekly_plot(weekly, title=f"{region}: realized error by target week"),
                "realized metrics by week",
            )
        )
    return dg.MaterializeResult(asset_key=REALIZED_PERFORMANCE_KEY, metadata=metadata)


def _note(per_origin: "pd.DataFrame") -> str | None:
    """Why there is nothing (or little) to score, in words a planner understands."""

    if per_origin.empty:
        return (
            "no forecasts yet for this region (it needs an approved model and a forecast "
            "run); nothing to score"
        )
    latest = per_origin["origin"].max().date()
    if not (per_origin["n_rows"] > 0).any():
        return (
            f"{len(per_origin)} forecast origin(s), latest {latest}, have no ground truth "
            f"yet: metrics appear once sales or actuals files for dates after {latest} "
            "are ingested"
        )
    return None


def _origin_table(per_origin: "pd.DataFrame") -> str:
    import pandas as pd

    from mlops_assets.plots import markdown_table

    def pct(v: float) -> str:
        return "-" if pd.isna(v) else f"{100 * v:.1f}%"

    def num(v: float) -> str:
        return "-" if pd.isna(v) else f"{v:.2f}"

    shown = pd.DataFrame(
        {
            "origin": per_origin["origin"].dt.date.astype(str),
            "model": per_origin["model_label"].astype(str),
            "rows": per_origin["n_rows"],
            "coverage": per_origin["horizon_coverage"].map(pct),
            "mape": per_origin["mape"].map(pct),
            "wape": per_origin["wape"].map(pct),
            "rmse": per_origin["rmse"].map(num),
            "rmse_zero": per_origin["rmse_zero"].map(num),
            "bias": per_origin["bias"].map(pct),
        }
    )
    return markdown_table(shown)
