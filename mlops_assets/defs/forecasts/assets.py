"""forecast: each region's next horizon, scored with that region's latest approved model."""

import dagster as dg

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.partitions import region_check_spec, region_partitions
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.naming import require_safe_key
from mlops_assets.spec import DatasetSpec

FORECAST_KEY = dg.AssetKey("forecast")
FORECAST_CHECKS = {
    "approved_model_available": (
        "ERROR",
        "The region has an approved model (a rejected or pending one never forecasts).",
    ),
    "model_not_stale": ("WARN", "The model was trained recently enough before the origin."),
    "future_inputs_available": ("WARN", "Every series has known future inputs for the horizon."),
}


def forecast_spec(spec: DatasetSpec) -> tuple[dg.AssetSpec, list[dg.AssetCheckSpec]]:
    """The forecast asset and its checks (computed by ``defs.region_pipeline``,
    after the region's model when both are selected)."""
    asset = dg.AssetSpec(
        FORECAST_KEY,
        group_name="forecasts",
        partitions_def=region_partitions,
        deps=[FEATURES_KEY, REGION_MODEL_KEY],
        kinds={"lightgbm", "parquet"},
        description=(
            f"The next {spec.horizon} periods of every series of a region, from the known "
            "future calendar, scored by the region's latest approved model. Each row carries "
            "the origin, model version and run id; each origin is kept as its own file, "
            "with the top Shapley contributions of the forecasts of up to "
            f"{spec.forecast.explain_series} series beside it (`mlops-assets explain` "
            "computes any other series' on demand)."
        ),
    )
    checks = [
        region_check_spec(
            name, FORECAST_KEY, blocking=sev == "ERROR", description=f"[{sev}] {text}"
        )
        for name, (sev, text) in FORECAST_CHECKS.items()
    ]
    return asset, checks


def _check(name: str, passed: bool, description: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=FORECAST_KEY,
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity[FORECAST_CHECKS[name][0]],
        description=description,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def forecast_region(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    workspace: WorkspaceResource,
    region: str,
) -> dg.MaterializeResult:
    """Score one region's next horizon with its latest approved model."""
    import lightgbm as lgb
    import pandas as pd

    from mlops_assets.forecasting import (
        explained_rows,
        make_forecast,
        read_scoring_inputs,
        top_contributions,
    )
    from mlops_assets.metrics import readable_number
    from mlops_assets.plots import markdown_table

    horizon_days = spec.horizon * spec.period_days
    stale_days = spec.gate.stale_after_days
    ws = workspace.workspace()
    region = require_safe_key(region)
    registry = workspace.registry()
    mv = registry.latest_approved(region)
    if mv is None:
        versions = registry.versions(region)
        why = (
            "no model has been trained"
            if not versions
            else f"versions {[f'{v.label}={v.status}' for v in versions[-3:]]}, none approved"
        )
        return dg.MaterializeResult(
            asset_key=FORECAST_KEY,
            metadata={"status": f"no forecast: {why}"},
            check_results=[
                _check(
                    "approved_model_available",
                    False,
                    f"region {region} has no approved model ({why}); approve a version "
                    "with the registry job or `mlops-assets registry approve`",
                ),
                _check("model_not_stale", False, "no model"),
                _check("future_inputs_available", False, "no model"),
            ],
        )
    inputs = read_scoring_inputs(ws, region, horizon_days)
    origin, rows = inputs.origin, inputs.rows
    text, meta = registry.load_artifacts(mv)
    booster = lgb.Booster(model_str=text)
    frame = make_forecast(
        rows,
        booster,
        meta,
        region_key=region,
        origin=origin,
        model_version=mv.version,
        model_label=mv.label,
        run_id=context.run.run_id,
    )
    origin_s = str(origin.date())
    location = ws.data.write_frame(frame, ws.forecast_key(region, origin_s))
    explained = explained_rows(rows, spec.forecast.explain_series)
    ws.data.write_frame(
        top_contributions(explained, booster, meta),
        ws.forecast_key(region, origin_s, "explanations"),
    )

    trained_until = pd.Timestamp(meta["train_date_max"])
    age = (origin - trained_until).days
    series = inputs.series_with_history
    covered = frame.groupby(["store", "item"])["date"].nunique()
    complete = covered[covered >= horizon_days].index
    missing = [f"{s}/{i}" for s, i in series.difference(complete)]
    return dg.MaterializeResult(
        asset_key=FORECAST_KEY,
        metadata={
            "model_label": mv.label,
            "origin": origin_s,
            "rows": len(frame),
            "series": int(frame.groupby(["store", "item"]).ngroups) if len(frame) else 0,
            "first_date": str(frame["date"].min().date()) if len(frame) else None,
            "last_date": str(frame["date"].max().date()) if len(frame) else None,
            "total_prediction": readable_number(frame["prediction"].sum()),
            "path": dg.MetadataValue.path(location),
            "preview": dg.MetadataValue.md(
                markdown_table(frame.head(10)[["store", "item", "date", "prediction"]])
            ),
        },
        data_version=dg.DataVersion(f"{mv.label}@{origin_s}"),
        check_results=[
            _check(
                "approved_model_available",
                True,
                f"scored with {mv.label}",
                model_label=mv.label,
            ),
            _check(
                "model_not_stale",
                age <= stale_days,
                f"{mv.label} trained on data until {trained_until.date()}, {age} days "
                f"before the origin {origin_s} (limit {stale_days})",
                age_days=age,
            ),
            _check(
                "future_inputs_available",
                not missing,
                f"{len(missing)} of {len(series)} series lack future inputs for the "
                f"whole horizon" + (f", e.g. {missing[:5]}" if missing else ""),
                missing_series=len(missing),
            ),
        ],
    )
