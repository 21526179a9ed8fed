"""Benchmark: what the DLE backtest folds cost at training, against training without them.

``train_region_model`` makes one more fit per backtest fold (spec
``monitoring.estimate_backtest_folds``, off by default; ``--folds``, default 8, here) so
that the label-free performance estimate learns from a year of out-of-sample errors. This
trains every region of a dataset twice in the same run, with the folds and with none,
alternating per region so both
see the same machine state, and reports the training time and the size of the saved
metadata (``model.json``) with and without the folds, as ratios.

Data: ``--source-dir`` (e.g. ../shared/data/rossmann-100 with ``--spec rossmann``), else
the project's generated sample (``--spec sample``, the demo's size by default).

    .venv/bin/python benchmarks/backtest_cost.py                       # generated sample
    .venv/bin/python benchmarks/backtest_cost.py --spec rossmann \\
        --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset

from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec
from mlops_assets.training import train_region_model

RESULTS = Path(__file__).parent / "results" / "backtest_cost.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="sample")
    ap.add_argument("--source-dir", type=Path, help="dataset folder (default: generated)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--folds", type=int, default=8, help="backtest folds of the costly run")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    folds = args.folds
    spec = spec.model_copy(
        update={"monitoring": spec.monitoring.with_overrides(estimate_backtest_folds=folds)}
    )
    without = spec.model_copy(
        update={"monitoring": spec.monitoring.with_overrides(estimate_backtest_folds=0)}
    )
    with tempfile.TemporaryDirectory(prefix="backtest-cost-") as tmp:
        source = args.source_dir
        if source is None:
            source = Path(tmp) / "sample"
            generate(SampleConfig(), source)
        ws, regions, fs_all, _ = build_workspace(source, Path(tmp) / "ws", spec)
        rows = []
        for region in regions:
            features = ws.read_features(region)
            fs = fs_all.restricted_to(features.columns)
            entry = {"region": region, "rows": len(features)}
            for label, s in (("with_folds", spec), ("without", without)):
                t = time.perf_counter()
                trained = train_region_model(features, fs, s)
                entry[f"{label}_seconds"] = round(time.perf_counter() - t, 2)
                entry[f"{label}_meta_bytes"] = len(trained.meta_json().encode())
            entry["backtest_rows"] = len(trained.meta.get("backtest_forecasts", {}).get("date", []))
            rows.append(entry)
            print(
                f"{region:12s} {entry['rows']:7d} rows  {entry['with_folds_seconds']:6.1f} s "
                f"vs {entry['without_seconds']:6.1f} s  model.json "
                f"{entry['with_folds_meta_bytes'] / 1e3:.0f} KB vs "
                f"{entry['without_meta_bytes'] / 1e3:.0f} KB"
            )
    frame = pd.DataFrame(rows)
    total = {
        "with_folds_seconds": round(float(frame["with_folds_seconds"].sum()), 1),
        "without_seconds": round(float(frame["without_seconds"].sum()), 1),
    }
    total["time_ratio"] = round(total["with_folds_seconds"] / total["without_seconds"], 2)
    total["meta_bytes_ratio"] = round(
        float(frame["with_folds_meta_bytes"].sum() / frame["without_meta_bytes"].sum()), 2
    )
    report = {"spec": spec.name, "folds": folds, "total": total, "regions": rows}
    print(
        f"training {total['with_folds_seconds']} s with {folds} folds vs "
        f"{total['without_seconds']} s without (x{total['time_ratio']}); "
        f"model.json x{total['meta_bytes_ratio']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
