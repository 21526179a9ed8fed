"""Benchmark: the feature SQL of the working tree against a git revision's, on the same data
in the same process.

Builds one region of the 40M preset's shape (``--stores`` x ``--departments`` series over
``--days``: 125 x 4 x 4000 = 2M rows) with the generator and, when ``--rossmann`` points
at it, every region of rossmann-100. Each round writes every region's feature table with
the revision's ``conditioning.py`` and with the working tree's, alternating; the figure is
the best of ``--rounds``. The tables are compared cell by cell: a change of speed must not
change a value. Prints the figures and writes ``benchmarks/results/feature_sql_ab.json``.

    .venv/bin/python benchmarks/feature_sql_ab.py --base HEAD~1
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import duckdb
from report import provenance

from mlops_assets.landing import drop_dataset, ingest_file, scan_landing
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import DatasetSpec, load_spec
from mlops_assets.warehouse import connect, regions_with_sales
from mlops_assets.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "feature_sql_ab.json"
ROSSMANN = ROOT.parent / "shared" / "data" / "rossmann-100"


def conditioning_at(rev: str | None, tmp: Path) -> ModuleType:
    """``mlops_assets/conditioning.py`` as of ``rev`` (None: the working tree), loaded as a
    module of its own (it imports the rest of the package from the working tree)."""
    name = "conditioning_" + (rev or "worktree").replace("~", "_").replace("^", "_")
    if rev is None:
        path = ROOT / "mlops_assets" / "conditioning.py"
    else:
        path = tmp / f"{name}.py"
        path.write_text(
            subprocess.run(
                ["git", "show", f"{rev}:mlops_assets/conditioning.py"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def ingest(spec: DatasetSpec, source: Path, root: Path) -> Workspace:
    ws = Workspace(root)
    drop_dataset(spec, source, ws)
    statuses = [ingest_file(ws, spec, f.source, f.relpath).status for f in scan_landing(ws, spec)]
    assert set(statuses) == {"ingested"}, statuses
    return ws


def write_all(module: ModuleType, ws: Workspace, spec: DatasetSpec, out: Path) -> float:
    """Seconds to write every region's features with ``module``'s SQL to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with connect(ws, spec) as con:
        regions = list(regions_with_sales(ws, spec))
        start = time.perf_counter()
        for region in regions:
            dense = module.series_are_dense(con, spec, region)
            sql, _ = module.feature_sql(con, spec, dense=dense)
            con.execute(
                f"COPY ({sql}) TO $p (FORMAT parquet)",
                {"region": region, "p": str(out / f"{region}.parquet")},
            )
        return time.perf_counter() - start


def differing_cells(a: Path, b: Path) -> dict[str, int]:
    """Cells that differ (NULL equals NULL) between two feature tables of the same rows."""
    con = duckdb.connect()
    cols = [
        r[0]
        for r in con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": str(a)}).fetchall()
    ]
    other = [
        r[0]
        for r in con.execute("DESCRIBE SELECT * FROM read_parquet($p)", {"p": str(b)}).fetchall()
    ]
    if cols != other:
        return {"<columns>": len(set(cols) ^ set(other)) or 1}
    diff = {}
    for c in cols:
        q = f'"{c}"'
        n = con.execute(
            f"SELECT count(*) FROM (SELECT row_number() OVER () AS i, {q} AS v FROM "
            f"read_parquet($a)) x FULL JOIN (SELECT row_number() OVER () AS i, {q} AS v "
            f"FROM read_parquet($b)) y USING (i) WHERE x.v IS DISTINCT FROM y.v",
            {"a": str(a), "b": str(b)},
        ).fetchone()[0]
        if n:
            diff[c] = n
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="HEAD~1", help="the git revision to compare with")
    parser.add_argument("--stores", type=int, default=125)
    parser.add_argument("--departments", type=int, default=4)
    parser.add_argument("--days", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rossmann", type=Path, default=ROSSMANN)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mlops-feature-ab-"))
    base_rev = subprocess.run(
        ["git", "rev-parse", "--short", args.base],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    variants = {base_rev: conditioning_at(args.base, tmp), "worktree": conditioning_at(None, tmp)}
    figures: dict = {"base": base_rev, "rounds": args.rounds, "datasets": {}}
    try:
        sample = load_spec("sample")
        generate(
            SampleConfig(
                n_regions=1,
                n_stores=args.stores,
                n_departments=args.departments,
                days=args.days,
                file_format="parquet",
            ),
            tmp / "generated",
        )
        datasets = {"generated_region": (sample, ingest(sample, tmp / "generated", tmp / "gws"))}
        if args.rossmann.is_dir():
            rossmann = load_spec("rossmann")
            datasets["rossmann-100"] = (rossmann, ingest(rossmann, args.rossmann, tmp / "rws"))
        else:
            print(f"rossmann-100 not found at {args.rossmann}: generated data only")

        for label, (spec, ws) in datasets.items():
            seconds: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for name, module in variants.items():
                    out = tmp / "out" / label / name
                    seconds[name].append(round(write_all(module, ws, spec, out), 2))
            diff = {
                p.stem: d
                for p in sorted((tmp / "out" / label / base_rev).glob("*.parquet"))
                if (d := differing_cells(p, tmp / "out" / label / "worktree" / p.name))
            }
            best = {name: min(s) for name, s in seconds.items()}
            with duckdb.connect() as con:  # the written files only: no warehouse views
                rows = con.execute(
                    "SELECT count(*) FROM read_parquet($p)",
                    {"p": str(tmp / "out" / label / "worktree" / "*.parquet")},
                ).fetchone()[0]
            figures["datasets"][label] = {
                "feature_rows": rows,
                "seconds": seconds,
                "best_s": best,
                "ratio_worktree_over_base": round(best["worktree"] / best[base_rev], 3),
                "differing_cells": diff,
            }
            print(
                f"{label}: {rows:,} feature rows, best of {args.rounds}: {base_rev} "
                f"{best[base_rev]} s, working tree {best['worktree']} s "
                f"(x{best['worktree'] / best[base_rev]:.2f}); differing cells: {diff or 'none'}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    figures.update(provenance())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.out}")
    if any(d["differing_cells"] for d in figures["datasets"].values()):
        sys.exit("the feature tables differ")


if __name__ == "__main__":
    main()
