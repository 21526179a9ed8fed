"""Benchmark: monitoring's data-quality checks fitted on the reference rows that carry
what they learn, against a fit on the whole reference.

``monitoring.data_quality`` (``monitoring/input_quality.py``) fits nannyml's missing-values
check on the weeks holding each column's lowest and highest missing rate, and the
out-of-range check on the rows holding each column's extremes: each fit also scores every
reference week of every column, which grows with the training window (a region of the 40M
preset has about 570 weeks). This times one region's checks both ways on generated numeric
columns (1% missing in one), asserts the tables are equal, and writes
``benchmarks/results/data_quality_fit.json``. It also times refreshes of the same model
(``monitoring.refresh``, ``refresh_timings``): every week unchanged, and a last week whose
rows changed.

    .venv/bin/python benchmarks/data_quality_fit.py
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from report import provenance

from mlops_assets import monitoring
from mlops_assets.monitoring import input_quality

RESULTS = Path(__file__).parent / "results" / "data_quality_fit.json"
CONDENSING = ("weeks_with_extreme_missing_rates", "rows_with_extremes")


def frame(rng: np.random.Generator, start: pd.Timestamp, weeks: int, rows_per_week: int,
          columns: list[str]) -> pd.DataFrame:  # fmt: skip
    dates = rng.choice(pd.date_range(start, periods=weeks * 7, freq="D"), weeks * rows_per_week)
    out = pd.DataFrame({c: rng.normal(size=len(dates)) for c in columns})
    out.iloc[rng.uniform(size=len(dates)) < 0.01, 0] = np.nan
    out["date"] = pd.to_datetime(np.sort(dates))
    return out


def fit_arguments(description: str, weeks: str) -> argparse.Namespace:
    """The command line of the nannyml fit benchmarks (this one, univariate_drift_fit)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--weeks", default=weeks, help="reference weeks to try")
    parser.add_argument("--rows", type=int, default=50_000, help="reference rows (the cap)")
    parser.add_argument("--columns", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def reference_and_analysis(
    weeks: int, rows: int, columns: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference of about ``rows`` rows over ``weeks`` weeks and 26 weeks after it."""
    rng = np.random.default_rng(0)
    per_week = max(1, rows // weeks)
    reference = frame(rng, pd.Timestamp("2010-01-04"), weeks, per_week, columns)
    analysis = frame(rng, reference["date"].max() + pd.Timedelta(days=1), 26, per_week, columns)
    return reference, analysis


def refresh_timings(
    compute: Callable[[pd.DataFrame, pd.DataFrame | None], pd.DataFrame],
    analysis: pd.DataFrame,
    repeats: int,
    same_reference: bool = False,
) -> dict[str, float]:
    """Seconds (best of ``repeats``) of ``compute(analysis, previous)`` refreshing its own
    first table: with every week unchanged (``refresh_weeks_unchanged_s``) and with the
    last week's rows changed (``refresh_last_week_new_s``); with ``same_reference`` also
    given a table of the same reference but other weeks' rows, which only its thresholds
    can be taken from (``refresh_with_known_thresholds_s``). Each refresh is asserted to
    give the table a first pass over the same rows gives."""
    from mlops_assets.monitoring import refresh

    first = compute(analysis, None)
    changed = analysis.copy()
    last = changed["date"] >= changed["date"].max() - pd.Timedelta(days=6)
    changed.loc[last, "x2"] += 1.0
    cases = {
        "refresh_weeks_unchanged_s": (analysis, first, first),
        "refresh_last_week_new_s": (changed, first, compute(changed, None)),
    }
    if same_reference:
        other_weeks = first.assign(chunk_hash=refresh.reference_part(first["chunk_hash"]))
        cases["refresh_with_known_thresholds_s"] = (analysis, other_weeks, first)
    timings = {}
    for name, (rows, previous, expected) in cases.items():
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            table = compute(rows, previous)
            runs.append(time.perf_counter() - start)
        pd.testing.assert_frame_equal(table, expected)
        timings[name] = round(min(runs), 3)
    return timings


def timed_checks(
    reference: pd.DataFrame, analysis: pd.DataFrame, cols
) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    table = monitoring.data_quality(reference, analysis, cols)
    return time.perf_counter() - start, table


def main() -> None:
    args = fit_arguments(__doc__.split("\n")[0], weeks="135,570")
    warnings.simplefilter("ignore")
    monitoring.import_nannyml()  # not timed
    columns = [f"x{i}" for i in range(args.columns)]
    cols = monitoring.MonitoredColumns(columns, [], [], [])
    results = []
    for weeks in (int(w) for w in args.weeks.split(",")):
        reference, analysis = reference_and_analysis(weeks, args.rows, columns)
        condensed = [timed_checks(reference, analysis, cols) for _ in range(args.repeats)]
        helpers = {name: getattr(input_quality, name) for name in CONDENSING}
        try:
            for name in CONDENSING:
                setattr(input_quality, name, lambda f, c: f)
            whole = [timed_checks(reference, analysis, cols) for _ in range(args.repeats)]
        finally:
            for name, helper in helpers.items():
                setattr(input_quality, name, helper)
        pd.testing.assert_frame_equal(condensed[0][1], whole[0][1])
        row = {
            "reference_weeks": weeks,
            "reference_rows": len(reference),
            "columns": args.columns,
            "whole_reference_s": round(min(s for s, _ in whole), 3),
            "condensed_s": round(min(s for s, _ in condensed), 3),
            "tables_equal": True,
        }
        row["ratio"] = round(row["condensed_s"] / row["whole_reference_s"], 3)
        row.update(
            refresh_timings(
                lambda rows, previous, ref=reference: monitoring.data_quality(
                    ref, rows, cols, previous
                ),
                analysis,
                args.repeats,
            )
        )
        print(json.dumps(row), flush=True)
        results.append(row)
    RESULTS.write_text(json.dumps({"results": results, **provenance()}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
