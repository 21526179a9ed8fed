"""Benchmark: landing validation and feature conditioning at scale, against a pandas peer.

Generates a sample dataset of ``--stores`` x ``--departments`` series over ``--days``
(parquet chunks), ingests every file through landing validation, builds every region's
feature table with DuckDB, and, as the peer in the same run, computes a subset of the same
features (lag_42, lag_364, roll_mean_28, series_mean) with the idiomatic pandas groupby
approach and with DuckDB on the same rows, for a same-work ratio. Prints the figures and
writes them to ``benchmarks/results/features_scale.json`` (or ``--out``).

    .venv/bin/python benchmarks/features_scale.py --stores 500 --days 1461
    .venv/bin/python benchmarks/features_scale.py --stores 2500 --days 4000   # 40M rows
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.conditioning import write_features
from mlops_assets.landing import drop_dataset, ingest_file, scan_landing
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec
from mlops_assets.warehouse import connect, regions_with_sales
from mlops_assets.workspace import Workspace

RESULTS = Path(__file__).parent / "results" / "features_scale.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pandas_peer(ws: Workspace, horizon: int) -> tuple[float, int]:
    """lag_42, lag_364, roll_mean_28 (ending at the horizon) and the expanding series mean
    with pandas: read raw sales, groupby shift/rolling per series. Returns (seconds, rows)."""
    start = time.perf_counter()
    files = sorted((ws.root / "raw" / "sales").glob("*.parquet"))
    df = pd.concat((pd.read_parquet(f) for f in files), ignore_index=True)
    df["date"] = pd.to_datetime(df["date"])
    df = df.sort_values(["store", "item", "date"], ignore_index=True)
    y = df["target"].clip(lower=0).where(df["open"] == 1)
    g = y.groupby([df["store"], df["item"]])
    # the sample has no gaps, so row shifts equal date lags here (DuckDB uses date ranges)
    df["lag_42"] = g.shift(horizon)
    df["lag_364"] = g.shift(364)
    shifted = g.shift(horizon)
    gs = shifted.groupby([df["store"], df["item"]])
    df["roll_mean_28"] = gs.transform(lambda s: s.rolling(28, min_periods=1).mean())
    df["series_mean"] = gs.transform(lambda s: s.expanding().mean())
    return time.perf_counter() - start, len(df)


def duckdb_peer(ws: Workspace, horizon: int) -> tuple[float, int]:
    """The same four features as ``pandas_peer`` with DuckDB date-range windows."""
    start = time.perf_counter()
    files = [str(f) for f in sorted((ws.root / "raw" / "sales").glob("*.parquet"))]
    w = "PARTITION BY store, item ORDER BY date RANGE BETWEEN"
    sql = f"""
        WITH s AS (SELECT store, item, date,
                          CASE WHEN open = 1 THEN greatest(target, 0) END AS y
                   FROM read_parquet($files))
        SELECT store, item, date,
          max(y) OVER ({w} INTERVAL {horizon} DAYS PRECEDING
                       AND INTERVAL {horizon} DAYS PRECEDING) AS lag_42,
          max(y) OVER ({w} INTERVAL 364 DAYS PRECEDING AND INTERVAL 364 DAYS PRECEDING)
            AS lag_364,
          avg(y) OVER ({w} INTERVAL {horizon + 27} DAYS PRECEDING
                       AND INTERVAL {horizon} DAYS PRECEDING) AS roll_mean_28,
          avg(y) OVER ({w} UNBOUNDED PRECEDING AND INTERVAL {horizon} DAYS PRECEDING)
            AS series_mean
        FROM s"""
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT count(*), avg(roll_mean_28) FROM ({sql})", {"files": files}
        ).fetchone()[0]
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", type=int, default=500)
    parser.add_argument("--departments", type=int, default=4)
    parser.add_argument("--days", type=int, default=1461)
    parser.add_argument("--regions", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-peer", action="store_true", help="skip the pandas peer")
    args = parser.parse_args()

    spec = load_spec("sample")
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    figures: dict[str, float | int | str] = {
        "stores": args.stores,
        "departments": args.departments,
        "days": args.days,
        "series": args.stores * args.departments,
        "duckdb": duckdb.__version__,
    }
    try:
        t = time.perf_counter()
        summary = generate(
            SampleConfig(
                n_regions=args.regions,
                n_stores=args.stores,
                n_departments=args.departments,
                days=args.days,
                file_format="parquet",
            ),
            tmp / "source",
        )
        figures["rows"] = summary.n_rows_sales
        figures["generate_s"] = round(time.perf_counter() - t, 2)

        ws = Workspace(tmp / "ws")
        drop_dataset(spec, tmp / "source", ws)
        t = time.perf_counter()
        statuses = [
            ingest_file(ws, spec, f.source, f.relpath).status for f in scan_landing(ws, spec)
        ]
        figures["ingest_s"] = round(time.perf_counter() - t, 2)
        figures["files_ingested"] = statuses.count("ingested")
        figures["files_quarantined"] = statuses.count("quarantined")

        t = time.perf_counter()
        regions = regions_with_sales(ws, spec)
        feature_rows = 0
        with connect(ws, spec, shared=False) as con:
            for region in regions:
                write_features(con, spec, region, ws.data, ws.features_key(region))
                feature_rows += con.execute(
                    "SELECT count(*) FROM read_parquet($p)", {"p": str(ws.features_path(region))}
                ).fetchone()[0]
        figures["features_s"] = round(time.perf_counter() - t, 2)
        figures["feature_rows"] = feature_rows
        figures["regions"] = len(regions)
        figures["features_rows_per_s"] = round(feature_rows / figures["features_s"])
        figures["peak_rss_mb_after_features"] = round(peak_rss_mb())

        if not args.no_peer:
            peer_s, peer_rows = pandas_peer(ws, spec.horizon)
            duck_s, _ = duckdb_peer(ws, spec.horizon)
            figures["duckdb_4_features_s"] = round(duck_s, 2)
            figures["pandas_4_features_s"] = round(peer_s, 2)
            figures["pandas_peer_rows"] = peer_rows
            # same four features, same rows: how much slower (>1) or faster pandas is
            figures["ratio_pandas_over_duckdb_same_4_features"] = round(peer_s / duck_s, 2)
            figures["peak_rss_mb_after_peers"] = round(peak_rss_mb())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for key, value in figures.items():
        print(f"{key:>32}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
