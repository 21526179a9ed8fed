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
from mlops_assets.monitoring.table import TABLE_COLUMNS, MonitoredColumns
from mlops_assets.training import week_start

if TYPE_CHECKING:
    from nannyml.thresholds import Threshold


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
                column_names=names, threshold=_reference_range_threshold(), **weekly_chunking()
            ),
            weeks_with_extreme_missing_rates(reference, names),
        )
    ]
    if categorical := cols.alerting_categorical:
        calcs.append(
            (
                "unseen_values",
                nml.UnseenValuesCalculator(column_names=categorical, **weekly_chunking()),
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
                nml.NumericalRangeCalculator(column_names=watched, **weekly_chunking()),
                rows_with_extremes(reference, watched),
            )
        )
    for method, calc, basis in calcs:
        used = calc.column_names
        df = analysis_results(calc.fit(basis[["date", *used]]).calculate(analysis[["date", *used]]))
        for name in used:
            rows = result_rows(df, ("chunk",), "data_quality", (name,))
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
