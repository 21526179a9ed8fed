"""Benchmark: what opening warehouse connections costs each stage, two commits side by side.

The direct pipeline (``direct.py``: the library calls of each stage in one process) runs
rossmann-100 (default ``../shared/data/rossmann-100``) from ingest to monitoring, with
``warehouse.connect`` timed from its call until it hands over the connection: per stage,
the connects made and the seconds spent in them, beside the stage's wall seconds. Each
commit runs in its own process (``--base``, and ``--head``, default the working tree, its
package first on ``sys.path``), alternating ``--repeats`` times.

    .venv/bin/python benchmarks/connect_cost.py --base e4f3442 --head b21b582

Writes ``benchmarks/results/connect_cost.json``. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO_ROOT, provenance, ref_worktree  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "connect_cost.json"
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"
STAGES = ("ingest", "features", "training", "scoring", "monitoring")


def measure(source_dir: Path, spec: str) -> dict:
    """One side, in this process (the commit's package is first on ``sys.path``)."""
    import mlops_assets.warehouse as warehouse

    seconds: Counter[str] = Counter()
    connects: Counter[str] = Counter()
    stage = ["?"]
    untimed = warehouse.connect

    @contextlib.contextmanager
    def timed_connect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        start = time.perf_counter()
        with untimed(*args, **kwargs) as con:
            seconds[stage[0]] += time.perf_counter() - start
            connects[stage[0]] += 1
            yield con

    # before the pipeline's modules import it by name
    warehouse.connect = timed_connect
    from direct import DirectPipeline

    from mlops_assets.landing import drop_dataset

    with tempfile.TemporaryDirectory(prefix="connect-cost-") as tmp:
        pipeline = DirectPipeline(source_dir, Path(tmp) / "ws", spec=spec)
        drop_dataset(pipeline.spec, pipeline.source_dir, pipeline.ws)
        out = {}
        for name in STAGES:
            stage[0] = name
            start = time.perf_counter()
            getattr(pipeline, name)()
            out[name] = {
                "stage_s": round(time.perf_counter() - start, 2),
                "connects": connects[name],
                "connect_s": round(seconds[name], 3),
            }
    return out


def run_side(tree: Path, source_dir: Path, spec: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--side", str(source_dir), spec]
    done = subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--side":
        sys.path.insert(0, str(Path.cwd() / "benchmarks"))  # the commit's direct.py
        print(json.dumps(measure(Path(sys.argv[2]), sys.argv[3])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="commit to compare with")
    parser.add_argument("--head", help="commit (default: the working tree)")
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--spec", default="rossmann")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if not (args.source_dir / "train.csv").exists():
        print(f"SKIPPED: no data at {args.source_dir} (nothing written)")
        return
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    with contextlib.ExitStack() as stack:
        trees = {"base": stack.enter_context(ref_worktree(args.base))}
        trees["head"] = stack.enter_context(ref_worktree(args.head)) if args.head else REPO_ROOT
        for _ in range(args.repeats):
            for side in ("base", "head"):
                runs[side].append(run_side(trees[side], args.source_dir.resolve(), args.spec))
                print(side, json.dumps(runs[side][-1]), flush=True)
    report = {
        "what": "seconds inside warehouse.connect per stage of the direct pipeline",
        "base": args.base,
        "head": args.head or "working tree",
        "runs": runs,
        "connect_s": {
            side: {s: [r[s]["connect_s"] for r in runs[side]] for s in STAGES} for side in runs
        },
        **provenance(),
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
