"""Monitoring of one region's data and model with nannyml, and the fleet rules that turn
per-region statistics into alerts people do not learn to ignore.

Per region (``region_drift``), comparing the model's training data (the reference, which
spans whole seasonal cycles) with recent weekly chunks (Monday..Sunday):

- ``feature_drift``: nannyml univariate drift of every model feature (Jensen-Shannon by
  default, a categorical method for categorical features);
- ``fleet_gap_drift``: region-level inputs (weather) as their gap to the median of all
  regions on the same day, the weekly mean of the gap against the reference weeks
  (nannyml summary statistics). Weather moves with the season everywhere at once: its gap
  to the neighbours does not, so a broken feed or a shifted input stands out;
- ``multivariate_drift``: nannyml PCA reconstruction error over the monitored numerics;
- ``data_quality``: nannyml missing values, unseen categories and values outside the
  training range (features computed from the target's own history are shown but never
  alert: closures leave their lags missing and growth takes them past last year's range);
- ``estimated_performance``: nannyml DLE estimate of RMSE / MAE for weeks without actuals,
  its error model fitted on the model's out-of-sample backtest forecasts (a year of folds
  made at training, so it has seen the model err at every season's weather and
  promotions) and scaled to the holdout's error, with the realized value where actuals
  exist, and the share of each week's rows whose inputs lie outside the training range
  (``outside_training_range``), past which the estimate cannot follow the error;
- ``attribution_drift``: NDCG of the weekly mean |Shapley| ranking against the ranking of
  the same weeks a year earlier in the training window (the season's own drivers: the
  weeks before Christmas rank the calendar higher every year), or against the ranking
  saved with the model where the training window does not reach back a year.

Across regions (``fleet_alerts``) the false-alarm controls apply: calendar-driven and
expanding-history features never alert, small chunks never alert, a region must stand out
from the other regions in the same week (they are the control group: a seasonal shift or a
holiday moves them all), and a signal must persist for ``persistence_weeks`` consecutive
weeks. Model quality (realized, or the DLE estimate) breaches when a week's error exceeds
the model's holdout error by a factor and stands out from the fleet.

Modules, by job: ``table`` (the drift table's columns and signals, the watched
features), ``nannyml_support`` (nannyml imported, quiet, chunked by week), ``data_drift``,
``input_quality``, ``performance`` (the DLE estimate and its support), ``attribution``,
``region`` (one region's inputs and its drift table), ``refresh`` (what a refresh of the
same model takes from the last table), ``fleet`` (the alerts across
regions) and ``store`` (where the tables and heatmaps are kept). The names other modules
use are importable from this package.
"""

from __future__ import annotations

from mlops_assets.monitoring.attribution import (
    SAME_SEASON_DAYS,
    attribution_drift,
    attribution_ndcg,
    reused_attribution_weeks,
    same_season_rows,
)
from mlops_assets.monitoring.data_drift import (
    feature_drift,
    fleet_gap_drift,
    fleet_gap_frame,
    multivariate_drift,
    reference_fleet_gap,
)
from mlops_assets.monitoring.fleet import (
    FleetInputs,
    FleetStatus,
    estimate_blind_weeks,
    fleet_alerts,
    fleet_inputs,
    fleet_status,
    quality_metric,
)
from mlops_assets.monitoring.input_quality import (
    data_quality,
    rows_with_each_value,
    rows_with_extremes,
    weeks_with_extreme_missing_rates,
)
from mlops_assets.monitoring.nannyml_support import import_nannyml
from mlops_assets.monitoring.performance import (
    dle_features,
    estimate_support,
    estimated_performance,
    outside_inputs,
)
from mlops_assets.monitoring.refresh import reused_drift_thresholds, reused_drift_weeks
from mlops_assets.monitoring.region import (
    RegionMonitoringInputs,
    monitoring_inputs,
    recent_weeks,
    region_drift,
)
from mlops_assets.monitoring.store import (
    alerts_key,
    drift_report_key,
    model_drift_report,
    read_alerts,
    read_drift_report,
    stored_drift_heatmap,
)
from mlops_assets.monitoring.table import (
    ALERT_SIGNALS,
    MIN_DLE_ROWS,
    MIN_GAP_DAYS,
    OUTSIDE_TRAINING_RANGE,
    TABLE_COLUMNS,
    TABLE_SIGNALS,
    WEEK_OFFSET,
    MonitoredColumns,
    monitored_columns,
)

__all__ = [
    "ALERT_SIGNALS",
    "FleetInputs",
    "FleetStatus",
    "MIN_DLE_ROWS",
    "MIN_GAP_DAYS",
    "MonitoredColumns",
    "OUTSIDE_TRAINING_RANGE",
    "RegionMonitoringInputs",
    "SAME_SEASON_DAYS",
    "TABLE_COLUMNS",
    "TABLE_SIGNALS",
    "WEEK_OFFSET",
    "alerts_key",
    "attribution_drift",
    "attribution_ndcg",
    "data_quality",
    "dle_features",
    "drift_report_key",
    "estimate_blind_weeks",
    "estimate_support",
    "estimated_performance",
    "feature_drift",
    "fleet_alerts",
    "fleet_gap_drift",
    "fleet_gap_frame",
    "fleet_inputs",
    "fleet_status",
    "import_nannyml",
    "model_drift_report",
    "monitored_columns",
    "monitoring_inputs",
    "multivariate_drift",
    "outside_inputs",
    "quality_metric",
    "read_alerts",
    "read_drift_report",
    "recent_weeks",
    "reference_fleet_gap",
    "region_drift",
    "reused_attribution_weeks",
    "reused_drift_thresholds",
    "reused_drift_weeks",
    "rows_with_each_value",
    "rows_with_extremes",
    "same_season_rows",
    "stored_drift_heatmap",
    "weeks_with_extreme_missing_rates",
]
