"""Benchmark: seconds to load the code location (``import mlops_assets.definitions``).

Every Dagster run process and code server imports the definitions before its first step,
so this is paid once per run on top of the work. Each measurement is a fresh interpreter
(``--repeats`` of them, the median reported) that also lists which heavy libraries the
import loaded. ``--ref`` measures a second commit the same way in the same run (checked
out into a temporary git worktree, run from there and put first on ``PYTHONPATH``), for a
before/after ratio. Writes the ``import_time`` section of ``benchmarks/results.json``.

    .venv/bin/python benchmarks/import_time.py --ref e9e2ab2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import REPO_ROOT, provenance, ref_worktree, update_results  # noqa: E402

HEAVY = ("lightgbm", "nannyml", "optuna", "matplotlib", "sklearn", "scipy", "pandas", "duckdb")
PROBE = (
    "import sys, time, json; t = time.perf_counter(); import mlops_assets.definitions; "
    "s = time.perf_counter() - t; "
    f"print(json.dumps({{'s': s, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))"
)


def measure(repeats: int, tree: Path = REPO_ROOT) -> dict:
    """``repeats`` fresh interpreters importing the package of ``tree`` (run from there,
    with it first on the path, ahead of the editable install)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", PROBE],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    seconds = [r["s"] for r in runs]
    return {
        "median_s": round(statistics.median(seconds), 3),
        "runs_s": [round(s, 3) for s in seconds],
        "heavy_modules_loaded": runs[-1]["heavy"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ref", help="also measure this commit (e.g. the one before a change)")
    args = ap.parse_args()
    section: dict = {"head": measure(args.repeats)}
    print(f"HEAD: {section['head']}")
    if args.ref:
        with ref_worktree(args.ref) as tree:
            section["ref"] = {"commit": args.ref, **measure(args.repeats, tree)}
        section["ratio_head_over_ref"] = round(
            section["head"]["median_s"] / section["ref"]["median_s"], 3
        )
        print(f"{args.ref}: {section['ref']}")
        print(f"ratio HEAD / {args.ref}: {section['ratio_head_over_ref']}")
    update_results({"import_time": {**section, **provenance()}})


if __name__ == "__main__":
    main()
