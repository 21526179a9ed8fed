"""The drift table every region's monitoring writes (its columns and signals) and
which of a model's features it watches, and how."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.spec import DEFAULT_DRIFT_IGNORED, DEFAULT_QUALITY_IGNORED, DatasetSpec

WEEK_OFFSET = "W"  # pandas W-SUN periods: weeks run Monday..Sunday
TABLE_SIGNALS = (
    "feature_drift",
    "fleet_gap_drift",
    "multivariate_drift",
    "data_quality",
    "estimated_performance",
    "attribution_drift",
)
# estimated_performance rows: share of a week's rows with inputs past the training range
OUTSIDE_TRAINING_RANGE = "outside_training_range"
MIN_GAP_DAYS = 4  # fleet-gap chunks hold one row a day
# the signals of ``fleet_alerts`` (univariate and fleet-gap findings are both data drift)
ALERT_SIGNALS = (
    "data_drift",
    "multivariate_drift",
    "data_quality",
    "attribution_drift",
    "model_quality",
)
# fewer out-of-sample forecasts than this teach the error model nothing
MIN_DLE_ROWS = 50

TABLE_COLUMNS = [
    "signal",
    "feature",
    "method",
    "week_start",
    "rows",
    "value",
    "lower",
    "upper",
    "nml_alert",
    "ignored",
    "realized",
    "chunk_hash",
]


@dataclass(frozen=True)
class MonitoredColumns:
    """Which model features are watched, and how."""

    numeric: list[str]
    categorical: list[str]
    ignored: list[str]  # computed and shown, never alerted on
    region_level: list[str]  # one value per region and day: compared with the fleet
    # computed from the target's own history: shown, never a data-quality alert
    quality_ignored: list[str] = field(default_factory=list)

    @property
    def alerting_numeric(self) -> list[str]:
        return [c for c in self.numeric if c not in self.ignored]

    @property
    def alerting_categorical(self) -> list[str]:
        return [c for c in self.categorical if c not in self.ignored]


def monitored_columns(meta: dict[str, Any], spec: DatasetSpec) -> MonitoredColumns:
    """Split the model's features into watched / ignored / region-level inputs."""
    features = list(meta["features"])
    categorical = [c for c in meta.get("categorical", []) if c in features]
    numeric = [c for c in features if c not in categorical]
    patterns = (*DEFAULT_DRIFT_IGNORED, *spec.monitoring.ignore_features)
    # series keys and store-master attributes are constant per series: their "drift" is
    # only which stores were open in a week (a refurbishment), which the row counts show
    static = {"store", "item"}
    if spec.has("stores"):
        static |= set(spec.source("stores").columns)
    ignored = [
        c for c in features if c in static or any(fnmatch.fnmatchcase(c, p) for p in patterns)
    ]
    quality_ignored = [
        c for c in features if any(fnmatch.fnmatchcase(c, p) for p in DEFAULT_QUALITY_IGNORED)
    ]
    region_level = []
    if spec.has("weather"):
        region_level = [
            c for c in spec.source("weather").feature_columns("numeric") if c in numeric
        ]
    return MonitoredColumns(numeric, categorical, ignored, region_level, quality_ignored)
