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
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlops_assets.spec import (
    DEFAULT_DRIFT_IGNORED,
    DEFAULT_QUALITY_IGNORED,
    DatasetSpec,
    MonitoringSettings,
)
from mlops_assets.training import (
    as_datetime,
    eligible_rows,
    like_dtypes,
    predict_frame,
    shap_contributions,
    week_start,
)
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    from nannyml import PeriodBasedChunker, UnivariateDriftCalculator
    from nannyml.base import AbstractResult
    from nannyml.thresholds import Threshold

    from mlops_assets.registry import ModelRegistry, ModelVersion


def import_nannyml() -> ModuleType:
    """nannyml, imported after making sure LightGBM has its scikit-learn API in this
    process (a training-only run may have imported it without: models.lightgbm_import)."""
    from mlops_assets.models.lightgbm_import import ensure_lightgbm_sklearn_api

    ensure_lightgbm_sklearn_api("nannyml")
    import nannyml

    return nannyml


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


def _quiet() -> warnings.catch_warnings[None]:
    """nannyml logs every fit at INFO and warns on small chunks: keep run logs readable."""
    logging.getLogger("nannyml").setLevel(logging.ERROR)
    return warnings.catch_warnings()


def _chunker() -> PeriodBasedChunker:
    return _week_chunker_class()(timestamp_column_name="date", offset=WEEK_OFFSET)


@functools.cache
def _week_chunker_class() -> type[PeriodBasedChunker]:
    nml = import_nannyml()
    from nannyml.chunk import Chunk

    class WeekChunker(nml.PeriodBasedChunker):
        """nannyml's weekly chunks, the same keys, bounds and rows, without its
        ``pd.to_datetime`` of a column that holds datetimes already (see ``as_datetime``:
        every split of every calculator paid it) and, as ``split`` hands over the rows
        sorted by time, each week cut as one slice instead of a group looked up by key (a
        monitoring pass splits every reference and analysis frame once per calculator)."""

        def _split(self, data: pd.DataFrame) -> list[Chunk]:
            stamps = data[self.timestamp_column_name]
            if not pd.api.types.is_datetime64_any_dtype(stamps):
                return super()._split(data)
            periods = stamps.dt.to_period(self.offset)
            codes, weeks = pd.factorize(periods)  # -1: no timestamp (sorted last)
            dated = int((codes >= 0).sum())
            steps = np.diff(codes[:dated])
            if (codes[:dated] >= 0).all() and (steps >= 0).all():
                if not dated:
                    return []
                starts = [0, *(np.flatnonzero(steps) + 1)]
                ends = [*starts[1:], dated]
                # vectorised: a Period's own key and bounds cost 0.2 ms each
                keys, first, last = (
                    list(weeks.astype(str)),
                    list(weeks.start_time),
                    list(weeks.end_time),
                )
                return [
                    Chunk(
                        key=keys[codes[a]],
                        data=data.iloc[a:b],
                        start_datetime=first[codes[a]],
                        end_datetime=last[codes[a]],
                    )
                    for a, b in zip(starts, ends, strict=True)
                ]
            grouped = data.groupby(periods)
            return [
                Chunk(
                    key=str(k),
                    data=grouped.get_group(k),
                    start_datetime=k.start_time,
                    end_datetime=k.end_time,
                )
                for k in grouped.groups
            ]

    return WeekChunker


@functools.cache
def _univariate_drift_class() -> type[UnivariateDriftCalculator]:
    nml = import_nannyml()

    class AnalysisUnivariateDrift(nml.UnivariateDriftCalculator):
        """nannyml's univariate drift, the same thresholds and analysis results, without
        the reference-period result its fit computes last. Each method's fit scores every
        reference week for its threshold; the calculator's fit then scores them all again
        for a reference result that only nannyml's own plots show (``_analysis`` drops
        it): that second pass scores the reference's first week only here."""

        _fitting = False

        def _fit(self, reference_data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            self._fitting = True
            try:
                return super()._fit(reference_data, *args, **kwargs)
            finally:
                self._fitting = False

        def _calculate(self, data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            if self._fitting:  # the reference result: a placeholder of one week
                chunks = self.chunker.split(data)
                data = chunks[0].data if chunks else data
            return super()._calculate(data, *args, **kwargs)

    return AnalysisUnivariateDrift


def _rows(result_df: pd.DataFrame, chunk_cols: tuple, signal: str, key: tuple) -> pd.DataFrame:
    """One tidy table from a nannyml ``to_df()`` block (its column layouts differ)."""
    start = result_df[(*chunk_cols, "start_date")]
    size = _chunk_sizes(result_df, chunk_cols)
    block = result_df[key]
    return pd.DataFrame(
        {
            "signal": signal,
            "week_start": week_start(pd.Series(pd.to_datetime(start).to_numpy())),
            "rows": size.to_numpy(int),
            "value": block["value"].to_numpy(float),
            "lower": pd.to_numeric(block.get("lower_threshold"), errors="coerce"),
            "upper": pd.to_numeric(block.get("upper_threshold"), errors="coerce"),
            "nml_alert": block["alert"].fillna(False).to_numpy(bool),
            "realized": pd.to_numeric(block["realized"], errors="coerce")
            if "realized" in block.columns
            else np.nan,
        }
    )


def _chunk_sizes(result_df: pd.DataFrame, chunk_cols: tuple = ("chunk",)) -> pd.Series:
    """Rows per chunk of a nannyml ``to_df()`` block."""
    return result_df[(*chunk_cols, "end_index")] - result_df[(*chunk_cols, "start_index")] + 1


def _analysis(result: AbstractResult) -> pd.DataFrame:
    return result.filter(period="analysis").to_df()


def feature_drift(
    reference: pd.DataFrame, analysis: pd.DataFrame, cols: MonitoredColumns, s: MonitoringSettings
) -> pd.DataFrame:
    """nannyml univariate drift of every watched model feature, weekly chunks (the ignored
    calendar / expanding-history features would only cost time: they never alert).

    Region-level inputs (weather) are shown but alert through ``fleet_gap_drift`` only:
    against a whole-year reference, a wet or warm week in one region is ordinary weather
    (on the stationary sample data their univariate findings were most false alarms)."""
    categorical = cols.alerting_categorical
    names = cols.alerting_numeric + categorical
    if not names:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    calc = _univariate_drift_class()(
        column_names=names,
        treat_as_categorical=categorical or None,
        timestamp_column_name="date",
        chunker=_chunker(),
        continuous_methods=[s.continuous_method],
        categorical_methods=[s.categorical_method],
    )
    df = _analysis(calc.fit(reference[["date", *names]]).calculate(analysis[["date", *names]]))
    out = []
    for name in names:
        method = s.categorical_method if name in categorical else s.continuous_method
        rows = _rows(df, ("chunk", "chunk"), "feature_drift", (name, method))
        out.append(rows.assign(feature=name, method=method, ignored=name in cols.region_level))
    return pd.concat(out, ignore_index=True)


def fleet_gap_frame(region_inputs: pd.DataFrame, region: str, columns: list[str]) -> pd.DataFrame:
    """One row per day: the region's value minus the median of all regions that day.

    A day on which fewer than two regions report an input has no gap for it (NaN): the
    region would be its own median, and a gap of 0 on such days (one weather history
    starting before the others) would narrow the spread its drift is measured against.
    ``region_inputs`` has ``date``, ``region_key`` and the region-level columns. The
    query is the warehouse's (``warehouse.fleet_gap_query``; ``region_fleet_gap`` runs it
    over the stored weather), here over the frame in memory."""
    import duckdb

    from mlops_assets.warehouse import fleet_gap_query

    frame = region_inputs[["date", "region_key", *columns]]
    frame = frame.assign(date=as_datetime(frame["date"]))
    with duckdb.connect() as con:
        con.register("region_inputs", frame)
        return con.execute(fleet_gap_query("region_inputs", columns), {"region": region}).df()


def reference_fleet_gap(
    fleet_gap: pd.DataFrame | None,
    columns: list[str],
    train_min: str | pd.Timestamp,
    train_max: str | pd.Timestamp,
) -> pd.DataFrame:
    """The region's fleet gap (``fleet_gap_frame``, ``warehouse.region_fleet_gap``) in
    ``columns`` over a model's training window: the reference its weather weeks are
    compared with. Saved with the model at registration (``fleet_gap.csv``, written and
    read like the reference rows of older versions: ``training.reference_csv`` /
    ``read_reference_csv``), so a region joining the fleet or a corrected weather history
    later does not move what the model is compared with."""
    if fleet_gap is None or not columns or not set(columns) <= set(fleet_gap.columns):
        return pd.DataFrame(columns=["date", *columns])
    dates = as_datetime(fleet_gap["date"])
    window = dates.between(pd.Timestamp(train_min), pd.Timestamp(train_max))
    return fleet_gap.loc[window, ["date", *columns]].assign(date=dates[window])


def fleet_gap_drift(
    reference_gap: pd.DataFrame,
    analysis_gap: pd.DataFrame,
    columns: list[str],
    s: MonitoringSettings,
) -> pd.DataFrame:
    """Weekly mean of each region-level input's gap to the fleet, vs the reference weeks.

    An input whose reference gap never varies is left out: nannyml's thresholds would
    close on that value and alert on every week, however equal. So is one without a
    reference gap (a region alone in its fleet: ``fleet_gap_frame`` gives no gap)."""
    nml = import_nannyml()
    StandardDeviationThreshold = nml.thresholds.StandardDeviationThreshold

    columns = [c for c in columns if c in reference_gap and reference_gap[c].std() > 0]
    if not columns or reference_gap.empty or analysis_gap.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    calc = nml.SummaryStatsAvgCalculator(
        column_names=columns,
        timestamp_column_name="date",
        chunker=_chunker(),
        threshold=StandardDeviationThreshold(s.fleet_gap_std, s.fleet_gap_std),
    )
    df = _analysis(calc.fit(reference_gap).calculate(analysis_gap))
    out = [
        _rows(df, ("chunk",), "fleet_gap_drift", (c,)).assign(
            feature=c, method="mean_gap_to_fleet", ignored=False
        )
        for c in columns
    ]
    return pd.concat(out, ignore_index=True)


def multivariate_drift(
    reference: pd.DataFrame, analysis: pd.DataFrame, cols: MonitoredColumns
) -> pd.DataFrame:
    """nannyml PCA reconstruction error over the watched numeric features."""
    nml = import_nannyml()

    names = [c for c in cols.alerting_numeric if reference[c].notna().any()]
    if len(names) < 2:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    calc = nml.DataReconstructionDriftCalculator(
        column_names=names, timestamp_column_name="date", chunker=_chunker()
    )
    df = _analysis(calc.fit(reference[["date", *names]]).calculate(analysis[["date", *names]]))
    rows = _rows(df, ("chunk",), "multivariate_drift", ("reconstruction_error",))
    return rows.assign(feature="reconstruction_error", method="pca", ignored=False)


def data_quality(
    reference: pd.DataFrame, analysis: pd.DataFrame, cols: MonitoredColumns
) -> pd.DataFrame:
    """nannyml missing values, unseen categories and out-of-range values, against the
    training data (features from the target's own history are shown, never alerted on).

    Each check is fitted on the reference rows that carry what it learns (the weeks of
    each column's lowest and highest missing rate; each value; each column's extremes):
    the same verdicts as the whole reference, for less time."""
    nml = import_nannyml()

    names = cols.alerting_numeric + cols.alerting_categorical
    if not names:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    out = []
    calcs = [
        (
            "missing_values",
            nml.MissingValuesCalculator(
                column_names=names, threshold=_reference_range_threshold(), **_common()
            ),
            weeks_with_extreme_missing_rates(reference, names),
        )
    ]
    if categorical := cols.alerting_categorical:
        calcs.append(
            (
                "unseen_values",
                nml.UnseenValuesCalculator(column_names=categorical, **_common()),
                rows_with_each_value(reference, categorical),
            )
        )
    # region-level inputs (weather) leave the training range in a record summer without
    # any defect: their drift is judged against the other regions (fleet gap) instead
    watched = [
        c
        for c in cols.alerting_numeric
        if c not in cols.region_level and reference[c].notna().any()
    ]
    if watched:
        calcs.append(
            (
                "out_of_range",
                nml.NumericalRangeCalculator(column_names=watched, **_common()),
                rows_with_extremes(reference, watched),
            )
        )
    for method, calc, basis in calcs:
        used = calc.column_names
        df = _analysis(calc.fit(basis[["date", *used]]).calculate(analysis[["date", *used]]))
        for name in used:
            rows = _rows(df, ("chunk",), "data_quality", (name,))
            ignored = name in cols.ignored or name in cols.quality_ignored
            out.append(rows.assign(feature=name, method=method, ignored=ignored))
    return pd.concat(out, ignore_index=True)


def weeks_with_extreme_missing_rates(reference: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The reference weeks (whole) in which each column's missing rate is lowest and
    highest: the missing-values check's thresholds are those two rates
    (``_reference_range_threshold`` over its weekly chunks), so fitting on these weeks
    gives the same verdicts without scoring every week of the training window."""
    if reference.empty or not columns:
        return reference
    weeks = week_start(reference["date"])
    rates = reference[columns].isna().groupby(weeks).mean()
    kept = set(rates.idxmin()) | set(rates.idxmax())
    return reference[weeks.isin(kept).to_numpy()]


def rows_with_each_value(reference: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The reference rows that hold the first occurrence of each value of each column:
    all nannyml's unseen-values check learns from its reference is the set of values
    (None and NaN kept apart, as it keeps them), so fitting on these rows gives the same
    verdicts in less time (its fit also scores every reference week for every column)."""
    first = np.zeros(len(reference), dtype=bool)
    for column in columns:
        first |= ~reference[column].duplicated().to_numpy()
    return reference[first]


def rows_with_extremes(reference: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The reference rows holding each column's smallest and largest value: nannyml's
    out-of-range check learns each column's [min, max] from its reference (its threshold,
    0 values out of range, holds on any reference), so fitting on these rows gives the
    same verdicts without scoring every reference week of the whole training window."""
    keep = np.zeros(len(reference), dtype=bool)
    for column in columns:
        values = reference[column].to_numpy(dtype=float, na_value=np.nan)
        if not np.isnan(values).all():
            keep[np.nanargmin(values)] = keep[np.nanargmax(values)] = True
    return reference[keep]


def _reference_range_threshold() -> Threshold:
    """nannyml threshold at the lowest and highest value the reference weeks themselves
    had: a weather station that was down for half a week in training is not alarming when
    it is down for half a week again (mean + 3 std of a mostly-zero missing rate would be)."""
    Threshold = import_nannyml().thresholds.Threshold  # noqa: N806

    global _ReferenceRange
    if _ReferenceRange is None:

        class ReferenceRange(Threshold, type="mlops_reference_range"):
            def thresholds(
                self, data: np.ndarray, **kwargs: Any
            ) -> tuple[float | None, float | None]:
                values = np.asarray(data, float)
                if not np.isfinite(values).any():
                    return None, None
                return float(np.nanmin(values)), float(np.nanmax(values))

        _ReferenceRange = ReferenceRange
    return _ReferenceRange()


_ReferenceRange = None


def _common() -> dict[str, Any]:
    return {"timestamp_column_name": "date", "chunker": _chunker()}


def outside_inputs(
    reference: pd.DataFrame, meta: dict[str, Any], cols: MonitoredColumns, s: MonitoringSettings
) -> list[str]:
    """The model's inputs from outside the region's own sales history that matter: watched
    numeric features that are neither calendar nor computed from the target (weather,
    promotions), known in the reference, carrying at least
    ``estimate_support_min_importance`` of the model's mean |Shapley|. Drift moves these."""
    importance = meta.get("importance") or {}
    total = sum(importance.values())
    return [
        c
        for c in cols.alerting_numeric
        if c not in cols.quality_ignored
        and c in reference.columns
        and reference[c].notna().any()
        and (not total or importance.get(c, 0.0) / total >= s.estimate_support_min_importance)
    ]


def dle_features(
    meta: dict[str, Any], s: MonitoringSettings, outside: list[str] | None = None
) -> list[str]:
    """The error model's inputs: the model's ``dle_top_features`` most important features
    (by saved mean |Shapley|; all of them when unset or when the model saved no importance),
    then the ``outside`` inputs (``outside_inputs``; given when the error model learns from a
    backtest, whose year of errors shows how they depend on the weather or promotions)."""
    features = list(meta["features"])
    importance = meta.get("importance") or {}
    if s.dle_top_features is not None and importance:
        ranked = sorted(features, key=lambda f: importance.get(f, 0.0), reverse=True)
        features = ranked[: s.dle_top_features]
    return list(dict.fromkeys([*features, *(outside or [])]))


def estimated_performance(
    holdout: pd.DataFrame,
    analysis: pd.DataFrame,
    features: list[str],
    backtest: pd.DataFrame | None = None,
    params: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """nannyml DLE: RMSE and MAE estimated from the inputs; ``realized`` where the week
    has actuals.

    The error model learns from out-of-sample errors: the ``backtest``'s when it has enough
    rows (a year of folds: errors in every season and at every weather), then scaled so
    that it estimates the holdout's realized error on the holdout (the fold models learned
    from less history than the deployed one, and err more); else the holdout's (six weeks
    of one season: blind to inputs that season did not vary). ``params``: the error
    model's LightGBM parameters."""
    nml = import_nannyml()
    learn_from = backtest if backtest is not None and len(backtest) >= MIN_DLE_ROWS else holdout
    if len(learn_from) < MIN_DLE_ROWS or len(holdout) == 0:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    est = nml.DLE(
        feature_column_names=features,
        y_pred="y_pred",
        y_true="y_true",
        timestamp_column_name="date",
        chunker=_chunker(),
        metrics=["rmse", "mae"],
        hyperparameters={**(params or {}), "n_jobs": 1, "verbose": -1, "random_state": 0},
    )
    cols = ["date", *features, "y_pred", "y_true"]
    est.fit(learn_from[cols])
    scale = {"rmse": 1.0, "mae": 1.0}
    if learn_from is backtest:
        scale = _holdout_scale(_analysis(est.estimate(holdout[cols])))
    df = _analysis(est.estimate(analysis[cols]))
    out = []
    for m in ("rmse", "mae"):
        rows = _rows(df, ("chunk",), "estimated_performance", (m,))
        rows[["value", "lower", "upper"]] *= scale[m]
        out.append(rows.assign(feature=m, method="dle", ignored=False))
    return pd.concat(out, ignore_index=True)


def _holdout_scale(estimate: pd.DataFrame) -> dict[str, float]:
    """Per metric, the holdout's realized error over the error model's estimate of it
    (nannyml's weekly chunks of the holdout, pooled by their rows): the factor that puts
    backtest-trained estimates on the deployed model's level."""
    rows = _chunk_sizes(estimate).to_numpy()

    def pooled(metric: str, column: str) -> float:
        values = estimate[(metric, column)].to_numpy(float)
        if metric == "rmse":
            return float(np.sqrt(np.sum(rows * values**2) / rows.sum()))
        return float(np.sum(rows * values) / rows.sum())

    scale = {}
    for m in ("rmse", "mae"):
        realized, estimated = pooled(m, "realized"), pooled(m, "value")
        ok = np.isfinite(realized) and np.isfinite(estimated) and estimated > 0 and realized > 0
        scale[m] = realized / estimated if ok else 1.0
    return scale


def estimate_support(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    meta: dict[str, Any],
    cols: MonitoredColumns,
    s: MonitoringSettings,
) -> pd.DataFrame:
    """Per week, the share of rows with an input from outside the region's own sales
    history (``outside_inputs``) beyond the range the model was fitted on.

    Trees are flat past their last split, and so is the error model DLE learns: drift that
    takes inputs there (a weather feed reading 20 C too warm) leaves the forecast where
    the edge of the training data was, and the estimate at the error the model made there.
    Such a week's estimate cannot say how much error the drift adds beyond that edge (only
    the realized error can); this share says which weeks those are."""
    inputs = outside_inputs(reference, meta, cols, s)
    if not inputs or analysis.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    values = analysis[inputs].astype(float)
    beyond = values.lt(reference[inputs].min()) | values.gt(reference[inputs].max())
    by_week = beyond.any(axis=1).groupby(week_start(analysis["date"]).to_numpy())
    share = by_week.mean()
    return pd.DataFrame(
        {
            "signal": "estimated_performance",
            "feature": OUTSIDE_TRAINING_RANGE,
            "method": "range",
            "week_start": pd.to_datetime(share.index),
            "rows": by_week.size().to_numpy(int),
            "value": share.to_numpy(float),
            "lower": np.nan,
            "upper": np.nan,
            "nml_alert": False,
            "ignored": False,
            "realized": np.nan,
        }
    )


def attribution_ndcg(reference: dict[str, float], current: dict[str, float]) -> float:
    """NDCG of the current ranking of mean |Shapley| values, graded by the reference
    importances (1.0: the same ranking; it falls as important features lose rank)."""
    from sklearn.metrics import ndcg_score

    names = [n for n in reference if n in current]
    if len(names) < 2:
        return float("nan")
    truth = np.array([[max(reference[n], 0.0) for n in names]])
    score = np.array([[current[n] for n in names]])
    if not truth.any():
        return float("nan")
    return float(ndcg_score(truth, score))


SAME_SEASON_DAYS = 364  # 52 weeks: the same weekdays a year earlier


def same_season_rows(reference: pd.DataFrame, week: pd.Timestamp) -> pd.DataFrame:
    """Training rows of the three weeks centred on ``week`` a year earlier, in key order
    (whichever frame they come from, the same rows are then sampled)."""
    centre = pd.Timestamp(week) - pd.Timedelta(days=SAME_SEASON_DAYS)
    dates = as_datetime(reference["date"])
    rows = reference[
        (dates >= centre - pd.Timedelta(days=7)) & (dates < centre + pd.Timedelta(days=14))
    ]
    keys = [c for c in ("date", "store", "item") if c in rows.columns]
    return rows.sort_values(keys, kind="stable") if keys else rows


def _sampled(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame.sample(rows, random_state=0) if len(frame) > rows else frame


def _mean_abs_shap_of_each(
    booster: lgb.Booster, meta: dict[str, Any], frames: list[pd.DataFrame]
) -> list[dict]:
    """Each frame's mean |Shapley| per feature, from one TreeSHAP call over all their rows:
    a row's values do not depend on the others, and LightGBM's setup of a call (~30 ms for
    a rossmann-100 model) is paid once instead of twice a week."""
    if not frames:
        return []
    features = list(meta["features"])
    rows = pd.concat([f[features] for f in frames], ignore_index=True)
    contrib = shap_contributions(booster, meta, rows).drop(columns="expected_value").abs()
    bounds = np.cumsum([0, *(len(f) for f in frames)])
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    return [contrib.iloc[a:b].mean().to_dict() for a, b in pairs]


def attribution_drift(
    booster: lgb.Booster,
    meta: dict[str, Any],
    analysis: pd.DataFrame,
    s: MonitoringSettings,
    previous: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Weekly NDCG of the Shapley ranking on sampled rows against a reference ranking.

    The reference is the same season a year earlier in the training rows ``reference``
    (method ``ndcg_mean_abs_shap_same_season``; at least ``min_chunk_rows`` of them), else
    the ranking saved with the model (``ndcg_mean_abs_shap``): a season's own drivers
    (holiday weeks rank the calendar first) are then no alert. Exact TreeSHAP is the
    expensive part of monitoring, so a week whose sampled rows (both sides) are unchanged
    since ``previous`` (an earlier table of the same model) is not recomputed."""
    saved = meta.get("importance") or {}
    features = list(meta["features"])
    known: dict[tuple, float] = {}
    if previous is not None and len(previous):
        old = previous[previous["signal"] == "attribution_drift"]
        known = {
            (pd.Timestamp(w), h): v
            for w, h, v in zip(old["week_start"], old["chunk_hash"], old["value"], strict=True)
        }
    weeks = []  # (week, its rows, its sample, the same season's sample, digest, known value)
    for week, chunk in analysis.groupby("week_start", sort=True):
        sample = _sampled(chunk, s.attribution_sample_rows)
        season = pd.DataFrame()
        if reference is not None and s.attribution_reference == "same_season":
            season = same_season_rows(reference, week)
            season = _sampled(season, s.attribution_sample_rows)
            if len(season) < s.min_chunk_rows:
                season = pd.DataFrame()
        hashed = [sample] if season.empty else [sample, season]
        digest = "-".join(
            str(pd.util.hash_pandas_object(f[features], index=False).sum()) for f in hashed
        )
        value = known.get((pd.Timestamp(week), digest))
        weeks.append((week, len(chunk), sample, season, digest, value))
    # the weeks not taken from ``previous``: their samples' Shapley values in one call
    frames = [
        f
        for _, _, sample, season, _, value in weeks
        if value is None
        for f in ([sample] if season.empty else [season, sample])
    ]
    means = iter(_mean_abs_shap_of_each(booster, meta, frames))
    rows = []
    for week, n_rows, _, season, digest, value in weeks:
        if value is None:
            basis = saved if season.empty else next(means)
            value = attribution_ndcg(basis, next(means))
        rows.append(
            {
                "signal": "attribution_drift",
                "feature": "ndcg",
                "method": "ndcg_mean_abs_shap" + ("" if season.empty else "_same_season"),
                "week_start": week,
                "rows": n_rows,
                "value": value,
                "lower": s.ndcg_threshold,
                "upper": np.nan,
                "nml_alert": False,
                "ignored": False,
                "realized": np.nan,
                "chunk_hash": digest,
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def reused_attribution_weeks(table: pd.DataFrame, previous: pd.DataFrame | None) -> int:
    """Weeks of ``table`` whose Shapley ranking ``attribution_drift`` took from
    ``previous`` (the same week and sampled rows) instead of computing it."""
    if previous is None or previous.empty:
        return 0
    keys = ["week_start", "chunk_hash"]
    mine = table.loc[table["signal"] == "attribution_drift", keys]
    old = previous.loc[previous["signal"] == "attribution_drift", keys].drop_duplicates()
    old = old.assign(week_start=pd.to_datetime(old["week_start"]))
    mine = mine.assign(week_start=pd.to_datetime(mine["week_start"]))
    return len(mine.merge(old, on=keys))


@dataclass
class RegionMonitoringInputs:
    """What ``region_drift`` compares: frames carry ``date``, the series keys and the
    model's features; ``analysis`` also ``y_pred`` (the deployed model) and ``y_true``
    (NaN until actuals arrive); ``holdout`` is the model's out-of-sample holdout with its
    forecasts as ``y_pred``, ``backtest`` likewise its backtest folds (empty for models
    registered without them)."""

    region: str
    reference: pd.DataFrame
    analysis: pd.DataFrame
    holdout: pd.DataFrame
    reference_gap: pd.DataFrame
    analysis_gap: pd.DataFrame
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)


def monitoring_inputs(
    region: str,
    features: pd.DataFrame,
    booster: lgb.Booster,
    meta: dict[str, Any],
    spec: DatasetSpec,
    region_inputs: pd.DataFrame | None = None,
    saved_reference: pd.DataFrame | None = None,
    saved_gap: pd.DataFrame | None = None,
    fleet_gap: pd.DataFrame | None = None,
) -> RegionMonitoringInputs:
    """Reference, recent weeks and holdout of one region from its feature table and the
    model that serves it.

    Reference: the rows the model was fitted on, ``saved_reference`` (saved with it, see
    ``ModelRegistry.load_reference``; cast to the feature table's dtypes so nannyml treats
    every column alike on both sides), else the feature table's rows of the training window
    (models registered without one: a corrected history or recomputed features then
    change it). Analysis: rows after the window (history with actuals and known-future
    rows without), at most ``max_analysis_weeks`` recent weeks, scored by the model. Only
    rows the model is judged on count (open days; positive targets where the spec trains
    on those only). Holdout: the model's out-of-sample forecasts with the inputs and
    actuals of those rows, from the same source as the reference. The weather's fleet
    gap: ``fleet_gap``, the region's (``warehouse.region_fleet_gap``), else computed from
    ``region_inputs`` (every region's weather); its training window from ``saved_gap``
    (``ModelRegistry.load_fleet_gap``) when given."""

    def judged(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.copy()
        rows["date"] = as_datetime(rows["date"])
        rows = rows[eligible_rows(rows)]
        future = rows.get("is_future", pd.Series(False, index=rows.index)).astype(bool)
        truth = rows["target"].where(~future)
        if spec.model.train_on_positive_target:
            truth = truth.where(truth > 0)
        rows["y_true"] = truth.clip(lower=0)
        return rows

    frame = judged(features)
    train_min = pd.Timestamp(meta["train_date_min"])
    train_max = pd.Timestamp(meta["train_date_max"])
    known = judged(like_dtypes(saved_reference, features)) if saved_reference is not None else frame
    reference = known[known["date"].between(train_min, train_max) & known["y_true"].notna()]
    analysis = frame[frame["date"] > train_max].copy()
    if len(analysis):
        weeks = week_start(analysis["date"])
        first = weeks.max() - pd.Timedelta(weeks=spec.monitoring.max_analysis_weeks - 1)
        analysis = analysis[weeks >= first].copy()
    analysis["y_pred"] = predict_frame(booster, meta, analysis) if len(analysis) else []
    # out-of-sample forecasts with their rows' inputs and actuals, as the model was fitted
    # on them (the holdout: its last weeks; the backtest: the year before)
    keys = known.assign(store=known["store"].astype(str), item=known["item"].astype(str))

    def with_inputs(record: dict[str, list] | None) -> pd.DataFrame:
        forecasts = pd.DataFrame(record or {})
        if forecasts.empty:
            return forecasts
        forecasts["date"] = pd.to_datetime(forecasts["date"])
        forecasts = forecasts.rename(columns={"prediction": "y_pred"})
        rows = keys.merge(forecasts, on=["store", "item", "date"])
        return rows[rows["y_true"].notna()]

    cols = monitored_columns(meta, spec)
    gap = pd.DataFrame(columns=["date", *cols.region_level])
    if fleet_gap is not None and set(cols.region_level) <= set(fleet_gap.columns):
        gap = fleet_gap[["date", *cols.region_level]]
    elif region_inputs is not None and cols.region_level and len(region_inputs):
        gap = fleet_gap_frame(region_inputs, region, cols.region_level)
    reference_gap = gap[gap["date"].between(train_min, train_max)]
    if saved_gap is not None and set(cols.region_level) <= set(saved_gap.columns):
        reference_gap = saved_gap[["date", *cols.region_level]]
    return RegionMonitoringInputs(
        region=region,
        reference=reference,
        analysis=analysis,
        holdout=with_inputs(meta.get("holdout_forecasts")),
        backtest=with_inputs(meta.get("backtest_forecasts")),
        reference_gap=reference_gap,
        analysis_gap=gap[gap["date"] > train_max],
    )


def recent_weeks(reference: pd.DataFrame, weeks: int | None) -> pd.DataFrame:
    """The rows of ``reference``'s last ``weeks`` Monday..Sunday weeks (all with None)."""
    if weeks is None or reference.empty:
        return reference
    starts = week_start(reference["date"])
    first = starts.max() - pd.Timedelta(weeks=weeks - 1)
    return reference[(starts >= first).to_numpy()]


def region_drift(
    inputs: RegionMonitoringInputs,
    booster: lgb.Booster,
    meta: dict[str, Any],
    spec: DatasetSpec,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every monitoring statistic of one region, one tidy row per signal x feature x week.

    ``previous``: this region's last table for the same model (reuses unchanged work)."""
    s = spec.monitoring
    cols = monitored_columns(meta, spec)
    analysis = inputs.analysis.assign(week_start=week_start(inputs.analysis["date"]))
    # the error model learns from the backtest saved with the model unless it is switched off
    use_backtest = s.estimate_backtest_folds > 0 and len(inputs.backtest) >= MIN_DLE_ROWS
    backtest = inputs.backtest if use_backtest else None
    recent = recent_weeks(inputs.reference, s.drift_reference_weeks)
    with _quiet():
        warnings.simplefilter("ignore")
        parts = [
            feature_drift(recent, analysis, cols, s),
            fleet_gap_drift(inputs.reference_gap, inputs.analysis_gap, cols.region_level, s),
            multivariate_drift(recent, analysis, cols),
            # the range and levels the model was trained on: all of its reference
            data_quality(inputs.reference, analysis, cols),
            estimated_performance(
                inputs.holdout,
                analysis,
                dle_features(meta, s, outside_inputs(inputs.reference, meta, cols, s))
                if backtest is not None
                else dle_features(meta, s),
                backtest,
                s.dle_params,
            ),
            estimate_support(inputs.reference, analysis, meta, cols, s),
            attribution_drift(booster, meta, analysis, s, previous, inputs.reference),
        ]
    table = pd.concat([p for p in parts if not p.empty], ignore_index=True)[TABLE_COLUMNS]
    table["region"] = inputs.region
    return table


def _persistent(flags: pd.Series, weeks: int) -> pd.Series:
    """True where the flag held for ``weeks`` consecutive weeks up to and including it."""
    if weeks <= 1:
        return flags
    run = flags.astype(int).rolling(weeks, min_periods=weeks).sum()
    return (run >= weeks).fillna(False)


def _stands_out(
    frame: pd.DataFrame, s: MonitoringSettings, by: list[str], ratio: float | None = None
) -> pd.Series:
    """A row's severity (value / threshold) against the median of the other regions in
    the same week: True where it exceeds ``ratio`` (default ``stand_out_ratio``) x that
    median, or where too few other regions exist to compare with."""
    ratio = s.stand_out_ratio if ratio is None else ratio
    sev = frame["severity"]
    count = frame.groupby(by)["severity"].transform("count")
    # median of the *other* regions: drop the row itself from its group
    med = frame.groupby(by)["severity"].transform(_leave_one_out_median)
    enough = (count - 1) >= s.min_control_regions
    return ~enough | (sev > ratio * med)


def _leave_one_out_median(x: pd.Series) -> pd.Series:
    """Each value's median of the other values (NaN ignored, as ``np.nanmedian``; NaN where
    no other value is finite). From one sort: dropping the value of rank ``k`` shifts the
    ranks above it down by one, so the middle of the rest is read off the sorted array
    (a loop of ``n`` medians took 12 ms for a week's group of 300 regions)."""
    values = x.to_numpy(float)
    out = np.full(len(values), np.nan)
    present = ~np.isnan(values)
    ordered = np.sort(values[present])
    m = len(ordered)
    if m > 1:
        ranks = np.empty(m, dtype=np.int64)
        ranks[np.argsort(values[present], kind="stable")] = np.arange(m)
        lo, hi = (m - 2) // 2, (m - 1) // 2  # the middle of the m - 1 others
        below = ordered[lo], ordered[hi]
        above = ordered[lo + 1], ordered[min(hi + 1, m - 1)]
        low = np.where(lo < ranks, below[0], above[0])
        high = np.where(hi < ranks, below[1], above[1])
        out[present] = (low + high) / 2
    if m and not present.all():
        out[~present] = np.median(ordered)  # a NaN row: the median of every value
    finite = np.isfinite(values)
    out[finite.sum() - finite == 0] = np.nan
    return pd.Series(out, index=x.index)


def quality_metric(s: MonitoringSettings, gate_metric: str) -> str:
    """The holdout metric a week's model quality is compared with: the gate's metric for
    realized performance, RMSE for the label-free estimate (nannyml DLE estimates an RMSE
    in units, for which a holdout MAPE is no yardstick)."""
    return gate_metric if s.quality_signal == "realized" else "rmse"


def estimate_blind_weeks(tables: pd.DataFrame, min_share: float = 0.5) -> pd.DataFrame:
    """Region-weeks without actuals whose DLE estimate cannot see the error: at least
    ``min_share`` of their rows have inputs outside the training range (see
    ``estimate_support``). Columns ``region``, ``week_start``, ``share``."""
    columns = ["region", "week_start", "share"]
    if tables.empty or "signal" not in tables.columns:
        return pd.DataFrame(columns=columns)
    est = tables[tables["signal"] == "estimated_performance"]
    keys = ["region", "week_start"]
    pending = est[(est["feature"] == "rmse") & est["realized"].isna()][keys]
    share = est[est["feature"] == OUTSIDE_TRAINING_RANGE][[*keys, "value"]]
    blind = pending.merge(share, on=keys).rename(columns={"value": "share"})
    blind = blind[blind["share"] >= min_share]
    return blind[columns].sort_values(keys, ignore_index=True)


def fleet_alerts(
    tables: pd.DataFrame,
    realized: pd.DataFrame,
    holdout_error: dict[str, float],
    settings: MonitoringSettings,
    *,
    metric: str = "mape",
) -> pd.DataFrame:
    """Alerts per region x week x signal from every region's monitoring table.

    ``tables``: the concatenated ``region_drift`` tables (column ``region``).
    ``realized``: weekly realized performance, columns ``region``, ``week_start``,
    ``n_rows`` and ``metric``. ``holdout_error``: each region model's holdout value of
    ``quality_metric(settings, metric)`` (the level its weekly error is compared with).

    Returns ``region, week_start, signal, raw, alert, detail``: ``raw`` is the week's
    own finding after the cross-region comparison; ``alert`` adds persistence."""
    s = settings
    found: list[pd.DataFrame] = []
    t = tables.reset_index(drop=True)
    t["week_start"] = pd.to_datetime(t["week_start"])
    big = t["rows"] >= s.min_chunk_rows

    # univariate and multivariate drift: nannyml alert, watched, big enough, stands out
    drift = t[t["signal"].isin(["feature_drift", "multivariate_drift"]) & ~t["ignored"]].copy()
    drift["severity"] = drift["value"] / drift["upper"]
    # chi2 alerts on its p-value: no threshold on the statistic, which is then the severity
    # compared with the other regions (a larger one is a larger departure)
    by_p_value = drift["upper"].isna()
    drift.loc[by_p_value, "severity"] = drift.loc[by_p_value, "value"]
    drift["hit"] = (
        drift["nml_alert"]
        & big.loc[drift.index]
        & (by_p_value | (drift["value"] > drift["upper"]))
        & _stands_out(drift, s, ["signal", "feature", "week_start"])
    )
    found.append(drift)

    # the fleet gap is already relative to the other regions
    # ... over at least MIN_GAP_DAYS days: the stub of a week after a Saturday training end
    # is one day judged against whole-week thresholds
    # ... with a value: nannyml flags a week whose inputs are all null (a NaN mean), which
    # is a missing feed, not a drift
    gap = t[t["signal"] == "fleet_gap_drift"].copy()
    gap["severity"] = gap["value"] / gap["upper"]
    gap["hit"] = gap["nml_alert"] & gap["value"].notna() & (gap["rows"] >= MIN_GAP_DAYS)
    found.append(gap)

    # data quality: missing values / unseen categories / out-of-range beyond nannyml's
    # thresholds, in at least ``min_quality_rate`` of the week's rows (one odd day is not
    # a broken feed); missing and range must also stand out from the other regions
    dq = t[(t["signal"] == "data_quality") & ~t["ignored"]].copy()
    # compared as the share of affected rows: nannyml's threshold is usually 0 here (the
    # reference has no out-of-range values by construction), and value / 0 left every
    # severity NaN, which skipped the comparison with the other regions altogether
    dq["severity"] = dq["value"]
    dq["hit"] = dq["nml_alert"] & big.loc[dq.index] & (dq["value"] >= s.min_quality_rate)
    relative = dq["method"] != "unseen_values"
    dq.loc[relative, "hit"] &= _stands_out(dq[relative], s, ["method", "feature", "week_start"])
    found.append(dq)

    # attribution: NDCG below the threshold, and a loss (1 - NDCG) that stands out from the
    # other regions' in the same week (a season that reorders every model's drivers alike
    # is not an alert)
    attr = t[t["signal"] == "attribution_drift"].copy()
    attr["severity"] = 1.0 - attr["value"]
    attr["hit"] = (
        (attr["value"] < s.ndcg_threshold)
        & big.loc[attr.index]
        & _stands_out(attr, s, ["week_start"], ratio=s.attribution_stand_out_ratio)
    )
    found.append(attr)

    quality = _quality_rows(t, realized, holdout_error, s, metric)
    found.append(quality)

    found = [f for f in found if not f.empty]
    if not found:
        return pd.DataFrame(columns=["region", "week_start", "signal", "raw", "alert", "detail"])
    rows = pd.concat(found, ignore_index=True)
    rows["signal"] = rows["signal"].replace(
        {"feature_drift": "data_drift", "fleet_gap_drift": "data_drift"}
    )
    hits = rows[rows["hit"]]
    detail = (
        hits.assign(label=hits["feature"].astype(str))
        .groupby(["region", "week_start", "signal"])["label"]
        .agg(lambda x: ", ".join(sorted(set(x))))
    )
    grid = rows.groupby(["region", "week_start", "signal"])["hit"].any().rename("raw")
    out = grid.reset_index()
    out["detail"] = out.set_index(["region", "week_start", "signal"]).index.map(detail).fillna("")
    out = out.sort_values(["region", "signal", "week_start"], ignore_index=True)
    severe = rows[rows["hit"] & (rows["signal"] == "model_quality")]
    if "severity" in severe.columns:
        severe = severe[severe["severity"] >= s.quality_immediate_degradation]
    immediate = set(zip(severe["region"], severe["week_start"], strict=True))
    out["alert"] = False
    for _, idx in out.groupby(["region", "signal"]).groups.items():
        out.loc[idx, "alert"] = _persistent(out.loc[idx, "raw"], s.persistence_weeks).to_numpy()
    at_once = np.array(
        [(r, w) in immediate for r, w in zip(out["region"], out["week_start"], strict=True)],
        dtype=bool,
    )
    out.loc[at_once & (out["signal"] == "model_quality"), "alert"] = True
    return out[["region", "week_start", "signal", "raw", "alert", "detail"]]


def _quality_rows(
    tables: pd.DataFrame,
    realized: pd.DataFrame,
    holdout_error: dict[str, float],
    s: MonitoringSettings,
    metric: str,
) -> pd.DataFrame:
    """Model-quality severity per region-week: this week's error over the model's
    holdout error (realized), or the DLE estimate over its holdout level (estimated)."""
    if s.quality_signal == "realized":
        if realized.empty:
            return pd.DataFrame()
        q = realized[["region", "week_start", "n_rows", metric]].copy()
        q["week_start"] = pd.to_datetime(q["week_start"])
        base = q["region"].map(holdout_error).astype(float)
        q["severity"] = q[metric] / base
        q["rows"] = q["n_rows"]
        q["feature"] = metric
    else:
        est = tables[(tables["signal"] == "estimated_performance") & (tables["feature"] == "rmse")]
        q = est[["region", "week_start", "rows", "value"]].copy()
        q["week_start"] = pd.to_datetime(q["week_start"])
        base = q["region"].map(holdout_error).astype(float)
        q["severity"] = q["value"] / base
        q["feature"] = "estimated_rmse"
    q["signal"] = "model_quality"
    q = q[q["severity"].notna()]
    q["hit"] = (
        (q["severity"] > s.quality_degradation)
        & (q["rows"] >= s.min_chunk_rows)
        & _stands_out(q, s, ["week_start"])
    )
    return q


def drift_report_key(ws: Workspace, region: str) -> str:
    """A region's drift table in the data store (``ws.data``)."""
    return ws.monitoring_key(region, "drift_report.parquet")


def read_drift_report(ws: Workspace, region: str) -> pd.DataFrame:
    key = drift_report_key(ws, region)
    return ws.data.read_parquet_or(key, pd.DataFrame(columns=TABLE_COLUMNS))


def stored_drift_heatmap(ws: Workspace, region: str, table: pd.DataFrame, *, draw: bool) -> str:
    """``reports.drift_heatmap(table)`` (base64 SVG), kept beside the region's drift report
    as ``drift_heatmap.<digest of what it draws>.svg`` (``storage.plot_store``). The
    drift_report asset draws it (``draw``: always, so a changed drawing replaces the stored
    one) and the region's HTML report reuses it for the same table: the fleet's monitoring
    run, which writes every region's report, reads one small file a region instead of
    pivoting and drawing each table again."""
    from mlops_assets import reports
    from mlops_assets.storage.plot_store import RegionPlotStore

    return RegionPlotStore(ws, region).image(
        "drift_heatmap",
        # the table's rows that it draws, in any order and as a Parquet round trip leaves them
        (reports.drift_heatmap_digest(table),),
        lambda: reports.drift_heatmap(table),
        fmt="svg",
        redraw=draw,
    )


def alerts_key(ws: Workspace) -> str:
    """The fleet's alerts table in the data store (``ws.data``)."""
    return ws.fleet_monitoring_key("alerts.parquet")


def read_alerts(ws: Workspace) -> pd.DataFrame:
    """The fleet's alerts as the last monitoring pass wrote them (empty before it ran)."""
    key = alerts_key(ws)
    return ws.data.read_parquet_or(key, pd.DataFrame())


@dataclass
class FleetInputs:
    """What the fleet comparison reads of every region with an approved model."""

    approved: dict[str, ModelVersion]
    holdout_error: dict[str, float | None]  # the approved model's holdout error
    tables: dict[str, pd.DataFrame]  # its drift report rows of the approved model
    weekly: pd.DataFrame  # every region's weekly realized metrics of its approved model

    @property
    def all_tables(self) -> pd.DataFrame:
        tables = list(self.tables.values())
        return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def fleet_inputs(
    ws: Workspace, registry: ModelRegistry, regions: list[str], holdout_metric: str
) -> FleetInputs:
    """Every approved region's drift report, weekly realized metrics (both of its approved
    model's version only) and holdout error (``holdout_metric``, see ``quality_metric``)."""
    from mlops_assets import realized

    out = FleetInputs({}, {}, {}, pd.DataFrame())
    weekly = []
    for region in regions:
        mv = registry.latest_approved(region)
        if mv is None:
            continue
        out.approved[region] = mv
        out.holdout_error[region] = (mv.record.get("metrics") or {}).get(holdout_metric)
        table = read_drift_report(ws, region)
        if len(table):
            out.tables[region] = table[table["model_version"] == mv.version]
        w = realized.read_weekly_realized(ws, region)
        if len(w):
            w = w[w["model_version"] == mv.version]
            weekly.append(w.rename(columns={"region_key": "region"}))
    if weekly:
        out.weekly = pd.concat(weekly, ignore_index=True)
    return out


@dataclass
class FleetStatus:
    """The fleet's alerts and, per region and signal, the state of the latest week."""

    alerts: pd.DataFrame
    latest: pd.DataFrame  # region, signal, week_start, raw, alert, detail

    def alerting(self, *signals: str) -> pd.DataFrame:
        rows = self.latest[self.latest["signal"].isin(signals) & self.latest["alert"]]
        return rows.sort_values(["region", "signal"], ignore_index=True)


def fleet_status(
    tables: pd.DataFrame,
    realized: pd.DataFrame,
    holdout_error: dict[str, float],
    settings: MonitoringSettings,
    *,
    metric: str = "mape",
) -> FleetStatus:
    """``fleet_alerts`` plus each region's current state (what checks and notifications
    use): a signal is alerting when it alerts in the region's latest week with actuals or
    in any later (forecast) week, whose inputs are already known."""
    columns = ["region", "week_start", "signal", "raw", "alert", "detail"]
    if tables.empty and realized.empty:
        return FleetStatus(pd.DataFrame(columns=columns), pd.DataFrame(columns=columns))
    alerts = fleet_alerts(tables, realized, holdout_error, settings, metric=metric)
    with_actuals = (
        realized.assign(week_start=pd.to_datetime(realized["week_start"]))
        .groupby("region")["week_start"]
        .max()
        if len(realized)
        else pd.Series(dtype="datetime64[ns]")
    )
    last = alerts.groupby("region")["week_start"].transform("max")
    since = alerts["region"].map(with_actuals).fillna(last)
    current = alerts[alerts["week_start"] >= since]
    rows = []
    for (region, signal), g in current.groupby(["region", "signal"], sort=True):
        hit = g[g["alert"]]
        first = hit.iloc[0] if len(hit) else g.iloc[-1]
        rows.append(
            {
                "region": region,
                "signal": signal,
                "week_start": first["week_start"],
                "raw": bool(g["raw"].any()),
                "alert": bool(len(hit)),
                "detail": "; ".join(d for d in hit["detail"].unique() if d),
            }
        )
    return FleetStatus(alerts, pd.DataFrame(rows, columns=columns))
