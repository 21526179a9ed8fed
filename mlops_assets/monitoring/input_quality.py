"""Data quality of one region's model inputs against the training data: nannyml missing
values, unseen categories and values outside the training range, each fitted on the
reference rows that carry what it learns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_assets.monitoring.nannyml_support import (
    analysis_results,
    import_nannyml,
    result_rows,
    weekly_chunking,
)
from mlops_assets.monitoring.refresh import merge_weeks, reference_digest, split_weeks
from mlops_assets.monitoring.table import TABLE_COLUMNS, MonitoredColumns
from mlops_assets.training import week_start

if TYPE_CHECKING:
    from nannyml.thresholds import Threshold


def data_quality(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    cols: MonitoredColumns,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """nannyml missing values, unseen categories and out-of-range values, against the
    training data (features from the target's own history are shown, never alerted on).

    Each check is fitted on the reference rows that carry what it learns (the weeks of
    each column's lowest and highest missing rate; each value; each column's extremes):
    the same verdicts as the whole reference, for less time. ``previous``: an earlier
    table of the same model; its weeks whose rows are unchanged are taken from it
    (``monitoring.refresh``)."""
    names = cols.alerting_numeric + cols.alerting_categorical
    if not names:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    categorical = cols.alerting_categorical
    # region-level inputs (weather) leave the training range in a record summer without
    # any defect: their drift is judged against the other regions (fleet gap) instead
    watched = [
        c
        for c in cols.alerting_numeric
        if c not in cols.region_level and reference[c].notna().any()
    ]
    checks = [("missing_values", names), ("unseen_values", categorical), ("out_of_range", watched)]
    written = [(name, method) for method, columns in checks for name in columns]
    digest = reference_digest(reference, names)
    weeks = split_weeks(analysis, names, digest, previous, "data_quality", written)
    out = []
    for method, used in checks:
        if not used or weeks.to_compute.empty:
            continue
        check = _fitted_check(method, used, reference)
        df = analysis_results(check.calculate(weeks.to_compute[["date", *used]]))
        out += [
            result_rows(df, ("chunk",), "data_quality", (name,)).assign(
                feature=name, method=method, ignored=False
            )
            for name in used
        ]
    computed = pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=TABLE_COLUMNS)
    table = merge_weeks(weeks, computed, written)
    ignored = set(cols.ignored) | set(cols.quality_ignored)  # today's rule, reused weeks too
    return table.assign(ignored=table["feature"].isin(ignored))


def _fitted_check(method: str, columns: list[str], reference: pd.DataFrame) -> Any:
    """nannyml's calculator of one check, fitted on the reference rows that carry what it
    learns."""
    nml = import_nannyml()
    if method == "missing_values":
        threshold = _reference_range_threshold()
        calc = nml.MissingValuesCalculator(
            column_names=columns, threshold=threshold, **weekly_chunking()
        )
        basis = weeks_with_extreme_missing_rates(reference, columns)
    elif method == "unseen_values":
        calc = nml.UnseenValuesCalculator(column_names=columns, **weekly_chunking())
        basis = rows_with_each_value(reference, columns)
    else:
        calc = nml.NumericalRangeCalculator(column_names=columns, **weekly_chunking())
        basis = rows_with_extremes(reference, columns)
    return calc.fit(basis[["date", *columns]])


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
