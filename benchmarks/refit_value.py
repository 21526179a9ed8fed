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

Writes ``benchmarks/results/refit_value.json``. ``--warm-start-shares`` also tries a cheaper
fit (3): the evaluated model continued on all history for a share of its trees (boosted
from its output, ``chain_boosters``): ``benchmarks/results/warm_refit_value.json``, from

    .venv/bin/python benchmarks/refit_value.py --source-dir ../shared/data/rossmann-100 \\
        --warm-start-shares 0.15,0.25,0.35,0.5 --out benchmarks/results/warm_refit_value.json

``--probe-continuation-shares`` tries an evaluation model made of the probe's chosen trees
continued on the rows before the holdout (``probe_continuation_value.json``, its command
inside). ``--leaf-refit-decays`` also tries the cheap alternative to fits (2) and (3),
LightGBM's ``Booster.refit`` (keep the trees, refit their leaf values on more rows):
``benchmarks/results/leaf_refit_value.json``, from

    .venv/bin/python benchmarks/refit_value.py --source-dir ../shared/data/rossmann-100 \\
        --leaf-refit-decays 0.9,0.5,0 --out benchmarks/results/leaf_refit_value.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset

from mlops_assets.metrics import regression_metrics
from mlops_assets.models.boosting import chain_boosters, fit_boosters
from mlops_assets.spec import load_spec
from mlops_assets.training import (
    RegionData,
    design_matrix,
    eligible_rows,
    evaluator_output,
    fit_probe,
    level_offset,
    predict_frame,
    prepare_region,
    raw_output,
)

RESULTS = Path(__file__).parent / "results" / "refit_value.json"
CUTOFFS = ("2014-07-31", "2015-03-27", "2015-06-19")


def fits(
    history: pd.DataFrame, fs, spec
) -> tuple[RegionData, dict[str, lgb.Booster], dict[str, float], np.ndarray | None]:
    """The probe, evaluation and final fits of ``train_region_model`` with
    ``final_fit: refit`` (same order, params and rows; one seed) as ``probe`` /
    ``evaluated`` / ``refit``, with the seconds each took, the region's prepared data
    (its split and metadata) and the evaluated model's training scores (what a
    continuation boosts from, kept as training keeps them)."""
    settings = spec.model
    data = prepare_region(history, fs, spec, settings=settings)
    params, seconds = data.meta["params"], {}
    t = time.perf_counter()
    probe, best = fit_probe(data, settings)
    data.meta["num_boost_round"] = best
    seconds["probe"] = time.perf_counter() - t
    boosters = {"probe": probe}
    t = time.perf_counter()
    boosters["evaluated"], scores = fit_boosters(
        params, data.dataset(data.before_holdout_mask), trees=best, seeds=1, keep_scores=True
    )
    seconds["evaluated"] = time.perf_counter() - t
    t = time.perf_counter()
    boosters["refit"] = lgb.train(params, data.dataset(data.usable.to_numpy()), best)
    seconds["refit"] = time.perf_counter() - t
    return data, boosters, seconds, scores


def leaf_refit(
    booster: lgb.Booster, data: RegionData, rows: pd.DataFrame, decay: float, trees: int
) -> lgb.Booster:
    """``booster``'s first ``trees`` trees with their leaf values refitted on ``rows``
    (LightGBM ``Booster.refit``: the tree structure stays, each leaf's output becomes
    ``decay * old + (1 - decay) * new``), the cheap alternative to boosting again."""
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=trees))
    init = level_offset(rows, data.meta) if data.meta["level_features"] else None
    return trimmed.refit(
        design_matrix(rows, data.columns, data.categories),
        data.target(rows),
        decay_rate=decay,
        init_score=init,
        categorical_feature=data.categorical,
    )


def warm_refit(
    booster: lgb.Booster, scores: np.ndarray | None, data: RegionData, trees: int
) -> lgb.Booster:
    """``booster`` followed by ``trees`` more trees boosted on all usable history from
    its output: ``final_fit: continue`` as ``train_region_model`` does it."""
    start = evaluator_output(booster, scores, data)
    train_set = data.dataset(data.usable.to_numpy(), init_score=start)
    more = lgb.train(data.meta["params"], train_set, num_boost_round=trees)
    return chain_boosters([booster, more])


def probe_continued(
    probe: lgb.Booster, data: RegionData, best: int, share: float
) -> tuple[lgb.Booster, float]:
    """The probe's first ``best`` trees (a model of the chosen size on the training
    window) boosted ``share`` x ``best`` trees more on the rows before the holdout: a
    cheaper evaluation model. Returns it and the seconds its boosting took."""
    head = lgb.Booster(model_str=probe.model_to_string(num_iteration=best))
    rows = data.before_holdout
    start = raw_output(head, data.meta, rows)
    t = time.perf_counter()
    more = lgb.train(
        data.meta["params"],
        data.dataset(rows, init_score=start),
        num_boost_round=max(1, round(share * best)),
    )
    return chain_boosters([head, more]), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", type=Path, required=True)
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--cutoffs", default=",".join(CUTOFFS))
    ap.add_argument(
        "--leaf-refit-decays",
        default="",
        help="also refit the leaves of the evaluated model and of the probe (cut at the "
        "chosen trees) on all history with these decay rates, e.g. 0.9,0.5,0",
    )
    ap.add_argument(
        "--warm-start-shares",
        default="",
        help="also continue the evaluated model on all history for these shares of its "
        "trees, e.g. 0.1,0.25,0.5",
    )
    ap.add_argument(
        "--probe-continuation-shares",
        default="",
        help="also try evaluation models made of the probe's chosen trees continued on the "
        "rows before the holdout for these shares of its trees, e.g. 0.35,0.5 (each then "
        "continued on all history like the artifact)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    decays = [float(d) for d in args.leaf_refit_decays.split(",") if d]
    shares = [float(x) for x in args.warm_start_shares.split(",") if x]
    probe_shares = [float(x) for x in args.probe_continuation_shares.split(",") if x]
    spec = load_spec(args.spec)
    span = pd.Timedelta(days=spec.horizon * spec.period_days)
    report: dict = {"spec": spec.name, "source": str(args.source_dir), "cutoffs": []}
    with tempfile.TemporaryDirectory(prefix="refit-value-") as tmp:
        ws, regions, fs_all, _ = build_workspace(args.source_dir, Path(tmp) / "ws", spec)
        tables = {r: ws.read_features(r) for r in regions}
    for cutoff in (pd.Timestamp(c) for c in args.cutoffs.split(",")):
        scored, seconds = [], {"probe": 0.0, "evaluated": 0.0, "refit": 0.0}
        names = ["evaluated", "refit"]
        holdout_scored = []
        for table in tables.values():
            table = table.loc[~table["is_future"].astype(bool)].copy()
            table["date"] = pd.to_datetime(table["date"])
            history = table[table["date"] <= cutoff]
            future = table[(table["date"] > cutoff) & (table["date"] <= cutoff + span)]
            future = future[eligible_rows(future) & future["target"].notna()]
            if future.empty:
                continue
            fs = fs_all.restricted_to(history.columns)
            data, boosters, took, scores = fits(history, fs, spec)
            for name, s in took.items():
                seconds[name] += s
            best = data.meta["num_boost_round"]
            all_rows = data.hist[data.usable]
            holdout = data.hist[data.hist["date"] >= data.split.holdout_start]
            holdout = holdout[eligible_rows(holdout) & holdout["target"].notna()]
            in_holdout = holdout[["date", "target"]].copy()
            in_holdout["evaluated"] = predict_frame(boosters["evaluated"], data.meta, holdout)
            in_holdout["probe"] = predict_frame(boosters["probe"], data.meta, holdout)
            for d in decays:
                for base in ("evaluated", "probe"):
                    name = f"leaf_refit_{base}_{d:g}"
                    t = time.perf_counter()
                    boosters[name] = leaf_refit(boosters[base], data, all_rows, d, best)
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
                    if name not in names:
                        names.append(name)
                # the probe's leaves refitted on the evaluated model's rows: a cheap
                # evaluator (its holdout error against the evaluated model's)
                name = f"probe_refit_before_holdout_{d:g}"
                t = time.perf_counter()
                evaluator = leaf_refit(boosters["probe"], data, data.before_holdout, d, best)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
                in_holdout[name] = predict_frame(evaluator, data.meta, holdout)
            for share in shares:
                name = f"warm_refit_{share:g}"
                t = time.perf_counter()
                trees = max(1, round(share * best))
                boosters[name] = warm_refit(boosters["evaluated"], scores, data, trees)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
                if name not in names:
                    names.append(name)
            for share in probe_shares:
                # the evaluated model as the probe's chosen trees continued on the inner
                # window's rows, then continued again on all history like the artifact
                name = f"probe_continued_{share:g}"
                t = time.perf_counter()
                evaluator, booked = probe_continued(boosters["probe"], data, best, share)
                final_trees = max(1, round(spec.model.final_fit_tree_share * best))
                boosters[name] = warm_refit(evaluator, None, data, final_trees)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t
                seconds[name + "_boosting"] = seconds.get(name + "_boosting", 0.0) + booked
                in_holdout[name] = predict_frame(evaluator, data.meta, holdout)
                if name not in names:
                    names.append(name)
            holdout_scored.append(in_holdout)
            frame = future[["date", "target"]].copy()
            for name in names:
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
        for name in names:
            m = regression_metrics(actual, rows[name], floor=spec.model.metric_floor)
            entry[name] = {k: round(m[k], 5) for k in ("wape", "rmspe", "mape")}
        held = pd.concat(holdout_scored, ignore_index=True)
        entry["holdout_of_the_history"] = {
            name: {
                k: round(v, 5)
                for k, v in regression_metrics(
                    held["target"].clip(lower=0), held[name], floor=spec.model.metric_floor
                ).items()
                if k in ("wape", "rmspe", "mape")
            }
            for name in held.columns.drop(["date", "target"])
        }
        boosting = seconds["probe"] + seconds["evaluated"] + seconds["refit"]
        entry["refit_share_of_fit_seconds"] = round(seconds["refit"] / boosting, 3)
        report["cutoffs"].append(entry)
        print(json.dumps(entry, indent=1), flush=True)
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
