"""Benchmark: where the regions' HTML report plots are drawn.

``monitoring_alerts`` writes every monitored region's report in one run. Drawing their
plots there (forecast vs actual, metrics over time, estimated performance, attribution)
made that one run grow with the regions, one region after another, and a refresh of one
region redrew every region's plots. They are now drawn in each region's own refresh
(``drift_report``, several regions a run, two runs at a time) and kept by a digest of what
they draw (``storage.plot_store``). On a workspace that the direct pass has trained and
monitored (``benchmarks/direct.py``), this times, ``--repeats`` times each:

- ``fleet_pass_drawing_s``: the fleet's reports with no stored plot but the drift heatmaps
  (which drift_report drew before this change too): what monitoring_alerts paid before;
- ``region_runs_drawing_s``: the same plots drawn region by region as drift_report now
  does (summed: in a deployment this is spread over the refresh runs);
- ``fleet_pass_after_s``: the fleet's reports once the regions drew their plots.

    .venv/bin/python benchmarks/report_plots.py --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from direct import DirectPipeline  # benchmarks/: the library calls without Dagster
from report import REPO_ROOT, git_commit, machine

from mlops_assets import monitoring, reports
from mlops_assets.defs.monitoring.alerts import _write_reports
from mlops_assets.registry import ModelRegistry

RESULTS = Path(__file__).parent / "results" / "report_plots.json"
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not args.source_dir.is_dir():
        print(f"SKIPPED: no dataset at {args.source_dir} (nothing written)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = DirectPipeline(args.source_dir, Path(tmp) / "ws", spec=args.spec)
        pipeline.run_all()  # ingest, features, training, scoring, monitoring
        out = measure(pipeline, args.repeats)
    out |= {
        "source": str(args.source_dir),
        "spec": args.spec,
        "command": ".venv/bin/python benchmarks/report_plots.py --source-dir "
        f"{args.source_dir} --repeats {args.repeats}",
        "commit": git_commit(),
        "machine": machine(),
    }
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=1) + "\n")


def measure(pipeline: DirectPipeline, repeats: int) -> dict:
    ws, ds = pipeline.ws, pipeline.spec
    registry = ModelRegistry.for_workspace(ws)
    s, metric = ds.monitoring, ds.gate.metric
    holdout_metric = monitoring.quality_metric(s, metric)
    fleet = monitoring.fleet_inputs(ws, registry, pipeline.regions, holdout_metric)
    status = monitoring.fleet_status(
        fleet.all_tables, fleet.weekly, fleet.holdout_error, s, metric=metric
    )
    approved, tables = fleet.approved, fleet.tables
    folder = ws.root / "monitoring"

    def forget_plots() -> None:  # the heatmaps stay: drift_report drew them before, too
        for png in folder.rglob("*.png"):
            if not png.name.startswith("drift_heatmap."):
                png.unlink()

    def timed(work: Callable[[], object]) -> float:
        start = time.perf_counter()
        work()
        return round(time.perf_counter() - start, 2)

    def region_runs() -> None:
        for region, mv in approved.items():
            reports.region_report_html(
                ws,
                ds,
                registry,
                mv,
                drift_table=tables.get(region, pd.DataFrame()),
                alerts=None,
                region_name=region,
                generated_at="",
            )

    def fleet() -> None:
        _write_reports(ws, ds, registry, status, approved, tables)

    out: dict = {"regions": len(approved)}
    for _ in range(repeats):
        forget_plots()
        out.setdefault("fleet_pass_drawing_s", []).append(timed(fleet))
        forget_plots()
        out.setdefault("region_runs_drawing_s", []).append(timed(region_runs))
        out.setdefault("fleet_pass_after_s", []).append(timed(fleet))
    stored = [*folder.rglob("*.png"), *folder.rglob("*.svg")]
    out["stored_plots"] = sorted({p.name.split(".")[0] for p in stored})
    return out


if __name__ == "__main__":
    main()
