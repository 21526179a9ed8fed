"""Benchmark: what the final refit on all history buys over shipping the evaluated model.

Training fits a region's model three times: (1) a probe that picks the number of trees by
early stopping on the inner window, (2) the evaluation model (history before the holdout)
whose holdout metrics the gate judges, (3) the artifact, refitted on all history including
the holdout. Fit (3) costs a third of the boosting and means the approved artifact is not
the model the gate measured. This measures what (3) is worth on the days that follow the
history: at each cutoff ``C`` the history is the feature rows dated <= C, both models are
trained exactly as ``train_region_model`` trains them, and both forecast C+1 .. C+horizon
(the feature table's target lags all end ``horizon`` periods back, so those rows are a
genuine forecast from origin C). Errors are pooled over all regions per cutoff.

    .venv/bin/python benchmarks/refit_value.py --source-dir ../shared/data/rossmann-100

Writes ``benchmarks/results/refit_value.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset

from mlops_assets.metrics import regression_metrics
from mlops_assets.spec import load_spec
from mlops_assets.training import RegionData, eligible_rows, predict_frame, prepare_region

RESULTS = Path(__file__).parent / "results" / "refit_value.json"
CUTOFFS = ("2014-07-31", "2015-03-27", "2015-06-19")


def fits(
    history: pd.DataFrame, fs, spec
) -> tuple[RegionData, dict[str, lgb.Booster], dict[str, float]]:
    """The probe, evaluation and final fits of ``train_region_model`` (same order, params,
    seeds and rows) as ``probe`` / ``evaluated`` / ``refit``, with the seconds each took,
    and the region's prepared data (its split and metadata)."""
    settings = spec.model
    data = prepare_region(history, fs, spec, settings=settings)
    params, seconds = data.meta["params"], {}
    t = time.perf_counter()
    d_train = data.dataset(data.train)
    probe = lgb.train(
        params,
        d_train,
        num_boost_round=settings.num_boost_round,
        valid_sets=[data.dataset(data.val, reference=d_train)],
        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
    )
    best = max(1, probe.best_iteration or settings.num_boost_round)
    seconds["probe"] = time.perf_counter() - t
    boosters = {"probe": probe}
    for name, rows in (("evaluated", data.before_holdout), ("refit", data.hist[data.usable])):
        t = time.perf_counter()
        boosters[name] = lgb.train(params, data.dataset(rows), num_boost_round=best)
        seconds[name] = time.perf_counter() - t
    return data, boosters, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", type=Path, required=True)
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--cutoffs", default=",".join(CUTOFFS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec(args.spec)
    span = pd.Timedelta(days=spec.horizon * spec.period_days)
    report: dict = {"spec": spec.name, "source": str(args.source_dir), "cutoffs": []}
    with tempfile.TemporaryDirectory(prefix="refit-value-") as tmp:
        ws, regions, fs_all, _ = build_workspace(args.source_dir, Path(tmp) / "ws", spec)
        tables = {r: pd.read_parquet(ws.features_path(r)) for r in regions}
    for cutoff in (pd.Timestamp(c) for c in args.cutoffs.split(",")):
        scored, seconds = [], {"probe": 0.0, "evaluated": 0.0, "refit": 0.0}
        for table in tables.values():
            table = table.loc[~table["is_future"].astype(bool)].copy()
            table["date"] = pd.to_datetime(table["date"])
            history = table[table["date"] <= cutoff]
            future = table[(table["date"] > cutoff) & (table["date"] <= cutoff + span)]
            future = future[eligible_rows(future) & future["target"].notna()]
            if future.empty:
                continue
            fs = fs_all.restricted_to(history.columns)
            data, boosters, took = fits(history, fs, spec)
            for name, s in took.items():
                seconds[name] += s
            frame = future[["date", "target"]].copy()
            for name in ("evaluated", "refit"):
                frame[name] = predict_frame(boosters[name], data.meta, future)
            scored.append(frame)
        rows = pd.concat(scored, ignore_index=True)
        actual = rows["target"].clip(lower=0)
        entry = {
            "cutoff": str(cutoff.date()),
            "future": f"{(cutoff + pd.Timedelta(days=1)).date()}..{(cutoff + span).date()}",
            "rows": len(rows),
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }
        for name in ("evaluated", "refit"):
            m = regression_metrics(actual, rows[name], floor=spec.model.metric_floor)
            entry[name] = {k: round(m[k], 5) for k in ("wape", "rmspe", "mape")}
        entry["refit_share_of_fit_seconds"] = round(seconds["refit"] / sum(seconds.values()), 3)
        report["cutoffs"].append(entry)
        print(
            f"cutoff {entry['cutoff']} -> {entry['future']}: RMSPE evaluated "
            f"{entry['evaluated']['rmspe']:.4f} vs refit {entry['refit']['rmspe']:.4f}, WAPE "
            f"{entry['evaluated']['wape']:.4f} vs {entry['refit']['wape']:.4f}; fit seconds "
            f"{entry['seconds']}",
            flush=True,
        )
    report["commit"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
