"""Benchmark: model settings on large regions: trees early stopping picks, holdout error, wall.

``accuracy_backtest.py`` chooses settings on rossmann-100, whose regions are small (about
25k rows); a setting's cost at the reference's scale depends on how many trees early
stopping picks on a large region, which rossmann cannot show. This trains each
``--regions`` region of generated sample data (``--stores`` x ``--regions`` stores x 4
departments x ``--days``; the generator splits the stores unevenly: by default two regions
of 253k and 760k rows, about the 10M preset's region size) with the spec's default
training, once per candidate (a JSON object of LightGBM parameters merged over the
spec's), and prints and writes ``benchmarks/results/settings_at_scale.json``: per region
and candidate the trees, the holdout WAPE and MAPE, and the training's wall seconds.

    .venv/bin/python benchmarks/settings_at_scale.py \\
        --candidate et31='{"extra_trees": true, "num_leaves": 31}'
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset
from report import provenance  # benchmarks/: command, commit, time and machine

from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec
from mlops_assets.training import train_region_model

RESULTS = Path(__file__).parent / "results" / "settings_at_scale.json"


def parse_candidate(text: str) -> tuple[str, dict]:
    name, _, params = text.partition("=")
    if not name or not params:
        raise argparse.ArgumentTypeError("a candidate is NAME='{\"param\": value, ...}'")
    return name, json.loads(params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", type=int, default=62, help="stores per region, on average")
    ap.add_argument("--days", type=int, default=2000)
    ap.add_argument("--regions", type=int, default=2)
    ap.add_argument("--candidate", type=parse_candidate, action="append", default=[])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--reuse-trees",
        action="store_true",
        help="after each candidate, train it again boosting the trees its probe picked, "
        "without a probe (a retrain that reuses a model's count, ModelSettings.reuse_trees_days)",
    )
    args = ap.parse_args()
    spec = load_spec("sample")
    candidates = {"defaults": {}, **dict(args.candidate)}
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="settings-at-scale-") as tmp:
        config = SampleConfig(
            n_regions=args.regions,
            n_stores=args.stores * args.regions,
            n_departments=4,
            days=args.days,
            file_format="parquet",
        )
        generate(config, Path(tmp) / "source")
        ws, regions, fs_all, _ = build_workspace(Path(tmp) / "source", Path(tmp) / "ws", spec)
        for region in sorted(regions):
            features = ws.read_features(region)
            fs = fs_all.restricted_to(features.columns)
            for name, change in candidates.items():
                params = {**spec.model.params, **change}
                settings = spec.model.model_copy(update={"params": params})
                trees = None
                labels = [name, f"{name}_reused_trees"] if args.reuse_trees else [name]
                for label in labels:
                    start = time.perf_counter()
                    model = train_region_model(features, fs, spec, settings=settings, trees=trees)
                    metrics = model.metrics["model"]
                    row = {
                        "region": region,
                        "rows": len(features),
                        "candidate": label,
                        "trees": model.best_iteration,
                        "wape": round(metrics["wape"], 4),
                        "mape": round(metrics["mape"], 4),
                        "train_wall_s": round(time.perf_counter() - start, 1),
                    }
                    print(json.dumps(row), flush=True)
                    results.append(row)
                    trees = model.best_iteration
    report = {"candidates": candidates, "results": results, **provenance()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
