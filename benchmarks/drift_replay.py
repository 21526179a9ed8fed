"""Benchmark: false alarms and detection delay of the monitoring on real data (rossmann-100).

Replays the last ``--weeks`` weeks of ../shared/data/rossmann-100 against per-region models
trained on everything before them (the reference), and runs the whole monitoring on the
inputs ``drift_report`` builds (``mlops_assets.monitoring``: ``monitoring_inputs``, then
nannyml drift, fleet gaps, PCA, data quality, DLE, attribution NDCG, realized quality and
the fleet alert rules) once as shipped and once per injected drift. Drift is injected into
the source files of one region from week ``--drift-week`` on, then ingested and
conditioned like any data:

- ``weather_shift``: the region's temperatures + ``--weather-shift`` degrees C (a broken or
  swapped weather feed);
- ``level_shift``: the region's sales x ``--level-factor`` (a competitor closes, a
  catchment changes): inputs unchanged for 42 days, so only realized performance sees it;
- ``promo_loss``: promotions stop lifting the region's sales (promo-day sales divided by
  each store's promo lift before the reference end): concept drift, inputs unchanged.

Prints and writes ``benchmarks/results/drift_replay.json``: per scenario and signal, the
false-alarm rate (alerted region-weeks of the regions without drift) and, for the drift
region, the weeks (1 = the first drifted week) in which each signal alerted.

    # the DLE learning from a year of backtest folds (results/drift_replay.json)
    .venv/bin/python benchmarks/drift_replay.py --cache /tmp/replay-models \
        --backtest-folds 8                                                      # ~17 min
    # the same models, the DLE learning from the holdout alone (the default since the
    # backtest did not pay here)
    .venv/bin/python benchmarks/drift_replay.py --cache /tmp/replay-models \
        --backtest-folds 0 --out benchmarks/results/drift_replay_holdout_dle.json
    # nannyml's drift against the reference's last year (the default) or all of it
    .venv/bin/python benchmarks/drift_replay.py --cache /tmp/replay-models --backtest-folds 0 \
        --monitoring '{"drift_reference_weeks": null}' \
        --out benchmarks/results/drift_replay_reference_all.json
    .venv/bin/python benchmarks/drift_replay.py --cache /tmp/replay-models --backtest-folds 0 \
        --monitoring '{"drift_reference_weeks": 52}' \
        --out benchmarks/results/drift_replay_reference_52w.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd

from mlops_assets.conditioning import feature_set, write_features
from mlops_assets.landing import drop_dataset, ingest_file, scan_landing
from mlops_assets.metrics import regression_metrics
from mlops_assets.monitoring import (
    ALERT_SIGNALS,
    OUTSIDE_TRAINING_RANGE,
    fleet_alerts,
    monitoring_inputs,
    region_drift,
)
from mlops_assets.spec import load_spec
from mlops_assets.training import (
    design_array,
    prepare_region,
    read_reference_csv,
    read_reference_parquet,
    train_region_model,
    week_start,
)
from mlops_assets.warehouse import connect, regions_with_sales
from mlops_assets.workspace import Workspace

ROSSMANN = Path(__file__).resolve().parents[2] / "shared" / "data" / "rossmann-100"
RESULTS = Path(__file__).parent / "results" / "drift_replay.json"
WEATHER_FILE = {"BY": "Bayern.csv", "HE": "Hessen.csv", "NW": "NordrheinWestfalen.csv"}
TEMPERATURES = ("Max_TemperatureC", "Mean_TemperatureC", "Min_TemperatureC")


def build_workspace(source: Path, root: Path, spec, regions: list[str] | None = None):
    """Ingest ``source`` into a workspace at ``root`` and condition features."""
    ws = Workspace(root)
    drop_dataset(spec, source, ws)
    for lf in scan_landing(ws, spec):
        ingest_file(ws, spec, lf.source, lf.relpath)
    known = regions_with_sales(ws, spec)
    with connect(ws, spec, shared=False) as con:
        for region in regions or known:
            write_features(con, spec, region, ws.data, ws.features_key(region))
        fs = feature_set(con, spec)
        weather = con.execute("SELECT * FROM weather").df()
    return ws, known, fs, weather


def region_training_rows(source: Path, root: Path, spec, region: str):
    """One region's training inputs (float32, as training builds its Datasets), its log1p
    target (returns clipped) and the LightGBM parameters its training uses, from ``source``
    ingested and conditioned into a workspace at ``root``."""
    ws, _, fs, _ = build_workspace(source, root, spec, regions=[region])
    features = pd.read_parquet(ws.features_path(region))
    data = prepare_region(features, fs.restricted_to(features.columns), spec)
    X = design_array(data.train, data.columns, data.categories)
    y = np.log1p(np.clip(data.train["target"].to_numpy(dtype=float), 0, None))
    return X, y, dict(data.meta["params"])


def region_model(ws, fs, spec, region: str, t0: pd.Timestamp, cache: Path | None):
    """The region's model trained on data up to ``t0`` (cached as LightGBM text + JSON,
    with its monitoring reference as Parquet, or as CSV in caches written before; a cache
    without one has ``reference`` None)."""
    folder = cache / f"{spec.name}-{t0.date()}-{region}" if cache else None
    if folder and (folder / "model.txt").exists():
        meta = json.loads((folder / "meta.json").read_text())
        reference = None
        if (folder / "reference.parquet").exists():
            reference = read_reference_parquet((folder / "reference.parquet").read_bytes())
        elif (folder / "reference.csv").exists():
            text = (folder / "reference.csv").read_text()
            reference = read_reference_csv(text, meta["categorical"])
        return SimpleNamespace(
            booster=lgb.Booster(model_str=(folder / "model.txt").read_text()),
            meta=meta,
            holdout=pd.read_parquet(folder / "holdout.parquet"),
            metrics=json.loads((folder / "metrics.json").read_text()),
            reference=reference,
        )
    feats = ws.read_features(region)
    feats = feats[(~feats["is_future"].astype(bool)) & (pd.to_datetime(feats["date"]) <= t0)]
    trained = train_region_model(feats, fs.restricted_to(feats.columns), spec)
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.txt").write_text(trained.model_text)
        (folder / "meta.json").write_text(trained.meta_json())
        trained.holdout.to_parquet(folder / "holdout.parquet")
        (folder / "metrics.json").write_text(json.dumps(trained.metrics, default=str))
        (folder / "reference.parquet").write_bytes(trained.reference_parquet())
    return trained


def inject(source: Path, dest: Path, kind: str, region: str, start: pd.Timestamp, args) -> None:
    """Copy the dataset to ``dest`` with ``kind`` drift in ``region`` from ``start``."""
    shutil.copytree(source, dest)
    if kind == "weather_shift":
        path = dest / "weather" / WEATHER_FILE[region]
        w = pd.read_csv(path, sep=";")
        after = pd.to_datetime(w["Date"]) >= start
        for col in TEMPERATURES:
            w.loc[after, col] = w.loc[after, col] + args.weather_shift
        w.to_csv(path, sep=";", index=False)
        return
    stores = pd.read_csv(source / "store_states.csv")
    mine = set(stores.loc[stores["State"] == region, "Store"])
    train = pd.read_csv(source / "train.csv", dtype={"StateHoliday": str})
    date = pd.to_datetime(train["Date"])
    rows = train["Store"].isin(mine) & (date >= start)
    if kind == "level_shift":
        train.loc[rows, "Sales"] = (train.loc[rows, "Sales"] * args.level_factor).round()
    elif kind == "promo_loss":
        before = train[train["Store"].isin(mine) & (date < start) & (train["Sales"] > 0)]
        means = before.groupby(["Store", "Promo"])["Sales"].mean().unstack()
        lift = (means[1] / means[0]).rename("lift")
        promo_rows = rows & (train["Promo"] == 1)
        factor = train.loc[promo_rows, "Store"].map(lift).fillna(1.0)
        train.loc[promo_rows, "Sales"] = (train.loc[promo_rows, "Sales"] / factor).round()
    train.to_csv(dest / "train.csv", index=False)


def monitor(ws, regions, weather, models, spec, end, previous) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every region's monitoring tables and weekly realized quality up to ``end``, through
    the inputs ``drift_report`` builds (``monitoring_inputs``: the reference saved with the
    model, the holdout forecasts in its metadata, the weeks after its training window)."""
    tables, realized = [], []
    # every replayed week has its actuals: the history up to ``end``, no horizon rows (the
    # weather files run months past the sales; their gap would add weeks without sales)
    weather = weather[pd.to_datetime(weather["date"]) <= end]
    for region in regions:
        trained = models[region]
        feats = ws.read_features(region)
        dates = pd.to_datetime(feats["date"])
        feats = feats[~feats["is_future"].astype(bool) & (dates <= end)]
        inputs = monitoring_inputs(
            region,
            feats,
            trained.booster,
            trained.meta,
            spec,
            weather,
            saved_reference=trained.reference,
        )
        tables.append(
            region_drift(inputs, trained.booster, trained.meta, spec, previous.get(region))
        )
        previous[region] = tables[-1]
        scored = inputs.analysis[inputs.analysis["y_true"].notna()]
        for week, chunk in scored.groupby(week_start(scored["date"])):
            m = regression_metrics(chunk["y_true"], chunk["y_pred"], floor=spec.model.metric_floor)
            realized.append({"region": region, "week_start": week, "n_rows": len(chunk), **m})
    return pd.concat(tables, ignore_index=True), pd.DataFrame(realized)


def summarise(alerts: pd.DataFrame, drift_region: str | None, drift_week0: pd.Timestamp):
    weeks = sorted(alerts["week_start"].unique())
    index = {w: i + 1 for i, w in enumerate(weeks)}
    out = {}
    for signal in ALERT_SIGNALS:
        a = alerts[alerts["signal"] == signal]
        others = a[a["region"] != drift_region]
        entry = {
            "false_alarm_rate": float(others["alert"].mean()) if len(others) else None,
            "false_alarm_regions": sorted(others.loc[others["alert"], "region"].unique()),
            "region_weeks": int(len(others)),
        }
        if drift_region:
            mine = a[(a["region"] == drift_region) & a["alert"]]
            first = index[pd.Timestamp(drift_week0)]
            entry["drift_region_alert_weeks"] = [
                index[w] - first + 1 for w in sorted(mine["week_start"])
            ]
            after = [w for w in entry["drift_region_alert_weeks"] if w >= 1]
            entry["detection_delay_weeks"] = after[0] if after else None
        out[signal] = entry
    return out


def outside_summary(tables: pd.DataFrame, drift_region: str | None, drift_week0: pd.Timestamp):
    """How often the DLE estimate was marked blind (a row's weather or promotions past the
    training range): region-weeks of the other regions, and the drifted region's weeks
    counted from the first drifted week like the alerts."""
    share = tables[
        (tables["signal"] == "estimated_performance")
        & (tables["feature"] == OUTSIDE_TRAINING_RANGE)
    ]
    marked = share[share["value"] > 0]
    others = share[share["region"] != drift_region]
    out = {
        "other_region_weeks": int(len(others)),
        "other_region_weeks_marked": int((others["value"] > 0).sum()),
        "other_regions_marked": sorted(
            marked.loc[marked["region"] != drift_region, "region"].unique()
        ),
        "max_share_other_regions": float(others["value"].max()) if len(others) else None,
    }
    if drift_region:
        weeks = sorted(share["week_start"].unique())
        first = weeks.index(pd.Timestamp(drift_week0))
        mine = marked[marked["region"] == drift_region]
        out["drift_region_marked_weeks"] = [
            weeks.index(w) - first + 1 for w in sorted(mine["week_start"])
        ]
    return out


def estimate_summary(
    tables: pd.DataFrame, drift_region: str | None, drift_week0: pd.Timestamp
) -> dict:
    """The DLE estimate against the realized RMSE, per region: the mean over the drifted
    weeks over the mean before them (1 = no change), and the rank correlation of the
    weekly estimate with the weekly realized RMSE (does it move where the error does?). For
    the drift region also week by week."""
    est = tables[(tables["signal"] == "estimated_performance") & (tables["feature"] == "rmse")]
    after = pd.to_datetime(est["week_start"]) >= pd.Timestamp(drift_week0)

    def ratio(rows: pd.DataFrame, column: str) -> float:
        late = after.loc[rows.index]
        before, later = rows.loc[~late, column].mean(), rows.loc[late, column].mean()
        return round(float(later / before), 3) if before > 0 else float("nan")

    tracking = {
        region: round(float(rows["value"].corr(rows["realized"], method="spearman")), 3)
        for region, rows in est.groupby("region")
    }
    out = {
        "after_over_before": {
            region: {"estimated": ratio(rows, "value"), "realized": ratio(rows, "realized")}
            for region, rows in est.groupby("region")
        },
        "weekly_rank_correlation": tracking,
        "weekly_rank_correlation_median": round(float(np.nanmedian(list(tracking.values()))), 3),
    }
    if drift_region:
        mine = est[est["region"] == drift_region].sort_values("week_start")
        out["drift_region_weekly"] = {
            "week_start": [str(pd.Timestamp(w).date()) for w in mine["week_start"]],
            "estimated": [round(float(v), 1) for v in mine["value"]],
            "realized": [round(float(v), 1) for v in mine["realized"]],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=ROSSMANN)
    ap.add_argument("--weeks", type=int, default=20)
    ap.add_argument("--drift-region", default="BY")
    ap.add_argument("--drift-week", type=int, default=9, help="1 = first replayed week")
    ap.add_argument("--weather-shift", type=float, default=5.0)
    ap.add_argument("--level-factor", type=float, default=1.3)
    ap.add_argument("--scenarios", default="none,weather_shift,level_shift,promo_loss")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--cache", type=Path, help="keep trained models here between runs")
    ap.add_argument("--attribution-rows", type=int, default=30, help="Shapley rows a week")
    ap.add_argument("--dump", type=Path, help="write each scenario's tables and alerts here")
    ap.add_argument(
        "--backtest-folds",
        type=int,
        help="monitoring.estimate_backtest_folds (0: the DLE learns from the holdout alone)",
    )
    ap.add_argument(
        "--monitoring",
        default="{}",
        help="JSON of spec monitoring settings to try, e.g. '{\"dle_top_features\": 8}'",
    )
    args = ap.parse_args()
    if not args.source.is_dir():
        raise SystemExit(f"rossmann-100 not found at {args.source}")
    spec = load_spec("rossmann")
    overrides = {
        "attribution_sample_rows": args.attribution_rows or None,
        "estimate_backtest_folds": args.backtest_folds,
        **json.loads(args.monitoring),
    }
    spec = spec.model_copy(update={"monitoring": spec.monitoring.with_overrides(**overrides)})
    started = time.perf_counter()
    end = pd.Timestamp("2015-07-26")  # the last complete Monday..Sunday week of the data
    t0 = end - pd.Timedelta(weeks=args.weeks)  # a Sunday: reference ends here
    drift_start = t0 + pd.Timedelta(days=1 + 7 * (args.drift_week - 1))
    report = {
        "reference_end": str(t0.date()),
        "replay": [str((t0 + pd.Timedelta(days=1)).date()), str(end.date())],
        "weeks": args.weeks,
        "drift_region": args.drift_region,
        "drift_start": str(drift_start.date()),
        "settings": spec.monitoring.model_dump(),
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="drift-replay-") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        ws, regions, fs, weather = build_workspace(args.source, tmp / "base", spec)
        print(f"ingest + features: {time.perf_counter() - t:.0f} s, {len(regions)} regions")
        t = time.perf_counter()
        models = {}
        for region in regions:
            models[region] = region_model(ws, fs, spec, region, t0, args.cache)
        print(f"training at {t0.date()}: {time.perf_counter() - t:.0f} s")
        previous: dict = {}  # unchanged weeks reuse their Shapley values across scenarios
        holdout_error = {r: m.metrics["model"]["mape"] for r, m in models.items()}
        # the label-free alternative (monitoring.quality_signal: estimated) on the same
        # tables: the DLE estimate against each model's holdout RMSE
        holdout_rmse = {r: m.metrics["model"]["rmse"] for r, m in models.items()}
        estimated = spec.monitoring.model_copy(update={"quality_signal": "estimated"})
        for scenario in args.scenarios.split(","):
            t = time.perf_counter()
            if scenario == "none":
                sws, sweather, drift_region = ws, weather, None
            else:
                src = tmp / f"src-{scenario}"
                inject(args.source, src, scenario, args.drift_region, drift_start, args)
                sws, _, _, sweather = build_workspace(
                    src, tmp / scenario, spec, regions=[args.drift_region]
                )
                for region in regions:
                    if region != args.drift_region:
                        shutil.copy(ws.features_path(region), sws.features_path(region))
                drift_region = args.drift_region
            tables, realized = monitor(sws, regions, sweather, models, spec, end, previous)
            alerts = fleet_alerts(tables, realized, holdout_error, spec.monitoring)
            summary = summarise(alerts, drift_region, drift_start)
            report["scenarios"][scenario] = summary
            seconds = round(time.perf_counter() - t, 1)  # ingest + monitoring
            print(f"\n== {scenario} ({seconds:.0f} s)")
            if args.dump:
                args.dump.mkdir(parents=True, exist_ok=True)
                tables.to_parquet(args.dump / f"{scenario}.tables.parquet")
                alerts.to_parquet(args.dump / f"{scenario}.alerts.parquet")
                realized.to_parquet(args.dump / f"{scenario}.realized.parquet")
            for signal, e in summary.items():
                rate = e["false_alarm_rate"]
                print(
                    f"  {signal:20s} false alarms "
                    f"{'n/a' if rate is None else f'{rate:.3f}'} {e['false_alarm_regions']} "
                    f"drift weeks {e.get('drift_region_alert_weeks')}"
                )
            by_estimate = fleet_alerts(tables, realized, holdout_rmse, estimated)
            report["scenarios"][scenario]["_estimated_model_quality"] = summarise(
                by_estimate, drift_region, drift_start
            )["model_quality"]
            report["scenarios"][scenario]["_seconds"] = seconds
            raw = alerts[alerts["raw"]].groupby("signal").size().to_dict()
            report["scenarios"][scenario]["_raw_findings"] = {k: int(v) for k, v in raw.items()}
            est = tables[
                (tables["signal"] == "estimated_performance") & (tables["feature"] == "rmse")
            ]
            rel = (est["value"] - est["realized"]).abs() / est["realized"]
            report["scenarios"][scenario]["_dle_rmse_abs_rel_error_median"] = float(
                np.nanmedian(rel)
            )
            report["scenarios"][scenario]["_estimate_outside_training_range"] = outside_summary(
                tables, drift_region, drift_start
            )
            report["scenarios"][scenario]["_estimate_vs_realized"] = estimate_summary(
                tables, drift_region or args.drift_region, drift_start
            )
            moved = report["scenarios"][scenario]["_estimate_vs_realized"]["after_over_before"]
            print(
                f"  DLE median |est-real|/real {np.nanmedian(rel):.3f}, weekly rank correlation "
                f"with the realized RMSE (median over regions) "
                f"{report['scenarios'][scenario]['_estimate_vs_realized']['weekly_rank_correlation_median']}"
                "; after/before drift week: "
                + ", ".join(
                    f"{r} est x{m['estimated']} real x{m['realized']}" for r, m in moved.items()
                )
            )
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["commit"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {args.out} ({report['wall_seconds']} s)")


if __name__ == "__main__":
    main()
