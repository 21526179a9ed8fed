"""The per-region jobs the region sensor launches when new data touches a region."""

import dagster as dg

FEATURES_JOB = "features_job"
REFRESH_JOB = "refresh_job"

features_job = dg.define_asset_job(
    FEATURES_JOB,
    selection=dg.AssetSelection.assets("features"),
    description="Condition one region's features and run its quality checks (regions "
    "without an approved model yet: there is nothing to forecast with).",
)

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.assets(
        "features", "forecast", "realized_performance", "drift_report"
    ),
    description="New data for a region with an approved model: re-condition its features, "
    "forecast from the new origin with the approved model (no retraining), score "
    "earlier forecasts against the ground truth that arrived, and compute its drift "
    "report. A failing blocking check stops the steps after it.",
)
