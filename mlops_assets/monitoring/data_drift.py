"""Data drift of one region's model inputs, weekly against the training data: nannyml
univariate drift per feature, the weather's gap to the other regions (which the season
does not move), and nannyml's PCA reconstruction error over the watched numerics."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.monitoring.nannyml_support import (
    analysis_results,
    import_nannyml,
    result_rows,
    week_chunker,
)
from mlops_assets.monitoring.refresh import (
    Thresholds,
    known_thresholds,
    merge_weeks,
    reference_digest,
    split_weeks,
)
from mlops_assets.monitoring.table import TABLE_COLUMNS, MonitoredColumns
from mlops_assets.spec import MonitoringSettings
from mlops_assets.training import as_datetime

if TYPE_CHECKING:
    from nannyml import DataReconstructionDriftCalculator, UnivariateDriftCalculator


@functools.cache
def _univariate_drift_class() -> type[UnivariateDriftCalculator]:
    nml = import_nannyml()

    class NoWeeks(nml.chunk.Chunker):
        """Splits any data into no chunks, at once (``split`` would sort it first)."""

        def split(self, data: pd.DataFrame, columns: Any = None) -> list:
            return []

        def _split(self, data: pd.DataFrame) -> list:
            return []

    class AnalysisUnivariateDrift(nml.UnivariateDriftCalculator):
        """nannyml's univariate drift, the same thresholds and analysis results, without
        the reference-period result its fit computes last. Each method's fit scores every
        reference week for its threshold; the calculator's fit then scores them all again
        for a reference result that only nannyml's own plots show (``_analysis`` drops
        it): that second pass scores the reference's first week only here.

        ``known_thresholds`` ((column, method) -> (lower, upper), as an earlier table of the
        same reference shows them): the methods' fits then score no reference week at all
        (they still learn the reference's distribution) and take those thresholds."""

        _fitting = False
        known_thresholds: Thresholds | None = None

        def _fit(self, reference_data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            self._fitting, self._weeks = True, self.chunker
            if self.known_thresholds is not None:
                self.chunker = NoWeeks()  # what each method's fit scores for its threshold
            try:
                super()._fit(reference_data, *args, **kwargs)
            finally:
                self._fitting, self.chunker = False, self._weeks
            if self.known_thresholds is not None:
                for column, methods in self._column_to_models_mapping.items():
                    for method in methods:
                        lower, upper = self.known_thresholds[(column, method.column_name)]
                        method.lower_threshold_value = lower
                        method.upper_threshold_value = upper
            return self

        def _calculate(self, data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            if not self._fitting:
                return super()._calculate(data, *args, **kwargs)
            # the reference result: a placeholder of one week
            unscored, self.chunker = self.chunker, self._weeks
            try:
                chunks = self.chunker.split(data)
                return super()._calculate(chunks[0].data if chunks else data, *args, **kwargs)
            finally:
                self.chunker = unscored

    return AnalysisUnivariateDrift


@functools.cache
def _reconstruction_drift_class() -> type[DataReconstructionDriftCalculator]:
    nml = import_nannyml()

    class ReconstructionDrift(nml.DataReconstructionDriftCalculator):
        """nannyml's PCA reconstruction drift. With ``known_threshold`` ((lower, upper), as
        an earlier table of the same reference shows it) its fit still fits the PCA on the
        whole reference but scores its first week only, for the reference result only
        nannyml's own plots show, instead of every week for the threshold, and takes
        that threshold."""

        _fitting = False
        known_threshold: tuple[float | None, float | None] | None = None

        def _fit(self, reference_data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            self._fitting = True
            try:
                return super()._fit(reference_data, *args, **kwargs)
            finally:
                self._fitting = False

        def _calculate(self, data: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            if self._fitting and self.known_threshold is not None:
                chunks = self.chunker.split(data)
                data = chunks[0].data if chunks else data
            return super()._calculate(data, *args, **kwargs)

        def _set_thresholds(self, results: pd.DataFrame) -> None:
            if self.known_threshold is None:
                return super()._set_thresholds(results)
            self.lower_threshold_value, self.upper_threshold_value = self.known_threshold

    return ReconstructionDrift


def feature_drift(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    cols: MonitoredColumns,
    s: MonitoringSettings,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """nannyml univariate drift of every watched model feature, weekly chunks (the ignored
    calendar / expanding-history features would only cost time: they never alert).

    Region-level inputs (weather) are shown but alert through ``fleet_gap_drift`` only:
    against a whole-year reference, a wet or warm week in one region is ordinary weather
    (on the stationary sample data their univariate findings were most false alarms).

    ``previous``: an earlier table of the same model (``monitoring.refresh``): its weeks
    whose rows are unchanged are taken from it, and when it holds every feature's
    thresholds from the same reference rows the new weeks are scored against those
    instead of scoring every reference week again."""
    categorical = cols.alerting_categorical
    names = cols.alerting_numeric + categorical
    if not names:
        return pd.DataFrame(columns=TABLE_COLUMNS)

    def method_of(name: str) -> str:
        return s.categorical_method if name in categorical else s.continuous_method

    written = [(name, method_of(name)) for name in names]
    digest = reference_digest(reference, names)
    weeks = split_weeks(analysis, names, digest, previous, "feature_drift", written)
    computed = pd.DataFrame(columns=TABLE_COLUMNS)
    if len(weeks.to_compute):
        calc = _univariate_drift_class()(
            column_names=names,
            treat_as_categorical=categorical or None,
            timestamp_column_name="date",
            chunker=week_chunker(),
            continuous_methods=[s.continuous_method],
            categorical_methods=[s.categorical_method],
        )
        known = known_thresholds(previous, digest)
        if all(pair in known for pair in written):
            calc.known_thresholds = known
        df = analysis_results(
            calc.fit(reference[["date", *names]]).calculate(weeks.to_compute[["date", *names]])
        )
        computed = pd.concat(
            [
                result_rows(df, ("chunk", "chunk"), "feature_drift", (name, method)).assign(
                    feature=name, method=method, ignored=False
                )
                for name, method in written
            ],
            ignore_index=True,
        )
    table = merge_weeks(weeks, computed, written)
    # shown, never alerting (on reused weeks too: the rule is today's)
    return table.assign(ignored=table["feature"].isin(cols.region_level))


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
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Weekly mean of each region-level input's gap to the fleet, vs the reference weeks.

    An input whose reference gap never varies is left out: nannyml's thresholds would
    close on that value and alert on every week, however equal. So is one without a
    reference gap (a region alone in its fleet: ``fleet_gap_frame`` gives no gap).
    ``previous``: an earlier table of the same model; its weeks whose gaps are unchanged
    are taken from it (``monitoring.refresh``), and with none left nothing is fitted."""
    columns = [c for c in columns if c in reference_gap and reference_gap[c].std() > 0]
    if not columns or reference_gap.empty or analysis_gap.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    written = [(c, "mean_gap_to_fleet") for c in columns]
    digest = reference_digest(reference_gap, columns, {"fleet_gap_std": s.fleet_gap_std})
    weeks = split_weeks(analysis_gap, columns, digest, previous, "fleet_gap_drift", written)
    computed = pd.DataFrame(columns=TABLE_COLUMNS)
    if len(weeks.to_compute):
        nml = import_nannyml()
        calc = nml.SummaryStatsAvgCalculator(
            column_names=columns,
            timestamp_column_name="date",
            chunker=week_chunker(),
            threshold=nml.thresholds.StandardDeviationThreshold(s.fleet_gap_std, s.fleet_gap_std),
        )
        reference = reference_gap[["date", *columns]]
        df = analysis_results(calc.fit(reference).calculate(weeks.to_compute[["date", *columns]]))
        computed = pd.concat(
            [
                result_rows(df, ("chunk",), "fleet_gap_drift", (c,)).assign(
                    feature=c, method=method, ignored=False
                )
                for c, method in written
            ],
            ignore_index=True,
        )
    return merge_weeks(weeks, computed, written)


def multivariate_drift(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    cols: MonitoredColumns,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """nannyml PCA reconstruction error over the watched numeric features.

    ``previous``: an earlier table of the same model; its unchanged weeks are taken, and
    its threshold when it was computed from the same reference rows (as ``feature_drift``
    does)."""
    names = [c for c in cols.alerting_numeric if reference[c].notna().any()]
    if len(names) < 2:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    written = [("reconstruction_error", "pca")]
    digest = reference_digest(reference, names)
    weeks = split_weeks(analysis, names, digest, previous, "multivariate_drift", written)
    rows = pd.DataFrame(columns=TABLE_COLUMNS)
    if len(weeks.to_compute):
        calc = _reconstruction_drift_class()(
            column_names=names, timestamp_column_name="date", chunker=week_chunker()
        )
        known = known_thresholds(previous, digest, "multivariate_drift")
        calc.known_threshold = known.get(written[0])
        df = analysis_results(
            calc.fit(reference[["date", *names]]).calculate(weeks.to_compute[["date", *names]])
        )
        rows = result_rows(df, ("chunk",), "multivariate_drift", ("reconstruction_error",))
        rows = rows.assign(feature="reconstruction_error", method="pca", ignored=False)
    return merge_weeks(weeks, rows, written)
