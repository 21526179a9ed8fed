"""Benchmark: many regions of small data through Dagster, the landing sensor with 10,000
files, and the UI's asset page of ``region_model``.

1. A generated dataset with ``--regions`` regions (default 300; one store per region,
   ``--departments`` departments, ``--days`` days) is dropped into the landing zone of a
   real deployment (``benchmarks/deployment.py``: dagster-daemon, MLOPS_ENV=dev); the
   sensors ingest it and build every region's features (one ``features_job`` run per
   region); then the asset backfill of region_model + forecast over every region that the
   UI sends (GraphQL ``launchPartitionBackfill`` to ``dagster-webserver -h 127.0.0.1``;
   ``MLOPS_REGIONS_PER_RUN`` regions a run, ``--regions-per-run``) trains and forecasts
   every region (spec: the sample spec with a gate that approves every model, see
   ``small_data_spec``; ``--shipped-gate`` keeps the shipped gate).
   Reported: that the backfill completed (runs per status, every region materialized), its
   wall, and the per-region overhead: per run, the launch (RUN_STARTING -> RUN_START:
   process start, code location load) plus the time inside the run outside its steps,
   summed over runs and divided by the regions (time queued for a run slot is reported
   apart). Then one monitoring pass (``deployment.monitoring_pass``: the refresh's assets
   backfilled over every region, several regions a run, then the monitoring sensor's
   ``monitoring_job``), with the refresh's per-region overhead reckoned the same way, and
   the ``monitoring_job`` run's wall and step seconds (the fleet comparison and every
   region's HTML report, in one run).
2. With the daemon stopped, ``--files`` (default 10,000) small sales files of distinct
   content are written into the landing zone and one landing-sensor tick is evaluated in
   this process against the deployment's instance (``local_driver.evaluate_sensor``: the
   sensor function as the daemon calls it, without the gRPC hop): the first tick (every
   file new: hashed) and the next one (cursor of the first). The target is < 5 s.
3. ``dagster-webserver -h 127.0.0.1`` on the same instance answers the queries the UI's
   asset page of ``region_model`` sends for its partitions (the UI's own
   ``PartitionHealthQuery``, copied from the 1.13 webapp bundle) and an asset-details query
   (definition, partition stats, latest materialization); each is timed ``--repeat`` times.

Writes the ``many_regions`` section of ``benchmarks/results.json`` and regenerates
``BENCHMARKS.md``. Not part of ``make test``.

    .venv/bin/python benchmarks/many_regions.py                 # 300 regions, 10,000 files
    .venv/bin/python benchmarks/many_regions.py --regions 20 --files 2000   # validation size
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployment import (  # noqa: E402
    REFRESH_ASSETS,
    BenchDeployment,
    failed,
    run_overheads,
    span,
)
from report import REPO_ROOT, provenance, update_results  # noqa: E402

from mlops_assets.sample_data import SampleConfig, generate  # noqa: E402
from mlops_assets.settings import DEFAULT_REGIONS_PER_RUN  # noqa: E402

# the UI's own query for the partition bar of an asset page (dagster-webserver 1.13 bundle)
PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses {
          ranges { status startTime endTime startKey endKey }
        }
        ... on DefaultPartitionStatuses {
          materializedPartitions
          materializingPartitions
          failedPartitions
        }
      }
    }
  }
}
"""

# what the asset page header and overview show: definition, partition stats, the latest
# materialization with its metadata keys
ASSET_DETAILS_QUERY = """
query AssetDetails($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      description
      groupName
      isPartitioned
      partitionStats { numMaterialized numMaterializing numFailed numPartitions }
      assetChecksOrError { ... on AssetChecks { checks { name description blocking } } }
    }
  }
  assetOrError(assetKey: $assetKey) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        partition
        timestamp
        metadataEntries { label }
      }
    }
  }
}
"""


def small_data_spec(tmp: Path) -> Path:
    """The sample spec with a gate that approves every model: a region of one store rarely
    beats the historical average by 40% (or stays under 45% MAPE), its model would be
    rejected, the forecast step skipped and the run marked failed (Dagster >= 1.13.22,
    #34219). The gate's checks still run; every other setting is the sample spec's."""
    data = yaml.safe_load((REPO_ROOT / "mlops_assets" / "specs" / "sample.yaml").read_text())
    data["gate"] = {
        **(data.get("gate") or {}),
        "max_value": 100.0,
        "min_reduction_vs_baseline": -100.0,
        "require_beats_seasonal_naive": False,
    }
    path = tmp / "sample_small_data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def models_by_status(dep: BenchDeployment) -> dict[str, int]:
    """Status of each region's newest registered model version."""
    from mlops_assets.registry import ModelRegistry
    from mlops_assets.workspace import Workspace

    registry = ModelRegistry.for_workspace(Workspace(dep.ws_root))
    out: dict[str, int] = {}
    for region in dep.region_keys():
        versions = registry.versions(region)
        status = versions[-1].status if versions else "none"
        out[status] = out.get(status, 0) + 1
    return out


def write_landing_files(ws_root: Path, source: Path, n_files: int) -> float:
    """``n_files`` small sales CSVs of distinct content (slices of the generated sales)."""
    sales = pd.concat(pd.read_parquet(p) for p in sorted((source / "sales").glob("*.parquet")))
    per_file = max(1, len(sales) // n_files)
    folder = ws_root / "landing" / "sales" / "many"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i in range(n_files):
        part = sales.iloc[(i * per_file) % len(sales) :][:per_file].copy()
        part["units"] = part["units"] + i // max(1, len(sales) // per_file)  # distinct bytes
        part.to_csv(folder / f"sales-{i:05d}.csv", index=False)
    return time.perf_counter() - start


def sensor_ticks(dep: BenchDeployment) -> dict:
    """Two landing-sensor ticks in this process against the deployment's instance."""
    os.environ.update({k: dep.env[k] for k in ("MLOPS_ENV", "MLOPS_HOME", "MLOPS_SPEC")})
    from mlops_assets.definitions import build_definitions
    from mlops_assets.defs.local_driver import evaluate_sensor
    from mlops_assets.settings import load_settings

    defs = build_definitions(load_settings())
    out = {}
    cursor = None
    for name in ("first_tick_s", "second_tick_s"):
        start = time.perf_counter()
        tick = evaluate_sensor(defs, dep.instance, "landing_sensor", cursor)
        out[name] = round(time.perf_counter() - start, 3)
        cursor = tick.cursor
        files = sum(
            len(v["config"]["files"])
            for r in tick.run_requests
            for v in (r.run_config or {}).get("ops", {}).values()
        )
        out[name.replace("_s", "_files_requested")] = files
        out[name.replace("_s", "_skip")] = tick.skip_reason
        # what Dagster stores with the tick (skipped ticks are kept 7 days)
        out[name.replace("_s", "_cursor_bytes")] = len(tick.cursor or "")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regions", type=int, default=300)
    parser.add_argument("--departments", type=int, default=2)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--shipped-gate",
        action="store_true",
        help="keep the sample spec's gate (small regions' models are then rejected and "
        "no forecast is made for them)",
    )
    parser.add_argument("--port", type=int, default=3391)
    parser.add_argument(
        "--regions-per-run", type=int, help="MLOPS_REGIONS_PER_RUN (default: the setting's)"
    )
    parser.add_argument("--timeout", type=float, default=6 * 3600)
    parser.add_argument("--tmp", help="directory for the temporary data (default: system)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mlops-many-", dir=args.tmp))
    res: dict = {"regions": args.regions}
    try:
        summary = generate(
            SampleConfig(
                n_regions=args.regions,
                n_stores=args.regions,
                n_departments=args.departments,
                days=args.days,
                file_format="parquet",
            ),
            tmp / "source",
        )
        res.update(
            rows=summary.n_rows_sales, series=args.regions * args.departments, days=args.days
        )
        print(f"generated {summary.n_rows_sales:,} rows over {args.regions} regions", flush=True)
        spec = "sample" if args.shipped_gate else str(small_data_spec(tmp))
        res["spec"] = "sample" if args.shipped_gate else "sample, gate approving every model"
        with BenchDeployment(tmp / "dagster", spec=spec) as dep:
            if args.regions_per_run:
                dep.env["MLOPS_REGIONS_PER_RUN"] = str(args.regions_per_run)
            res["regions_per_run"] = int(dep.env.get("MLOPS_REGIONS_PER_RUN", 0)) or (
                DEFAULT_REGIONS_PER_RUN
            )
            t0 = time.time()
            dep.start_daemon()
            files = dep.drop(tmp / "source")
            dep.wait_for_sensor_runs(len(files), args.regions, args.timeout)
            t_features = time.time()
            print(
                f"ingest + features of {args.regions} regions: {t_features - t0:.1f} s", flush=True
            )
            res["webserver_ready_s"] = round(dep.start_webserver(args.port), 2)
            backfill_id, wait_s = dep.asset_backfill(["region_model", "forecast"], args.timeout)
            total = time.time() - t0
            print(f"training backfill: {wait_s:.1f} s", flush=True)
            feats = dep.runs("features_job", steps=True)
            train = dep.backfill_runs(backfill_id, steps=True)
            statuses: dict[str, int] = {}
            for r in train:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            res["total_wall_s"] = round(total, 2)
            res["backfill_runs_by_status"] = statuses
            res["models_by_status"] = models_by_status(dep)
            materialized = {
                key: len(dep.instance.get_materialized_partitions(dg.AssetKey(key)))
                for key in ("region_model", "forecast")
            }
            res["materialized_partitions"] = materialized
            res["backfill_completed"] = statuses.get("SUCCESS", 0) == len(train) and all(
                n == args.regions for n in materialized.values()
            )
            res["stage_s"] = {
                "drop_to_features_done": round(t_features - t0, 2),
                "features_runs_span": round(span(feats) or 0, 2),
                "train_backfill_span": round(span(train) or 0, 2),
                "train_backfill_command_to_done": round(wait_s, 2),
            }
            ovh = run_overheads(train)
            res["training_runs"] = len(train)
            res["run_overheads_training_backfill"] = ovh
            res["run_overheads_features_job"] = run_overheads(feats)
            # what one region costs beyond its steps: launch + time in the run outside them,
            # shared by the regions of a run
            res["per_region_overhead_s"] = round(
                ovh["mean_overhead_per_run_s"] * len(train) / args.regions, 3
            )
            res["backfill_wall_per_region_s"] = round(span(train) / args.regions, 2)

            # the refresh of every region (what new data for all regions starts: several
            # regions a run) and the fleet comparison after it
            mon = dep.monitoring_pass(args.timeout, REFRESH_ASSETS)
            refresh = dep.backfill_runs(mon["monitoring_backfill"], steps=True)
            refresh_ovh = run_overheads(refresh)
            res["refresh_runs"] = len(refresh)
            res["run_overheads_refresh"] = refresh_ovh
            res["refresh_per_region_overhead_s"] = round(
                refresh_ovh["mean_overhead_per_run_s"] * len(refresh) / args.regions, 3
            )
            res["stage_s"]["refresh_span"] = round(span(refresh) or 0, 2)
            res["stage_s"]["monitoring_pass"] = round(mon["total_s"], 2)
            # the fleet comparison over every region: one run, its regions one after another
            monitors = [r for r in dep.runs("monitoring_job", steps=True) if r.end is not None]
            if monitors:
                monitor = max(monitors, key=lambda r: r.created)
                res["stage_s"]["monitoring_job_run"] = round(monitor.end - monitor.created, 2)
                res["monitoring_job_step_s"] = {
                    key: round(end - start, 2) for key, (start, end) in monitor.steps.items()
                }
                refreshed = max((r.end for r in refresh if r.end is not None), default=None)
                if refreshed is not None:
                    res["monitoring_sensor_latency_s"] = round(monitor.created - refreshed, 2)
            res["refresh_completed"] = all(
                len(dep.instance.get_materialized_partitions(dg.AssetKey(key))) == args.regions
                for key in ("realized_performance", "drift_report")
            ) and all(r.status == "SUCCESS" for r in refresh)
            print(
                f"refresh of {args.regions} regions: {len(refresh)} runs, "
                f"{mon['total_s']:.1f} s with the monitoring run",
                flush=True,
            )
            res["failed_runs"] = failed(feats + train + refresh)[:20]

            # the landing sensor with many files (daemon stopped: nothing ingests them)
            dep.kill_daemon()
            res["files_in_landing"] = args.files + len(files)
            res["write_files_s"] = round(
                write_landing_files(dep.ws_root, tmp / "source", args.files), 2
            )
            ticks = sensor_ticks(dep)
            res["sensor_tick_s"] = max(ticks["first_tick_s"], ticks["second_tick_s"])
            res["sensor_ticks"] = ticks
            res["sensor_tick_under_5s"] = res["sensor_tick_s"] < 5
            print(f"landing sensor ticks with {res['files_in_landing']} files: {ticks}", flush=True)

            # the UI's asset page of region_model (the webserver started for the backfill)
            variables = {"assetKey": {"path": ["region_model"]}}
            graphql: dict = {}
            for name, query in (
                ("partition_health", PARTITION_HEALTH_QUERY),
                ("asset_details", ASSET_DETAILS_QUERY),
            ):
                times = []
                for _ in range(args.repeat):
                    data, secs = dep.graphql(query, variables)
                    if data.get("errors"):
                        raise RuntimeError(f"{name}: {data['errors']}")
                    times.append(secs)
                graphql[name] = {
                    "first_s": round(times[0], 3),
                    "median_s": round(statistics.median(times), 3),
                }
                if name == "partition_health":
                    node = data["data"]["assetNodeOrError"]
                    graphql[name]["materialized_partitions"] = len(
                        node["assetPartitionStatuses"]["materializedPartitions"]
                    )
            res["graphql_s"] = graphql
            res["region_model_page_answers"] = True
            print(f"GraphQL: {graphql}", flush=True)
        res["rss"] = dep.sampler.figures()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res.update(provenance())
    for key, value in res.items():
        if key not in ("machine",):
            print(f"{key:>28}: {value}")
    update_results({"many_regions": res})


if __name__ == "__main__":
    main()
