"""The per-region monitoring job: a region's approved model watched without new data."""

import dagster as dg

from mlops_assets.defs.monitoring.assets import REALIZED_PERFORMANCE_KEY
from mlops_assets.defs.monitoring.drift import DRIFT_REPORT_KEY

REGION_MONITORING_JOB = "region_monitoring_job"

region_monitoring_job = dg.define_asset_job(
    REGION_MONITORING_JOB,
    selection=dg.AssetSelection.assets(REALIZED_PERFORMANCE_KEY, DRIFT_REPORT_KEY),
    description="Score a region's forecasts against the ground truth that has arrived and "
    "compute the drift report of its approved model, from the features and forecasts as "
    "they are (after a training, whose run forecast with the new model: `refresh_job` "
    "would condition the features and forecast again for nothing). One region, or a range "
    "of regions in one run.",
)
