"""Generated fleets for the monitoring tests: a small fleet (5 regions, 10 stores, 2
departments, daily for ~2.6 years) from ``mlops_assets.sample_data``, ingested and
featurised like any data. Each region's model is trained on the 52 weeks up to a cutoff (a
Sunday), and the 10 weeks after it plus the 6 weeks of known future (forecast weeks) are
monitored with ``monitoring_inputs`` + ``region_drift`` per region and ``fleet_status``
over the fleet, with the weather from the warehouse ``weather`` view (as the
``drift_report`` asset reads it) and the realized weekly MAPE of the model's forecasts (as
``monitoring_alerts`` reads it). Drift is injected with the generator's ``DriftSpec`` into
one region from the third monitored week; the generator keeps every other region
byte-identical.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets import monitoring
from mlops_assets.conditioning import feature_set, write_features
from mlops_assets.metrics import regression_metrics
from mlops_assets.monitoring import (
    FleetStatus,
    RegionMonitoringInputs,
    fleet_status,
    monitored_columns,
    monitoring_inputs,
    region_drift,
)
from mlops_assets.sample_data import DriftSpec, SampleConfig, generate
from mlops_assets.spec import load_spec
from mlops_assets.training import (
    TrainedModel,
    train_region_model,
    week_start,
)
from mlops_assets.warehouse import connect, region_level_inputs, regions_with_sales
from mlops_assets_tests.test_conditioning import make_workspace

SPEC = load_spec("sample")
MODEL = SPEC.model.model_copy(  # few trees on one thread (as test_training's FAST)
    update={"num_boost_round": 60, "early_stopping_rounds": 10, "params": {"num_threads": 1}}
)
# these fleets test the backtest-trained estimate (off by default, on in the drill)
MON = SPEC.monitoring.model_copy(
    update={"attribution_sample_rows": 20, "estimate_backtest_folds": 8}
)
SPEC = SPEC.model_copy(update={"model": MODEL, "monitoring": MON})
SEEDS = (0, 1, 2)
# seeds 1 and 2 build a fleet each (about 16 s): make test runs seed 0, which the drift
# tests share; make e2e runs all three
SEED_PARAMS = [0, *(pytest.param(s, marks=pytest.mark.e2e) for s in SEEDS[1:])]
# 2023-01-01 .. 2025-08-10 (a Sunday) plus 42 days of known future
SAMPLE = {"n_regions": 5, "n_stores": 10, "n_departments": 2, "days": 953}
CUTOFF = pd.Timestamp(SampleConfig.tiny(**SAMPLE).end) - pd.Timedelta(weeks=10)  # 2025-06-01
TRAIN_WEEKS = 52  # the reference: one seasonal cycle, with last year's lags populated
DRIFT_START = CUTOFF + pd.Timedelta(days=15)  # the Monday of the third monitored week
DRIFT_REGION, DRIFT_KEY = "Süd", "Sud"  # three stores in seed 0: chunks of ~36 rows
SIGNALS = ("data_drift", "multivariate_drift", "data_quality", "model_quality")


def week_no(week: pd.Timestamp) -> int:
    """1 = the first monitored week (the Monday after the cutoff)."""
    return (pd.Timestamp(week) - CUTOFF).days // 7 + 1


@dataclass
class Fleet:
    """One generated dataset, each region's model, monitoring table and realized MAPE."""

    features: dict[str, pd.DataFrame]  # region key -> feature table
    models: dict[str, TrainedModel]
    weather: pd.DataFrame  # the warehouse weather view's region-level inputs
    inputs: dict[str, RegionMonitoringInputs] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    realized: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def holdout_error(self) -> dict[str, float]:
        return {r: m.metrics["model"]["mape"] for r, m in self.models.items()}

    def status(self) -> FleetStatus:
        tables = pd.concat(self.tables.values(), ignore_index=True)
        realized = pd.concat(self.realized.values(), ignore_index=True)
        return fleet_status(tables, realized, self.holdout_error, MON, metric="mape")

    def monitor(self, region: str) -> None:
        """What drift_report (the table) and realized_performance (the weekly MAPE of the
        model's forecasts) give ``monitoring_alerts`` for one region."""
        model = self.models[region]
        self.inputs[region] = inputs = monitoring_inputs(
            region, self.features[region], model.booster, model.meta, SPEC, self.weather
        )
        self.tables[region] = region_drift(inputs, model.booster, model.meta, SPEC)
        self.realized[region] = weekly_mape(region, inputs.analysis)


def weekly_mape(region: str, analysis: pd.DataFrame) -> pd.DataFrame:
    scored = analysis[analysis["y_true"].notna()]
    rows = []
    for week, chunk in scored.groupby(week_start(scored["date"])):
        m = regression_metrics(chunk["y_true"], chunk["y_pred"], floor=MODEL.metric_floor)
        rows.append({"region": region, "week_start": week, "n_rows": len(chunk), **m})
    return pd.DataFrame(rows)


def training_rows(features: pd.DataFrame) -> pd.DataFrame:
    dates = pd.to_datetime(features["date"])
    window = (dates > CUTOFF - pd.Timedelta(weeks=TRAIN_WEEKS)) & (dates <= CUTOFF)
    return features[~features["is_future"].astype(bool) & window]


def generate_fleet(root: Path, seed: int, drift: tuple[DriftSpec, ...] = ()):
    """Generate, ingest and featurise; return each region's features and the weather."""
    generate(SampleConfig.tiny(seed=seed, drift=drift, **SAMPLE), root / "sample")
    ws = make_workspace(root / "ws", root / "sample")
    with connect(ws, SPEC) as con:
        fs = feature_set(con, SPEC)
        for region in regions_with_sales(ws, SPEC):
            write_features(con, SPEC, region, ws.data, ws.features_key(region))
    features = {r: pd.read_parquet(ws.features_path(r)) for r in regions_with_sales(ws, SPEC)}
    return features, fs, region_level_inputs(ws, SPEC)


class Fleets:
    """Fleets built once per module: stationary per seed, and seed 0 with drift."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp = tmp_path_factory
        self.cache: dict[object, Fleet] = {}

    def stationary(self, seed: int) -> Fleet:
        if seed not in self.cache:
            features, fs, weather = generate_fleet(self.tmp.mktemp(f"fleet{seed}"), seed)
            models = {
                r: train_region_model(training_rows(f), fs, SPEC, settings=MODEL)
                for r, f in features.items()
            }
            fleet = Fleet(features, models, weather)
            for region in features:
                fleet.monitor(region)
            self.cache[seed] = fleet
        return self.cache[seed]

    def drifted(self, kind: str, magnitude: float) -> Fleet:
        """Seed 0 with ``kind`` drift in DRIFT_REGION from DRIFT_START. The other regions'
        data is byte-identical (asserted) and the drift starts after the cutoff, so every
        model is the stationary fleet's; the other regions' tables are reused too, except
        their gap to the fleet's weather, which the drifted region moves."""
        key = (kind, magnitude)
        if key not in self.cache:
            base = self.stationary(0)
            drift = (DriftSpec(DRIFT_REGION, DRIFT_START.date(), kind, magnitude),)
            features, _, weather = generate_fleet(self.tmp.mktemp(kind), 0, drift)
            for region, frame in features.items():
                if region == DRIFT_KEY:
                    pd.testing.assert_frame_equal(
                        training_rows(frame), training_rows(base.features[region])
                    )
                else:
                    pd.testing.assert_frame_equal(frame, base.features[region])
            fleet = Fleet(features, base.models, weather)
            fleet.monitor(DRIFT_KEY)
            cols = monitored_columns(base.models[DRIFT_KEY].meta, SPEC)
            for region in features.keys() - {DRIFT_KEY}:
                model = base.models[region]
                fleet.inputs[region] = inputs = monitoring_inputs(
                    region, features[region], model.booster, model.meta, SPEC, weather
                )
                table = base.tables[region]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    gap = monitoring.fleet_gap_drift(
                        inputs.reference_gap, inputs.analysis_gap, cols.region_level, MON
                    )
                fleet.tables[region] = pd.concat(
                    [table[table["signal"] != "fleet_gap_drift"], gap.assign(region=region)],
                    ignore_index=True,
                )
                fleet.realized[region] = base.realized[region]
            self.cache[key] = fleet
        return self.cache[key]


def _listing(alerts: pd.DataFrame) -> str:
    return "; ".join(
        f"{a.region} week {week_no(a.week_start)} {a.signal} [{a.detail}]"
        for a in alerts.itertuples()
    )


def _first_alert(status: FleetStatus, region: str, signal: str) -> int | None:
    a = status.alerts
    hit = a[(a["region"] == region) & (a["signal"] == signal) & a["alert"]]
    return week_no(hit["week_start"].min()) if len(hit) else None


def _alert_keys(status: FleetStatus, regions) -> set[tuple]:
    a = status.alerts
    a = a[a["region"].isin(regions) & a["alert"]]
    return set(zip(a["region"], a["week_start"], a["signal"], strict=True))
