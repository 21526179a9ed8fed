"""Train one region's LightGBM model and judge it against baselines on a time-based holdout.

Split (by date, per region): the last ``horizon`` periods of history are the holdout;
the ``horizon`` periods before it are an inner validation window used only for early
stopping. Every holdout row is forecast from one origin (the day before the holdout):
the feature table's target lags all end at least ``horizon`` periods back, so the whole
holdout is a genuine multi-step forecast that never sees a holdout actual. Known-in-
advance inputs (promotions, holidays, calendar, weather forecast) are used as they are.

Three fits share one configuration: (1) train -> early stopping on the inner window picks
the number of trees, (2) train + inner window -> forecasts the holdout (these are the
reported metrics), (3) all history -> the artifact that is registered and scores the
future. By default (``ModelSettings.final_fit``) fit (3) continues fit (2): a share of its
trees more, boosted on all history from its output, so the artifact holds the evaluated
model and the first fit is not paid twice; ``refit`` fits it again from scratch. Between
(2) and (3), one fit per backtest fold (``backtest_forecasts``) forecasts the horizons
before the holdout out of sample, for the label-free performance estimate. With
``seeds`` > 1, fits (2) and (3) are seed bags: that many boosters of the chosen size,
trained with consecutive seeds and averaged into one LightGBM text model
(``models.boosting``).
Baselines on the same rows: historical average per series, per series x weekday, and
seasonal naive (the last value of the same weekday before the origin).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlops_assets.conditioning import FeatureSet
from mlops_assets.metrics import reduction, regression_metrics
from mlops_assets.models.boosting import chain_boosters, fit_boosters, model_text
from mlops_assets.spec import DatasetSpec, ModelSettings, objective_of
from mlops_assets.workspace import read_like_features

log = logging.getLogger(__name__)

SERIES = ["store", "item"]
BASELINES = ("hist_avg", "hist_avg_dow", "seasonal_naive")
MAX_CATEGORY_LEVELS = 1000
# holdout rows the saved global importance is computed on (exact TreeSHAP, ~1 ms a row
# on rossmann's 2,000-tree models): on rossmann-100, 500 rows ranked the features as all
# rows did (NDCG 1.0, same top 3, Spearman 0.9996; 250 rows: same top 3 in 93% of
# samples), benchmarks/results/shap_sample.json
SHAP_SAMPLE_ROWS = 500


@dataclass(frozen=True)
class Split:
    """Date boundaries of one region's evaluation (all inclusive)."""

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    val_start: pd.Timestamp
    val_end: pd.Timestamp
    holdout_start: pd.Timestamp
    holdout_end: pd.Timestamp

    @property
    def origin(self) -> pd.Timestamp:
        """The forecast origin of the holdout: its first day minus one period."""
        return self.val_end

    def to_dict(self) -> dict[str, str]:
        return {k: str(v.date()) for k, v in self.__dict__.items()} | {
            "origin": str(self.origin.date())
        }


def time_split(dates: pd.Series, spec: DatasetSpec) -> Split:
    """Holdout = last ``horizon`` periods; inner validation = the ``horizon`` before it."""
    span = pd.Timedelta(days=spec.horizon * spec.period_days)
    step = pd.Timedelta(days=spec.period_days)
    first, last = pd.Timestamp(dates.min()), pd.Timestamp(dates.max())
    holdout_start = last - span + step
    val_start = holdout_start - span
    if val_start - step < first:
        raise ValueError(
            f"history {first.date()}..{last.date()} is too short for a {spec.horizon}-period "
            "holdout plus an equally long validation window"
        )
    return Split(first, val_start - step, val_start, holdout_start - step, holdout_start, last)


def model_columns(features: FeatureSet) -> tuple[list[str], list[str]]:
    """(all model inputs, the categorical ones): store and item identify the series."""
    categorical = [*SERIES, *features.categorical]
    return [*features.numeric, *categorical], categorical


def eligible_rows(frame: pd.DataFrame) -> pd.Series:
    """Rows that carry demand: open days (a closed store sells nothing by definition)."""
    if "open" in frame.columns:
        return frame["open"].fillna(1).astype(float) > 0
    return pd.Series(True, index=frame.index)


def training_levels(values: pd.Series, levels: list[str]) -> pd.Categorical:
    """A categorical input on its training levels (an unseen or missing value: missing),
    the one encoding ``design_matrix`` (scoring) and ``design_array`` (fitting) share."""
    return pd.Categorical(values.astype("string"), categories=levels)


def design_matrix(
    frame: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """Model inputs with categoricals encoded on the training levels (unseen -> NaN) and
    numeric inputs as float32 (see ``history_rows``), in training and scoring alike."""
    X = {
        col: training_levels(frame[col], categories[col])
        if col in categories
        else frame[col].astype(np.float32)
        for col in columns
    }
    return pd.DataFrame(X, index=frame.index)


def design_array(
    frame: pd.DataFrame,
    columns: list[str],
    categories: dict[str, list[str]],
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """``design_matrix`` as one C-ordered float32 array, categoricals as their codes on the
    training levels (unseen or missing: NaN), which is what LightGBM bins. Training builds
    its Datasets from it: from a DataFrame with categoricals LightGBM 4.5 makes two float64
    copies of the inputs (codes cast to float64, then a C-ordered copy), four times this
    array, which set a region's peak memory. ``rows``: a boolean mask of the frame's rows
    to take, one column at a time, so that a fit on most of a region's history does not
    first copy those rows' frame (``RegionData.dataset``)."""
    n = len(frame) if rows is None else int(np.count_nonzero(rows))
    out = np.empty((n, len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        if col in categories:
            values = frame[col] if rows is None else frame[col][rows]
            codes = training_levels(values, categories[col]).codes
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            values = frame[col].to_numpy(dtype=np.float32, na_value=np.nan)
            out[:, j] = values if rows is None else values[rows]
    return out


def history_rows(
    features: pd.DataFrame, numeric: list[str], *, sort_by: list[str] | None = None
) -> pd.DataFrame:
    """The history rows of a feature table (not ``is_future``), dates as datetimes and the
    ``numeric`` model inputs as float32: LightGBM bins its inputs into at most 255 values,
    so a model loses nothing to 7 significant digits, and every copy a region's fits make
    (slices, design matrices, LightGBM's own array, float32 when every input is) takes half
    the memory. ``sort_by``: in this order (a stable sort of the key columns alone, then
    one copy of the rows: a region's table is the largest object its training holds).
    When the history rows already lead the table in that order (``conditioning`` writes
    it by date and series), they are not copied: the rows share the table's columns,
    and only the columns converted here are new."""
    positions = np.flatnonzero(~features["is_future"].astype(bool).to_numpy())
    if sort_by:
        keys = features[sort_by].take(positions)
        if "date" in sort_by:
            keys["date"] = pd.to_datetime(keys["date"])
        positions = positions[keys.reset_index(drop=True).sort_values(sort_by).index.to_numpy()]
    if np.array_equal(positions, np.arange(len(positions))):
        # a shallow copy of the leading rows: a column set below replaces that column in
        # ``hist`` alone (pandas splits the shared block without copying it)
        hist = features.iloc[: len(positions)].copy(deep=False)
    else:
        hist = features.take(positions)  # labels kept: the reference finds its rows by them
    for col in numeric:
        if pd.api.types.is_numeric_dtype(hist[col]) and hist[col].dtype not in (np.float32, bool):
            hist[col] = hist[col].astype(np.float32)
    hist["date"] = pd.to_datetime(hist["date"])
    return hist


def predict_frame(booster: lgb.Booster, meta: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """Forecasts for feature rows: model output, back-transformed, 0 on closed days."""
    X = design_matrix(frame, meta["features"], meta["categories"])
    raw = booster.predict(X, num_threads=meta.get("num_threads", 1)) + level_offset(frame, meta)
    pred = _inverse(raw, meta["target_transform"])
    return np.where(eligible_rows(frame).to_numpy(), pred, 0.0)


def level_offset(frame: pd.DataFrame, meta: dict[str, Any]) -> np.ndarray:
    """Each row's lagged level in the model's output space (0 without level features)."""
    names = [c for c in meta.get("level_features", []) if c in frame.columns]
    if not names:
        return np.zeros(len(frame))
    level = frame[names].bfill(axis=1).iloc[:, 0].astype(float)
    level = level.fillna(meta["level_fallback"]).clip(lower=0).to_numpy()
    return np.log1p(level) if meta["target_transform"] == "log1p" else level


def _inverse(raw: np.ndarray, transform: str) -> np.ndarray:
    pred = np.expm1(raw) if transform == "log1p" else raw
    return np.clip(pred, 0, None)


def shap_contributions(
    booster: lgb.Booster, meta: dict[str, Any], frame: pd.DataFrame
) -> pd.DataFrame:
    """Exact TreeSHAP attributions (LightGBM ``pred_contrib``), one column per feature plus
    ``expected_value``, in the model's output space: with a level offset, a row's raw
    output is ``level_offset + expected_value + sum(contributions)``.

    On LightGBM's default threads (every core), unlike fits (``num_threads``, one): on
    rossmann-100's largest region two runs' TreeSHAP calls on every core took as long as on
    one thread each, and one alone took half as long, while two fits on every core took
    4.6x as long (``benchmarks/thread_contention.py``). A run that finishes alone (the tail
    of a backfill) has the second core to itself."""
    X = design_matrix(frame, meta["features"], meta["categories"])
    contrib = booster.predict(X, pred_contrib=True)
    return pd.DataFrame(contrib, columns=[*meta["features"], "expected_value"], index=frame.index)


@dataclass
class TrainedModel:
    """A region's trained model, its evaluation and what is saved with it."""

    booster: lgb.Booster
    meta: dict[str, Any]
    split: Split
    metrics: dict[str, dict[str, Any]]  # model and each baseline -> metrics
    holdout: pd.DataFrame  # store, item, date, actual, model, baselines, eligible
    importance: dict[str, float]
    dq_baseline: dict[str, Any]
    train_rows: int
    best_iteration: int
    summary: dict[str, Any] = field(default_factory=dict)
    # the rows the artifact was fitted on, as monitoring reads them (``reference_rows``)
    reference: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def model_text(self) -> str:
        return model_text(self.booster)

    def meta_json(self) -> str:
        return json.dumps(self.meta, sort_keys=True, default=str)

    def reference_parquet(self) -> bytes | None:
        """The monitoring reference as the registry stores it (None if there is none)."""
        return reference_parquet(self.reference) if len(self.reference) else None


@dataclass
class RegionData:
    """One region's history prepared for fitting: the split, the usable rows, the model
    inputs and the metadata they imply. Shared by training and tuning, so a tuning trial
    fits on exactly the rows and Datasets that training uses."""

    hist: pd.DataFrame  # history rows, sorted by date and series
    split: Split
    usable: pd.Series  # rows a model may be fitted on (open, target known)
    columns: list[str]
    categorical: list[str]
    categories: dict[str, list[str]]
    meta: dict[str, Any]

    # Row masks over ``hist`` select what a fit learns from: ``dataset`` takes the inputs
    # one column at a time, where a frame of those rows would be one more copy of most of
    # the region's history while its Dataset is built (the peak of a region's training)

    @property
    def train_mask(self) -> np.ndarray:
        """The training window (before the inner validation window)."""
        return (self.usable & (self.hist["date"] <= self.split.train_end)).to_numpy()

    @property
    def val_mask(self) -> np.ndarray:
        """The inner validation window (early stopping, tuning); never the holdout."""
        dates = self.hist["date"]
        return (self.usable & dates.between(self.split.val_start, self.split.val_end)).to_numpy()

    @property
    def before_holdout_mask(self) -> np.ndarray:
        return (self.usable & (self.hist["date"] <= self.split.val_end)).to_numpy()

    @property
    def train(self) -> pd.DataFrame:
        return self.hist[self.train_mask]

    @property
    def val(self) -> pd.DataFrame:
        return self.hist[self.val_mask]

    @property
    def before_holdout(self) -> pd.DataFrame:
        return self.hist[self.before_holdout_mask]

    def target(self, frame: pd.DataFrame) -> np.ndarray:
        y = frame["target"].clip(lower=0).to_numpy(float)
        return np.log1p(y) if self.meta["target_transform"] == "log1p" else y

    def dataset(
        self,
        rows: np.ndarray,
        reference: lgb.Dataset | None = None,
        *,
        free_raw_data: bool = False,
        init_score: np.ndarray | None = None,
    ) -> lgb.Dataset:
        """A LightGBM Dataset of the ``rows`` of ``hist`` (a boolean mask): inputs on the
        training categories, the target in the model's space, and each row's lagged level
        as init_score (or ``init_score``: a continuation boosts from an earlier booster's
        output)."""
        rows = np.asarray(rows, dtype=bool)
        if init_score is None and self.meta["level_features"]:
            init_score = level_offset(self.hist.loc[rows, self.meta["level_features"]], self.meta)
        return lgb.Dataset(
            design_array(self.hist, self.columns, self.categories, rows),
            label=self.target(self.hist.loc[rows, ["target"]]),
            feature_name=self.columns,
            # no init_score without a level: LightGBM then boosts from the average
            init_score=init_score,
            categorical_feature=self.categorical,
            reference=reference,
            free_raw_data=free_raw_data,
        )


def prepare_region(
    features: pd.DataFrame,
    feature_set: FeatureSet,
    spec: DatasetSpec,
    *,
    settings: ModelSettings | None = None,
) -> RegionData:
    """Split a region's feature table by date and derive the model inputs and metadata."""
    settings = settings or spec.model
    columns, cat_cols = model_columns(feature_set)
    hist = history_rows(
        features, [c for c in columns if c not in cat_cols], sort_by=["date", *SERIES]
    )
    split = time_split(hist["date"], spec)
    ok = eligible_rows(hist) & hist["target"].notna()
    if settings.train_on_positive_target:
        ok &= hist["target"] > 0
    categories = {
        c: sorted(hist[c].dropna().astype(str).unique().tolist())[:MAX_CATEGORY_LEVELS]
        for c in cat_cols
    }
    params = settings.lgbm_params
    meta: dict[str, Any] = {
        "features": columns,
        "categorical": cat_cols,
        "categories": categories,
        "target_transform": settings.target_transform,
        "level_features": [c for c in settings.level_features if c in hist.columns],
        "params": params,
        "num_threads": params.get("num_threads", 1),
    }
    data = RegionData(hist, split, ok, columns, cat_cols, categories, meta)
    train = data.train_mask
    if not train.any() or not data.val_mask.any():
        raise ValueError("no open-day rows to train or validate on")
    meta["level_fallback"] = level_fallback(hist.loc[train, ["target"]])
    return data


def level_fallback(rows: pd.DataFrame) -> float:
    """The level of rows without any level feature (a series' first days): the mean target
    of the rows a model learns from, so that it never carries a later window's level."""
    return float(rows["target"].clip(lower=0).mean())


def train_region_model(
    features: pd.DataFrame,
    feature_set: FeatureSet,
    spec: DatasetSpec,
    *,
    settings: ModelSettings | None = None,
    reference_max_rows: int | None = None,
    trees: int | None = None,
) -> TrainedModel:
    """Fit and evaluate one region's model from its feature table, then fit the artifact
    on all history; the fitted rows (at most ``reference_max_rows``, default the spec's
    monitoring setting; see ``reference_rows``) are kept as the monitoring reference.

    ``trees``: the number of trees the fits boost, taken as given (a recent model's, see
    ``region_models.reused_tree_count``) instead of found by the probe's early stopping."""
    settings = settings or spec.model
    if reference_max_rows is None:
        reference_max_rows = spec.monitoring.reference_max_rows
    if not features.index.is_unique:  # the reference finds its rows again by label
        features = features.reset_index(drop=True)
    data = prepare_region(features, feature_set, spec, settings=settings)
    hist, split, meta, ok = data.hist, data.split, data.meta, data.usable
    params = meta["params"]

    # (1) number of trees from early stopping on the inner window, unless given
    if trees is None:
        _, best_iter = fit_probe(data, settings)
    else:
        best_iter = max(1, min(int(trees), settings.num_boost_round))
    meta["num_boost_round"] = best_iter
    meta["trees_from"] = "probe" if trees is None else "given"
    meta["seeds"] = settings.seeds

    continuing = settings.final_fit == "continue"

    def fit(
        rows: np.ndarray,
        seeds: int = settings.seeds,
        region: RegionData = data,
        *,
        trees: int = best_iter,
        start: np.ndarray | None = None,
        keep_scores: bool = False,
    ) -> tuple[lgb.Booster, np.ndarray | None]:
        # each fit finds bins on its own rows. One binning shared by the evaluation model
        # and the artifact was tried twice and measured worse: bins of all usable rows
        # (the holdout's inputs included) made the evaluation model worse at the same
        # trees (10M preset: results/scale_10M_9cb2782.json), bins of the probe's training
        # window the artifact, which no longer had bins over its last two horizons
        # (rossmann-100, error after the cutoff: results/training_ab.json, probe_bins)
        # one seed: LightGBM drops the input array once it has binned it. Several seeds
        # re-bin it (a seed changes the Dataset's parameters), so it is kept then
        train_set = region.dataset(rows, free_raw_data=seeds == 1, init_score=start)
        del start  # the Dataset holds what boosting needs: a caller's copy goes now
        return fit_boosters(params, train_set, trees=trees, seeds=seeds, keep_scores=keep_scores)

    # (2) evaluation model: everything before the holdout, forecasts the holdout. It costs
    # a third of the boosting, and the probe's holdout error estimates the artifact's
    # realized error as well (rossmann-100: median abs error 0.0087 vs 0.0099 MAPE), but the
    # probe is one horizon staler (holdout MAPE 4-10% higher): the weekly retrain's "no
    # worse than the approved model" comparison (5% tolerance) would then reject fair
    # candidates (benchmarks/results/evaluation_fit.json)
    evaluator, evaluator_scores = fit(data.before_holdout_mask, keep_scores=continuing)
    holdout = hist[hist["date"] >= split.holdout_start].copy()
    frame = holdout[[*SERIES, "date"]].copy()
    frame["actual"] = holdout["target"].clip(lower=0)
    frame["eligible"] = eligible_rows(holdout).to_numpy() & holdout["target"].notna().to_numpy()
    frame["model"] = predict_frame(evaluator, meta, holdout)
    season_days = spec.season_length * spec.period_days
    for name, values in baseline_forecasts(hist, holdout, split, season_days=season_days).items():
        frame[name] = values
    scored = frame[frame["eligible"]]
    floor = settings.metric_floor
    metrics = {
        name: regression_metrics(scored["actual"], scored[name], floor=floor)
        for name in ("model", *BASELINES)
    }
    for metric in ("mape", "wape", "rmse", "rmspe"):
        metrics["model"][f"{metric}_reduction_vs_baseline"] = reduction(
            metrics["model"][metric], metrics["hist_avg"][metric]
        )

    # rolling-origin forecasts before the holdout (one seed each: a fold only shows where
    # the model errs): the label-free performance estimate learns from them
    backtest = backtest_forecasts(
        data,
        lambda rows, fold: fit(rows, seeds=1, region=fold)[0],
        spec,
        folds=spec.monitoring.estimate_backtest_folds,
        min_train_share=spec.monitoring.estimate_backtest_min_train_share,
    )

    # what the artifact is fitted on (every usable row), described from masks: a frame of
    # those rows would be one more copy of the region's history
    fitted = ok.to_numpy()
    dq_baseline = data_quality_baseline(hist, feature_set, rows=fitted)
    train_rows = int(fitted.sum())
    fitted_dates = hist.loc[fitted, ["date"]]  # with their labels: the reference's rows
    train_dates = (str(fitted_dates["date"].min().date()), str(fitted_dates["date"].max().date()))
    reference = reference_rows(fitted_dates, meta, reference_max_rows, table=features)
    del fitted_dates

    # (3) the artifact: all history, same configuration; by default the evaluation model
    # boosted further on all history (see ModelSettings.final_fit)
    if continuing:
        start = evaluator_output(evaluator, evaluator_scores, data)
        del evaluator_scores
        trees = max(1, round(settings.final_fit_tree_share * best_iter))
        more, _ = fit(fitted, trees=trees, start=start)
        final = chain_boosters([evaluator, more])
        meta["final_fit"] = {"method": "continue", "trees": trees}
    else:
        final, _ = fit(fitted)
        meta["final_fit"] = {"method": "refit", "trees": best_iter}
    sample = holdout[frame["eligible"].to_numpy()]
    if len(sample) > SHAP_SAMPLE_ROWS:
        sample = sample.sample(SHAP_SAMPLE_ROWS, random_state=0)
    contrib = shap_contributions(final, meta, sample).drop(columns="expected_value")
    importance = contrib.abs().mean().sort_values(ascending=False)
    meta["importance"] = {k: float(v) for k, v in importance.items()}
    meta["dq_baseline"] = dq_baseline
    meta["split"] = split.to_dict()
    # out-of-sample forecasts (the backtest's and the holdout's): monitoring learns the
    # model's error from them (nannyml DLE) without re-scoring rows the artifact was fitted on
    meta["holdout_forecasts"] = forecast_record(frame[frame["eligible"]])
    meta["backtest_forecasts"] = forecast_record(backtest)
    meta["train_rows"] = train_rows
    meta["train_date_min"], meta["train_date_max"] = train_dates
    meta["reference"] = {"rows": len(reference), "max_rows": int(reference_max_rows)}
    return TrainedModel(
        booster=final,
        meta=meta,
        split=split,
        metrics=metrics,
        holdout=frame,
        importance=meta["importance"],
        dq_baseline=meta["dq_baseline"],
        train_rows=train_rows,
        best_iteration=best_iter,
        reference=reference,
    )


def fit_probe(data: RegionData, settings: ModelSettings) -> tuple[lgb.Booster, int]:
    """The probe: boost on the training window until the inner window's score stopped
    improving for ``early_stopping_rounds``; returns it (still holding its Datasets, so
    dropped once read) and the number of trees the model's fits then boost (its best
    round's).

    With ``probe_learning_rate_multiplier`` m > 1 the probe boosts at m times the model's
    learning rate, waits 1/m of the rounds, and its best round count is multiplied by m:
    trees x learning rate is held constant, so the model's fits boost about as far as a
    probe at their own rate would have chosen, at about 1/m of the probe's cost."""
    params = data.meta["params"]
    m = settings.probe_learning_rate_multiplier
    probe_params = dict(params)
    if m != 1.0:
        probe_params["learning_rate"] = float(params.get("learning_rate", 0.1)) * m
    d_train = data.dataset(data.train_mask, free_raw_data=True)  # boosted once: binned, dropped
    d_val = data.dataset(data.val_mask, reference=d_train, free_raw_data=True)
    probe = lgb.train(
        probe_params,
        d_train,
        num_boost_round=max(1, round(settings.num_boost_round / m)),
        valid_sets=[d_val],
        callbacks=[
            lgb.early_stopping(max(1, round(settings.early_stopping_rounds / m)), verbose=False)
        ],
        # as trained (its patience's trees too; ``best_iteration`` is what predict uses):
        # not copied through its text, as lgb.train would, since training only reads
        # its best round (a 70 ms copy on rossmann-100's models)
        keep_training_booster=True,
    )
    best = probe.best_iteration or probe.current_iteration()
    return probe, min(settings.num_boost_round, max(1, round(best * m)))


def raw_output(booster: lgb.Booster, meta: dict[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """A booster's raw output on feature rows plus each row's level: what a continuation
    of it boosts from (its ``init_score``)."""
    X = design_array(frame, meta["features"], meta["categories"])
    raw = booster.predict(X, raw_score=True, num_threads=meta.get("num_threads", 1))
    return raw + level_offset(frame, meta)


def evaluator_output(
    evaluator: lgb.Booster, scores: np.ndarray | None, data: RegionData
) -> np.ndarray:
    """The evaluation model's raw output (level included) on every usable row of the
    region's history (``data.hist[data.usable]``, in order), for the artifact to boost
    from. The rows it was fitted on (before the holdout) take its training scores
    ``scores``; only the holdout's rows are predicted. Should the scores not be raw outputs
    (an objective whose output LightGBM reports transformed, e.g. poisson), every row is
    predicted."""
    hist = data.hist
    usable = data.usable.to_numpy()
    fitted = usable & (hist["date"] <= data.split.val_end).to_numpy()

    def raw(mask: np.ndarray) -> np.ndarray:
        return raw_output(evaluator, data.meta, hist[mask])

    if scores is None:
        return raw(usable)
    if len(scores) != int(fitted.sum()):
        log.warning(
            "%d training scores for %d fitted rows: predicting every row instead",
            len(scores),
            int(fitted.sum()),
        )
        return raw(usable)
    first = np.zeros(len(hist), dtype=bool)
    first[np.flatnonzero(fitted)[:64]] = True
    if first.any() and not np.allclose(raw(first), scores[: int(first.sum())], atol=1e-6):
        log.info(
            "objective %r reports transformed training scores: predicting every row for the "
            "continuation instead (slower, same result)",
            objective_of(data.meta.get("params", {})),
        )
        return raw(usable)
    out = np.empty(int(usable.sum()), dtype=np.float64)
    in_fitted = fitted[usable]
    out[in_fitted] = scores
    if (~in_fitted).any():
        out[~in_fitted] = raw(usable & ~fitted)
    return out


def backtest_forecasts(
    data: RegionData,
    fit: Callable[[np.ndarray, RegionData], lgb.Booster],
    spec: DatasetSpec,
    *,
    folds: int,
    min_train_share: float,
) -> pd.DataFrame:
    """Rolling-origin out-of-sample forecasts of the history before the holdout.

    Fold k (1..``folds``) forecasts the k-th ``horizon`` before the holdout (fold 1: the
    inner validation window, which also chose the number of trees) with a model of the
    chosen configuration fitted on every usable row before it, as the holdout is
    forecast. The holdout shows the model's error in one horizon of one season; the folds
    show it across the year, at the inputs a drift can move (warm days, promotion-heavy
    weeks). Folds stop where a model would learn from fewer than ``min_train_share`` of
    the holdout model's rows (its inexperience is not the deployed model's error).
    ``fit(rows, fold)`` fits a fold's model on ``rows`` (a boolean mask over ``data.hist``)
    with ``fold``, the region's data with that fold's level fallback.
    Columns ``store``, ``item``, ``date``, ``model`` (the forecast), ``fold``; rows that
    carry demand and have an actual, as in the holdout."""
    hist, usable, split = data.hist, data.usable, data.split
    span = pd.Timedelta(days=spec.horizon * spec.period_days)
    step = pd.Timedelta(days=spec.period_days)
    needed = min_train_share * int(data.before_holdout_mask.sum())
    scoreable = eligible_rows(hist) & hist["target"].notna()
    parts = []
    for k in range(1, folds + 1):
        start = split.holdout_start - k * span
        train = (usable & (hist["date"] < start)).to_numpy()
        if train.sum() < needed:  # needed > 0: the holdout's model learns from some rows
            break
        rows = hist[scoreable & hist["date"].between(start, start + span - step)]
        if rows.empty:
            continue
        out = rows[[*SERIES, "date"]].copy()
        # the fold's own level fallback: the region's averages a window that runs past it
        fallback = level_fallback(hist.loc[train, ["target"]])
        fold = replace(data, meta={**data.meta, "level_fallback": fallback})
        out["model"] = predict_frame(fit(train, fold), fold.meta, rows)
        out["fold"] = k
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=[*SERIES, "date", "model", "fold"])
    return pd.concat(parts, ignore_index=True).sort_values(["date", *SERIES], ignore_index=True)


def forecast_record(rows: pd.DataFrame) -> dict[str, list]:
    """Out-of-sample forecasts as saved in a model's metadata (``store``, ``item``,
    ``date``, ``prediction``): monitoring joins them to the rows' inputs and actuals."""
    return {
        "store": rows["store"].astype(str).tolist(),
        "item": rows["item"].astype(str).tolist(),
        "date": pd.to_datetime(rows["date"]).dt.strftime("%Y-%m-%d").tolist(),
        "prediction": [round(float(v), 4) for v in rows["model"]],
    }


def backtest_summary(meta: dict[str, Any]) -> str | None:
    """The backtest saved with a model in a few words (dates, forecasts), None without."""
    dates = (meta.get("backtest_forecasts") or {}).get("date") or []
    if not dates:
        return None
    return f"{min(dates)}..{max(dates)}, {len(dates):,} out-of-sample forecasts"


def as_datetime(values: pd.Series) -> pd.Series:
    """``values`` as datetimes, untouched when they already are: ``pd.to_datetime`` of a
    datetime column still turns up to 500 of its values into Timestamps one by one to
    decide on a cache (14.5 of 257 s of a monitoring pass of 1M rows under cProfile)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(values)


def week_start(dates: pd.Series) -> pd.Series:
    """The Monday of each date's week (monitoring's weekly chunks, the reference's sample
    strata, realized performance by target week)."""
    d = as_datetime(dates)
    return (d - pd.to_timedelta(d.dt.dayofweek, unit="D")).dt.normalize()


def reference_columns(frame: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """What monitoring reads from reference rows: the date, the series keys, the model's
    features, the target and the columns deciding which rows count (``open``,
    ``is_future``)."""
    wanted = ["date", *SERIES, *meta["features"], "target", "open", "is_future"]
    return [c for c in dict.fromkeys(wanted) if c in frame.columns]


def reference_rows(
    rows: pd.DataFrame,
    meta: dict[str, Any],
    max_rows: int,
    *,
    table: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The monitoring reference frozen with a model: its fitted ``rows`` with the columns
    of ``reference_columns``, so later corrections or recomputed features never change what
    the model is compared with. Above ``max_rows`` (artifacts stay bounded) a seeded sample
    of each Monday..Sunday week in proportion to its rows, every week keeping at least one:
    the seasons the model learned stay represented and the same rows give the same sample.
    ``table``: the feature table ``rows`` were prepared from (``prepare_region`` keeps its
    labels and makes numeric inputs float32): the reference then has its values and dtypes,
    and of ``rows`` only the labels and ``date`` are read.
    """
    if max_rows < 1:
        raise ValueError(f"reference max_rows must be positive, got {max_rows}")
    columns = reference_columns(rows if table is None else table, meta)
    positions = np.arange(len(rows))
    if len(rows) > max_rows:
        weeks = week_start(rows["date"]).to_numpy()
        counts = pd.Series(weeks).value_counts().sort_index()
        share = counts * (max_rows / len(rows))
        quota = np.floor(share).astype(int).clip(lower=1)
        left = max_rows - int(quota.sum())
        if left > 0:  # the largest remainders fill the cap
            remainder = (share - np.floor(share)).sort_values(ascending=False, kind="stable")
            quota[remainder.index[:left]] += 1
        quota = quota.clip(upper=counts)
        picked = [
            week_rows.sample(int(quota[week]), random_state=0).to_numpy()
            for week, week_rows in pd.Series(positions).groupby(weeks, sort=True)
        ]
        positions = np.sort(np.concatenate(picked))
    if table is None:
        return rows[columns].iloc[positions].reset_index(drop=True)
    out = table.loc[rows.index[positions], columns]
    return out.assign(date=rows["date"].to_numpy()[positions]).reset_index(drop=True)


def reference_parquet(frame: pd.DataFrame) -> bytes:
    """A reference frame as Parquet bytes, values and dtypes as they are (float32 inputs,
    text, flags, dates). A 10M-preset region's 50,000 reference rows: written in 0.11 s
    and read in 0.04 s, 3.2 MB, where CSV took 2.29 s, 0.69 s and 14.5 MB
    (``benchmarks/reference_format.py``)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def read_reference_parquet(blob: bytes) -> pd.DataFrame:
    """The reference frame of ``reference_parquet``: text as Arrow-backed strings, as
    ``Workspace.read_features`` reads the feature table; dates as datetime."""
    frame = read_like_features(lambda: pd.read_parquet(io.BytesIO(blob)))
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def reference_csv(frame: pd.DataFrame) -> str:
    """A reference frame as CSV text (dates as YYYY-MM-DD, floats written to round-trip):
    the fleet gap saved with a model, and the reference of versions registered before
    it was Parquet."""
    out = frame.assign(date=pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d"))
    return out.to_csv(index=False, lineterminator="\n")


def read_reference_csv(text: str, categorical: list[str]) -> pd.DataFrame:
    """The reference frame of ``reference_csv``: ``categorical`` columns (the model meta's
    list, series keys included) as text, whatever their values look like (a store "1",
    a holiday "0"), missing as None like the Parquet feature table's; dates as datetime;
    numbers and flags as the CSV reads them (integers, floats, booleans). An empty cell is
    missing."""
    text_columns = [*SERIES, *categorical]
    frame = pd.read_csv(
        io.StringIO(text),
        dtype=dict.fromkeys(text_columns, str),
        keep_default_na=False,
        na_values=[""],
        float_precision="round_trip",
    )
    for col in frame.columns.intersection(text_columns):
        frame[col] = _text(frame[col])
    frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
    return frame


def _text(values: pd.Series) -> pd.Series:
    """Values as str objects, missing as None: nannyml's unseen-values check tells a None
    (what Parquet text columns read as) from a NaN, so both sides must agree."""
    out = values.map(str, na_action="ignore").astype(object)
    return out.where(out.notna(), None)


def like_dtypes(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column cast to the dtype of the same column in ``like`` (a saved
    reference against the feature table it is compared with): nannyml treats object /
    category columns as categorical and numbers as continuous, so a mismatch would
    silently change its methods. A text column (object, string, category) takes the
    values as text, missing as None; a numeric one is cast from numbers only, and an
    integer column with gaps or non-integral values stays float. ``date`` is left alone."""
    out = frame.copy()
    for col in out.columns.intersection(like.columns).drop("date", errors="ignore"):
        want, have = like[col].dtype, out[col]
        numeric = pd.api.types.is_numeric_dtype(have.dtype)
        as_object = pd.api.types.is_object_dtype(want)
        if as_object or isinstance(want, pd.CategoricalDtype | pd.StringDtype):
            text = _text(have)
            out[col] = text if as_object else text.astype(want)
        elif have.dtype == want:
            continue
        elif pd.api.types.is_bool_dtype(want):
            if numeric and have.notna().all():
                out[col] = have.astype(bool)
        elif pd.api.types.is_numeric_dtype(want) and numeric:
            values = have.astype(float)
            exact = pd.api.types.is_float_dtype(want) or (
                values.notna().all() and (values == values.round()).all()
            )
            out[col] = values.astype(want) if exact else values
    return out


def baseline_forecasts(
    hist: pd.DataFrame, holdout: pd.DataFrame, split: Split, *, season_days: int = 7
) -> dict[str, np.ndarray]:
    """Baseline forecasts for the holdout rows from history up to the origin only.

    Seasonal naive repeats the last open value at the same phase of a ``season_days``
    cycle before the origin (7: the same weekday; 14 follows a fortnightly promotion
    rhythm as well)."""
    usable = (hist["date"] <= split.origin) & eligible_rows(hist) & hist["target"].notna()
    past = hist.loc[usable, [*SERIES, "date", "target"]]  # not every feature: a region's copy

    def phase(dates: pd.Series) -> pd.Series:
        return (dates - pd.Timestamp("1970-01-05")).dt.days % season_days  # 0 = a Monday

    past = past.assign(
        y=past["target"].clip(lower=0), dow=past["date"].dt.dayofweek, phase=phase(past["date"])
    )
    rows = holdout[[*SERIES, "date"]].assign(
        dow=holdout["date"].dt.dayofweek, phase=phase(holdout["date"])
    )
    series_mean = past.groupby(SERIES)["y"].mean().rename("hist_avg")
    dow_mean = past.groupby([*SERIES, "dow"])["y"].mean().rename("hist_avg_dow")
    last_same_phase = (
        past.sort_values("date").groupby([*SERIES, "phase"])["y"].last().rename("seasonal_naive")
    )
    out = rows.join(series_mean, on=SERIES).join(dow_mean, on=[*SERIES, "dow"])
    out = out.join(last_same_phase, on=[*SERIES, "phase"])
    # fall back to the series mean where a weekday was never open before the origin
    out["hist_avg_dow"] = out["hist_avg_dow"].fillna(out["hist_avg"])
    out["seasonal_naive"] = out["seasonal_naive"].fillna(out["hist_avg"])
    closed = ~eligible_rows(holdout).to_numpy()
    return {
        name: np.where(closed, 0.0, out[name].fillna(0.0).to_numpy(float)) for name in BASELINES
    }


def data_quality_baseline(
    frame: pd.DataFrame, features: FeatureSet, *, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Statistics and constraints of the training data, saved with the model so that new
    data can be checked against what the model learned from. ``rows``: a boolean mask of
    the frame's rows to describe (taken one column at a time)."""

    def column(col: str) -> pd.Series:
        return frame[col] if rows is None else frame[col][rows]

    n = len(frame) if rows is None else int(np.count_nonzero(rows))
    out: dict[str, Any] = {"rows": n, "numeric": {}, "categorical": {}}
    for col in features.numeric:
        s = pd.to_numeric(column(col), errors="coerce")
        q = s.quantile([0.01, 0.5, 0.99]) if s.notna().any() else pd.Series(dtype=float)
        out["numeric"][col] = {
            "null_rate": float(s.isna().mean()),
            "mean": _num(s.mean()),
            "std": _num(s.std()),
            "min": _num(s.min()),
            "p01": _num(q.get(0.01)),
            "p50": _num(q.get(0.5)),
            "p99": _num(q.get(0.99)),
            "max": _num(s.max()),
        }
    for col in [*SERIES, *features.categorical]:
        values = column(col)
        counts = values.astype("string").value_counts(dropna=False, normalize=True)
        out["categorical"][col] = {
            "null_rate": float(values.isna().mean()),
            "levels": int(counts.size),
            "frequencies": {str(k): float(v) for k, v in counts.head(50).items()},
        }
    return out


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
