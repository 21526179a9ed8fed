"""Benchmark: what training's evaluation fit buys over judging the early-stopping probe.

Training fits a region's model three times (``mlops_assets.training``): (1) the probe,
fitted on the training window with early stopping on the inner validation window, which
picks the number of trees; (2) the evaluation model, fitted on everything before the
holdout, whose holdout metrics the gate judges and monitoring's error model learns from;
(3) the artifact, refitted on all history. Fit (2) costs about a third of the boosting
(``refit_value.json``), and its metrics are an estimate of what matters: the error of
the artifact (3) on the days after the history. The probe (1) forecasts the same holdout
out of sample (the feature table's target lags all end ``horizon`` periods back), from
one horizon less of training data.

This measures, at each cutoff ``C`` (history = feature rows dated <= C), per region: the
holdout metric of the probe and of the evaluation model, and the artifact's realized
metric on C+1 .. C+horizon. The better estimate is the one closer to the realized metric
(absolute error per region, median over regions and cutoffs) and ranking the regions as
the realized metric does (Spearman over regions per cutoff); the gate's threshold test
(``gate.max_value``) is compared too. Pooled metrics per cutoff are printed as well.

    .venv/bin/python benchmarks/evaluation_fit.py --source-dir ../shared/data/rossmann-100

Writes ``benchmarks/results/evaluation_fit.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset
from refit_value import CUTOFFS, fits  # the three fits exactly as training makes them

from mlops_assets.metrics import regression_metrics
from mlops_assets.spec import load_spec
from mlops_assets.training import eligible_rows, predict_frame

RESULTS = Path(__file__).parent / "results" / "evaluation_fit.json"
ESTIMATES = ("probe", "evaluated")


def scoreable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[eligible_rows(frame) & frame["target"].notna()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-dir", type=Path, required=True)
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--cutoffs", default=",".join(CUTOFFS))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec(args.spec)
    metric, floor = spec.gate.metric, spec.model.metric_floor
    span = pd.Timedelta(days=spec.horizon * spec.period_days)
    report: dict = {"spec": spec.name, "source": str(args.source_dir), "metric": metric}
    with tempfile.TemporaryDirectory(prefix="evaluation-fit-") as tmp:
        ws, regions, fs_all, _ = build_workspace(args.source_dir, Path(tmp) / "ws", spec)
        tables = {r: ws.read_features(r) for r in regions}
    per_region, pooled, seconds = [], [], {"probe": 0.0, "evaluated": 0.0, "refit": 0.0}
    for cutoff in (pd.Timestamp(c) for c in args.cutoffs.split(",")):
        holdouts, futures = [], []
        for region, table in tables.items():
            table = table.loc[~table["is_future"].astype(bool)].copy()
            table["date"] = pd.to_datetime(table["date"])
            history = table[table["date"] <= cutoff]
            future = scoreable(table[(table["date"] > cutoff) & (table["date"] <= cutoff + span)])
            if future.empty:
                continue
            fs = fs_all.restricted_to(history.columns)
            data, boosters, took = fits(history, fs, spec)
            for name, s in took.items():
                seconds[name] += s
            holdout = scoreable(data.hist[data.hist["date"] >= data.split.holdout_start])
            h = holdout[["target"]].assign(region=region)
            for name in ESTIMATES:
                h[name] = predict_frame(boosters[name], data.meta, holdout)
            f = future[["target"]].assign(region=region)
            f["refit"] = predict_frame(boosters["refit"], data.meta, future)
            holdouts.append(h)
            futures.append(f)
            row = {"cutoff": str(cutoff.date()), "region": region}
            for name in ESTIMATES:
                row[name] = regression_metrics(h["target"], h[name], floor=floor)[metric]
            row["realized"] = regression_metrics(f["target"], f["refit"], floor=floor)[metric]
            per_region.append(row)
        h, f = pd.concat(holdouts), pd.concat(futures)
        entry = {"cutoff": str(cutoff.date())}
        for name in ESTIMATES:
            entry[f"{name}_holdout"] = round(
                regression_metrics(h["target"], h[name], floor=floor)[metric], 5
            )
        entry["realized"] = round(
            regression_metrics(f["target"], f["refit"], floor=floor)[metric], 5
        )
        pooled.append(entry)
        print(f"cutoff {entry}", flush=True)
    rows = pd.DataFrame(per_region)
    summary = {}
    for name in ESTIMATES:
        err = (rows[name] - rows["realized"]).abs()
        by_cutoff = rows.groupby("cutoff")[[name, "realized"]].corr(method="spearman")
        spearman = [by_cutoff.loc[(c, name), "realized"] for c in rows["cutoff"].unique()]
        same_gate = (rows[name] <= spec.gate.max_value) == (rows["realized"] <= spec.gate.max_value)
        summary[name] = {
            "median_abs_error": round(float(err.median()), 5),
            "mean_abs_error": round(float(err.mean()), 5),
            "mean_bias": round(float((rows[name] - rows["realized"]).mean()), 5),
            "spearman_by_cutoff": [round(float(v), 3) for v in spearman],
            "threshold_agrees_share": round(float(same_gate.mean()), 3),
        }
    report.update(
        pooled=pooled,
        summary=summary,
        fit_seconds={k: round(v, 1) for k, v in seconds.items()},
        evaluated_share_of_fit_seconds=round(seconds["evaluated"] / sum(seconds.values()), 3),
        regions=rows.round(5).to_dict(orient="records"),
        commit=subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    )
    print(json.dumps({k: report[k] for k in ("summary", "fit_seconds")}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
