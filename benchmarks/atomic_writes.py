"""Benchmark: one atomic write into a folder that already holds many files.

Ingest writes one raw Parquet and one manifest record per landing file into the same
folders, so a per-write cost that grows with the folder makes an ingest of N files cost
N^2. Every atomic write first sweeps the stale temp files killed writers left
(``workspace.sweep_folder_if_touched``); this times ``atomic_write_bytes`` into a folder of
``--files`` files as the platform does it now (the folder is listed only when another
process changed it since this process's last write) against the previous behaviour, the
same write preceded by a listing sweep every time (``sweep_stale_temps``), interleaved in
the same run. Writes ``benchmarks/results/atomic_writes.json``.

    .venv/bin/python benchmarks/atomic_writes.py --files 10000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mlops_assets.workspace import atomic_write_bytes, sweep_stale_temps

RESULTS = Path(__file__).parent / "results" / "atomic_writes.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--writes", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="atomic-writes-") as tmp:
        folder = Path(tmp)
        for i in range(args.files):
            (folder / f"{i:064x}.json").write_bytes(b"{}")
        now_s, before_s = [], []
        for i in range(args.writes):
            target = folder / f"new-{i}.json"
            t = time.perf_counter()
            atomic_write_bytes(target, b"{}")
            now_s.append(time.perf_counter() - t)
            target = folder / f"old-{i}.json"
            t = time.perf_counter()
            sweep_stale_temps(target)  # what every write did before
            atomic_write_bytes(target, b"{}")
            before_s.append(time.perf_counter() - t)
    now_ms, before_ms = statistics.median(now_s) * 1e3, statistics.median(before_s) * 1e3
    report = {
        "files_in_folder": args.files,
        "writes": args.writes,
        "median_ms_per_write": round(now_ms, 3),
        "median_ms_per_write_sweeping_every_write": round(before_ms, 3),
        "ratio_now_over_before": round(now_ms / before_ms, 3),
        "commit": subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
