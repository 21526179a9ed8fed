"""Benchmark: how many holdout rows the saved global Shapley importance needs.

Training saves each model's mean |Shapley| importance, computed with exact TreeSHAP on a
seeded sample of its holdout rows (``training.SHAP_SAMPLE_ROWS``). Monitoring ranks
features by it (attribution drift's NDCG reference, the DLE's top features, what counts
as important), and TreeSHAP's cost grows with rows x trees: on rossmann-100's largest
region it was 38% of a training (13.7 s of 35.7 s at 2,000 rows). This trains every
region once, then computes the importance from the full eligible holdout (the truth) and
from seeded samples of several sizes, and reports per size the seconds and how well the
ranking agrees with the truth: attribution NDCG (monitoring's own score), whether the
top-3 features are the same set, and the Spearman correlation of all features.

    .venv/bin/python benchmarks/shap_sample.py --source-dir ../shared/data/rossmann-100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd
from drift_replay import build_workspace  # benchmarks/: ingest and condition a dataset

from mlops_assets.monitoring import attribution_ndcg
from mlops_assets.spec import load_spec
from mlops_assets.training import eligible_rows, shap_contributions, train_region_model

RESULTS = Path(__file__).parent / "results" / "shap_sample.json"
SIZES = (250, 500, 1000, 2000)
SEEDS = (1, 2, 3)


def importance(booster, meta, rows: pd.DataFrame) -> tuple[dict[str, float], float]:
    start = time.perf_counter()
    contrib = shap_contributions(booster, meta, rows).drop(columns="expected_value")
    seconds = time.perf_counter() - start
    return {k: float(v) for k, v in contrib.abs().mean().items()}, seconds


def agreement(truth: dict[str, float], sample: dict[str, float]) -> dict[str, float]:
    names = sorted(truth)
    t = pd.Series([truth[n] for n in names])
    s = pd.Series([sample[n] for n in names])
    top = set(sorted(truth, key=truth.get, reverse=True)[:3])
    return {
        "ndcg": attribution_ndcg(truth, sample),
        "top3_same": float(top == set(sorted(sample, key=sample.get, reverse=True)[:3])),
        "spearman": float(t.rank().corr(s.rank())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="rossmann")
    ap.add_argument("--source-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec(args.spec)
    per_size: dict[int, list[dict]] = {n: [] for n in SIZES}
    regions_out = []
    with tempfile.TemporaryDirectory(prefix="shap-sample-") as tmp:
        ws, regions, fs_all, _ = build_workspace(args.source_dir, Path(tmp) / "ws", spec)
        for region in regions:
            features = ws.read_features(region)
            fs = fs_all.restricted_to(features.columns)
            trained = train_region_model(features, fs, spec)
            hist = features[~features["is_future"].astype(bool)].copy()
            hist["date"] = pd.to_datetime(hist["date"])
            holdout = hist[hist["date"] >= trained.split.holdout_start]
            holdout = holdout[eligible_rows(holdout).to_numpy() & holdout["target"].notna()]
            truth, truth_s = importance(trained.booster, trained.meta, holdout)
            entry = {"region": region, "holdout_rows": len(holdout), "all_rows_s": truth_s}
            for n in SIZES:
                if n >= len(holdout):
                    continue
                for seed in SEEDS:
                    sample = holdout.sample(n, random_state=seed)
                    imp, seconds = importance(trained.booster, trained.meta, sample)
                    per_size[n].append({"seconds": seconds, **agreement(truth, imp)})
            regions_out.append(entry)
            print(f"{region}: {len(holdout)} holdout rows, all of them {truth_s:.2f} s")
    summary = {}
    for n, rows in per_size.items():
        if not rows:
            continue
        frame = pd.DataFrame(rows)
        summary[str(n)] = {
            "samples": len(frame),
            "seconds_mean": round(float(frame["seconds"].mean()), 3),
            "ndcg_min": round(float(frame["ndcg"].min()), 4),
            "ndcg_median": round(float(frame["ndcg"].median()), 4),
            "top3_same_share": round(float(frame["top3_same"].mean()), 3),
            "spearman_median": round(float(frame["spearman"].median()), 4),
        }
        print(f"{n:>5} rows: {summary[str(n)]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"spec": args.spec, "sizes": summary, "regions": regions_out, "seeds": SEEDS},
            indent=2,
            default=float,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
