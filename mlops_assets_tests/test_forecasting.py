"""Tests for batch scoring: which rows are forecast, what a forecast row carries, closed
days, and the per-row explanations.

Data: region ``Sud`` of the long generated sample of ``test_training.py``; its model is
registered as approved and loaded back the way the ``forecast`` asset loads it.
"""

from __future__ import annotations

from datetime import datetime

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from mlops_assets import forecasting
from mlops_assets.forecasting import (
    FORECAST_COLUMNS,
    explained_rows,
    forecast_origin,
    future_rows,
    make_forecast,
    read_scoring_inputs,
    top_contributions,
)
from mlops_assets.registry import APPROVED, ModelRegistry
from mlops_assets.training import SERIES, predict_frame, shap_contributions
from mlops_assets.workspace import Workspace
from mlops_assets_tests.test_training import REGION, SPEC, history, sample_features, trained_model

H = SPEC.horizon
DAY = pd.Timedelta(days=1)
ORIGIN = pd.Timestamp("2025-12-30")  # the sample's last day of sales


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> pd.DataFrame:
    frames, _ = sample_features(tmp_path_factory)
    return frames[REGION]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[lgb.Booster, dict, int, str]:
    """The trained model, registered as approved and loaded from the registry."""
    trained = trained_model(tmp_path_factory, REGION)
    registry = ModelRegistry.for_workspace(Workspace(tmp_path_factory.mktemp("registry")))
    registry.register(
        REGION,
        model_text=trained.model_text,
        model_meta=trained.meta,
        record={"source": "recalibration"},
        status=APPROVED,
        reasons=[],
        actor="test",
    )
    mv = registry.latest_approved(REGION)
    text, meta = registry.load_artifacts(mv)
    return lgb.Booster(model_str=text), meta, mv.version, mv.label


def test_scoring_reads_the_same_origin_rows_and_series_as_from_the_whole_table(features, tmp_path):
    """read_scoring_inputs reads four columns and the known-future rows of the table;
    what it returns equals what the whole table gives."""
    ws = Workspace(tmp_path)
    ws.data.write_frame(features, ws.features_key(REGION))
    inputs = read_scoring_inputs(ws, REGION, H)
    whole = ws.read_features(REGION)
    assert inputs.origin == forecast_origin(whole) == ORIGIN
    expected = future_rows(whole, ORIGIN, H)
    assert len(expected) and expected["date"].max() == ORIGIN + H * DAY
    pd.testing.assert_frame_equal(inputs.rows, expected)
    history = whole[~whole["is_future"].astype(bool)]
    assert inputs.series_with_history.equals(history.groupby(SERIES).size().index)
    assert len(inputs.series_with_history) == history.groupby(SERIES).ngroups > 1


def test_scoring_reads_one_version_of_the_table_when_it_is_replaced_meanwhile(
    features, tmp_path, monkeypatch
):
    """A features run that replaces the table while scoring reads it (one more day of
    actuals: the origin moves on) does not pair the old origin with the new table's
    known-future rows, which would leave the origin's next day out of the forecast."""
    ws = Workspace(tmp_path)
    ws.data.write_frame(features, ws.features_key(REGION))
    moved = features.copy()
    moved.loc[pd.to_datetime(moved["date"]) == ORIGIN + DAY, "is_future"] = False
    real_origin = forecasting.forecast_origin

    def origin_then_features_run(frame: pd.DataFrame) -> pd.Timestamp | None:
        origin = real_origin(frame)
        ws.data.write_frame(moved, ws.features_key(REGION))  # the table is replaced now
        return origin

    monkeypatch.setattr(forecasting, "forecast_origin", origin_then_features_run)
    inputs = read_scoring_inputs(ws, REGION, H)
    assert inputs.origin == ORIGIN
    assert inputs.rows["date"].min() == ORIGIN + DAY
    pd.testing.assert_frame_equal(inputs.rows, future_rows(features, ORIGIN, H))
    monkeypatch.setattr(forecasting, "forecast_origin", real_origin)
    assert read_scoring_inputs(ws, REGION, H).origin == ORIGIN + DAY  # the new version next


@pytest.fixture(scope="module")
def forecast(features, model) -> tuple[pd.DataFrame, pd.DataFrame]:
    booster, meta, version, label = model
    rows = future_rows(features, forecast_origin(features), H)
    frame = make_forecast(
        rows,
        booster,
        meta,
        region_key=REGION,
        origin=ORIGIN,
        model_version=version,
        model_label=label,
        run_id="run-42",
    )
    return rows, frame


# --------------------------------------------------------------------------------------
# which rows


def test_forecast_origin_is_the_last_day_with_actuals(features):
    assert forecast_origin(features) == ORIGIN
    assert forecast_origin(features[~features["is_future"]].iloc[:0]) is None


def _calendar(dates: list, is_future: list[bool], store: str = "S1") -> pd.DataFrame:
    return pd.DataFrame({"store": store, "item": "A", "date": dates, "is_future": is_future})


@pytest.mark.parametrize("as_type", ["timestamp", "date", "string"])
def test_future_rows_keeps_known_future_rows_within_the_horizon_after_the_origin(as_type):
    origin = pd.Timestamp("2024-03-10")
    offsets = [-1, 0, 1, 2, 7, 8, 30]
    days = [origin + k * DAY for k in offsets]
    convert = {
        "timestamp": lambda d: d,
        "date": lambda d: d.date(),
        "string": lambda d: str(d.date()),
    }[as_type]
    frame = pd.concat(
        [
            # history: before and (a late file) after the origin -- never forecast
            _calendar([convert(d) for d in days[:3]], [False] * 3),
            # the known future calendar, including a day at and one before the origin
            _calendar([convert(d) for d in days], [True] * len(days)),
            _calendar([convert(days[3])], [True], store="S0"),
        ],
        ignore_index=True,
    ).sample(frac=1.0, random_state=0)  # unsorted input

    rows = future_rows(frame, origin, 7)

    assert rows["is_future"].all()
    assert rows["date"].dtype == "datetime64[ns]"
    assert list(zip(rows["store"], rows["date"] - origin, strict=True)) == [
        ("S0", 2 * DAY),
        ("S1", 1 * DAY),
        ("S1", 2 * DAY),
        ("S1", 7 * DAY),
    ]
    assert list(rows.index) == [0, 1, 2, 3]


def test_future_rows_of_the_sample_are_the_next_horizon_days_of_every_series(features):
    rows = future_rows(features, ORIGIN, H)
    n_series = history(features).groupby(SERIES).ngroups
    assert len(rows) == n_series * H
    assert (
        rows.groupby(SERIES)["date"]
        .agg(["min", "max", "nunique"])
        .eq(pd.Series({"min": ORIGIN + DAY, "max": ORIGIN + H * DAY, "nunique": H}))
        .all()
        .all()
    )
    shorter = future_rows(features, ORIGIN, 10)
    assert len(shorter) == n_series * 10 and shorter["date"].max() == ORIGIN + 10 * DAY


# --------------------------------------------------------------------------------------
# forecast rows


def test_forecast_rows_carry_origin_step_and_model_version(forecast, model):
    rows, frame = forecast
    _, _, version, label = model
    assert list(frame.columns) == FORECAST_COLUMNS
    assert len(frame) == len(rows)
    assert (frame["region_key"] == REGION).all()
    assert (frame["origin"] == ORIGIN).all()
    assert (frame["step"] == (frame["date"] - ORIGIN).dt.days).all()
    assert (
        frame.groupby(SERIES)["step"].apply(sorted).map(lambda s: s == list(range(1, H + 1))).all()
    )
    assert (frame["model_version"] == version).all() and version == 1
    assert (frame["model_label"] == label).all() and label == "Sud:v1"
    assert (frame["run_id"] == "run-42").all()
    created = datetime.fromisoformat(frame["created_at"].iloc[0])
    assert created.utcoffset() is not None and created.utcoffset().total_seconds() == 0
    assert frame[[*SERIES, "date"]].equals(rows[[*SERIES, "date"]])


def test_forecasts_are_the_models_predictions(forecast, model, tmp_path_factory):
    rows, frame = forecast
    booster, meta, _, _ = model
    np.testing.assert_array_equal(frame["prediction"], predict_frame(booster, meta, rows))
    # the registered artifact forecasts exactly what the trained model does
    trained = trained_model(tmp_path_factory, REGION)
    np.testing.assert_array_equal(
        frame["prediction"], predict_frame(trained.booster, trained.meta, rows)
    )


def test_forecasts_are_zero_on_closed_days_and_never_negative(forecast):
    rows, frame = forecast
    closed = rows["open"].to_numpy() == 0
    # New Year's Day, Epiphany (a Bavarian holiday) and the Sundays
    closed_days = set(rows.loc[closed, "date"])
    assert {pd.Timestamp("2026-01-01"), pd.Timestamp("2026-01-06")} <= closed_days
    assert (frame.loc[closed, "prediction"] == 0).all()
    assert (frame["prediction"] >= 0).all() and frame["prediction"].notna().all()
    assert (frame.loc[~closed, "prediction"] > 0).all()


def test_forecast_levels_are_plausible_against_last_year(forecast, features):
    """Per fast-moving series, the mean forecast of open days is of the order of the same
    weeks a year earlier: no unit or transform slip (x10, log space) gets through. (Slow
    movers, a unit or two a day, are too noisy for a ratio.)"""
    _, frame = forecast
    hist = history(features)
    hist = hist[hist["open"] == 1]
    last_year = hist[hist["date"].between(ORIGIN + DAY - 364 * DAY, ORIGIN + (H - 364) * DAY)]
    ref = last_year.groupby(SERIES)["target"].mean()
    ref = ref[ref > 20]
    assert len(ref) == 4  # two stores x two fast departments
    fc = frame[frame["prediction"] > 0].groupby(SERIES)["prediction"].mean()
    ratio = fc.reindex(ref.index) / ref
    assert ratio.between(0.8, 1.25).all(), ratio


def test_no_future_rows_give_an_empty_forecast_with_every_column(features, model):
    booster, meta, version, label = model
    rows = future_rows(features, ORIGIN + 100 * DAY, H)
    assert rows.empty
    frame = make_forecast(
        rows,
        booster,
        meta,
        region_key=REGION,
        origin=ORIGIN + 100 * DAY,
        model_version=version,
        model_label=label,
        run_id="r",
    )
    assert frame.empty and list(frame.columns) == FORECAST_COLUMNS
    explained = top_contributions(rows, booster, meta)
    assert explained.empty and "contribution" in explained.columns


# --------------------------------------------------------------------------------------
# explanations


def test_top_contributions_are_the_k_largest_per_row_sorted_by_magnitude(forecast, model):
    rows, _ = forecast
    booster, meta, _, _ = model
    sample = rows.iloc[::9]
    k = 4
    top = top_contributions(sample, booster, meta, k=k)
    full = shap_contributions(booster, meta, sample)

    assert len(top) == k * len(sample)
    assert list(top.columns) == [
        *SERIES,
        "date",
        "rank",
        "feature",
        "value",
        "contribution",
        "expected_value",
    ]
    for i, (_, group) in enumerate(top.groupby([*SERIES, "date"], sort=False)):
        row = sample.iloc[i]
        assert (group["store"].iloc[0], group["date"].iloc[0]) == (row["store"], row["date"])
        assert list(group["rank"]) == list(range(1, k + 1))
        magnitude = group["contribution"].abs().to_numpy()
        assert (np.diff(magnitude) <= 0).all()
        # the k largest of all features, with their own Shapley values and input values
        contrib = full.iloc[i].drop("expected_value")
        assert magnitude[-1] >= contrib.abs().drop(group["feature"]).max()
        np.testing.assert_allclose(group["contribution"], contrib[group["feature"]].to_numpy())
        assert (group["expected_value"] == full["expected_value"].iloc[i]).all()
        for feature, value in zip(group["feature"], group["value"], strict=True):
            raw = row[feature]
            assert pd.isna(value) if pd.isna(raw) else value == str(raw), feature


def test_top_contributions_default_to_five_per_row(forecast, model):
    rows, _ = forecast
    booster, meta, _, _ = model
    top = top_contributions(rows.head(3), booster, meta)
    assert len(top) == 15
    assert top.groupby([*SERIES, "date"])["rank"].max().eq(5).all()


def test_the_explained_series_are_a_capped_sample_that_stays_the_same_across_origins():
    def rows(first_day: str) -> pd.DataFrame:
        dates = pd.date_range(first_day, periods=3)
        return pd.DataFrame(
            [(f"S{s}", f"D{d}", day) for s in range(20) for d in range(3) for day in dates],
            columns=["store", "item", "date"],
        )

    today, later = rows("2024-01-01"), rows("2024-01-08").sample(frac=1, random_state=0)
    picked = explained_rows(today, 5)
    series = set(zip(picked["store"], picked["item"], strict=True))
    assert len(series) == 5 and len(picked) == 5 * 3  # every row of each chosen series
    assert len({s for s, _ in series}) > 1  # spread over stores, not the first store's items
    again = explained_rows(later, 5)
    assert set(zip(again["store"], again["item"], strict=True)) == series
    assert explained_rows(today, 60) is today  # few enough series: all of them
