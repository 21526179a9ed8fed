"""Evaluate the whole modelling procedure on a dataset: ingest -> features -> train.

Runs in a temporary workspace (nothing outside it is touched) with the plain modules the
assets use, and reports holdout metrics per region and pooled over all regions, as
fractions (0.10 means 10%). Used by ``mlops-assets evaluate`` and the accuracy benchmark.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.conditioning import feature_set, write_features
from mlops_assets.landing import drop_dataset, ingest_file, scan_landing
from mlops_assets.metrics import reduction, regression_metrics
from mlops_assets.spec import DatasetSpec
from mlops_assets.training import train_region_model
from mlops_assets.warehouse import connect, regions_with_sales
from mlops_assets.workspace import Workspace

REPORTED = ("mape", "wape", "rmse", "rmspe", "rmse_zero")


def _summary(model: dict[str, Any], baseline: dict[str, Any], n: int) -> dict[str, Any]:
    out = {k: model.get(k) for k in REPORTED}
    out.update(
        baseline_mape=baseline.get("mape"),
        baseline_rmspe=baseline.get("rmspe"),
        mape_reduction_vs_baseline=reduction(model.get("mape"), baseline.get("mape")),
        rmspe_reduction_vs_baseline=reduction(model.get("rmspe"), baseline.get("rmspe")),
        rows=n,
    )
    return out


def region_line(key: str, region: dict[str, Any]) -> str:
    """One region of a report as the evaluate command and the backtest print it."""
    return (
        f"  {key:<12} MAPE {region['mape']:.2%}  RMSPE {region['rmspe']:.2%}  reduction "
        f"{region['mape_reduction_vs_baseline']:.1%}"
    )


def evaluate_dataset(
    spec: DatasetSpec,
    source_dir: Path,
    *,
    workdir: Path | None = None,
    rows_out: Path | None = None,
) -> dict[str, Any]:
    """Ingest ``source_dir`` through ``spec``, build features, train and evaluate every
    region; returns the JSON-ready report. ``rows_out``: also write the scored holdout
    rows (actual, model and baseline forecasts per store and date) as Parquet, for error
    analysis."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlops-evaluate-", dir=workdir) as tmp:
        ws = Workspace(Path(tmp))
        drop_dataset(spec, Path(source_dir), ws)
        quarantined = []
        for lf in scan_landing(ws, spec):
            outcome = ingest_file(ws, spec, lf.source, lf.relpath)
            if outcome.status == "quarantined":
                quarantined.append({"file": lf.relpath, "reason": outcome.record["reason"]})
        regions = regions_with_sales(ws, spec)
        with connect(ws, spec, shared=False) as con:
            for region in regions:
                write_features(con, spec, region, ws.data, ws.features_key(region))
            fs_all = feature_set(con, spec)
        per_region: dict[str, Any] = {}
        pooled = []
        holdout_start, holdout_end = None, None
        for region in regions:
            features = ws.read_features(region)
            fs = fs_all.restricted_to(features.columns)
            trained = train_region_model(features, fs, spec)
            m = trained.metrics
            per_region[region] = _summary(m["model"], m["hist_avg"], m["model"]["n"]) | {
                "region": regions[region],
                "seasonal_naive_rmspe": m["seasonal_naive"].get("rmspe"),
                "hist_avg_dow_mape": m["hist_avg_dow"].get("mape"),
                "num_boost_round": trained.best_iteration,
            }
            pooled.append(trained.holdout[trained.holdout["eligible"]].assign(region=region))
            s = trained.split
            holdout_start = min(filter(None, [holdout_start, s.holdout_start]))
            holdout_end = max(filter(None, [holdout_end, s.holdout_end]))
    rows = pd.concat(pooled, ignore_index=True)
    if rows_out is not None:
        Path(rows_out).parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(rows_out, index=False)
    floor = spec.model.metric_floor
    overall_model = regression_metrics(rows["actual"], rows["model"], floor=floor)
    overall_base = regression_metrics(rows["actual"], rows["hist_avg"], floor=floor)
    overall = _summary(overall_model, overall_base, len(rows))
    for name in ("hist_avg_dow", "seasonal_naive"):
        overall[f"{name}_mape"] = regression_metrics(rows["actual"], rows[name], floor=floor)[
            "mape"
        ]
        overall[f"{name}_rmspe"] = regression_metrics(rows["actual"], rows[name], floor=floor)[
            "rmspe"
        ]
    return {
        "dataset": spec.name,
        "holdout_start": str(holdout_start.date()),
        "holdout_end": str(holdout_end.date()),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "overall": overall,
        "regions": per_region,
        "quarantined": quarantined,
    }
