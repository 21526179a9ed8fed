"""The per-region jobs the region sensor launches when new data touches a region."""

import dagster as dg

FEATURES_JOB = "features_job"
REFRESH_JOB = "refresh_job"

features_job = dg.define_asset_job(
    FEATURES_JOB,
    selection=dg.AssetSelection.assets("features"),
    description="Condition a region's features and run its quality checks (regions "
    "without an approved model yet: there is nothing to forecast with); one region, or a "
    "range of regions in one run.",
)

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.assets(
        "features", "forecast", "realized_performance", "drift_report"
    ),
    description="New data for a region with an approved model: re-condition its features, "
    "forecast from the new origin with the approved model (no retraining), score "
    "earlier forecasts against the ground truth that arrived, and compute its drift "
    "report. One region, or a range of regions in one run (each reported on its own "
    "partition); a failing blocking check stops that region's later assets.",
)
