"""The label-free performance estimate (``monitoring.performance``): nannyml DLE against the
realized error, its error model's inputs and backtest, and the rows outside the training
range."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_assets import monitoring
from mlops_assets.monitoring import (
    OUTSIDE_TRAINING_RANGE,
    TABLE_COLUMNS,
    MonitoredColumns,
    dle_features,
    estimate_support,
    region_drift,
)
from mlops_assets.spec import MonitoringSettings
from mlops_assets.training import week_start
from mlops_assets_tests.monitoring.fleet_support import (
    DRIFT_KEY,
    MON,
    SEEDS,
    SPEC,
)

SETTINGS = MonitoringSettings()
# measured median |estimated - realized| / realized RMSE over the 150 region-weeks with
# actuals: 0.313 (by seed 0.219, 0.336, 0.348) with the error model learning from the
# backtest folds (here at most 3 folds, 18 weeks: the fleet trains on 52 weeks and a fold
# needs half of the holdout model's rows) from the prediction, the model's 3 most
# important features and its weather and promotion inputs, scaled to the holdout's error
# (0.315 with the 8 most important). From the holdout alone, with nannyml's default
# error-model settings: 0.271 (0.221, 0.324, 0.318) with the prediction and the 3 most
# important features, 0.362 (0.298, 0.764, 0.336) with all 46. The holdout (late
# April-May: Easter Monday, May Day, Ascension) sets the level and the summer weeks are
# mostly overestimated; with the holdout over Christmas (a cutoff at the end of December)
# the holdout-only estimate was 1.2-2.1 off (all features)
DLE_TOLERANCE = 0.35


@pytest.mark.parametrize(
    "seeds", [pytest.param((0,), id="seed0"), pytest.param(SEEDS, id="all", marks=pytest.mark.e2e)]
)
def test_dle_estimates_realized_rmse_within_tolerance(fleets, seeds):
    rows = []
    for seed in seeds:
        for table in fleets.stationary(seed).tables.values():
            est = table[(table["signal"] == "estimated_performance") & (table["feature"] == "rmse")]
            assert est["value"].notna().all() and (est["value"] > 0).all()
            assert est["week_start"].nunique() == 16  # forecast weeks are estimated too
            rows.append(est.assign(seed=seed))
    est = pd.concat(rows, ignore_index=True)
    known = est[est["realized"].notna()]
    error = (known["value"] - known["realized"]).abs() / known["realized"]
    by_seed = error.groupby(known["seed"]).median().round(3).to_dict()
    print(f"DLE |est - realized| / realized: median {error.median():.3f}, by seed {by_seed}")
    assert len(known) == 10 * 5 * len(seeds)
    assert error.median() <= DLE_TOLERANCE, by_seed


def test_estimate_support_counts_rows_whose_outside_inputs_leave_the_training_range():
    """The weeks the DLE estimate cannot judge: weather or promotions past the fitted range.
    Inputs from the target's own history (growth takes lags past last year), calendar
    features and inputs the model hardly uses do not count."""
    ref_days = pd.date_range("2024-01-01", periods=28, freq="D")
    reference = pd.DataFrame(
        {
            "date": ref_days,
            "temperature_c": np.linspace(0.0, 25.0, 28),
            "precipitation_mm": np.linspace(0.0, 10.0, 28),
            "lag_42": np.linspace(0.0, 100.0, 28),
            "promo": np.tile([0, 1], 14),
            "day_of_year": ref_days.dayofyear,
        }
    )
    days = pd.date_range("2024-02-05", periods=21, freq="D")  # three Monday..Sunday weeks
    analysis = pd.DataFrame(
        {
            "date": days,
            "temperature_c": 12.0,
            "precipitation_mm": 50.0,  # far past the range, but the model barely uses it
            "lag_42": 250.0,  # growth: computed from the target, never counted
            "promo": 1,
            "day_of_year": days.dayofyear,  # calendar: ignored
        }
    )
    analysis.loc[7:9, "temperature_c"] = 31.0  # week 2: 3 of 7 rows too warm
    analysis.loc[20, "temperature_c"] = -10.0  # week 3: one row too cold
    names = ["temperature_c", "precipitation_mm", "lag_42", "promo", "day_of_year"]
    meta = {
        "features": names,
        "importance": {
            "temperature_c": 0.2,
            "precipitation_mm": 0.005,
            "lag_42": 0.5,
            "promo": 0.195,
            "day_of_year": 0.1,
        },
    }
    cols = MonitoredColumns(
        numeric=names,
        categorical=[],
        ignored=["day_of_year"],
        region_level=["temperature_c", "precipitation_mm"],
        quality_ignored=["lag_42"],
    )
    table = estimate_support(reference, analysis, meta, cols, MonitoringSettings())
    assert set(table.columns) <= set(TABLE_COLUMNS)
    assert (table["signal"] == "estimated_performance").all()
    assert (table["feature"] == OUTSIDE_TRAINING_RANGE).all()
    assert table["week_start"].tolist() == list(pd.date_range("2024-02-05", periods=3, freq="7D"))
    assert table["rows"].tolist() == [7, 7, 7]
    assert table["value"].round(4).tolist() == [0.0, round(3 / 7, 4), round(1 / 7, 4)]
    # with no importance floor the rarely used precipitation counts as well: every row
    everything = MonitoringSettings(estimate_support_min_importance=0.0)
    assert estimate_support(reference, analysis, meta, cols, everything)["value"].tolist() == [
        1.0,
        1.0,
        1.0,
    ]


def test_the_error_model_learns_from_the_backtest_saved_with_the_model(fleets):
    """The backtest's forecasts come with their rows' inputs and actuals from the frozen
    reference, all before the holdout; with ``estimate_backtest_folds: 0`` the estimate is
    the holdout-trained one, from the prediction and the top features only."""
    fleet = fleets.stationary(0)
    model, inputs = fleet.models[DRIFT_KEY], fleet.inputs[DRIFT_KEY]
    saved = pd.DataFrame(model.meta["backtest_forecasts"])
    assert len(inputs.backtest) == len(saved) > 0
    assert inputs.backtest["date"].max() < inputs.holdout["date"].min()
    assert inputs.backtest["y_true"].notna().all()
    np.testing.assert_allclose(
        inputs.backtest.sort_values(["date", "store", "item"])["y_pred"],
        saved.sort_values(["date", "store", "item"])["prediction"],
    )
    analysis = inputs.analysis.assign(week_start=week_start(inputs.analysis["date"]))
    off = SPEC.model_copy(
        update={"monitoring": MON.model_copy(update={"estimate_backtest_folds": 0})}
    )
    table = region_drift(inputs, model.booster, model.meta, off)
    estimated = table[table["method"] == "dle"].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        holdout_only = monitoring.estimated_performance(
            inputs.holdout, analysis, dle_features(model.meta, MON), None, MON.dle_params
        )
    pd.testing.assert_frame_equal(
        estimated[["week_start", "feature", "value"]],
        holdout_only[["week_start", "feature", "value"]],
    )
    shipped = fleet.tables[DRIFT_KEY]
    shipped = shipped[shipped["method"] == "dle"].reset_index(drop=True)
    assert not np.allclose(shipped["value"], estimated["value"])


def test_dle_learns_from_the_prediction_and_the_most_important_features():
    meta = {"features": ["a", "b", "c", "d"], "importance": {"c": 3.0, "a": 2.0, "d": 0.5}}
    three = MonitoringSettings(dle_top_features=3)
    assert dle_features(meta, three) == ["c", "a", "d"]
    assert dle_features(meta, MonitoringSettings(dle_top_features=1)) == ["c"]
    assert dle_features(meta, MonitoringSettings(dle_top_features=None)) == meta["features"]
    # a model saved without importances: all of its features
    assert dle_features({"features": ["a", "b"]}, three) == ["a", "b"]
    # with a backtest, the inputs a drift moves come after them, once
    assert dle_features(meta, three, ["b", "a"]) == ["c", "a", "d", "b"]


def _errors_by_temperature(days: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    """Out-of-sample forecasts of 12 series a day whose error grows on warm days (the
    model under-forecasts a weather-driven department): |error| ~ 10 below 18 C, ~ 40
    above it. Temperature follows the season; ``noise`` is an input that does not matter."""
    rng = np.random.default_rng(seed)
    n = len(days) * 12
    date = np.repeat(days.to_numpy(), 12)
    doy = pd.DatetimeIndex(date).dayofyear.to_numpy()
    temp = 10 - 10 * np.cos(2 * np.pi * (doy - 15) / 365) + rng.normal(0, 3, n)
    y_pred = rng.uniform(80, 120, n)
    scale = np.where(temp > 18, 40.0, 10.0)
    return pd.DataFrame(
        {
            "date": date,
            "temperature_c": temp,
            "noise": rng.normal(0, 1, n),
            "y_pred": y_pred,
            "y_true": y_pred + rng.normal(0, 1, n) * scale,
        }
    )


def test_the_estimate_rises_where_a_drift_moves_the_inputs_to_where_the_model_erred():
    """The error model learns from a year of backtest forecasts, so it has seen the model
    err on warm days; the holdout alone (six winter weeks) has not. A weather feed reading
    warm in winter then raises the backtest-trained estimate at once, before any actual
    arrives; the holdout-trained one stays where winter put it. The backtest-trained
    estimate is scaled to the holdout's level: an ordinary winter week estimates about the
    holdout's error."""
    backtest = _errors_by_temperature(pd.date_range("2023-01-02", "2023-12-03"), seed=1)
    holdout = _errors_by_temperature(pd.date_range("2023-12-04", "2024-01-14"), seed=2)
    assert holdout["temperature_c"].max() < 18  # winter: the holdout never saw a warm day
    weeks = _errors_by_temperature(pd.date_range("2024-01-15", "2024-01-28"), seed=3)
    weeks["y_true"] = np.nan  # no actuals yet
    warm = weeks["date"] >= pd.Timestamp("2024-01-22")
    weeks.loc[warm, "temperature_c"] += 20.0  # the second week's feed reads 20 C too warm
    features = ["temperature_c", "noise"]
    params = SETTINGS.dle_params

    def rmse(frame: pd.DataFrame) -> list[float]:
        return frame[frame["feature"] == "rmse"].sort_values("week_start")["value"].tolist()

    cold, hot = rmse(monitoring.estimated_performance(holdout, weeks, features, backtest, params))
    print("backtest-trained", cold, hot)
    holdout_rmse = float(np.sqrt(((holdout["y_true"] - holdout["y_pred"]) ** 2).mean()))
    assert cold == pytest.approx(holdout_rmse, rel=0.25)
    assert hot > 2.5 * cold
    blind = rmse(monitoring.estimated_performance(holdout, weeks, features, None, params))
    print("holdout-trained", blind, "holdout rmse", holdout_rmse)
    assert blind[1] < 1.25 * blind[0]
    # too few backtest rows: the holdout alone, as for models registered without a backtest
    few = rmse(monitoring.estimated_performance(holdout, weeks, features, backtest[:40], params))
    assert few == pytest.approx(blind)
