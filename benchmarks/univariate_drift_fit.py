"""Benchmark: monitoring's univariate drift (``monitoring.feature_drift``) with nannyml's
stock calculator against the one that skips its reference-period result.

nannyml's ``UnivariateDriftCalculator.fit`` scores every reference week twice: once in
each method's fit (the weekly values its threshold is set from) and once more for a
reference result that only nannyml's plots show. ``feature_drift`` keeps the first and
scores one week for the second (``monitoring.data_drift._univariate_drift_class``). This
times one region's univariate drift both ways on generated numeric columns (the reference capped
at ``--rows``, spread over ``--weeks``: 52 is ``monitoring.drift_reference_weeks``, 135
the whole reference of a rossmann-100 model), asserts the tables are equal, and writes
``benchmarks/results/univariate_drift_fit.json``. It also times refreshes of the same
model (``monitoring.refresh``, ``data_quality_fit.refresh_timings``; each asserted to give
a first pass's table): given a table of the same reference but other weeks' rows,
``feature_drift`` takes each feature's thresholds from it instead of scoring every
reference week and computes every week (``refresh_with_known_thresholds_s``); given the
first table, it takes the unchanged weeks whole, all of them (``refresh_weeks_unchanged_s``)
or all but a last week whose rows changed (``refresh_last_week_new_s``).

    .venv/bin/python benchmarks/univariate_drift_fit.py
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pandas as pd
from data_quality_fit import fit_arguments, reference_and_analysis, refresh_timings
from report import provenance

from mlops_assets import monitoring
from mlops_assets.monitoring import data_drift
from mlops_assets.spec import MonitoringSettings

RESULTS = Path(__file__).parent / "results" / "univariate_drift_fit.json"


def timed_drift(reference, analysis, cols, settings, previous=None) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    table = monitoring.feature_drift(reference, analysis, cols, settings, previous)
    return time.perf_counter() - start, table


def main() -> None:
    args = fit_arguments(__doc__.split("\n")[0], weeks="52,135")
    warnings.simplefilter("ignore")
    nml = monitoring.import_nannyml()  # not timed
    columns = [f"x{i}" for i in range(args.columns)]
    cols = monitoring.MonitoredColumns(columns, [], [], [])
    settings = MonitoringSettings()
    ours = data_drift._univariate_drift_class
    results = []
    for weeks in (int(w) for w in args.weeks.split(",")):
        reference, analysis = reference_and_analysis(weeks, args.rows, columns)
        analysis.loc[analysis["date"] >= analysis["date"].iloc[len(analysis) // 2], "x1"] += 1.0
        skipped, stock = [], []
        try:
            for _ in range(args.repeats):  # alternating: the machine's drift hits both
                data_drift._univariate_drift_class = ours
                skipped.append(timed_drift(reference, analysis, cols, settings))
                data_drift._univariate_drift_class = lambda: nml.UnivariateDriftCalculator
                stock.append(timed_drift(reference, analysis, cols, settings))
        finally:
            data_drift._univariate_drift_class = ours
        pd.testing.assert_frame_equal(skipped[0][1], stock[0][1])
        timings = refresh_timings(
            lambda rows, previous, ref=reference: monitoring.feature_drift(
                ref, rows, cols, settings, previous
            ),
            analysis,
            args.repeats,
            same_reference=True,
        )
        row = {
            "reference_weeks": weeks,
            "reference_rows": len(reference),
            "columns": args.columns,
            "stock_s": round(min(s for s, _ in stock), 3),
            "without_reference_result_s": round(min(s for s, _ in skipped), 3),
            "tables_equal": True,
            "alerts": int(skipped[0][1]["nml_alert"].sum()),
        }
        row["ratio"] = round(row["without_reference_result_s"] / row["stock_s"], 3)
        row.update(timings)
        for name, seconds in timings.items():  # against the first pass
            row[name.replace("_s", "_ratio")] = round(
                seconds / row["without_reference_result_s"], 3
            )
        print(json.dumps(row), flush=True)
        results.append(row)
    RESULTS.write_text(json.dumps({"results": results, **provenance()}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
