"""Where a stage's time goes: the direct pipeline (``direct.py``) runs the stages before
the chosen one, then runs that stage under cProfile and prints the functions with the
most cumulative and own time. Figures under a profiler run slower than without it; read
the shares, not the seconds.

    .venv/bin/python benchmarks/profile_stage.py monitoring            # rossmann-100
    .venv/bin/python benchmarks/profile_stage.py training --spec sample --source-dir DIR
    .venv/bin/python benchmarks/profile_stage.py monitoring --plain   # wall only, no profiler
    .venv/bin/python benchmarks/profile_stage.py monitoring --plain --refresh

``--refresh`` runs the stage once unmeasured first, so the measured run is a refresh of the
same models and data (monitoring then has each region's last table of the same model).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from direct import DirectPipeline  # noqa: E402
from report import REPO_ROOT  # noqa: E402

STAGES = ("ingest", "features", "training", "scoring", "monitoring")
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--spec", default="rossmann")
    parser.add_argument("--top", type=int, default=35, help="rows per listing")
    parser.add_argument("--save", type=Path, help="also write the raw profile here")
    parser.add_argument(
        "--plain", action="store_true", help="time the stage without the profiler (before/after)"
    )
    parser.add_argument(
        "--refresh", action="store_true", help="run the stage once before the measured run"
    )
    args = parser.parse_args()
    if not args.source_dir.is_dir():
        print(f"SKIPPED: no data at {args.source_dir}")
        return
    tmp = Path(tempfile.mkdtemp(prefix="mlops-profile-"))
    try:
        pipeline = DirectPipeline(args.source_dir, tmp / "ws", spec=args.spec)
        from mlops_assets.landing import drop_dataset

        drop_dataset(pipeline.spec, pipeline.source_dir, pipeline.ws)
        before = list(STAGES[: STAGES.index(args.stage)])
        for stage in before + ([args.stage] if args.refresh else []):
            start = time.perf_counter()
            getattr(pipeline, stage)()
            print(f"  {stage}: {time.perf_counter() - start:.1f} s (not profiled)", flush=True)
        if args.plain:
            start = time.perf_counter()
            getattr(pipeline, args.stage)()
            wall = time.perf_counter() - start
            print(f"\n{args.stage}: {wall:.1f} s, {len(pipeline.regions)} regions (no profiler)")
            return
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(getattr(pipeline, args.stage))
        wall = time.perf_counter() - start
        print(f"\n{args.stage}: {wall:.1f} s under cProfile, {len(pipeline.regions)} regions\n")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(f"--- by {order}\n" + out.getvalue().split("\n\n", 2)[-1])
        if args.save:
            profiler.dump_stats(args.save)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
