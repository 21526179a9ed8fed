"""Benchmark: accuracy of the modelling procedure on an inner backtest that ends at a cutoff.

Settings are chosen here, never on the real holdout. The dataset's dated sources are
copied into a temporary folder with only the rows dated on or before ``--cutoff`` (the
known-future calendar and any ``actuals`` are left out), and the project's own
``evaluate_dataset`` runs on that copy: ingestion -> features -> training, with the last
``horizon`` days before the cutoff as the backtest holdout and the ``horizon`` days before
that as the inner early-stopping window. So a backtest at cutoff 2015-06-19 of rossmann
scores 2015-05-09..2015-06-19 and never reads a day of the real holdout (2015-06-20..).

``--set`` deep-merges a JSON object over the spec (e.g. model parameters; ``null`` removes
a key, e.g. a source) so that one setting can be tried without editing the reviewed spec.
Prints the figures and appends one entry per run to
``benchmarks/results/accuracy_backtest.json`` (or ``--out``), replacing an earlier entry of
the same ``--label``.

    .venv/bin/python benchmarks/accuracy_backtest.py --source-dir ../shared/data/rossmann-100
    .venv/bin/python benchmarks/accuracy_backtest.py --source-dir ../shared/data/rossmann-100 \\
        --label leaves31 --set '{"model": {"params": {"num_leaves": 31}}}'
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops_assets.conditioning import FEATURES_VERSION
from mlops_assets.evaluation import evaluate_dataset, region_line
from mlops_assets.spec import SPECS_DIR, DatasetSpec, SourceSpec

RESULTS = Path(__file__).parent / "results" / "accuracy_backtest.json"
LEFT_OUT = ("future", "actuals")  # calendars/actuals after the cutoff are not history


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base``; a ``null`` value removes the key (e.g. a source)."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_spec_with(spec: str, overrides: dict[str, Any]) -> DatasetSpec:
    path = Path(spec)
    if not path.suffix and not path.is_file():
        path = SPECS_DIR / f"{spec}.yaml"
    raw = yaml.safe_load(path.read_text())
    return DatasetSpec.model_validate(deep_merge(raw, overrides))


def _cut_file(src: SourceSpec, path: Path, target: Path, cutoff: pd.Timestamp) -> dict[str, int]:
    """Copy one file keeping rows dated <= cutoff (text kept as it is in the file)."""
    date = src.columns["date"]
    frame = pd.read_csv(path, sep=src.delimiter, dtype=str, keep_default_na=False)
    days = pd.to_datetime(frame[date.source], format=date.date_format)
    kept = frame[days <= cutoff]
    target.parent.mkdir(parents=True, exist_ok=True)
    kept.to_csv(target, sep=src.delimiter, index=False)
    return {"rows": len(frame), "kept": len(kept)}


def cut_dataset(
    spec: DatasetSpec, source_dir: Path, out_dir: Path, cutoff: pd.Timestamp
) -> dict[str, dict[str, int]]:
    """Write the dataset as it was at ``cutoff`` into ``out_dir`` (same relative paths)."""
    report: dict[str, dict[str, int]] = {}
    for src in spec.sources.values():
        if src.kind in LEFT_OUT:
            continue
        for pattern in src.files:
            for path in sorted(source_dir.glob(pattern)):
                rel = path.relative_to(source_dir)
                target = out_dir / rel
                if "date" in src.columns:
                    report[str(rel)] = _cut_file(src, path, target, cutoff)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(path.resolve())
    return report


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="rossmann", help="spec name or YAML path")
    p.add_argument("--source-dir", required=True, type=Path)
    p.add_argument("--cutoff", default="2015-06-19", help="last day of data used (inclusive)")
    p.add_argument("--set", default="{}", help="JSON object deep-merged over the spec")
    p.add_argument("--label", default="spec", help="name of this experiment in the results")
    p.add_argument("--note", default="", help="what the code state was, if not the commit")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--rows-out", type=Path, help="write the scored backtest rows (Parquet)")
    args = p.parse_args(argv)

    overrides = json.loads(args.set)
    spec = load_spec_with(args.spec, overrides)
    cutoff = pd.Timestamp(args.cutoff)
    with tempfile.TemporaryDirectory(prefix="accuracy-backtest-") as tmp:
        cut = cut_dataset(spec, args.source_dir, Path(tmp) / "data", cutoff)
        report = evaluate_dataset(
            spec, Path(tmp) / "data", workdir=Path(tmp), rows_out=args.rows_out
        )
    if pd.Timestamp(report["holdout_end"]) > cutoff:
        raise SystemExit(f"holdout ends {report['holdout_end']}, after the cutoff")

    o = report["overall"]
    entry = {
        "label": args.label,
        "spec": spec.name,
        "cutoff": str(cutoff.date()),
        "overrides": overrides,
        "note": args.note,
        "commit": git_commit(),
        "features_version": FEATURES_VERSION,
        "holdout": f"{report['holdout_start']}..{report['holdout_end']}",
        "wall_seconds": report["wall_seconds"],
        "rmspe": o["rmspe"],
        "mape": o["mape"],
        "wape": o["wape"],
        "baseline_mape": o["baseline_mape"],
        "mape_reduction_vs_baseline": o["mape_reduction_vs_baseline"],
        "seasonal_naive_rmspe": o["seasonal_naive_rmspe"],
        "hist_avg_dow_mape": o["hist_avg_dow_mape"],
        "rows": o["rows"],
        "regions": {
            k: {
                "mape": r["mape"],
                "rmspe": r["rmspe"],
                "mape_reduction_vs_baseline": r["mape_reduction_vs_baseline"],
                "num_boost_round": r["num_boost_round"],
            }
            for k, r in report["regions"].items()
        },
        "source_rows": cut,
    }
    # written first: the figures are kept even if printing fails (a closed pipe)
    results = json.loads(args.out.read_text()) if args.out.is_file() else []
    results = [r for r in results if r.get("label") != args.label] + [entry]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{args.label}: backtest {entry['holdout']} (cutoff {entry['cutoff']}), "
        f"{len(report['regions'])} regions, {report['wall_seconds']} s"
    )
    print(
        f"  RMSPE {o['rmspe']:.2%}  MAPE {o['mape']:.2%}  WAPE {o['wape']:.2%}  "
        f"(hist avg MAPE {o['baseline_mape']:.2%}, seasonal naive RMSPE "
        f"{o['seasonal_naive_rmspe']:.2%})"
    )
    for key, r in entry["regions"].items():
        print(f"{region_line(key, r)}  trees {r['num_boost_round']}")

    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
