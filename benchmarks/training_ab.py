"""Benchmark: does a change to training keep its accuracy? Two commits' training, paired.

Every region of a real dataset (default ``../shared/data/rossmann-100``) is trained with
``train_region_model`` as of two commits (``--base``; ``--head``, default the working tree)
on the history up to each cutoff, with the same feature tables (built once, by the working
tree's code: this compares training, not features). Per commit, seed and cutoff it
records the trees early stopping chose (summed; and how many regions' artifacts differ
from the base's, by their text), the seconds training took, the evaluation model's
holdout error (what the gate judges) and the artifact's error on the ``horizon`` days
after the cutoff (what users get; the feature table's target lags all end ``horizon``
periods back, so those rows are a genuine forecast from the cutoff). Both errors are
pooled over the regions. The summary pairs head with base at each seed x cutoff: mean
difference and how often head is better, per metric. Each side runs in its own process
(the commit's package first on ``sys.path``), the sides alternate per seed; seconds are
one run each on a shared machine, so they move more than the errors.

    .venv/bin/python benchmarks/training_ab.py --base fb7ba4a --head 1a2b3c4 --seeds 0,1 \\
        --label probe_bins

Appends one entry per ``--label`` (replacing an earlier one) to
``benchmarks/results/training_ab.json`` (or ``--out``). Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO_ROOT, provenance, ref_worktree  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "training_ab.json"
CUTOFFS = ("2014-07-31", "2015-03-27", "2015-06-19")
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"
METRICS = ("wape", "rmspe", "mape")


def build_tables(source: Path, spec_name: str, out: Path) -> None:
    """Every region's feature table (Parquet) and model inputs (JSON) into ``out``."""
    from drift_replay import build_workspace

    from mlops_assets.spec import load_spec

    spec = load_spec(spec_name)
    ws, regions, fs, _ = build_workspace(source, out / "ws", spec)
    for region in regions:
        table = ws.read_features(region)
        table.to_parquet(out / f"{region}.parquet")
        inputs = fs.restricted_to(table.columns)
        (out / f"{region}.json").write_text(
            json.dumps({"numeric": inputs.numeric, "categorical": inputs.categorical})
        )


def train_at_cutoffs(tables: Path, spec_name: str, seed: int, cutoffs: list[str]) -> dict:
    """The worker: every region trained on its history up to each cutoff by the package
    first on ``sys.path``; its trees, artifact digests, seconds and pooled errors."""
    import hashlib
    import time

    import pandas as pd

    import mlops_assets
    from mlops_assets.conditioning import FeatureSet
    from mlops_assets.metrics import regression_metrics
    from mlops_assets.spec import load_spec
    from mlops_assets.training import eligible_rows, predict_frame, train_region_model

    spec = load_spec(spec_name)
    model = spec.model.model_copy(update={"params": {**spec.model.params, "seed": seed}})
    spec = spec.model_copy(update={"model": model})
    span = pd.Timedelta(days=spec.horizon * spec.period_days)
    floor = spec.model.metric_floor

    def pooled(rows: pd.DataFrame) -> dict[str, float]:
        m = regression_metrics(rows["actual"], rows["forecast"], floor=floor)
        return {k: round(float(m[k]), 5) for k in METRICS}

    out: dict = {"package": str(Path(mlops_assets.__file__).parent), "cutoffs": {}}
    for cutoff in map(pd.Timestamp, cutoffs):
        held, future_rows, regions, seconds = [], [], {}, 0.0
        for path in sorted(tables.glob("*.parquet")):
            table = pd.read_parquet(path)
            inputs = FeatureSet(**json.loads(path.with_suffix(".json").read_text()))
            table = table.loc[~table["is_future"].astype(bool)].copy()
            table["date"] = pd.to_datetime(table["date"])
            history = table[table["date"] <= cutoff]
            future = table[(table["date"] > cutoff) & (table["date"] <= cutoff + span)]
            future = future[eligible_rows(future) & future["target"].notna()]
            start = time.perf_counter()
            trained = train_region_model(history, inputs.restricted_to(history.columns), spec)
            seconds += time.perf_counter() - start
            text = trained.booster.model_to_string().encode()
            regions[path.stem] = {
                "trees": trained.best_iteration,
                "artifact_sha256": hashlib.sha256(text).hexdigest()[:16],
            }
            scored = trained.holdout[trained.holdout["eligible"]]
            held.append(scored[["actual", "model"]].rename(columns={"model": "forecast"}))
            if len(future):
                future_rows.append(
                    pd.DataFrame(
                        {
                            "actual": future["target"].clip(lower=0).to_numpy(),
                            "forecast": predict_frame(trained.booster, trained.meta, future),
                        }
                    )
                )
        out["cutoffs"][str(cutoff.date())] = {
            "train_s": round(seconds, 1),
            "trees": sum(r["trees"] for r in regions.values()),
            "regions": regions,
            "holdout": pooled(pd.concat(held, ignore_index=True)),
            "future": pooled(pd.concat(future_rows, ignore_index=True)),
        }
        entry = out["cutoffs"][str(cutoff.date())]
        brief = {k: v for k, v in entry.items() if k != "regions"}
        print(f"  {cutoff.date()}: {brief}", file=sys.stderr, flush=True)
    return out


def run_side(tree: Path, tables: Path, spec: str, seed: int, cutoffs: list[str]) -> dict:
    """``train_at_cutoffs`` in a process that imports ``tree``'s package."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tables)]
    cmd += ["--spec", spec, "--seed", str(seed), "--cutoffs", ",".join(cutoffs)]
    done = subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def paired_summary(runs: dict) -> dict:
    """Head against base at every seed x cutoff: per error and metric, the mean of head -
    base and in how many pairs head is lower (better)."""
    summary: dict = {}
    for error in ("holdout", "future"):
        for metric in METRICS:
            diffs = [
                h["cutoffs"][c][error][metric] - b["cutoffs"][c][error][metric]
                for seed, b in runs["base"].items()
                for h in [runs["head"][seed]]
                for c in b["cutoffs"]
            ]
            summary[f"{error}_{metric}"] = {
                "mean_head_minus_base": round(sum(diffs) / len(diffs), 5),
                "head_better": f"{sum(d < 0 for d in diffs)} of {len(diffs)}",
                "equal": sum(d == 0 for d in diffs),
            }
    seconds = {
        side: sum(c["train_s"] for r in runs[side].values() for c in r["cutoffs"].values())
        for side in ("base", "head")
    }
    summary["train_s"] = {k: round(v, 1) for k, v in seconds.items()}
    summary["artifacts_differing"] = sum(
        b_region["artifact_sha256"] != h["cutoffs"][c]["regions"][r]["artifact_sha256"]
        for seed, b in runs["base"].items()
        for h in [runs["head"][seed]]
        for c in b["cutoffs"]
        for r, b_region in b["cutoffs"][c]["regions"].items()
    )
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", help="the commit to compare against (required unless --worker)")
    ap.add_argument("--head", help="the commit under test (default: the working tree)")
    ap.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--cutoffs", default=",".join(CUTOFFS))
    ap.add_argument("--seeds", default="0", help="model seeds, e.g. 0,1")
    ap.add_argument("--label", default="training_ab")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tmp", help="directory for the temporary data (default: system)")
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cutoffs = args.cutoffs.split(",")
    if args.worker:
        print(json.dumps(train_at_cutoffs(args.worker, args.spec, args.seed, cutoffs)))
        return
    if not args.base:
        ap.error("--base is required")
    if not args.source_dir.is_dir():
        print(f"SKIPPED: no data at {args.source_dir} (nothing written)")
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.tmp)))
        trees = {"base": stack.enter_context(ref_worktree(args.base))}
        trees["head"] = stack.enter_context(ref_worktree(args.head)) if args.head else REPO_ROOT
        build_tables(args.source_dir, args.spec, tmp)
        runs: dict = {"base": {}, "head": {}}
        for seed in seeds:
            for side in ("base", "head"):
                print(
                    f"{side} ({args.base if side == 'base' else args.head or 'working tree'})"
                    f", seed {seed}",
                    flush=True,
                )
                runs[side][str(seed)] = run_side(trees[side], tmp, args.spec, seed, cutoffs)
    entry = {
        "label": args.label,
        "base": args.base,
        "head": args.head or "working tree",
        "source": str(args.source_dir),
        "spec": args.spec,
        "seeds": seeds,
        "summary": paired_summary(runs),
        "runs": runs,
        **provenance(),
    }
    print(json.dumps(entry["summary"], indent=1))
    entries = json.loads(args.out.read_text()) if args.out.exists() else []
    entries = [e for e in entries if e.get("label") != args.label] + [entry]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(entries, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
