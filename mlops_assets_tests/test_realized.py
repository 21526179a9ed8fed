"""Realized performance on hand-made frames whose numbers are computable by hand: per
origin, per week on the forecast that was live, closed days, late and duplicate actuals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.realized import (
    ORIGIN_COLUMNS,
    WEEKLY_COLUMNS,
    read_realized_performance,
    read_weekly_realized,
    realized_performance,
    weekly_realized,
    write_realized,
)
from mlops_assets.workspace import Workspace


def _forecast(origin: str, dates: list[str], preds: list[float], version: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region_key": "Nord",
            "store": "S1",
            "item": "D1",
            "date": pd.to_datetime(dates),
            "origin": pd.Timestamp(origin),
            "prediction": preds,
            "model_version": version,
            "model_label": f"Nord:v{version}",
        }
    )


def _actuals(rows: list[tuple[str, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store": "S1",
            "item": "D1",
            "date": pd.to_datetime([d for d, _, _ in rows]),
            "target": [t for _, t, _ in rows],
            "open": [o for _, _, o in rows],
        }
    )


@pytest.fixture
def forecasts() -> pd.DataFrame:
    return pd.concat(
        [
            # Sunday origins, as the sample's weekly deliveries give them
            _forecast("2024-01-07", ["2024-01-08", "2024-01-09", "2024-01-10"], [10, 20, 30], 1),
            _forecast("2024-01-14", ["2024-01-15", "2024-01-16"], [5, 5], 2),
            _forecast("2024-01-21", ["2024-01-22", "2024-01-23"], [1, 1], 2),  # no actuals yet
        ],
        ignore_index=True,
    )


@pytest.fixture
def actuals() -> pd.DataFrame:
    return _actuals(
        [
            ("2024-01-08", 8, 1),
            ("2024-01-09", 999, 1),  # superseded by the later row of the same key
            ("2024-01-09", 25, 1),
            ("2024-01-10", 0, 0),  # closed: not scored (the forecast of 30 is ignored)
            ("2024-01-15", 0, 1),  # open with zero sales: counts in RMSE on zero
            ("2024-01-16", 10, 1),
            ("2024-01-02", 50, 1),  # before any forecast: ignored
        ]
    )


def test_per_origin_metrics_match_hand_computation(forecasts, actuals):
    out = realized_performance(forecasts, actuals, floor=0.0)

    assert list(out.columns) == ORIGIN_COLUMNS
    assert [str(o.date()) for o in out["origin"]] == ["2024-01-07", "2024-01-14", "2024-01-21"]
    first, second, pending = (out.iloc[i] for i in range(3))
    # origin 1: errors +2 on 8 and -5 on 25 (latest row of the duplicate); closed day out
    assert (first["model_version"], first["model_label"]) == (1, "Nord:v1")
    assert (first["forecast_rows"], first["n_rows"], first["n_pct_rows"]) == (3, 2, 2)
    assert (first["horizon_days"], first["days_with_actuals"]) == (3, 3)
    assert first["horizon_coverage"] == 1.0
    assert str(first["first_actual_date"].date()) == "2024-01-08"
    assert str(first["last_actual_date"].date()) == "2024-01-10"
    assert first["mape"] == pytest.approx((2 / 8 + 5 / 25) / 2)
    assert first["rmspe"] == pytest.approx(math.sqrt(((2 / 8) ** 2 + (5 / 25) ** 2) / 2))
    assert first["wape"] == pytest.approx(7 / 33)
    assert first["rmse"] == pytest.approx(math.sqrt((4 + 25) / 2))
    assert first["mae"] == pytest.approx(3.5)
    assert first["bias"] == pytest.approx(-3 / 33)
    assert np.isnan(first["rmse_zero"])  # the only zero actual is a closed day
    # origin 2: +5 on a zero actual, -5 on 10
    assert (second["model_version"], second["n_rows"], second["n_pct_rows"]) == (2, 2, 1)
    assert second["mape"] == pytest.approx(0.5)
    assert second["wape"] == pytest.approx(1.0)
    assert second["rmse"] == pytest.approx(5.0)
    assert second["rmse_zero"] == pytest.approx(5.0)
    assert second["bias"] == pytest.approx(0.0)
    # origin 3: kept, with nothing to score yet
    assert (pending["forecast_rows"], pending["n_rows"], pending["days_with_actuals"]) == (2, 0, 0)
    assert pending["horizon_coverage"] == 0.0
    assert pd.isna(pending["first_actual_date"]) and pd.isna(pending["last_actual_date"])
    assert all(np.isnan(pending[m]) for m in ("mape", "wape", "rmse", "rmse_zero", "bias"))


def test_floor_limits_percentage_errors_only(forecasts, actuals):
    out = realized_performance(forecasts, actuals, floor=9.0).iloc[0]
    assert out["n_pct_rows"] == 1 and out["mape"] == pytest.approx(5 / 25)
    assert out["wape"] == pytest.approx(7 / 33)  # every scored row still counts


def test_weekly_uses_the_latest_origin_before_the_week_and_skips_weeks_without_actuals(
    forecasts, actuals
):
    out = weekly_realized(forecasts, actuals, floor=0.0)

    assert list(out.columns) == WEEKLY_COLUMNS
    assert [str(w.date()) for w in out["week_start"]] == ["2024-01-08", "2024-01-15"]
    assert [str(o.date()) for o in out["origin"]] == ["2024-01-07", "2024-01-14"]
    assert list(out["lead_days"]) == [1, 1]
    assert list(out["model_version"]) == [1, 2]
    assert list(out["n_rows"]) == [2, 2]
    assert list(out["days_with_actuals"]) == [3, 2]
    assert out["mape"].tolist() == pytest.approx([(2 / 8 + 5 / 25) / 2, 0.5])
    assert out["rmse_zero"].iloc[1] == pytest.approx(5.0)


def test_weekly_picks_the_forecast_that_was_live_not_a_later_or_same_day_origin():
    """Week of Jan 15: Friday Jan 12's forecast was live; Monday Jan 15's origin is the
    week's first day (not strictly before it) and Jan 5's is older."""
    days = pd.date_range("2024-01-08", "2024-01-21").strftime("%Y-%m-%d").tolist()
    forecasts = pd.concat(
        [
            _forecast("2024-01-05", days, [1.0] * 14, 1),
            _forecast("2024-01-12", days[7:], [2.0] * 7, 2),
            _forecast("2024-01-15", days[8:], [3.0] * 6, 3),
        ],
        ignore_index=True,
    )
    actuals = _actuals([(d, 2.0, 1) for d in days])

    weekly = weekly_realized(forecasts, actuals, floor=0.0)

    assert [str(o.date()) for o in weekly["origin"]] == ["2024-01-05", "2024-01-12"]
    assert list(weekly["lead_days"]) == [3, 3]
    assert list(weekly["n_rows"]) == [7, 7]
    assert weekly["mape"].tolist() == pytest.approx([0.5, 0.0])
    per_origin = realized_performance(forecasts, actuals, floor=0.0)
    assert list(per_origin["n_rows"]) == [14, 7, 6]
    assert per_origin["mape"].tolist() == pytest.approx([0.5, 0.0, 0.5])


def test_files_round_trip_and_read_empty_before_the_first_run(tmp_path, forecasts, actuals):
    ws = Workspace(tmp_path / "ws")
    assert list(read_weekly_realized(ws, "Nord").columns) == ["region_key", *WEEKLY_COLUMNS]
    assert read_realized_performance(ws, "Nord").empty

    per_origin = realized_performance(forecasts, actuals, floor=0.0)
    weekly = weekly_realized(forecasts, actuals, floor=0.0)
    paths = write_realized(ws, "Nord", per_origin, weekly)

    assert [Path(p).relative_to(ws.root).as_posix() for p in paths] == [
        "monitoring/Nord/realized_performance.parquet",
        "monitoring/Nord/realized_weekly.parquet",
    ]
    back = read_weekly_realized(ws, "Nord")
    assert list(back.columns) == ["region_key", *WEEKLY_COLUMNS]
    assert set(back["region_key"]) == {"Nord"}
    pd.testing.assert_frame_equal(back.drop(columns="region_key"), weekly, check_dtype=False)
    assert len(read_realized_performance(ws, "Nord")) == 3


def test_no_forecasts_gives_empty_tables_with_their_columns():
    empty = pd.DataFrame(columns=["store", "item", "date", "origin", "prediction", "model_version"])
    truth = _actuals([("2024-01-08", 1.0, 1)])
    assert list(realized_performance(empty, truth, floor=0.0).columns) == ORIGIN_COLUMNS
    assert weekly_realized(empty, truth, floor=0.0).empty
