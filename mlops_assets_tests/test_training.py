"""Tests for training and evaluating one region's model: the time split, the holdout never
seeing its own actuals, the baselines, closed days, the saved artifact and its explanations.

Data: a small generated sample with a long history (2 regions, 3 stores, 3 departments,
three years; fewer rows than ``SampleConfig.tiny()``). Three years, because the holdout
then covers the pre-Christmas peak with two earlier Christmases to learn from, which is
where the sample data gives a per-region model its large lead over the historical
average (on the 400-day tiny sample the holdout starts on Christmas Day with no previous
Christmas in the training data, and the model beats the average barely or not at all).
Region ``Sud`` has two stores, ``Nord`` one.

The helpers at the top (``sample_features``, ``trained_model``, ``FAST``) are shared with
``test_region_models.py`` and ``test_forecasting.py``: the sample, its feature tables and
one trained model per region are built once per test session and only read afterwards.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.conditioning import FeatureSet
from mlops_assets.metrics import regression_metrics
from mlops_assets.models.boosting import fit_boosters
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import ModelSettings
from mlops_assets.training import (
    BASELINES,
    SERIES,
    RegionData,
    Split,
    TrainedModel,
    backtest_forecasts,
    backtest_summary,
    baseline_forecasts,
    data_quality_baseline,
    design_array,
    design_matrix,
    evaluator_output,
    fit_probe,
    history_rows,
    level_offset,
    like_dtypes,
    predict_frame,
    prepare_region,
    read_reference_parquet,
    reference_columns,
    reference_rows,
    shap_contributions,
    time_split,
    train_region_model,
)
from mlops_assets_tests.test_conditioning import SPEC, make_workspace, store_regions, write_region

LONG_SAMPLE = SampleConfig.tiny(n_regions=2, n_stores=3, days=1095)
REGION = "Sud"
H = SPEC.horizon
DAY = pd.Timedelta(days=1)
# the shipped configuration with few trees, on one thread: much faster than two on busy
# cores (OpenMP threads spin waiting for each other)
FAST: ModelSettings = SPEC.model.model_copy(
    update={"num_boost_round": 60, "early_stopping_rounds": 10, "params": {"num_threads": 1}}
)

# --------------------------------------------------------------------------------------
# helpers (shared with test_region_models.py and test_forecasting.py)

_CACHE: dict[str, Any] = {}


def sample_features(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[dict[str, pd.DataFrame], FeatureSet]:
    """Each region's feature table of ``LONG_SAMPLE`` (as the assets read it:
    ``Workspace.read_features``) and the feature set. Built once per session; copies returned."""
    if "features" not in _CACHE:
        root = tmp_path_factory.mktemp("long_sample")
        generate(LONG_SAMPLE, root / "sample")
        ws = make_workspace(root / "ws", root / "sample")
        frames, fs = {}, None
        for region in sorted(set(store_regions(ws).values())):
            fs = write_region(ws, region)
            frames[region] = ws.read_features(region)
        _CACHE["features"] = (frames, fs)
    frames, fs = _CACHE["features"]
    return {k: v.copy() for k, v in frames.items()}, fs


def trained_model(tmp_path_factory: pytest.TempPathFactory, region: str) -> TrainedModel:
    """``region``'s model trained with ``FAST`` on the sample (once per session; read only)."""
    key = f"trained:{region}"
    if key not in _CACHE:
        frames, fs = sample_features(tmp_path_factory)
        _CACHE[key] = train_region_model(frames[region], fs, SPEC, settings=FAST)
    return _CACHE[key]


def history(features: pd.DataFrame) -> pd.DataFrame:
    hist = features[~features["is_future"].astype(bool)].copy()
    hist["date"] = pd.to_datetime(hist["date"])
    return hist


def with_inputs(trained: TrainedModel, features: pd.DataFrame) -> pd.DataFrame:
    """The holdout frame joined with the feature rows it forecasts (same order)."""
    out = trained.holdout.merge(history(features), on=[*SERIES, "date"], how="left")
    assert len(out) == len(trained.holdout)
    return out


# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[pd.DataFrame, FeatureSet]:
    frames, fs = sample_features(tmp_path_factory)
    return frames[REGION], fs


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedModel:
    return trained_model(tmp_path_factory, REGION)


# --------------------------------------------------------------------------------------
# the time split


def test_time_split_holdout_is_the_last_horizon_days_and_validation_the_horizon_before():
    dates = pd.Series(pd.date_range("2024-01-01", periods=200, freq="D"))
    s = time_split(dates, SPEC)
    last = dates.iloc[-1]
    assert s.holdout_end == last
    assert s.holdout_start == last - (H - 1) * DAY
    assert s.val_end == s.holdout_start - DAY == s.origin
    assert s.val_start == s.holdout_start - H * DAY
    assert s.train_end == s.val_start - DAY
    assert s.train_start == dates.iloc[0]
    assert dates.between(s.holdout_start, s.holdout_end).sum() == H
    assert dates.between(s.val_start, s.val_end).sum() == H
    assert dates.between(s.train_start, s.train_end).sum() == 200 - 2 * H
    assert s.to_dict()["origin"] == str(s.val_end.date())


def test_time_split_uses_the_calendar_not_the_row_count():
    """Many rows per day (one per series) and unsorted input give the same boundaries."""
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    dates = pd.Series(np.repeat(days, 5)).sample(frac=1.0, random_state=1)
    s = time_split(dates, SPEC)
    assert (s.holdout_start, s.holdout_end) == (days[120 - H], days[-1])
    assert s.train_end == days[120 - 2 * H - 1]


def test_time_split_of_weekly_data_counts_weeks():
    weekly = SPEC.model_copy(update={"frequency": "weekly", "horizon": 4})
    dates = pd.Series(pd.date_range("2024-01-01", periods=30, freq="7D"))
    s = time_split(dates, weekly)
    assert s.holdout_start == dates.iloc[-4]
    assert s.val_start == dates.iloc[-8] and s.val_end == dates.iloc[-5]
    assert s.train_end == dates.iloc[-9]


def test_time_split_needs_one_training_day_before_validation_and_holdout():
    enough = pd.Series(pd.date_range("2024-01-01", periods=2 * H + 1, freq="D"))
    s = time_split(enough, SPEC)
    assert s.train_start == s.train_end == enough.iloc[0]
    too_short = enough.iloc[1:]
    with pytest.raises(ValueError, match=r"too short for a 42-period holdout") as err:
        time_split(too_short, SPEC)
    assert "2024-01-02..2024-03-25" in str(err.value)


def test_training_on_too_short_a_history_raises_a_clear_error(data):
    features, fs = data
    dates = pd.to_datetime(features["date"])
    short = features[dates < dates.min() + 80 * DAY]
    with pytest.raises(ValueError, match="too short"):
        train_region_model(short, fs, SPEC, settings=FAST)


def test_holdout_frame_covers_every_series_on_every_holdout_day(trained, data):
    features, _ = data
    hist = history(features)
    s = trained.split
    assert s.holdout_end == hist["date"].max()
    h = trained.holdout
    assert list(h.columns[:4]) == [*SERIES, "date", "actual"]
    assert set(h["date"]) == set(pd.date_range(s.holdout_start, s.holdout_end))
    assert len(h) == len(hist[hist["date"] >= s.holdout_start])
    assert not h.duplicated([*SERIES, "date"]).any()
    assert h.groupby(SERIES).size().eq(H).all()


# --------------------------------------------------------------------------------------
# no leakage of holdout actuals into holdout forecasts


def test_holdout_forecasts_never_use_holdout_actuals(trained, data):
    """Replace every holdout actual (and only those) by random numbers: the model's and
    every baseline's holdout forecasts must not move, while the scored actuals do."""
    features, fs = data
    dates = pd.to_datetime(features["date"])
    in_holdout = ~features["is_future"].astype(bool) & (dates >= trained.split.holdout_start)
    assert in_holdout.sum() == len(trained.holdout)
    scrambled = features.copy()
    rng = np.random.default_rng(7)
    scrambled.loc[in_holdout, "target"] = rng.uniform(0, 5000, in_holdout.sum()).round()
    assert scrambled.loc[~in_holdout, "target"].equals(features.loc[~in_holdout, "target"])

    again = train_region_model(scrambled, fs, SPEC, settings=FAST)

    assert again.split == trained.split
    before, after = trained.holdout, again.holdout
    for col in ("store", "item", "date", "eligible"):
        assert before[col].equals(after[col]), col
    np.testing.assert_array_equal(after["model"].to_numpy(), before["model"].to_numpy())
    for name in BASELINES:
        np.testing.assert_array_equal(after[name].to_numpy(), before[name].to_numpy(), name)
    # the actuals they are scored on did change, on (nearly) every open day
    open_days = before["eligible"].to_numpy()
    changed = after["actual"].to_numpy() != before["actual"].to_numpy()
    assert changed[open_days].mean() > 0.99
    assert again.metrics["model"]["mape"] != trained.metrics["model"]["mape"]


# --------------------------------------------------------------------------------------
# backtest folds (what the label-free performance estimate learns from)


def _backtest(features: pd.DataFrame, fs: FeatureSet, **kwargs: Any) -> pd.DataFrame:
    data = prepare_region(features, fs, SPEC, settings=FAST)

    def fit(rows: np.ndarray, fold: RegionData) -> lgb.Booster:
        return lgb.train(fold.meta["params"], fold.dataset(rows), num_boost_round=20)

    return backtest_forecasts(data, fit, SPEC, **kwargs)


def test_backtest_folds_forecast_the_horizons_before_the_holdout_out_of_sample(trained, data):
    """Fold k forecasts the k-th horizon before the holdout from a model that saw only
    the rows before it: scrambling every actual from fold 2's first day on leaves folds 2
    and 3 as they were and changes fold 1 (its model learned from fold 2's window)."""
    features, fs = data
    start = trained.split.holdout_start
    bt = _backtest(features, fs, folds=3, min_train_share=0.1)
    assert sorted(bt["fold"].unique()) == [1, 2, 3]
    for k, rows in bt.groupby("fold"):
        assert rows["date"].min() == start - k * H * DAY
        assert rows["date"].max() == start - (k - 1) * H * DAY - DAY
        assert not rows.duplicated([*SERIES, "date"]).any()
    dates = pd.to_datetime(features["date"])
    later = ~features["is_future"].astype(bool) & (dates >= start - 2 * H * DAY)
    scrambled = features.copy()
    rng = np.random.default_rng(7)
    scrambled.loc[later, "target"] = rng.uniform(1, 5000, later.sum()).round()
    again = _backtest(scrambled, fs, folds=3, min_train_share=0.1)
    for k in (2, 3):
        np.testing.assert_array_equal(
            again.loc[again["fold"] == k, "model"], bt.loc[bt["fold"] == k, "model"]
        )
    assert not np.array_equal(
        again.loc[again["fold"] == 1, "model"], bt.loc[bt["fold"] == 1, "model"]
    )
    # the default trains no folds (it did not pay on rossmann-100): nothing is saved
    assert SPEC.monitoring.estimate_backtest_folds == 0
    assert pd.DataFrame(trained.meta["backtest_forecasts"]).empty
    assert backtest_summary(trained.meta) is None


def test_a_backtest_fold_model_takes_its_fallback_level_from_its_own_rows(data):
    """A row without any level feature starts from the fallback level: a fold's model takes
    it from the rows it learns from, never from the region's training window (which holds
    the later folds' actuals)."""
    features, fs = data
    prepared = prepare_region(features, fs, SPEC, settings=FAST)
    seen: list[tuple[pd.Timestamp, float, float]] = []

    def fit(rows: np.ndarray, fold: RegionData) -> lgb.Booster:
        fallback = fold.meta["level_fallback"]
        frame = fold.hist[rows]
        seen.append((frame["date"].max(), fallback, frame["target"].clip(lower=0).mean()))
        return lgb.train(fold.meta["params"], fold.dataset(rows), num_boost_round=5)

    backtest_forecasts(prepared, fit, SPEC, folds=3, min_train_share=0.1)
    assert len(seen) == 3
    for last_day, fallback, mean in seen:
        assert last_day < prepared.split.val_start
        assert fallback == pytest.approx(mean)
    # fold 1 learns from the training window itself; folds 2 and 3 from less of it
    assert seen[0][1] == pytest.approx(prepared.meta["level_fallback"])
    assert len({fallback for _, fallback, _ in seen}) == 3


def test_backtest_folds_stop_where_their_models_would_learn_from_too_little(data):
    features, fs = data
    prepared = prepare_region(features, fs, SPEC, settings=FAST)
    share = 0.8
    folds = _backtest(features, fs, folds=20, min_train_share=share)["fold"].unique()
    start = prepared.split.holdout_start
    hist, usable = prepared.hist, prepared.usable
    needed = share * len(prepared.before_holdout)
    for k in range(1, 21):
        enough = (usable & (hist["date"] < start - k * H * DAY)).sum() >= needed
        assert (k in folds) == enough, k
    assert 0 < len(folds) < 20
    assert _backtest(features, fs, folds=0, min_train_share=share).empty


# --------------------------------------------------------------------------------------
# baselines


def test_historical_average_is_the_series_mean_of_open_days_up_to_the_origin(trained, data):
    features, _ = data
    hist = history(features)
    origin = trained.split.origin
    past = hist[(hist["date"] <= origin) & (hist["open"] == 1)]
    y = past.assign(y=past["target"].clip(lower=0))
    series_mean = y.groupby(SERIES)["y"].mean()
    dow_mean = y.groupby([*SERIES, y["date"].dt.dayofweek])["y"].mean()
    # a closed day counts in neither (its 0 is not demand), a return is clipped at 0
    assert (hist.loc[hist["open"] == 0, "target"] == 0).all()
    assert (past["target"] < 0).any(), "the sample has returns before the origin"

    h = with_inputs(trained, features)
    opened = h[h["open"] == 1]
    keys = pd.MultiIndex.from_frame(opened[SERIES])
    np.testing.assert_allclose(opened["hist_avg"], series_mean.reindex(keys).to_numpy())
    dow_keys = pd.MultiIndex.from_arrays(
        [opened["store"], opened["item"], opened["date"].dt.dayofweek]
    )
    np.testing.assert_allclose(opened["hist_avg_dow"], dow_mean.reindex(dow_keys).to_numpy())
    # and nothing after the origin: the mean over all history would differ
    everything = hist[hist["open"] == 1].assign(y=lambda f: f["target"].clip(lower=0))
    assert not np.allclose(
        opened["hist_avg"], everything.groupby(SERIES)["y"].mean().reindex(keys).to_numpy()
    )


def test_seasonal_naive_is_the_last_open_same_weekday_before_the_origin(trained, data):
    features, _ = data
    hist = history(features)
    origin = trained.split.origin
    past = hist[(hist["date"] <= origin) & (hist["open"] == 1)]
    h = with_inputs(trained, features)
    # the first open week of the holdout of every series: every weekday that is open
    rows = h[h["open"] == 1].groupby(SERIES).head(7)
    assert len(rows) >= 5 * 6 and rows["date"].dt.dayofweek.nunique() >= 6
    lags = []
    for row in rows.itertuples():
        same = past[
            (past["store"] == row.store)
            & (past["item"] == row.item)
            & (past["date"].dt.dayofweek == row.date.dayofweek)
        ]
        last = same.loc[same["date"].idxmax()]
        lags.append((row.date - last["date"]).days)
        assert row.seasonal_naive == pytest.approx(max(last["target"], 0.0)), row
    # a whole number of weeks back, usually the week just before the holdout
    assert all(lag % 7 == 0 for lag in lags)
    assert np.mean([lag == 7 for lag in lags]) > 0.8


def test_baselines_skip_closed_weekdays_fall_back_to_the_mean_and_clip_returns():
    """A hand-made series: Mondays 10, Tuesdays 20, the last Monday before the origin was a
    holiday (closed), Wednesdays never open, one return (-3) on a Tuesday."""
    days = pd.date_range("2024-01-01", "2024-01-28", freq="D")  # starts on a Monday
    hist = pd.DataFrame({"store": "S1", "item": "A", "date": days})
    dow = hist["date"].dt.dayofweek
    hist["target"] = np.select([dow == 0, dow == 1], [10.0, 20.0], 5.0)
    hist["open"] = 1
    hist.loc[dow == 2, ["open", "target"]] = [0, 0.0]
    holiday = hist["date"] == pd.Timestamp("2024-01-22")  # the last Monday before the origin
    hist.loc[holiday, ["open", "target"]] = [0, 0.0]
    hist.loc[hist["date"] == pd.Timestamp("2024-01-23"), "target"] = -3.0  # last Tuesday
    hist.loc[hist["date"] == pd.Timestamp("2024-01-16"), "target"] = 17.0
    origin = pd.Timestamp("2024-01-28")
    split = Split(days[0], days[0], days[0], origin, origin + DAY, origin + 7 * DAY)
    future = pd.date_range("2024-01-29", periods=7, freq="D")  # Mon..Sun
    holdout = pd.DataFrame({"store": "S1", "item": "A", "date": future, "open": 1})
    holdout.loc[6, "open"] = 0  # closed on the Sunday

    out = baseline_forecasts(hist, holdout, split)

    open_y = hist.loc[hist["open"] == 1, "target"].clip(lower=0)
    mean = open_y.mean()
    assert out["hist_avg"][:6] == pytest.approx([mean] * 6)
    mon, tue, wed = out["seasonal_naive"][:3]
    assert mon == 10.0  # 2024-01-15: the closed 2024-01-22 is skipped
    assert tue == 0.0  # the return, clipped
    assert wed == pytest.approx(mean)  # never open on a Wednesday: the series mean
    assert out["hist_avg_dow"][1] == pytest.approx((20 + 17 + 20 + 0) / 4)
    assert out["hist_avg_dow"][2] == pytest.approx(mean)
    for name in BASELINES:
        assert out[name][6] == 0.0, name  # closed


# --------------------------------------------------------------------------------------
# closed days, metrics, accuracy


def test_closed_days_are_forecast_zero_and_not_scored(trained, data):
    features, _ = data
    h = with_inputs(trained, features)
    closed = h[h["open"] == 0]
    assert len(closed) >= 6, "the holdout has Sundays and holidays"
    assert (closed["model"] == 0).all()
    for name in BASELINES:
        assert (closed[name] == 0).all(), name
    assert not closed["eligible"].any()
    assert h.loc[h["open"] == 1, "eligible"].all()
    assert (h["model"] >= 0).all() and (h.loc[h["open"] == 1, "model"] > 0).all()


def test_metrics_are_computed_on_open_holdout_days_with_the_spec_floor(trained):
    h = trained.holdout
    scored = h[h["eligible"]]
    assert FAST.metric_floor == 20
    for name in ("model", *BASELINES):
        expected = regression_metrics(scored["actual"], scored[name], floor=20)
        got = {k: v for k, v in trained.metrics[name].items() if k in expected}
        assert got == pytest.approx(expected), name
    m = trained.metrics["model"]
    assert m["n"] == h["eligible"].sum()
    assert m["n_pct"] == (scored["actual"] > 20).sum() < m["n"]  # slow movers excluded


def test_the_model_beats_the_baselines_by_a_large_margin(trained):
    m = trained.metrics
    model, base = m["model"], m["hist_avg"]
    for metric in ("mape", "wape", "rmse", "rmspe"):
        assert model[metric] < base[metric], metric
        assert model[metric] < m["seasonal_naive"][metric], metric
        assert model[f"{metric}_reduction_vs_baseline"] == pytest.approx(
            1 - model[metric] / base[metric]
        )
    assert model["mape_reduction_vs_baseline"] >= 0.45
    assert model["mape"] < m["hist_avg_dow"]["mape"]
    # the pre-Christmas peak: every forecast falls short, the model much less than the mean
    assert abs(model["bias"]) < abs(base["bias"]) / 2


def test_the_single_store_region_model_also_beats_the_historical_average(tmp_path_factory):
    m = trained_model(tmp_path_factory, "Nord").metrics
    assert m["model"]["mape"] < m["hist_avg"]["mape"]
    assert m["model"]["wape"] < m["hist_avg"]["wape"]


def test_numeric_inputs_are_fitted_and_scored_as_float32_and_the_table_is_untouched(data):
    features, fs = data
    before = features.copy()
    region = prepare_region(features, fs, SPEC, settings=FAST)
    numeric = [c for c in region.columns if c not in region.categorical]
    assert (region.hist[numeric].dtypes == np.float32).all()
    X = design_matrix(features, region.columns, region.categories)
    assert (X[numeric].dtypes == np.float32).all()
    assert all(isinstance(X[c].dtype, pd.CategoricalDtype) for c in region.categorical)
    # the same values, to float32's precision; the caller's table keeps its own
    np.testing.assert_allclose(
        region.hist[numeric].to_numpy(float),
        history(features).sort_values(["date", *SERIES])[numeric].to_numpy(float),
        rtol=1e-6,
    )
    pd.testing.assert_frame_equal(features, before)
    assert list(history_rows(features, numeric).index) == list(history(features).index)


def test_history_rows_share_the_table_it_writes_and_copy_one_in_another_order(data):
    """The feature table comes history first, by date and series: a region's training then
    holds its rows once (a copy was the size of the table); any other order is sorted."""
    features, fs = data
    keys = features[["date", *SERIES]].assign(date=pd.to_datetime(features["date"]))
    assert keys.equals(keys.sort_values(["date", *SERIES]))
    future = features["is_future"].astype(bool).to_numpy()
    assert future.any() and not future[: int((~future).sum())].any()
    # the derived inputs are float32 in the table: nothing to convert
    numeric = [c for c in fs.numeric if features[c].dtype == np.float32]
    assert len(numeric) > 10

    def shares(hist: pd.DataFrame, table: pd.DataFrame) -> bool:
        return all(np.shares_memory(hist[c].to_numpy(), table[c].to_numpy()) for c in numeric)

    before = features.copy()
    written = prepare_region(features, fs, SPEC, settings=FAST).hist
    assert shares(written, features)
    shuffled = features.sample(frac=1.0, random_state=0)
    resorted = prepare_region(shuffled, fs, SPEC, settings=FAST).hist
    assert not shares(resorted, shuffled)
    pd.testing.assert_frame_equal(resorted, written)
    pd.testing.assert_frame_equal(features, before)  # the converted columns are hist's own


def test_the_training_array_holds_the_design_matrix_values_and_category_codes(data):
    """Training bins a float32 array (LightGBM copies a DataFrame with categoricals to
    float64 twice); a model scores DataFrames: both must encode every row alike."""
    features, fs = data
    region = prepare_region(features, fs, SPEC, settings=FAST)
    rows = region.hist.head(500).copy()
    rows.loc[rows.index[:3], "store"] = "a store never seen"  # unseen level -> missing
    X = design_matrix(rows, region.columns, region.categories)
    A = design_array(rows, region.columns, region.categories)
    assert A.dtype == np.float32 and A.flags.c_contiguous and A.shape == X.shape
    for j, col in enumerate(region.columns):
        expected = (
            X[col].cat.codes.replace(-1, np.nan).to_numpy(float)
            if col in region.categorical
            else X[col].to_numpy(float)
        )
        np.testing.assert_array_equal(A[:, j], expected, err_msg=col)
    assert np.isnan(A[:3, region.columns.index("store")]).all()
    # a model fitted on the array scores the DataFrame as it scores the array
    booster = lgb.train(
        {**region.meta["params"], "verbose": -1},
        region.dataset(region.train_mask),
        num_boost_round=20,
    )
    np.testing.assert_allclose(booster.predict(X), booster.predict(A), rtol=1e-6)


def test_a_fit_on_a_row_mask_sees_exactly_the_rows_a_frame_of_them_holds(data):
    """Fits take their rows as a mask over the region's history (no frame copy of them):
    the Dataset and the data-quality baseline must be what those rows' frame gives."""
    features, fs = data
    region = prepare_region(features, fs, SPEC, settings=FAST)
    mask = region.before_holdout_mask
    mask[::3] = False  # not a date window: any rows
    frame = region.hist[mask]
    np.testing.assert_array_equal(
        design_array(region.hist, region.columns, region.categories, mask),
        design_array(frame, region.columns, region.categories),
    )
    built = region.dataset(mask).construct()
    # LightGBM keeps labels as float32
    np.testing.assert_array_equal(built.get_label(), region.target(frame).astype(np.float32))
    np.testing.assert_allclose(built.get_init_score(), level_offset(frame, region.meta))
    assert data_quality_baseline(region.hist, fs, rows=mask) == data_quality_baseline(frame, fs)


def _patience_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The patience of each early stopping the training module asks LightGBM for."""
    asked: list[int] = []
    real = lgb.early_stopping

    def spy(stopping_rounds: int, **kwargs: Any):
        asked.append(stopping_rounds)
        return real(stopping_rounds, **kwargs)

    monkeypatch.setattr(lgb, "early_stopping", spy)
    return asked


def test_the_probe_picks_the_trees_by_early_stopping_on_the_inner_window(data, monkeypatch):
    features, fs = data
    settings = FAST.model_copy(update={"num_boost_round": 400, "early_stopping_rounds": 20})
    region = prepare_region(features, fs, SPEC, settings=settings)
    patience = _patience_spy(monkeypatch)
    probe, trees = fit_probe(region, settings)
    assert trees == probe.best_iteration < 400
    assert patience == [20]
    assert probe.params["learning_rate"] == region.meta["params"]["learning_rate"]


def test_a_faster_probe_boosts_at_a_multiple_of_the_learning_rate_and_scales_the_trees(
    data, monkeypatch
):
    features, fs = data
    settings = FAST.model_copy(
        update={
            "num_boost_round": 400,
            "early_stopping_rounds": 20,
            "probe_learning_rate_multiplier": 2.0,
        }
    )
    region = prepare_region(features, fs, SPEC, settings=settings)
    patience = _patience_spy(monkeypatch)
    probe, trees = fit_probe(region, settings)
    rate = region.meta["params"]["learning_rate"]
    assert probe.params["learning_rate"] == 2 * rate
    assert patience == [10]  # the patience in rounds is halved too
    assert trees == 2 * probe.best_iteration
    # the model's fits boost that many trees at the model's own rate
    trained = train_region_model(features, fs, SPEC, settings=settings)
    assert trained.best_iteration == trees
    assert trained.meta["params"]["learning_rate"] == rate
    more = trained.meta["final_fit"]["trees"]  # the artifact: the evaluated model, continued
    assert more == round(settings.final_fit_tree_share * trees)
    assert lgb.Booster(model_str=trained.model_text).num_trees() == trees + more


# --------------------------------------------------------------------------------------
# the artifact


def test_saved_text_model_and_metadata_reproduce_the_forecasts(trained, data):
    features, _ = data
    booster = lgb.Booster(model_str=trained.model_text)
    meta = json.loads(trained.meta_json())  # as the registry stores it
    rows = features  # history and future rows, dates as read from Parquet
    expected = predict_frame(trained.booster, trained.meta, rows)
    np.testing.assert_array_equal(predict_frame(booster, meta, rows), expected)
    assert meta["num_boost_round"] == trained.best_iteration
    assert booster.num_trees() == trained.best_iteration + meta["final_fit"]["trees"]
    assert meta["features"] == trained.meta["features"]
    assert meta["categories"]["store"] == ["S0001", "S0003"]


def test_artifact_is_fitted_on_all_history(trained, data):
    features, _ = data
    hist = history(features)
    usable = hist[(hist["open"] == 1) & hist["target"].notna()]
    assert trained.train_rows == len(usable) == trained.meta["train_rows"]
    assert trained.meta["train_date_max"] == str(usable["date"].max().date())
    assert trained.meta["train_date_max"] >= str(trained.split.holdout_start.date())
    assert trained.meta["split"] == trained.split.to_dict()


def test_the_artifact_is_the_evaluated_model_boosted_further_on_all_history(trained, data):
    """final_fit 'continue' (the default): the artifact's first trees are the model whose
    holdout forecasts the gate judged, the rest learned the holdout's days."""
    features, _ = data
    best, meta = trained.best_iteration, trained.meta
    assert meta["final_fit"] == {
        "method": "continue",
        "trees": round(FAST.final_fit_tree_share * best),
    }
    text = trained.booster.model_to_string(num_iteration=best)
    evaluated = lgb.Booster(model_str=text)
    rows = with_inputs(trained, features)
    np.testing.assert_allclose(
        predict_frame(evaluated, meta, rows), trained.holdout["model"], rtol=1e-9
    )
    # fitted on the holdout's days too: the artifact is closer to them than the evaluated
    # model was, and not the same model
    scored = rows[trained.holdout["eligible"].to_numpy()]
    final = predict_frame(trained.booster, meta, scored)
    before = np.abs(predict_frame(evaluated, meta, scored) - scored["actual"]).mean()
    assert np.abs(final - scored["actual"]).mean() < before


def test_a_refit_artifact_is_fitted_again_from_scratch(data):
    features, fs = data
    settings = FAST.model_copy(update={"final_fit": "refit"})
    trained = train_region_model(features, fs, SPEC, settings=settings)
    assert trained.meta["final_fit"] == {"method": "refit", "trees": trained.best_iteration}
    assert trained.booster.num_trees() == trained.best_iteration
    rows = with_inputs(trained, features)
    assert not np.allclose(
        predict_frame(trained.booster, trained.meta, rows), trained.holdout["model"]
    )


def test_the_continuation_starts_from_the_evaluated_models_output_on_every_row(data, caplog):
    """evaluator_output takes LightGBM's training scores for the rows the evaluated model
    was fitted on and predicts only the holdout: the same start as predicting every row."""
    caplog.set_level(logging.INFO, logger="mlops_assets.training")
    features, fs = data
    region = prepare_region(features, fs, SPEC, settings=FAST)
    assert region.meta["level_features"]  # the start includes each row's level
    evaluated, scores = fit_boosters(
        region.meta["params"],
        region.dataset(region.before_holdout_mask),
        trees=15,
        seeds=1,
        keep_scores=True,
    )
    assert len(scores) == len(region.before_holdout) < int(region.usable.sum())
    start = evaluator_output(evaluated, scores, region)
    predicted = evaluator_output(evaluated, None, region)
    assert len(start) == int(region.usable.sum())
    np.testing.assert_allclose(start, predicted, rtol=1e-6, atol=1e-6)
    assert "predicting every row" not in caplog.text
    # scores that are not the model's raw output are not used, and the log says so
    wrong = evaluator_output(evaluated, np.zeros_like(scores), region)
    np.testing.assert_allclose(wrong, predicted, rtol=1e-9)
    assert "objective 'regression' reports transformed training scores" in caplog.text
    short = evaluator_output(evaluated, scores[:-1], region)
    np.testing.assert_allclose(short, predicted, rtol=1e-9)
    assert f"{len(scores) - 1} training scores for {len(scores)} fitted rows" in caplog.text


def test_shap_contributions_and_level_offset_reproduce_the_forecast(trained, data):
    features, _ = data
    rows = features.iloc[::13]
    meta, booster = trained.meta, trained.booster
    contrib = shap_contributions(booster, meta, rows)
    assert list(contrib.columns) == [*meta["features"], "expected_value"]
    assert contrib.index.equals(rows.index)
    X = design_matrix(rows, meta["features"], meta["categories"])
    raw = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), raw, rtol=1e-9, atol=1e-9)
    # + the row's lagged level, back from log1p = the forecast (open days)
    assert meta["target_transform"] == "log1p" and meta["level_features"]
    offset = level_offset(rows, meta)
    assert np.ptp(offset) > 1.0  # the level differs between series: it matters
    pred = predict_frame(booster, meta, rows)
    opened = rows["open"].to_numpy() == 1
    np.testing.assert_allclose(
        pred[opened], np.clip(np.expm1(raw + offset), 0, None)[opened], rtol=1e-9
    )


def test_a_seed_bag_trains_one_artifact_that_reproduces_its_forecasts(data):
    features, fs = data
    bag = train_region_model(features, fs, SPEC, settings=FAST.model_copy(update={"seeds": 2}))
    assert bag.meta["seeds"] == 2
    booster = lgb.Booster(model_str=bag.model_text)
    # a bag of two evaluated models, then a bag of two continuations
    assert booster.num_trees() == 2 * (bag.best_iteration + bag.meta["final_fit"]["trees"])
    meta = json.loads(bag.meta_json())
    np.testing.assert_array_equal(
        predict_frame(booster, meta, features), predict_frame(bag.booster, bag.meta, features)
    )
    rows = features.iloc[::17]
    contrib = shap_contributions(booster, meta, rows)
    X = design_matrix(rows, meta["features"], meta["categories"])
    np.testing.assert_allclose(contrib.sum(axis=1), booster.predict(X, raw_score=True), atol=1e-9)


def test_importance_ranks_every_feature_by_mean_absolute_contribution(trained):
    imp = trained.importance
    assert list(imp) == sorted(imp, key=imp.get, reverse=True)
    assert set(imp) == set(trained.meta["features"])
    assert all(v >= 0 for v in imp.values()) and sum(imp.values()) > 0


def test_data_quality_baseline_describes_every_input(trained, data):
    features, fs = data
    dq = trained.dq_baseline
    assert trained.meta["dq_baseline"] is dq
    assert set(dq["numeric"]) == set(fs.numeric)
    assert set(dq["categorical"]) == {*SERIES, *fs.categorical}
    stats = {"null_rate", "mean", "std", "min", "p01", "p50", "p99", "max"}
    assert all(set(v) == stats for v in dq["numeric"].values())
    hist = history(features)
    train = hist[(hist["open"] == 1) & hist["target"].notna()]
    assert dq["rows"] == len(train) == trained.train_rows
    assert dq["numeric"]["promo"]["mean"] == pytest.approx(train["promo"].mean())
    t = train["temperature_c"]
    assert dq["numeric"]["temperature_c"]["p50"] == pytest.approx(t.median())
    assert dq["numeric"]["temperature_c"]["min"] == pytest.approx(t.min())
    # a year-ago lag is missing in the first year: the baseline records how often
    assert dq["numeric"]["lag_364"]["null_rate"] == pytest.approx(train["lag_364"].isna().mean())
    assert 0.2 < dq["numeric"]["lag_364"]["null_rate"] < 0.5
    assert dq["categorical"]["store"]["levels"] == 2
    assert dq["categorical"]["item"]["levels"] == 3
    for col, info in dq["categorical"].items():
        assert sum(info["frequencies"].values()) == pytest.approx(1.0), col
        assert info["null_rate"] == 0.0, col


def test_training_is_deterministic(trained, data):
    features, fs = data
    again = train_region_model(features.copy(), fs, SPEC, settings=FAST)
    assert again.metrics == trained.metrics
    assert again.model_text == trained.model_text
    pd.testing.assert_frame_equal(again.holdout, trained.holdout)


# --------------------------------------------------------------------------------------
# the monitoring reference saved with the model


def test_the_monitoring_reference_is_exactly_the_fitted_rows(trained, data):
    features, _ = data
    hist = history(features)
    fitted = hist[(hist["open"] == 1) & hist["target"].notna()]
    ref = trained.reference
    assert len(ref) == trained.meta["train_rows"] == trained.meta["reference"]["rows"]
    # what monitoring reads: date, keys, every model feature, the target, open, is_future
    assert list(ref.columns) == reference_columns(features, trained.meta)
    assert {"date", *SERIES, *trained.meta["features"], "target", "open", "is_future"} == set(
        ref.columns
    )
    expected = fitted.sort_values(["date", *SERIES])[list(ref.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(ref, expected, check_exact=True)  # values and dtypes
    # as the registry stores it: Parquet that reads back to the same values and dtypes
    # (float32 inputs, Arrow strings), so monitoring's cast to the table's changes nothing
    back = read_reference_parquet(trained.reference_parquet())
    pd.testing.assert_frame_equal(back, ref, check_exact=True)
    pd.testing.assert_frame_equal(like_dtypes(back, features), ref, check_exact=True)


def test_train_on_positive_target_fits_only_days_with_sales(trained, data):
    """``train_on_positive_target`` (rossmann: an open day without sales is a recording
    anomaly): zero-target open days are left out of the fit and the reference, nothing
    else is; without it they count (the generated data has real zero-demand days)."""
    features, fs = data
    hist = history(features)
    fitted = hist[(hist["open"] == 1) & hist["target"].notna()]
    zeros = int((fitted["target"] <= 0).sum())
    assert zeros > 0 and trained.meta["train_rows"] == len(fitted)  # the default keeps them
    positive = train_region_model(
        features, fs, SPEC, settings=FAST.model_copy(update={"train_on_positive_target": True})
    )
    assert positive.meta["train_rows"] == len(fitted) - zeros
    assert (positive.reference["target"] > 0).all()
    expected = fitted[fitted["target"] > 0].sort_values(["date", *SERIES])
    pd.testing.assert_frame_equal(
        positive.reference,
        expected[list(positive.reference.columns)].reset_index(drop=True),
        check_exact=True,
    )


def test_a_reference_above_the_cap_is_a_deterministic_sample_of_every_week(trained, data):
    full = trained.reference
    weeks = full["date"] - pd.to_timedelta(full["date"].dt.dayofweek, unit="D")
    sample = reference_rows(full, trained.meta, 1000)
    assert len(sample) == 1000 < len(full)
    pd.testing.assert_frame_equal(sample, reference_rows(full, trained.meta, 1000))
    # rows of the full reference, unchanged, in date order
    merged = sample.merge(full, how="left", indicator=True)
    assert (merged["_merge"] == "both").all() and sample["date"].is_monotonic_increasing
    # every week kept, each in proportion to its rows (within one row)
    picked = (
        sample["date"] - pd.to_timedelta(sample["date"].dt.dayofweek, unit="D")
    ).value_counts()
    share = weeks.value_counts() * 1000 / len(full)
    assert set(picked.index) == set(share.index)
    assert (picked.reindex(share.index) - share).abs().max() <= 1
    # training applies the cap and records it
    features, fs = data
    capped = train_region_model(features, fs, SPEC, settings=FAST, reference_max_rows=1000)
    pd.testing.assert_frame_equal(capped.reference, sample)
    assert capped.meta["reference"] == {"rows": 1000, "max_rows": 1000}
    assert capped.meta["train_rows"] == len(full)


def test_a_saved_reference_takes_the_feature_table_dtypes_without_changing_values():
    # nannyml picks categorical or continuous methods from the dtype: a reference read
    # back from CSV must look like the feature table it is compared with
    table = pd.DataFrame(
        {
            "date": [pd.Timestamp("2024-01-01")],
            "store": ["1"],
            "promo": np.array([1], dtype="int32"),
            "lag_7": [1.0],
            "is_future": [False],
            "size": [100],
            "format": ["large"],
        }
    )
    saved = pd.DataFrame(
        {
            "date": ["2023-01-02"],  # left alone
            "store": [12],  # a key parsed as a number: text again
            "promo": [0],  # int64 -> the table's int32
            "lag_7": [3],  # -> float
            "is_future": [0],  # -> bool
            "size": [100.5],  # not an integer: stays float, never truncated
            "format": [float("nan")],  # missing text stays missing
        }
    )
    out = like_dtypes(saved, table)
    assert (
        out.dtypes.drop(["date", "size"]).to_dict() == table.dtypes.drop(["date", "size"]).to_dict()
    )
    assert out["store"].tolist() == ["12"] and out["date"].tolist() == ["2023-01-02"]
    assert out["size"].dtype == float and out["size"].tolist() == [100.5]
    assert out["is_future"].tolist() == [False]
    # missing text is None, as Parquet reads it: nannyml's unseen-values check would count
    # a None in the analysis as unseen against a reference holding NaN
    assert out["format"].tolist() == [None]
