"""Benchmark: LightGBM threads when two region runs share the machine's cores.

Dagster runs two runs at a time (``dagster.yaml``), each fitting and explaining its
regions' models. This times, on rossmann-100's largest region (its rows as training reads
them, the spec's LightGBM parameters), each LightGBM call a region run makes, in one
process alone and in two processes at once (two run slots busy):
- ``fit``: ``--trees`` boosting rounds, ``num_threads`` 1 (the spec's default) or every core;
- ``shap``: exact TreeSHAP (``pred_contrib``) of 500 holdout rows on a ``--model-trees``
  model (training's saved importance, forecast explanations and attribution drift call it),
  on one thread or on LightGBM's default (every core);
- ``fit`` beside ``shap`` on every core: what the explaining run costs a fitting one.

Each case is measured ``--repeats`` times (median); ratios are to the same call alone on
one thread. Prints the figures and writes ``benchmarks/results/thread_contention.json``.

    .venv/bin/python benchmarks/thread_contention.py --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import print_and_write, provenance  # benchmarks/

RESULTS = Path(__file__).parent / "results" / "thread_contention.json"
REGION = "NW"
SHAP_ROWS = 500


def worker(folder: Path, task: str, threads: int) -> float:
    """Seconds of one call (``task`` fit or shap) on ``threads`` threads (0: every core)."""
    import lightgbm as lgb
    import numpy as np

    X = np.load(folder / "X.npy")
    params = json.loads((folder / "params.json").read_text())
    params["num_threads"] = threads
    if task == "fit":
        y = np.load(folder / "y.npy")
        train_set = lgb.Dataset(X, y, params=params).construct()
        trees = int((folder / "trees").read_text())
        start = time.perf_counter()
        lgb.train(params, train_set, num_boost_round=trees)
        return time.perf_counter() - start
    booster = lgb.Booster(model_file=str(folder / "model.txt"))
    rows = X[-SHAP_ROWS:]
    start = time.perf_counter()
    booster.predict(rows, pred_contrib=True, num_threads=threads)
    return time.perf_counter() - start


def run_together(folder: Path, calls: list[tuple[str, int]]) -> list[float]:
    """The calls in as many processes at once; each one's seconds."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", task, str(threads), str(folder)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for task, threads in calls
    ]
    return [float(p.communicate()[0].split()[-1]) for p in procs]


def prepare(source: Path, folder: Path, trees: int, model_trees: int) -> dict:
    """The region's training rows, its parameters and a model to explain, in ``folder``."""
    import lightgbm as lgb
    import numpy as np
    from drift_replay import region_training_rows  # benchmarks/: ingest and condition

    from mlops_assets.spec import load_spec

    spec = load_spec("rossmann")
    X, y, spec_params = region_training_rows(source, folder / "ws", spec, REGION)
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    params = {**spec_params, "num_threads": 0}
    (folder / "params.json").write_text(json.dumps(params))
    (folder / "trees").write_text(str(trees))
    booster = lgb.train(params, lgb.Dataset(X, y), model_trees)
    booster.save_model(folder / "model.txt")
    return {"rows": len(X), "features": X.shape[1], "params": spec_params}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        print(worker(Path(sys.argv[4]), sys.argv[2], int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", type=Path, default=Path("../shared/data/rossmann-100"))
    ap.add_argument("--trees", type=int, default=1000, help="boosting rounds a timed fit makes")
    ap.add_argument("--model-trees", type=int, default=1500, help="trees of the explained model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not args.source_dir.is_dir():
        sys.exit(f"{args.source_dir} is not there: this benchmark needs rossmann-100")
    cases = {
        "fit_1_thread_alone": [("fit", 1)],
        "fit_all_cores_alone": [("fit", 0)],
        "fit_1_thread_x2": [("fit", 1), ("fit", 1)],
        "fit_all_cores_x2": [("fit", 0), ("fit", 0)],
        "shap_1_thread_alone": [("shap", 1)],
        "shap_all_cores_alone": [("shap", 0)],
        "shap_1_thread_x2": [("shap", 1), ("shap", 1)],
        "shap_all_cores_x2": [("shap", 0), ("shap", 0)],
        "fit_1_thread_beside_shap_all_cores": [("fit", 1), ("shap", 0)],
        "fit_1_thread_beside_shap_1_thread": [("fit", 1), ("shap", 1)],
    }
    with tempfile.TemporaryDirectory(prefix="thread-contention-") as tmp:
        shape = prepare(args.source_dir, Path(tmp), args.trees, args.model_trees)
        seconds: dict[str, list[list[float]]] = {name: [] for name in cases}
        for _ in range(args.repeats):  # cases interleaved: they share the machine's state
            for name, calls in cases.items():
                seconds[name].append(run_together(Path(tmp), calls))
    # per case, each process's median seconds (the first process is the one named first)
    median = {
        name: [round(statistics.median(r[i] for r in runs), 2) for i in range(len(runs[0]))]
        for name, runs in seconds.items()
    }
    fit1, shap1 = median["fit_1_thread_alone"][0], median["shap_1_thread_alone"][0]
    ratio = {
        name: [
            round(s / (fit1 if task == "fit" else shap1), 2)
            for s, (task, _) in zip(m, cases[name], strict=True)
        ]
        for name, m in median.items()
    }
    report = {
        "dataset": str(args.source_dir),
        "region": REGION,
        **shape,
        "fit_trees": args.trees,
        "model_trees": args.model_trees,
        "shap_rows": SHAP_ROWS,
        "repeats": args.repeats,
        "cases": {
            name: [f"{t} on {'1 thread' if n == 1 else 'every core'}" for t, n in c]
            for name, c in cases.items()
        },
        "median_s": median,
        "ratio_to_alone_on_1_thread": ratio,
        **provenance(),
    }
    print_and_write(report, args.out)


if __name__ == "__main__":
    main()
