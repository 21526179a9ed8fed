"""Benchmark: resident memory of one run worker over its batch of regions.

A training backfill hands each run several regions (``MLOPS_REGIONS_PER_RUN``, default 3):
the run worker trains, registers and scores one region after another in one process. This
does the same library calls in one process (``direct.DirectPipeline``'s training and
scoring, one region at a time) on generated regions of a scale preset's size (``--stores``
x 4 departments x ``--days`` each; the default is a region of the 10M preset, about 500k
rows; ``--stores 125 --days 4000`` is a 40M region, about 2M rows), while a thread samples
the process's resident memory every 20 ms. Prints and writes
``benchmarks/results/run_worker_memory.json``: for each region the memory before it, its
peak while training and while scoring, and after it; so growth from one region to the
next shows as a rising "before".

    .venv/bin/python benchmarks/run_worker_memory.py
    .venv/bin/python benchmarks/run_worker_memory.py --stores 125 --days 4000   # 40M regions
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
import time
from pathlib import Path

from direct import DirectPipeline  # benchmarks/: the platform's calls without Dagster
from report import print_and_write, provenance  # benchmarks/: command, commit, time and machine
from training_memory import PhaseSampler, rss_gb  # benchmarks/: RSS sampled per phase

from mlops_assets.landing import drop_dataset
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.warehouse import regions_with_sales

RESULTS = Path(__file__).parent / "results" / "run_worker_memory.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--regions", type=int, default=3, help="regions in the batch (default 3)")
    ap.add_argument("--stores", type=int, default=62, help="stores per region")
    ap.add_argument("--days", type=int, default=2000)
    ap.add_argument(
        "--malloc-trim",
        action="store_true",
        help="call glibc's malloc_trim(0) after each region (how much of what a region "
        "leaves is free memory the allocator keeps)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="run-worker-memory-") as tmp:
        config = SampleConfig(
            n_regions=args.regions,
            n_stores=args.stores * args.regions,
            n_departments=4,
            days=args.days,
            file_format="parquet",
        )
        stores = generate(config, Path(tmp) / "source").stores_per_region
        pipeline = DirectPipeline(Path(tmp) / "source", Path(tmp) / "ws")
        drop_dataset(pipeline.spec, pipeline.source_dir, pipeline.ws)
        pipeline.ingest()
        pipeline.features()
        regions = list(pipeline.regions)
        names = regions_with_sales(pipeline.ws, pipeline.spec)  # region key -> its name
        per_region = []
        with PhaseSampler() as sampler:
            for i, region in enumerate(regions, 1):
                row: dict = {
                    "region": region,
                    "stores": stores[names[region]],  # the generator splits stores unevenly
                    "rss_before_gb": round(rss_gb(), 3),
                }
                for stage in ("training", "scoring"):
                    sampler.phase = f"{region} {stage}"
                    pipeline.regions = [region]
                    start = time.perf_counter()
                    getattr(pipeline, stage)()
                    row[f"{stage}_s"] = round(time.perf_counter() - start, 1)
                    # the region_model asset keeps nothing of a training once it returned
                    # (the pipeline keeps each outcome for the peer comparison)
                    pipeline.outcomes.clear()
                if args.malloc_trim:
                    ctypes.CDLL("libc.so.6").malloc_trim(0)
                sampler.phase = f"after {region}"
                time.sleep(0.1)
                row["rss_after_gb"] = round(rss_gb(), 3)
                per_region.append(row)
                print(f"  region {i}/{len(regions)}: {row}", flush=True)
        for row in per_region:
            for stage in ("training", "scoring"):
                # a phase shorter than one sample interval has none
                peak = sampler.peaks.get(f"{row['region']} {stage}")
                row[f"{stage}_peak_gb"] = round(peak, 3) if peak is not None else None
    peaks = [
        max(v for k, v in r.items() if k.endswith("_peak_gb") and v is not None) for r in per_region
    ]
    report = {
        "regions": args.regions,
        "malloc_trim_after_each_region": args.malloc_trim,
        "stores_per_region_mean": args.stores,
        "per_region": per_region,
        "peak_rss_gb": max(peaks),
        "peak_growth_first_to_last_gb": round(peaks[-1] - peaks[0], 3),
        "rss_unit": "GB = 1e9 bytes (from /proc/self/statm)",
        **provenance(),
    }
    print_and_write(report, args.out)


if __name__ == "__main__":
    main()
