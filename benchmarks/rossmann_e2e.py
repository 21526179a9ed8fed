"""Benchmark: rossmann-100 end to end through Dagster (ingest -> features -> 12 models ->
forecasts -> monitoring), as a user runs it.

The dataset directory (default ``../shared/data/rossmann-100``) is dropped into the landing
zone of a real deployment (``benchmarks/deployment.py``: dagster-daemon on a temporary
DAGSTER_HOME with the repo's dagster.yaml, MLOPS_ENV=dev, MLOPS_SPEC=rossmann); the sensors
ingest it and build every region's features; the asset backfill of region_model +
forecast that the UI sends (as in ``scale.py``) trains, gates, registers and forecasts
the 12 regions; one monitoring pass (an asset backfill of realized_performance and
drift_report, several regions a run, then the monitoring sensor's ``monitoring_job``). Stage times
are defined as in ``scale.py``; ``--direct`` also runs the same library calls in one
process for Dagster's overhead. Skips (exit 0, nothing written) when the dataset is absent.

Writes the ``rossmann`` section of ``benchmarks/results.json`` and regenerates
``BENCHMARKS.md``. Not part of ``make test``.

    .venv/bin/python benchmarks/rossmann_e2e.py --direct
    .venv/bin/python benchmarks/rossmann_e2e.py --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from direct import DirectPipeline, peak_rss_gb  # noqa: E402
from report import REPO_ROOT, provenance, update_results  # noqa: E402
from scale import STAGE_DEFINITIONS, dagster_pass  # noqa: E402

DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--regions", type=int, default=12, help="regions the data has")
    parser.add_argument("--direct", action="store_true", help="also the direct calls")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="per phase, seconds")
    parser.add_argument("--tmp", help="directory for the temporary data (default: system)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    args = parser.parse_args()

    if not (args.source_dir / "train.csv").exists():
        print(f"SKIPPED: rossmann-100 not found at {args.source_dir} (nothing written)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="mlops-rossmann-", dir=args.tmp))
    res: dict = {"dataset": "rossmann-100", "spec": "rossmann"}
    try:
        res.update(dagster_pass(args.source_dir, tmp, args.regions, args.timeout, "rossmann"))
        res["stage_definitions"] = STAGE_DEFINITIONS
        print(f"Dagster stages: {res['stage_s']}", flush=True)
        if args.direct:
            direct = DirectPipeline(args.source_dir, tmp / "direct_ws", spec="rossmann")
            res["direct_stage_s"] = direct.run_all()
            res["direct_cpu_s"] = direct.stage_cpu_s
            res["direct_peak_rss_gb"] = round(peak_rss_gb(), 3)
            res["models"] = {
                region: {
                    "status": o.version.status,
                    "mape": round(o.trained.metrics["model"]["mape"], 4),
                }
                for region, o in direct.outcomes.items()
            }
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    res.update(provenance())
    keys = ("total_wall_s", "stage_s", "direct_stage_s", "rss", "cpu_s", "direct_cpu_s")
    for key in (*keys, "failed_runs"):
        print(f"{key:>16}: {res.get(key)}")
    update_results({"rossmann": res})
    if res["failed_runs"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
