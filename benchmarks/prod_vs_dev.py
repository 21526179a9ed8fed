"""Benchmark: the same backfill on the dev profile and on the prod profile, in one run.

For each profile a deployment (``benchmarks/deployment.py``) gets the dataset (default
``../shared/data/rossmann-100``, 12 regions) dropped into its landing zone; the sensors
ingest it and build every region's features; then the UI's asset backfill of region_model +
forecast over every region (GraphQL ``launchPartitionBackfill``) trains, gates, registers
and forecasts all regions.

- dev: the repo's dagster.yaml (SQLite, two run slots), steps in the run's process;
- prod: ``deploy/prod/dagster.yaml`` (PostgreSQL, eight run slots), steps on two Celery
  workers with one pool process each (``mlops-assets worker --concurrency 1``: two steps at a
  time, the same parallelism as dev's two run slots on this 2-core machine), PostgreSQL and
  Redis started on 127.0.0.1 (Debian's binaries; ``.ci/install-services.sh``), data tables
  and model artifacts below ``MLOPS_STORAGE_ROOT`` on moto's S3 server on 127.0.0.1.

Reported per profile: ingest + features wall, the backfill's launch -> done wall and its
runs' span, runs, failures; and prod's ratio to dev. Writes the ``prod_vs_dev`` section of
``benchmarks/results.json`` and regenerates ``BENCHMARKS.md``. Not part of ``make test``.
Skips (exit 0) when the dataset or the services are absent.

    .venv/bin/python benchmarks/prod_vs_dev.py
    .venv/bin/python benchmarks/prod_vs_dev.py --source-dir DIR --spec sample --regions 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deployment import BenchDeployment, failed, span  # noqa: E402
from report import REPO_ROOT, provenance, update_results  # noqa: E402

from mlops_assets.deployment.local_services import (  # noqa: E402
    PostgresServer,
    RedisServer,
    S3Server,
    missing_services,
    prod_environment,
)
from mlops_assets_tests.deployment.services import (  # noqa: E402
    kill_worker,
    start_worker,
    use_prod_instance,
)

DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"


def measure(profile: str, tmp: Path, args: argparse.Namespace) -> dict:
    postgres = redis = s3 = None
    workers = []
    try:
        with BenchDeployment(tmp / profile, spec=args.spec, mlops_env="dev") as dep:
            if profile == "prod":
                postgres, redis = PostgresServer(), RedisServer()
                postgres.start()
                redis.start()
                dep.env.update(prod_environment(postgres, redis))
                # data tables and model artifacts on S3 (moto's server), as prod keeps them
                s3 = S3Server()
                s3.start()
                dep.env.update(s3.environment())
                dep.env["MLOPS_STORAGE_ROOT"] = f"s3://{S3Server.BUCKET}/prod-vs-dev"
                # this process reads the instance too
                os.environ["DAGSTER_POSTGRES_URL"] = dep.env["DAGSTER_POSTGRES_URL"]
                use_prod_instance(dep)
                workers = [start_worker(dep, name) for name in ("w1", "w2")]
            t0 = time.time()
            dep.start_daemon()
            dropped = dep.drop(args.source_dir)
            dep.wait_for_sensor_runs(len(dropped), args.regions, args.timeout)
            ingest_and_features = time.time() - t0
            backfill_id, wall = dep.asset_backfill(["region_model", "forecast"], args.timeout)
            runs = dep.backfill_runs(backfill_id)
            result = {
                "ingest_and_features_s": round(ingest_and_features, 1),
                "backfill_wall_s": round(wall, 1),
                "backfill_runs_span_s": round(span(runs) or 0.0, 1),
                "backfill_runs": len(runs),
                "failed_runs": failed(runs),
                "peak_rss_gb_concurrent_total": dep.sampler.figures()[
                    "peak_rss_gb_concurrent_total"
                ],
                # where the tables went: below the workspace (dev) or none there (prod: S3)
                "feature_tables_below_workspace": len(
                    list((dep.ws_root / "features").glob("*.parquet"))
                ),
            }
            print(f"{profile}: {result}", flush=True)
            return result
    finally:
        for proc in workers:
            kill_worker(proc)
        if s3 is not None:
            s3.stop()
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--spec", default="rossmann")
    parser.add_argument("--regions", type=int, default=12, help="regions the data has")
    parser.add_argument("--timeout", type=float, default=3600, help="per phase, seconds")
    parser.add_argument("--tmp", help="directory for the temporary data (default: system)")
    args = parser.parse_args()
    if not args.source_dir.is_dir():
        print(f"SKIPPED: {args.source_dir} not found (nothing written)")
        return
    if missing := missing_services():
        print(f"SKIPPED: needs {', '.join(missing)} (.ci/install-services.sh; nothing written)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="mlops-prod-dev-", dir=args.tmp))
    res: dict = {
        "dataset": args.source_dir.name,
        "spec": args.spec,
        "regions": args.regions,
        "prod_storage_root": "s3",
    }
    try:
        for profile in ("dev", "prod"):
            res[profile] = measure(profile, tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["prod_to_dev_backfill_wall"] = round(
        res["prod"]["backfill_wall_s"] / res["dev"]["backfill_wall_s"], 3
    )
    res["prod_to_dev_runs_span"] = round(
        res["prod"]["backfill_runs_span_s"] / res["dev"]["backfill_runs_span_s"], 3
    )
    res.update(provenance())
    print(
        f"backfill wall prod/dev: {res['prod_to_dev_backfill_wall']}; "
        f"runs span prod/dev: {res['prod_to_dev_runs_span']}"
    )
    update_results({"prod_vs_dev": res})


if __name__ == "__main__":
    main()
