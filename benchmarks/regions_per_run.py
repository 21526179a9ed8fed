"""Benchmark: how many regions one backfill run should take (``MLOPS_REGIONS_PER_RUN``),
measured on real data.

The dataset (default ``../shared/data/rossmann-100``, 12 regions) is dropped into the
landing zone of a deployment (``benchmarks/deployment.py``: dagster-daemon on a temporary
DAGSTER_HOME with the repo's dagster.yaml, two run slots); the sensors ingest it and build
every region's features. Then, for each N of ``--per-run`` in turn, the daemon and the
webserver restart with ``MLOPS_REGIONS_PER_RUN=N`` and the asset backfill of region_model +
forecast over every region that the UI sends (GraphQL ``launchPartitionBackfill``) trains,
gates, registers and forecasts all regions again. Reported per N: the span of the
backfill's runs (first run created -> last run ended), the backfill daemon's latency around
it (launch -> done, minus the span: its ticks, the same for every N), its runs, the mean
launch and outside-steps overhead per run, the summed training and scoring compute seconds,
and the span's ratio to N=1 in the same run (N=1 is what a run per region costs). The
default is the N with the least span.

Writes the ``regions_per_run`` section of ``benchmarks/results.json`` and regenerates
``BENCHMARKS.md``. Not part of ``make test``. Skips (exit 0) when the dataset is absent.

    .venv/bin/python benchmarks/regions_per_run.py
    .venv/bin/python benchmarks/regions_per_run.py --per-run 1,6
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployment import BenchDeployment, failed, run_overheads, span  # noqa: E402
from report import REPO_ROOT, provenance, update_results  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--spec", default="rossmann")
    parser.add_argument("--regions", type=int, default=12, help="regions the data has")
    parser.add_argument("--per-run", default="1,3,6,12", help="comma-separated values of N")
    parser.add_argument("--timeout", type=float, default=3600, help="per phase, seconds")
    parser.add_argument("--tmp", help="directory for the temporary data (default: system)")
    args = parser.parse_args()
    values = [int(v) for v in args.per_run.split(",")]

    if not args.source_dir.is_dir():
        print(f"SKIPPED: {args.source_dir} not found (nothing written)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="mlops-per-run-", dir=args.tmp))
    res: dict = {"dataset": args.source_dir.name, "spec": args.spec, "passes": {}}
    try:
        with BenchDeployment(tmp / "dagster", spec=args.spec) as dep:
            t0 = time.time()
            dep.start_daemon()
            files = dep.drop(args.source_dir)
            dep.wait_for_sensor_runs(len(files), args.regions, args.timeout)
            res["ingest_and_features_s"] = round(time.time() - t0, 2)
            print(f"ingest + features: {res['ingest_and_features_s']} s", flush=True)
            all_runs = []
            for n in values:
                dep.restart(MLOPS_REGIONS_PER_RUN=str(n))
                backfill_id, wall = dep.asset_backfill(["region_model", "forecast"], args.timeout)
                runs = dep.backfill_runs(backfill_id, steps=True)
                all_runs += runs
                overheads = run_overheads(runs)
                runs_span = span(runs) or 0.0
                res["passes"][str(n)] = {
                    "runs_span_s": round(runs_span, 2),
                    # the backfill daemon's ticks: launch -> first run, last run -> done
                    "backfill_latency_s": round(wall - runs_span, 2),
                    "wall_s": round(wall, 2),
                    "runs": len(runs),
                    "mean_launch_s": overheads["mean_launch_s"],
                    "mean_in_run_outside_steps_s": overheads["mean_in_run_outside_steps_s"],
                    "training_compute_s": round(dep.compute_seconds(runs, "region_model"), 2),
                    "scoring_compute_s": round(dep.compute_seconds(runs, "forecast"), 2),
                    "failed_runs": failed(runs),
                }
                print(f"N={n}: {res['passes'][str(n)]}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = res["passes"].get("1", {}).get("runs_span_s")
    for figures in res["passes"].values():
        figures["span_ratio_to_1"] = round(figures["runs_span_s"] / base, 3) if base else None
    res["best"] = int(min(res["passes"], key=lambda n: res["passes"][n]["runs_span_s"]))
    res["regions"] = args.regions
    res["failed_runs"] = failed(all_runs)
    res.update(provenance())
    print(f"best N: {res['best']}; passes: {res['passes']}")
    update_results({"regions_per_run": res})
    if res["failed_runs"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
