"""Tests for the forecast accuracy metrics: every value hand-computed on a tiny example.

actual   = [10, 20, 0, 5]
forecast = [12, 15, 1, 5]
error    = [ 2, -5, 1, 0]   (forecast - actual; positive = over-forecast)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlops_assets.metrics import METRIC_NAMES, reduction, regression_metrics

ACTUAL = [10.0, 20.0, 0.0, 5.0]
FORECAST = [12.0, 15.0, 1.0, 5.0]


def test_every_metric_on_a_hand_computed_example():
    m = regression_metrics(ACTUAL, FORECAST)
    assert m["n"] == 4
    assert m["n_pct"] == 3  # the zero actual cannot carry a percentage error
    assert m["mape"] == pytest.approx((2 / 10 + 5 / 20 + 0 / 5) / 3)  # 0.15
    assert m["rmspe"] == pytest.approx(math.sqrt((0.2**2 + 0.25**2 + 0.0**2) / 3))
    assert m["wape"] == pytest.approx((2 + 5 + 1 + 0) / 35)
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 25 + 1 + 0) / 4))
    assert m["rmse_zero"] == pytest.approx(1.0)  # only the zero-actual row: error 1
    assert m["mae"] == pytest.approx(8 / 4)
    assert m["bias"] == pytest.approx((2 - 5 + 1 + 0) / 35)  # net under-forecast: negative
    assert set(METRIC_NAMES) <= set(m)


def test_bias_sign_says_over_or_under_forecast():
    assert regression_metrics([10, 10], [12, 13])["bias"] == pytest.approx(5 / 20)
    assert regression_metrics([10, 10], [8, 7])["bias"] == pytest.approx(-5 / 20)
    # errors that cancel: no bias although the forecast is wrong every day
    m = regression_metrics([10, 10], [12, 8])
    assert m["bias"] == 0.0 and m["wape"] == pytest.approx(0.2)


def test_floor_excludes_near_zero_actuals_from_mape_but_not_from_wape():
    # a slow mover sold 0.5 units and was forecast at 3: a 500% error that would dominate
    actual = [100.0, 0.5, 50.0]
    forecast = [110.0, 3.0, 45.0]
    no_floor = regression_metrics(actual, forecast)
    floored = regression_metrics(actual, forecast, floor=1.0)
    assert no_floor["mape"] == pytest.approx((0.10 + 5.0 + 0.10) / 3)
    assert floored["mape"] == pytest.approx((0.10 + 0.10) / 2)
    assert floored["rmspe"] == pytest.approx(0.10)
    assert (no_floor["n_pct"], floored["n_pct"]) == (3, 2)
    # every row still counts in WAPE, RMSE, MAE and bias
    for name in ("wape", "rmse", "mae", "bias", "n"):
        assert floored[name] == no_floor[name], name
    assert floored["wape"] == pytest.approx((10 + 2.5 + 5) / 150.5)


def test_floor_is_strict_an_actual_equal_to_the_floor_is_excluded():
    m = regression_metrics([20.0, 40.0], [30.0, 44.0], floor=20.0)
    assert m["n_pct"] == 1
    assert m["mape"] == pytest.approx(0.1)


def test_metrics_are_none_where_undefined():
    # all actuals zero: no percentage and no sum of actuals to scale by
    zeros = regression_metrics([0.0, 0.0], [1.0, 3.0])
    assert zeros["mape"] is None and zeros["rmspe"] is None
    assert zeros["wape"] is None and zeros["bias"] is None
    assert zeros["rmse"] == pytest.approx(math.sqrt(5.0))
    assert zeros["rmse_zero"] == pytest.approx(math.sqrt(5.0))
    assert zeros["n_pct"] == 0
    # no zero actuals: no RMSE on zero rows
    assert regression_metrics([5.0, 6.0], [5.0, 6.0])["rmse_zero"] is None
    # every actual at or below the floor: no MAPE, WAPE still defined
    low = regression_metrics([3.0, 4.0], [4.0, 4.0], floor=20)
    assert low["mape"] is None and low["rmspe"] is None
    assert low["wape"] == pytest.approx(1 / 7)
    # nothing at all
    empty = regression_metrics([], [])
    assert empty["n"] == 0
    assert all(empty[name] is None for name in METRIC_NAMES)


def test_a_perfect_forecast_scores_zero():
    m = regression_metrics(ACTUAL, ACTUAL)
    assert all(m[name] == 0.0 for name in METRIC_NAMES)


def test_rows_with_a_missing_actual_or_forecast_are_dropped():
    actual = [10.0, np.nan, 20.0, 0.0, 5.0, 7.0]
    forecast = [12.0, 99.0, 15.0, 1.0, 5.0, np.nan]
    m = regression_metrics(actual, forecast)
    assert m == regression_metrics(ACTUAL, FORECAST)
    assert m["n"] == 4
    assert all(v is None or math.isfinite(v) for v in m.values())


def test_accepts_pandas_series_with_unaligned_indexes():
    """Values are compared by position: a holdout frame's index is not reset."""
    actual = pd.Series(ACTUAL, index=[7, 3, 9, 1])
    forecast = pd.Series(FORECAST, index=[0, 1, 2, 3])
    assert regression_metrics(actual, forecast) == regression_metrics(ACTUAL, FORECAST)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0])


def test_reduction_is_the_relative_error_reduction():
    assert reduction(0.10, 0.25) == pytest.approx(0.6)
    assert reduction(0.25, 0.25) == pytest.approx(0.0)
    assert reduction(0.30, 0.20) == pytest.approx(-0.5)  # worse than the baseline
    assert reduction(None, 0.2) is None
    assert reduction(0.1, None) is None
    assert reduction(0.1, 0.0) is None  # a perfect baseline leaves nothing to reduce


def test_metric_metadata_shows_fractions_as_rounded_percentages() -> None:
    from mlops_assets.metrics import metric_metadata, readable_number

    shown = metric_metadata(
        {
            "mape": 0.12647168729860553,
            "wape": 0.1,
            "rmse": 53574.081992991785,
            "rmse_zero": 0.012345,
            "rmspe": None,
            "mape_reduction_vs_baseline": 0.6581,
        },
        prefix="latest_week_",
    )
    assert shown == {
        "latest_week_mape_pct": 12.65,
        "latest_week_wape_pct": 10.0,
        "latest_week_rmse": 53574.08,
        "latest_week_rmse_zero": 0.0123,
        "latest_week_mape_reduction_pct": 65.81,
    }
    assert all(isinstance(v, float) for v in shown.values())  # still plotted by Dagster
    assert readable_number(-0.000123456) == -0.000123
