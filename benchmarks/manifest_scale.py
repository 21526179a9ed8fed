"""Benchmark: the ingestion manifest with many ingested files, against an earlier commit.

Every landing-sensor tick compares the landing zone with the manifest, and every warehouse
connection lists the ingested files with their order; both grow with the number of files
ever ingested. This ingests ``--files`` small sales files (a few rows each, distinct
contents) into a fresh workspace through ``landing.ingest_file``, then times a landing
tick with a warm cursor (``plan_landing``: nothing new, every file known; its cursor read
from and written to JSON, as the sensor does), listing the ingested files
(``warehouse.ingested_files``) and opening a warehouse connection (``warehouse.connect``:
the process's first, ``connect_s``, and a later one, ``connect_warm_s``, which reuses the
views of the same ingested files where the commit has ``warehouse.views_database``),
and reports the size of the cursor such a tick leaves (``cursor_bytes``: Dagster stores
it with every tick it keeps, skipped ticks for 7 days). ``--ref`` runs the same script
from a temporary git worktree of another commit in the same run (e.g. the
JSON-file-per-record manifest), for ratios.
Writes the ``manifest_scale`` section of ``benchmarks/results.json``.

    .venv/bin/python benchmarks/manifest_scale.py --files 5000 --ref f5faa93
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import REPO_ROOT, provenance, ref_worktree, update_results  # noqa: E402


def measure_here(files: int, repeats: int) -> dict:
    """The measurement, with the ``mlops_assets`` this interpreter imports."""
    from mlops_assets import warehouse
    from mlops_assets.landing import ingest_file, plan_landing, scan_landing
    from mlops_assets.spec import load_spec
    from mlops_assets.warehouse import connect, ingested_files
    from mlops_assets.workspace import Workspace

    spec = load_spec("sample")
    with tempfile.TemporaryDirectory(prefix="manifest-scale-") as tmp:
        ws = Workspace(Path(tmp) / "ws")
        stores = ws.landing_dir("stores")
        stores.mkdir(parents=True)
        (stores / "stores.csv").write_text(
            "store_id,region,format,size_sqm,opened,location\nS1,Nord,large,5000,2007-07-19,urban\n"
        )
        ingest_file(ws, spec, "stores", "landing/stores/stores.csv")
        sales = ws.landing_dir("sales")
        sales.mkdir(parents=True)
        for i in range(files):
            day = f"{2000 + i // 365:04d}-{1 + (i % 365) // 31:02d}-{1 + (i % 365) % 28:02d}"
            (sales / f"s{i:06d}.csv").write_text(
                f"date,store_id,department,units,open,promo\n{day},S1,D{i % 7},{i % 97},1,0\n"
            )
        relpaths = [f.relpath for f in scan_landing(ws, spec) if f.source == "sales"]
        start = time.perf_counter()
        try:  # one ingest run of every file, as the raw asset does it
            from mlops_assets.landing import ingest_files

            ingest_files(ws, spec, "sales", relpaths)
        except ImportError:  # before ingest_files: the raw asset's loop over the files
            for relpath in relpaths:
                ingest_file(ws, spec, "sales", relpath)
        ingest_s = time.perf_counter() - start
        plan = plan_landing(ws, spec, None, now=0.0)  # the first tick hashes every file
        assert not plan.files, "every landing file should be known"
        cursor = json.dumps(plan.cursor)

        def tick() -> str:  # as the landing sensor: the cursor from and back to JSON
            return json.dumps(plan_landing(ws, spec, json.loads(cursor), now=1.0).cursor)

        def timed(fn) -> float:  # noqa: ANN001
            runs = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t)
            return round(statistics.median(runs), 4)

        def open_connection(cold: bool = True) -> None:
            if cold:  # the process's first connect (later ones reuse its views database)
                getattr(warehouse, "_views_databases", {}).clear()
            with connect(ws, spec) as con:
                con.execute("SELECT count(*) FROM raw_sales").fetchone()

        listed = len(ingested_files(ws, "sales"))
        assert listed == files, f"{listed} of {files} files listed"
        return {
            "files": files,
            "ingest_s": round(ingest_s, 2),
            "ingest_ms_per_file": round(ingest_s / files * 1e3, 2),
            "sensor_tick_s": timed(tick),
            "cursor_bytes": len(tick()),
            "ingested_files_s": timed(lambda: ingested_files(ws, "sales")),
            "connect_s": timed(open_connection),
            "connect_warm_s": timed(lambda: open_connection(cold=False)),
        }


def measure_tree(tree: Path, files: int, repeats: int) -> dict:
    """This script's measurement run from ``tree`` (a checkout of another commit)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, __file__, "--measure-only", f"--files={files}", f"--repeats={repeats}"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ref", help="also measure this commit, from a temporary worktree")
    ap.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_only:
        print(json.dumps(measure_here(args.files, args.repeats)))
        return
    section: dict = {"head": measure_tree(REPO_ROOT, args.files, args.repeats)}
    print(f"HEAD: {section['head']}", flush=True)
    if args.ref:
        with ref_worktree(args.ref) as tree:
            # the benchmark itself comes from HEAD; the package from the ref's tree
            section["ref"] = {"commit": args.ref, **measure_tree(tree, args.files, args.repeats)}
        section["ratio_head_over_ref"] = {
            k: round(section["head"][k] / section["ref"][k], 3)
            for k in (
                "ingest_s",
                "sensor_tick_s",
                "cursor_bytes",
                "ingested_files_s",
                "connect_s",
                "connect_warm_s",
            )
        }
        print(f"{args.ref}: {section['ref']}")
        print(f"ratio HEAD / {args.ref}: {section['ratio_head_over_ref']}")
    update_results({"manifest_scale": {**section, **provenance()}})


if __name__ == "__main__":
    main()
