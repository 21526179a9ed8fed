"""Benchmark: what a depth cap on the trees saves in boosting and in exact TreeSHAP.

Exact TreeSHAP (LightGBM ``pred_contrib``: training's saved importance, the forecast's
explanations, attribution drift) costs about leaves x depth squared per tree and row, and
rossmann-100's leaf-wise trees of 31 leaves grow 11 levels deep on average. On the largest
region's training rows (rossmann-100's NW, conditioned as the platform does it, the spec's
LightGBM parameters on one thread), each ``max_depth`` candidate fits ``--trees`` rounds,
then explains ``--shap-rows`` rows; candidates interleaved over ``--repeats`` passes, one
process (alone). Accuracy and the trees early stopping picks come from
``benchmarks/accuracy_backtest.py`` (labels ``depth<N>_<cutoff>``). Prints and writes
``benchmarks/results/depth_cost.json``: per candidate the median seconds per tree, per
explained row per 1,000 trees, the trees' mean depth, and ratios to the spec's trees.

    .venv/bin/python benchmarks/depth_cost.py --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from report import print_and_write, provenance  # benchmarks/

RESULTS = Path(__file__).parent / "results" / "depth_cost.json"
REGION = "NW"


def mean_depth(booster) -> tuple[float, float]:
    """The trees' mean greatest depth and mean leaf depth (edges from the root)."""
    trees = booster.dump_model()["tree_info"]
    deepest, leaf_depths = [], []

    def walk(node: dict, depth: int) -> int:
        if "split_index" not in node:  # a leaf
            leaf_depths.append(depth)
            return depth
        return max(walk(node["left_child"], depth + 1), walk(node["right_child"], depth + 1))

    for tree in trees:
        deepest.append(walk(tree["tree_structure"], 0))
    return statistics.fmean(deepest), statistics.fmean(leaf_depths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", type=Path, default=Path("../shared/data/rossmann-100"))
    ap.add_argument(
        "--depths",
        default="-1,8,7,6",
        help="max_depth candidates, the first the base of the ratios (-1: none; --depths=-1,8)",
    )
    ap.add_argument("--trees", type=int, default=1500, help="boosting rounds of each model")
    ap.add_argument("--shap-rows", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not args.source_dir.is_dir():
        sys.exit(f"{args.source_dir} is not there: this benchmark needs rossmann-100")
    import lightgbm as lgb
    from drift_replay import region_training_rows  # benchmarks/: ingest and condition

    from mlops_assets.spec import load_spec

    spec = load_spec("rossmann")
    depths = [int(d) for d in args.depths.split(",")]
    fit_s: dict[int, list[float]] = {d: [] for d in depths}
    shap_s: dict[int, list[float]] = {d: [] for d in depths}
    shape: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="depth-cost-") as tmp:
        X, y, params = region_training_rows(args.source_dir, Path(tmp) / "ws", spec, REGION)
        params["num_threads"] = 1  # the spec's: one thread a fit
        rows = X[-args.shap_rows :]
        # binned once: max_depth does not change the bins, so every fit shares the Dataset
        train_set = lgb.Dataset(X, y, params=params, free_raw_data=False).construct()
        for _ in range(args.repeats):  # candidates interleaved: they share the machine's state
            for depth in depths:
                start = time.perf_counter()
                booster = lgb.train({**params, "max_depth": depth}, train_set, args.trees)
                fit_s[depth].append(time.perf_counter() - start)
                start = time.perf_counter()
                booster.predict(rows, pred_contrib=True, num_threads=1)
                shap_s[depth].append(time.perf_counter() - start)
                shape[depth] = mean_depth(booster)
    base = depths[0]

    def per_tree(d: int) -> float:
        return statistics.median(fit_s[d]) / args.trees

    def per_row(d: int) -> float:  # per explained row and 1,000 trees
        return statistics.median(shap_s[d]) / args.shap_rows / args.trees * 1000

    report = {
        "dataset": str(args.source_dir),
        "region": REGION,
        "rows": int(len(X)),
        "features": int(X.shape[1]),
        "params": params,
        "trees": args.trees,
        "shap_rows": args.shap_rows,
        "repeats": args.repeats,
        "candidates": {
            str(d): {
                "fit_s_per_tree": round(per_tree(d), 5),
                "shap_ms_per_row_per_1000_trees": round(per_row(d) * 1000, 3),
                "mean_greatest_depth": round(shape[d][0], 2),
                "mean_leaf_depth": round(shape[d][1], 2),
                "fit_ratio_to_uncapped": round(per_tree(d) / per_tree(base), 3),
                "shap_ratio_to_uncapped": round(per_row(d) / per_row(base), 3),
            }
            for d in depths
        },
        **provenance(),
    }
    print_and_write(report, args.out)


if __name__ == "__main__":
    main()
