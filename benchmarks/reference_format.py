"""Benchmark: the monitoring reference saved with every model, as Parquet against CSV.

Every registration writes the reference (the fitted rows, at most
``monitoring.reference_max_rows``) and every drift_report reads it back. This generates
one region of the 10M preset's shape (62 stores x 4 departments x 2,000 days, about 500k
feature rows), takes its reference at the cap as training does (``reference_rows``), and
times writing and reading it both ways (best of ``--repeats``, alternating), asserts both
read back to the same frame once cast as monitoring casts it, and writes
``benchmarks/results/reference_format.json``.

    .venv/bin/python benchmarks/reference_format.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset
from report import print_and_write, provenance  # benchmarks/: command, commit, time and machine

from mlops_assets import training
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec

RESULTS = Path(__file__).parent / "results" / "reference_format.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", type=int, default=62)
    ap.add_argument("--days", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec("sample")
    with tempfile.TemporaryDirectory(prefix="reference-format-") as tmp:
        config = SampleConfig(
            n_regions=1, n_stores=args.stores, n_departments=4, days=args.days,
            file_format="parquet",
        )  # fmt: skip
        generate(config, Path(tmp) / "source")
        ws, regions, fs_all, _ = build_workspace(Path(tmp) / "source", Path(tmp) / "ws", spec)
        features = ws.read_features(next(iter(regions)))
    fs = fs_all.restricted_to(features.columns)
    meta = {"features": fs.all, "categorical": fs.categorical}
    hist = training.history_rows(features, fs.numeric)
    fitted = hist[training.eligible_rows(hist).to_numpy() & hist["target"].notna().to_numpy()]
    reference = training.reference_rows(
        fitted, meta, spec.monitoring.reference_max_rows, table=features
    )

    formats = {  # name: (write, read)
        "csv": (
            lambda: training.reference_csv(reference).encode(),
            lambda blob: training.read_reference_csv(blob.decode(), fs.categorical),
        ),
        "parquet": (lambda: training.reference_parquet(reference), training.read_reference_parquet),
    }
    best: dict[str, float] = {}
    megabytes: dict[str, float] = {}
    for _ in range(args.repeats):  # the formats alternate: this machine's speed drifts
        for name, (write, read) in formats.items():
            start = time.perf_counter()
            blob = write()
            written = time.perf_counter()
            back = read(blob)
            done = time.perf_counter()
            for key, value in (("write", written - start), ("read", done - written)):
                best[f"{name}_{key}_s"] = min(best.get(f"{name}_{key}_s", float("inf")), value)
            megabytes[f"{name}_mb"] = round(len(blob) / 1e6, 2)
            # what monitoring compares: the reference cast to the feature table's dtypes
            pd.testing.assert_frame_equal(
                training.like_dtypes(back, features), reference, check_exact=True
            )

    def ratio(key: str) -> float:
        return round(best[f"parquet_{key}_s"] / best[f"csv_{key}_s"], 3)

    report = {
        "rows": len(reference),
        "columns": reference.shape[1],
        "feature_table_rows": len(features),
        **{k: round(v, 3) for k, v in best.items()},
        **megabytes,
        "write_ratio_parquet_over_csv": ratio("write"),
        "read_ratio_parquet_over_csv": ratio("read"),
        "size_ratio_parquet_over_csv": round(megabytes["parquet_mb"] / megabytes["csv_mb"], 3),
        "equal_after_monitorings_cast": True,
        **provenance(),
    }
    print_and_write(report, args.out)


if __name__ == "__main__":
    main()
