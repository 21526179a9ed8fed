"""Benchmark: what a weekly retrain loses by reusing a recent model's number of trees
instead of running the probe that picks it.

The probe (early stopping on the inner window) is about 40% of a default training's
boosting; the number of trees it picks is noisy (two seeds at one cutoff of rossmann-100
differ by up to 30% in a region) while the error is flat over a wide range of tree
counts. For each ``--cutoffs`` date C, the dataset as it was ``--ages`` days before C is
trained region by region (its probe picks each region's trees), then the dataset at C is
trained twice per region: with its own probe, and with the trees of the model of each
age. Prints and writes ``benchmarks/results/tree_reuse_value.json``: per cutoff and
variant the pooled holdout WAPE, MAPE and RMSPE, the trees and the training seconds.

    .venv/bin/python benchmarks/tree_reuse_value.py --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_backtest import cut_dataset, load_spec_with  # noqa: E402
from drift_replay import build_workspace  # noqa: E402
from report import provenance  # noqa: E402

from mlops_assets.metrics import regression_metrics  # noqa: E402
from mlops_assets.training import train_region_model  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "tree_reuse_value.json"
CUTOFFS = ("2014-07-31", "2015-03-27", "2015-06-19")  # accuracy_backtest.py's


def train_all(built: tuple, spec, trees: dict[str, int] | None = None) -> dict:
    """Every region of a ``build_workspace`` result trained (with ``trees`` per region when
    given): each region's trees and training seconds, and the pooled eligible holdout
    rows."""
    ws, regions, fs_all, _ = built
    out: dict = {"trees": {}, "seconds": {}, "rows": []}
    for region in regions:
        features = ws.read_features(region)
        fs = fs_all.restricted_to(features.columns)
        t = time.perf_counter()
        given = None if trees is None else trees.get(region)
        trained = train_region_model(features, fs, spec, trees=given)
        out["seconds"][region] = round(time.perf_counter() - t, 2)
        out["trees"][region] = trained.best_iteration
        out["rows"].append(trained.holdout[trained.holdout["eligible"]].assign(region=region))
    out["rows"] = pd.concat(out["rows"], ignore_index=True)
    return out


def summary(result: dict, floor: float) -> dict:
    rows = result["rows"]
    m = regression_metrics(rows["actual"], rows["model"], floor=floor)
    return {
        "wape": round(m["wape"], 5),
        "mape": round(m["mape"], 5),
        "rmspe": round(m["rmspe"], 5),
        "train_s": round(sum(result["seconds"].values()), 1),
        "trees": result["trees"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", type=Path, required=True)
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--cutoffs", default=",".join(CUTOFFS))
    ap.add_argument("--ages", default="7,28", help="days between the reused model and C")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec_with(args.spec, {})
    floor = spec.model.metric_floor
    ages = [int(a) for a in args.ages.split(",")]
    report: dict = {"spec": spec.name, "ages_days": ages, "cutoffs": []}
    for cutoff in args.cutoffs.split(","):
        c = pd.Timestamp(cutoff)
        entry: dict = {"cutoff": cutoff}
        with tempfile.TemporaryDirectory(prefix="tree-reuse-") as tmp:
            earlier: dict[int, dict[str, int]] = {}
            for age in ages:
                data = Path(tmp) / f"data-{age}"
                cut_dataset(spec, args.source_dir, data, c - pd.Timedelta(days=age))
                result = train_all(build_workspace(data, Path(tmp) / f"ws-{age}", spec), spec)
                earlier[age] = result["trees"]
                entry[f"probe_at_minus_{age}d"] = summary(result, floor)
            data = Path(tmp) / "data"
            cut_dataset(spec, args.source_dir, data, c)
            built = build_workspace(data, Path(tmp) / "ws", spec)  # ingested once, trained 3x
            entry["own_probe"] = summary(train_all(built, spec), floor)
            for age in ages:
                result = train_all(built, spec, earlier[age])
                entry[f"trees_of_{age}d_before"] = summary(result, floor)
        report["cutoffs"].append(entry)
        line = {
            k: {m: v[m] for m in ("wape", "rmspe", "train_s")}
            for k, v in entry.items()
            if isinstance(v, dict)
        }
        print(cutoff, json.dumps(line), flush=True)
    report.update(provenance())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
