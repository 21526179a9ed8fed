"""Benchmark: peak memory of one region's training, by phase, at a scale preset's region size.

One region of the generated sample data (``--stores`` x 4 departments x ``--days``; the
default is a region of the 10M preset: 62 stores, 2,000 days, about 500k rows) is ingested
and conditioned as the platform does it; then ``train_region_model`` (the spec's default
training: probe, evaluation model, baselines, artifact, importance, monitoring reference)
runs while a thread samples the process's resident memory every 20 ms. Prints and writes
``benchmarks/results/training_memory.json``: the peak per phase (the training functions and
each LightGBM fit), the feature table's size, and the training's peak above the process
before it read the table, as a ratio to that table (how many table copies training holds).

    .venv/bin/python benchmarks/training_memory.py
    .venv/bin/python benchmarks/training_memory.py --stores 250 --days 4000   # a 40M region
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset
from report import print_and_write, provenance  # benchmarks/: command, commit, time and machine

import mlops_assets.training as training
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec

RESULTS = Path(__file__).parent / "results" / "training_memory.json"
PHASES = (
    "prepare_region",
    "fit_probe",
    "backtest_forecasts",
    "evaluator_output",
    "baseline_forecasts",
    "predict_frame",
    "shap_contributions",
    "data_quality_baseline",
    "reference_rows",
)


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


class PhaseSampler:
    """Peak resident memory per named phase, sampled by a thread."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value, phase = rss_gb(), self.phase
            self.peaks[phase] = max(self.peaks.get(phase, 0.0), value)
            time.sleep(0.02)

    def __enter__(self) -> PhaseSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join()

    def labelled(self, func: Callable[..., Any], label: Callable[[], str]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            before, self.phase = self.phase, label()
            try:
                return func(*args, **kwargs)
            finally:
                self.phase = before

        return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", type=int, default=62)
    ap.add_argument("--days", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec("sample")
    with tempfile.TemporaryDirectory(prefix="training-memory-") as tmp:
        config = SampleConfig(
            n_regions=1,
            n_stores=args.stores,
            n_departments=4,
            days=args.days,
            file_format="parquet",
        )
        generate(config, Path(tmp) / "source")
        ws, regions, fs_all, _ = build_workspace(Path(tmp) / "source", Path(tmp) / "ws", spec)
        region = next(iter(regions))
        with PhaseSampler() as sampler:
            for name in PHASES:
                setattr(training, name, sampler.labelled(getattr(training, name), lambda n=name: n))
            arrays = iter(range(1, 100))  # which fit (or prediction) built the array
            training.design_array = sampler.labelled(
                training.design_array,
                lambda: f"{sampler.phase}/design_array #{next(arrays)}",
            )
            fits = iter(range(1, 100))
            training.lgb.train = sampler.labelled(
                lgb.train, lambda: f"{sampler.phase}/lgb.train #{next(fits)}"
            )
            before = rss_gb()
            sampler.phase = "read the feature table"
            features = ws.read_features(region)
            table_gb = features.memory_usage(deep=True).sum() / 1e9
            fs = fs_all.restricted_to(features.columns)
            sampler.phase = "train_region_model"
            start = time.perf_counter()
            model = training.train_region_model(features, fs, spec)
            wall = time.perf_counter() - start
            sampler.phase = "after"
    peak = max(v for k, v in sampler.peaks.items() if k not in ("start", "read the feature table"))
    report = {
        "rows": len(features),
        "columns": features.shape[1],
        "feature_table_gb": round(table_gb, 3),
        "rss_before_read_gb": round(before, 3),
        "training_peak_rss_gb": round(peak, 3),
        "training_peak_above_before_read_in_tables": round((peak - before) / table_gb, 2),
        "peak_rss_gb_by_phase": {k: round(v, 3) for k, v in sampler.peaks.items()},
        "train_wall_s": round(wall, 1),
        "trees": model.best_iteration,
        **provenance(),
    }
    print_and_write(report, args.out)


if __name__ == "__main__":
    main()
