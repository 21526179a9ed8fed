"""Benchmark: seconds per boosting round of a large region's model under candidate settings.

At the reference's scale training is boosting (87% of a 2M-row region's training in a
profile: three fits of ~700 trees at ~0.18 s each), so a setting's cost is its seconds per
tree times the trees early stopping picks. Accuracy and tree counts come from rossmann-100
(``benchmarks/accuracy_backtest.py --set``); rossmann's regions are too small (25k rows)
for per-tree costs to show, so this times them on one generated region of ``--rows`` rows:
the region is ingested and conditioned as the platform does it, then each setting trains
``--trees`` rounds on the region's training rows (the probe's Dataset), settings
interleaved over ``--repeats`` passes so they share the machine's state. Prints and writes
``benchmarks/results/tree_cost.json`` with each setting's median seconds per tree and its
ratio to the spec's defaults.

    .venv/bin/python benchmarks/tree_cost.py --rows 2M
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset

from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec
from mlops_assets.training import RegionData, prepare_region

RESULTS = Path(__file__).parent / "results" / "tree_cost.json"
CANDIDATES: dict[str, dict] = {
    "defaults": {},
    "max_bin_63": {"max_bin": 63},
    "bagging_0.5": {"bagging_fraction": 0.5},
    "no_bagging": {"bagging_freq": 0, "bagging_fraction": 1.0},
    "goss": {"data_sample_strategy": "goss", "bagging_freq": 0, "bagging_fraction": 1.0},
    "col_wise": {"force_row_wise": False, "force_col_wise": True},
    "feature_fraction_0.4": {"feature_fraction": 0.4},
    "leaves_31": {"num_leaves": 31},
    "extra_trees": {"extra_trees": True},
    "extra_trees_leaves_31": {"extra_trees": True, "num_leaves": 31},
    # not a LightGBM parameter: the Dataset holds only the first N model inputs (numeric
    # first, the categoricals kept), to price a smaller feature set per tree
    "features_20": {"_n_features": 20},
}


def feature_subset(data: RegionData, n: int) -> RegionData:
    """``data`` with only its first ``n`` model inputs (the categoricals always kept)."""
    numeric = [c for c in data.columns if c not in data.categorical]
    columns = numeric[: max(0, n - len(data.categorical))] + data.categorical
    return dataclasses.replace(data, columns=columns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="2M", help="rows of the region: 0.5M, 1M or 2M")
    ap.add_argument("--trees", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--only", help="comma-separated candidates to time (the defaults always are)")
    args = ap.parse_args()
    candidates = {
        name: change
        for name, change in CANDIDATES.items()
        if not args.only or name == "defaults" or name in args.only.split(",")
    }
    stores = {"0.5M": 125, "1M": 125, "2M": 125}[args.rows]
    days = {"0.5M": 1000, "1M": 2000, "2M": 4000}[args.rows]
    spec = load_spec("sample")
    with tempfile.TemporaryDirectory(prefix="tree-cost-") as tmp:
        config = SampleConfig(
            n_regions=1, n_stores=stores, n_departments=4, days=days, file_format="parquet"
        )
        generate(config, Path(tmp) / "source")
        ws, regions, fs_all, _ = build_workspace(Path(tmp) / "source", Path(tmp) / "ws", spec)
        features = pd.read_parquet(ws.features_path(next(iter(regions))))
    data = prepare_region(features, fs_all.restricted_to(features.columns), spec)
    base = data.meta["params"]
    rows = len(data.train)
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.repeats):
        for name, change in candidates.items():
            params = {**base, **{k: v for k, v in change.items() if not k.startswith("_")}}
            n_features = change.get("_n_features")
            subset = feature_subset(data, n_features) if n_features else data
            # binned outside the timing, with the setting's own binning parameters
            train_set = subset.dataset(subset.train_mask)
            train_set.params = dict(params)
            train_set.construct()
            t = time.perf_counter()
            lgb.train(params, train_set, num_boost_round=args.trees)
            seconds[name].append((time.perf_counter() - t) / args.trees)
    per_tree = {name: statistics.median(s) for name, s in seconds.items()}
    report = {
        "rows": rows,
        "trees": args.trees,
        "repeats": args.repeats,
        "params": base,
        "candidates": candidates,
        "seconds_per_tree": {k: round(v, 4) for k, v in per_tree.items()},
        "ratio_to_defaults": {k: round(v / per_tree["defaults"], 3) for k, v in per_tree.items()},
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    for name, value in per_tree.items():
        print(f"{name:22s} {value:.4f} s/tree  x{report['ratio_to_defaults'][name]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({rows:,} training rows)")


if __name__ == "__main__":
    main()
