"""Benchmark: the whole platform at scale through Dagster, the same calls directly, and a peer.

One run of ``--rows`` (a preset) does, on one generated dataset (sample spec, parquet):

1. Through Dagster as a user runs it (``benchmarks/deployment.py``): a real
   ``dagster-daemon`` on a temporary DAGSTER_HOME with the repo's dagster.yaml and
   MLOPS_ENV=dev; the files are dropped into the landing zone and the sensors ingest them
   and build every region's features; then the asset backfill of region_model + forecast
   over every region that the UI sends (GraphQL ``launchPartitionBackfill`` to a
   ``dagster-webserver`` on 127.0.0.1; several regions a run: ``MLOPS_REGIONS_PER_RUN``;
   train, gate, register, forecast every region); then one monitoring pass
   (an asset backfill of realized_performance and drift_report, several regions a run,
   then the monitoring sensor's ``monitoring_job``). Stage wall
   times come from the instance's run records and step stats; peak RSS of every process of
   the deployment is sampled every 0.5 s.
2. Directly (``benchmarks/direct.py``): the same library calls in this process on a copy of
   the same landing files; Dagster's overhead = Dagster stage wall - direct wall.
3. The peer (unless ``--no-peer``; needs ``make bench-env``): mlforecast with the spec's
   LightGBM parameters and our number of trees, equivalent features, on the same rows and
   split, per region; time ratio and WAPE of both on the same holdout rows.

Writes the ``scale``, ``peer`` and ``curve`` sections of ``benchmarks/results.json`` (other
sections kept) and regenerates ``BENCHMARKS.md``. ``--curve 1M,4M,10M`` runs several
presets in a row (``scale``/``peer`` then hold the largest one). Not part of ``make test``.

    .venv/bin/python benchmarks/scale.py --rows 0.2M          # validation size, ~15 min
    .venv/bin/python benchmarks/scale.py --rows 40M           # 10,000 series, 20 regions
    .venv/bin/python benchmarks/scale.py --rows 40M --no-direct   # the Dagster pass only
    .venv/bin/python benchmarks/scale.py --curve 1M,4M,10M,40M
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployment import (  # noqa: E402
    BenchDeployment,
    failed,
    run_overheads,
    run_window,
    span,
    step_sum,
)
from direct import DirectPipeline, peak_rss_gb  # noqa: E402
from report import load_results, provenance, update_results  # noqa: E402

from mlops_assets.metrics import regression_metrics  # noqa: E402
from mlops_assets.sample_data import SampleConfig, generate  # noqa: E402

# rows -> generator shape (regions, stores, departments, days): stores x departments series
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "0.2M": (5, 50, 4, 1000),  # validation size
    "1M": (20, 250, 4, 1000),
    "4M": (20, 1000, 4, 1000),
    "10M": (20, 1250, 4, 2000),
    "40M": (20, 2500, 4, 4000),  # 10,000 series over 20 regions, about 11 years
}
STAGE_DEFINITIONS = (
    "ingest = the landing sensor's ingest_job runs (first run queued -> last run ended); "
    "features = the region sensor's features_job runs, likewise; training = the runs of "
    "the asset backfill of region_model + forecast over every region that the UI sends "
    "(several regions a run: training, gate, registry, monitoring reference, then "
    "scoring), likewise; scoring = the forecasts' compute_s summed over regions (a part "
    "of training, not additive; one process's seconds, like the direct figure); "
    "monitoring = the asset backfill of the monitoring assets (realized_performance, "
    "drift_report; several regions a run; the features and forecasts the training's "
    "backfill wrote are not built again, as they were up to 80150e0 with the refresh's "
    "features and forecast) plus the monitoring sensor's monitoring_job run (the sensor's "
    "wait in between is monitoring_sensor_latency_s). Sensor "
    "intervals (landing, region and monitoring 10 s) are inside total_wall_s, not inside "
    "the stages, as is the backfill daemon's 30 s loop before it launches a backfill's runs; "
    "a backfill counts as done once every partition was launched and every run ended (the "
    "daemon marks it done on its next loop, which total_wall_s does not wait for)."
    " Direct = the same library calls in one process, one region after another; overhead = "
    "Dagster wall - direct wall (training: minus direct training + scoring, as the job does "
    "both). Dagster runs two runs at a time (dagster.yaml), the direct pass one region at a "
    "time, so the overhead can be negative."
)


def parse_rows(text: str) -> str:
    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"--rows must be one of {sorted(PRESETS)}")
    return text


def dagster_pass(
    source: Path, tmp: Path, n_regions: int, timeout: float, spec: str = "sample"
) -> dict:
    """Drop -> sensors (ingest, features) -> training backfill -> monitoring pass."""
    out: dict = {}
    with BenchDeployment(tmp / "dagster", spec=spec) as dep:
        t0 = time.time()
        dep.start_daemon()
        files = dep.drop(source)
        print(f"  dropped {len(files)} file(s); waiting for the sensors' runs", flush=True)
        dep.wait_for_sensor_runs(len(files), n_regions, timeout)
        t_sensors = time.time()
        print(f"  ingest + features done after {t_sensors - t0:.1f} s", flush=True)
        train_id, train_wait = dep.asset_backfill(["region_model", "forecast"], timeout)
        print(f"  training backfill {train_id} done in {train_wait:.1f} s", flush=True)
        mon = dep.monitoring_pass(timeout)
        print(f"  monitoring pass done in {mon['total_s']:.1f} s", flush=True)
        total = time.time() - t0

        ingest = dep.runs("ingest_job", steps=True)
        feats = dep.runs("features_job", steps=True)
        train = dep.backfill_runs(train_id, steps=True)
        monitor_bf = dep.backfill_runs(mon["monitoring_backfill"], steps=True)
        monitor = dep.runs("monitoring_job", steps=True)
        stage_s = {
            "ingest": span(ingest),
            "features": span(feats),
            "training": span(train),
            "scoring": dep.compute_seconds(train, "forecast"),
            # the sensor's wait between the last monitoring run and monitoring_job is left out
            "monitoring": (span(monitor_bf) or 0) + (span(monitor) or 0),
        }
        monitored_end = max((r.end for r in monitor_bf if r.end), default=None)
        out["monitoring_sensor_latency_s"] = (
            round(min(r.created for r in monitor) - monitored_end, 2)
            if monitor and monitored_end
            else None
        )
        out["backfill_launch_waits_s"] = {
            "training": dep.backfill_launch_wait(train_id, train),
            "monitoring": dep.backfill_launch_wait(mon["monitoring_backfill"], monitor_bf),
        }
        out["stage_s"] = {k: round(v, 2) if v is not None else None for k, v in stage_s.items()}
        out["total_wall_s"] = round(total, 2)
        out["harness_waits_s"] = {
            "drop_to_features_done": round(t_sensors - t0, 2),
            "train_backfill_command_to_done": round(train_wait, 2),
            "monitoring_pass": round(mon["total_s"], 2),
        }
        out["step_s"] = {
            "ingest_job": step_sum(ingest),
            "features_job": step_sum(feats),
            "training_backfill": step_sum(train),
            "monitoring_backfill": step_sum(monitor_bf),
            "monitoring_job": step_sum(monitor),
        }
        out["run_overheads"] = {
            name: run_overheads(runs)
            for name, runs in (
                ("ingest_job", ingest),
                ("features_job", feats),
                ("training_backfill", train),
                ("monitoring_backfill", monitor_bf),
                ("monitoring_job", monitor),
            )
        }
        # where the machine's two cores went in each stage's window: the runs' work,
        # Dagster's other processes, the harness, idle
        windows = {
            "ingest": run_window(ingest),
            "features": run_window(feats),
            "training": run_window(train),
            "monitoring_backfill": run_window(monitor_bf),
            "total": (t0, t0 + total),
        }
        out["cpu_s"] = {
            name: dep.sampler.cpu_seconds(*window)
            for name, window in windows.items()
            if window is not None
        }
        out["failed_runs"] = failed(ingest + feats + train + monitor_bf + monitor)
        out["regions_partitions"] = len(dep.region_keys())
    out["rss"] = dep.sampler.figures()
    return out


def peer_mlforecast(direct: DirectPipeline) -> dict:
    """mlforecast per region on the same rows and split as our evaluation model."""
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import ExpandingMean, RollingMean
    from mlforecast.target_transforms import GlobalSklearnTransformer
    from sklearn.preprocessing import FunctionTransformer

    spec = direct.spec
    h = spec.horizon
    params = dict(spec.model.lgbm_params)
    threads = int(params.pop("num_threads", 1))
    seed = int(params.pop("seed", 0))
    dynamic = ["open", "promo", "temperature_c", "precipitation_mm", "event_today"]
    static = ["store", "item", "format", "location", "size_sqm"]
    categorical = ["store", "item", "format", "location"]
    fit_s = predict_s = 0.0
    ours, peer = [], []
    for region, outcome in direct.outcomes.items():
        trained = outcome.trained
        split = trained.split
        f = direct.ws.read_features(region)
        f = f[~f["is_future"].astype(bool)].copy()
        f["ds"] = pd.to_datetime(f["date"])
        f["unique_id"] = f["store"].astype(str) + "|" + f["item"].astype(str)
        f["y"] = f["target"].clip(lower=0).fillna(0.0)
        f = f.sort_values(["unique_id", "ds"], ignore_index=True)
        for c in categorical:
            f[c] = f[c].astype("category")
        f[dynamic] = f[dynamic].fillna(0)
        cols = ["unique_id", "ds", "y", *dynamic, *static]
        train = f.loc[f["ds"] <= split.origin, cols]
        hold = f.loc[f["ds"] >= split.holdout_start]
        model = LGBMRegressor(
            n_estimators=trained.best_iteration,  # the trees our early stopping chose
            n_jobs=threads,
            random_state=seed,
            **params,
        )
        fcst = MLForecast(
            models={"lgbm": model},
            freq="D",
            # every target feature ends at least the horizon back, as ours (no recursion)
            lags=[h, h + 7, h + 14, 364],
            lag_transforms={
                h: [
                    RollingMean(7),
                    RollingMean(28),
                    RollingMean(91),
                    RollingMean(364),
                    ExpandingMean(),
                ],
            },
            date_features=["dayofweek", "day", "month", "dayofyear", "year"],
            target_transforms=[GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1))],
            num_threads=threads,
        )
        start = time.perf_counter()
        fcst.fit(train, static_features=static, dropna=False)
        fit_s += time.perf_counter() - start
        future = fcst.make_future_dataframe(h)
        exog = hold[["unique_id", "ds", *dynamic]]
        future = future.merge(exog, on=["unique_id", "ds"], how="left").fillna(0)
        start = time.perf_counter()
        pred = fcst.predict(h, X_df=future)
        predict_s += time.perf_counter() - start
        pred = pred.merge(future[["unique_id", "ds", "open"]], on=["unique_id", "ds"])
        pred["peer"] = np.where(pred["open"] > 0, pred["lgbm"].clip(lower=0), 0.0)
        mine = trained.holdout.copy()
        mine = mine[mine["eligible"]]
        mine["unique_id"] = mine["store"].astype(str) + "|" + mine["item"].astype(str)
        mine["ds"] = pd.to_datetime(mine["date"])
        both = mine.merge(pred[["unique_id", "ds", "peer"]], on=["unique_id", "ds"], how="left")
        ours.append(both[["actual", "model"]])
        peer.append(both[["actual", "peer"]].fillna({"peer": 0.0}))
    o, p = pd.concat(ours), pd.concat(peer)
    return {
        "fit_s": round(fit_s, 2),
        "predict_s": round(predict_s, 2),
        "ours_wape": regression_metrics(o["actual"], o["model"])["wape"],
        "peer_wape": regression_metrics(p["actual"], p["peer"])["wape"],
        "scored_rows": len(o),
        "regions": len(direct.outcomes),
    }


PEER_NOTES = (
    "Peer: mlforecast (Nixtla) 1.x, one LGBMRegressor per region with the spec's LightGBM "
    "parameters (`model:` block merged over the defaults; one thread) and, per region, the "
    "number of trees our early stopping chose; fitted on the region's history up to the "
    "holdout origin (what our evaluation model is fitted on), forecasting the last `horizon` "
    "days in one go. Features: target lags 42/49/56/364 and rolling means 7/28/91/364 plus "
    "the expanding mean, all ending 42 days back (our leakage rule, so no recursion), "
    "calendar (day of week, day, month, day of year, year), promotion, open, weather and "
    "event of the day as dynamic exogenous inputs, store, item, format, location and size "
    "as static ones; log1p target. Differences: our model also boosts from a lagged level "
    "(init_score), uses more calendar/event distance features and trains only on open "
    "days; the peer trains on closed days too (open is a feature; forecasts of closed days "
    "are set to 0 like ours). Both WAPEs: sum |forecast - actual| / sum actual over the "
    "eligible holdout rows (open days, actual clipped at 0), pooled over all regions. "
    "Time ratio: our Dagster training stage (everything a default training does, incl. "
    "scoring) over the peer's fit time."
)


def run_size(preset: str, args: argparse.Namespace) -> dict:
    regions, stores, depts, days = PRESETS[preset]
    regions = args.regions or regions
    stores = args.stores or stores
    days = args.days or days
    tmp = Path(tempfile.mkdtemp(prefix="mlops-scale-", dir=args.tmp))
    result: dict = {"preset": preset}
    try:
        t = time.perf_counter()
        summary = generate(
            SampleConfig(
                n_regions=regions,
                n_stores=stores,
                n_departments=depts,
                days=days,
                file_format="parquet",
            ),
            tmp / "source",
        )
        result.update(
            rows=summary.n_rows_sales,
            series=stores * depts,
            regions=regions,
            stores=stores,
            departments=depts,
            days=days,
            generate_s=round(time.perf_counter() - t, 2),
            stage_definitions=STAGE_DEFINITIONS,
        )
        print(
            f"[{preset}] generated {summary.n_rows_sales:,} rows, {regions} regions, "
            f"{stores * depts:,} series in {result['generate_s']} s",
            flush=True,
        )
        result.update(dagster_pass(tmp / "source", tmp, regions, args.timeout))
        print(f"[{preset}] Dagster stages: {result['stage_s']}", flush=True)
        if args.no_direct:
            result["direct_caveat"] = (
                "the direct pass and the peer were not run at this size (`--no-direct`: at "
                "40M they would add hours); Dagster's overhead is not measured here and the "
                "`peer` section stays that of the last run with a peer (it names its rows "
                "and commit)"
            )
            result["peak_rss_gb"] = result["rss"]["peak_rss_gb_concurrent_total"]
            return result
        direct = DirectPipeline(tmp / "source", tmp / "direct_ws")
        result["direct_stage_s"] = direct.run_all()
        result["direct_cpu_s"] = direct.stage_cpu_s
        result["direct_peak_rss_gb"] = round(peak_rss_gb(), 3)
        d, s = result["direct_stage_s"], result["stage_s"]
        result["dagster_overhead_s"] = {
            stage: round(s[stage] - ref, 2) if s.get(stage) is not None else None
            for stage, ref in (
                ("ingest", d["ingest"]),
                ("features", d["features"]),
                ("training", d["training"] + d["scoring"]),
                ("scoring", d["scoring"]),
                ("monitoring", d["monitoring"]),
            )
        }
        result["peak_rss_gb"] = max(
            result["rss"]["peak_rss_gb_concurrent_total"], result["direct_peak_rss_gb"]
        )
        if not args.no_peer:
            peer = peer_mlforecast(direct)
            peer["ours_training_s"] = s["training"]
            peer["ours_training_direct_s"] = round(d["training"], 2)
            peer["train_time_ratio"] = round(s["training"] / peer["fit_s"], 2)
            peer["train_time_ratio_direct"] = round(d["training"] / peer["fit_s"], 2)
            peer["notes"] = PEER_NOTES
            peer["rows"] = result["rows"]
            result["peer"] = peer
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=parse_rows, default="1M", help=f"one of {list(PRESETS)}")
    parser.add_argument("--curve", help="comma-separated presets run one after another")
    parser.add_argument("--regions", type=int, help="override the preset's region count")
    parser.add_argument("--stores", type=int, help="override the preset's store count")
    parser.add_argument("--days", type=int, help="override the preset's day count")
    parser.add_argument("--no-peer", action="store_true", help="skip the mlforecast peer")
    parser.add_argument(
        "--no-direct",
        action="store_true",
        help="only the Dagster pass: skip the direct pass and the peer (which needs it)",
    )
    parser.add_argument("--timeout", type=float, default=6 * 3600, help="per phase, seconds")
    parser.add_argument("--tmp", help="directory for the temporary data (default: system)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="write the scale and peer sections even when a larger size is on record",
    )
    args = parser.parse_args()
    if not (args.no_peer or args.no_direct) and importlib.util.find_spec("mlforecast") is None:
        # found out now, not after the Dagster and direct passes (most of an hour at 10M)
        parser.error(
            "the peer needs mlforecast: install the bench group (make bench-env) or pass --no-peer"
        )

    presets = [parse_rows(p.strip()) for p in args.curve.split(",")] if args.curve else [args.rows]
    curve, results = {}, []
    for preset in presets:
        res = run_size(preset, args)
        res.update(provenance())
        results.append(res)
        curve[str(res["rows"])] = {
            **res["stage_s"],
            "total": res["total_wall_s"],
            "preset": preset,
            "command": res["command"],
            "commit": res["commit"],
        }
        for key in (
            "rows",
            "series",
            "regions",
            "total_wall_s",
            "stage_s",
            "direct_stage_s",
            "dagster_overhead_s",
            "peak_rss_gb",
            "rss",
            "failed_runs",
        ):
            print(f"{key:>20}: {res.get(key)}")
        if res.get("peer"):
            print(
                f"{'peer':>20}: "
                + ", ".join(f"{k}={v}" for k, v in res["peer"].items() if k != "notes")
            )
    largest = max(results, key=lambda r: r["rows"])
    sections: dict = {"curve": curve}
    recorded = load_results()
    # the scale and peer sections each describe the largest size measured (the peer is
    # not run at every size: 40M goes without it): a smaller run (a quick check of a
    # change) adds its curve point and leaves them alone
    if largest["rows"] >= recorded.get("scale", {}).get("rows", 0) or args.replace:
        sections["scale"] = {k: v for k, v in largest.items() if k != "peer"}
    else:
        print("a larger size is on record: the scale section is kept (--replace to override)")
    with_peer = [r for r in results if r.get("peer")]
    if with_peer:
        peer_run = max(with_peer, key=lambda r: r["rows"])
        if peer_run["rows"] >= recorded.get("peer", {}).get("rows", 0) or args.replace:
            sections["peer"] = {
                **peer_run["peer"],
                **provenance(),
                "command": peer_run["command"],
            }
        else:
            print("a peer of a larger size is on record: the peer section is kept")
    update_results(sections)
    if any(r["failed_runs"] for r in results):
        print("some runs failed (see failed_runs)")
        sys.exit(1)


if __name__ == "__main__":
    main()
