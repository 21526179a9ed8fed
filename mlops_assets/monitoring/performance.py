"""The model's performance without actuals: nannyml DLE's estimate of RMSE and MAE,
its error model fitted on the model's out-of-sample forecasts, and the share of each
week's rows whose inputs left the training range (where the estimate cannot follow)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.monitoring.nannyml_support import (
    analysis_results,
    chunk_sizes,
    import_nannyml,
    result_rows,
    week_chunker,
)
from mlops_assets.monitoring.refresh import merge_weeks, reference_digest, split_weeks
from mlops_assets.monitoring.table import (
    MIN_DLE_ROWS,
    OUTSIDE_TRAINING_RANGE,
    TABLE_COLUMNS,
    MonitoredColumns,
)
from mlops_assets.spec import MonitoringSettings
from mlops_assets.training import week_start


def outside_inputs(
    reference: pd.DataFrame, meta: dict[str, Any], cols: MonitoredColumns, s: MonitoringSettings
) -> list[str]:
    """The model's inputs from outside the region's own sales history that matter: watched
    numeric features that are neither calendar nor computed from the target (weather,
    promotions), known in the reference, carrying at least
    ``estimate_support_min_importance`` of the model's mean |Shapley|. Drift moves these."""
    importance = meta.get("importance") or {}
    total = sum(importance.values())
    return [
        c
        for c in cols.alerting_numeric
        if c not in cols.quality_ignored
        and c in reference.columns
        and reference[c].notna().any()
        and (not total or importance.get(c, 0.0) / total >= s.estimate_support_min_importance)
    ]


def dle_features(
    meta: dict[str, Any], s: MonitoringSettings, outside: list[str] | None = None
) -> list[str]:
    """The error model's inputs: the model's ``dle_top_features`` most important features
    (by saved mean |Shapley|; all of them when unset or when the model saved no importance),
    then the ``outside`` inputs (``outside_inputs``; given when the error model learns from a
    backtest, whose year of errors shows how they depend on the weather or promotions)."""
    features = list(meta["features"])
    importance = meta.get("importance") or {}
    if s.dle_top_features is not None and importance:
        ranked = sorted(features, key=lambda f: importance.get(f, 0.0), reverse=True)
        features = ranked[: s.dle_top_features]
    return list(dict.fromkeys([*features, *(outside or [])]))


def estimated_performance(
    holdout: pd.DataFrame,
    analysis: pd.DataFrame,
    features: list[str],
    backtest: pd.DataFrame | None = None,
    params: dict[str, Any] | None = None,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """nannyml DLE: RMSE and MAE estimated from the inputs; ``realized`` where the week
    has actuals.

    The error model learns from out-of-sample errors: the ``backtest``'s when it has enough
    rows (a year of folds: errors in every season and at every weather), then scaled so
    that it estimates the holdout's realized error on the holdout (the fold models learned
    from less history than the deployed one, and err more); else the holdout's (six weeks
    of one season: blind to inputs that season did not vary). ``params``: the error
    model's LightGBM parameters. ``previous``: an earlier table of the same model; its
    weeks whose rows (inputs, forecasts and actuals) are unchanged are taken from it
    (``monitoring.refresh``: the error model learns from out-of-sample forecasts saved
    with the model, and estimates each week on its own), and with none left nothing is
    fitted."""
    learn_from = backtest if backtest is not None and len(backtest) >= MIN_DLE_ROWS else holdout
    if len(learn_from) < MIN_DLE_ROWS or len(holdout) == 0:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    names = [*features, "y_pred", "y_true"]
    cols = ["date", *names]
    hyperparameters = {**(params or {}), "n_jobs": 1, "verbose": -1, "random_state": 0}
    settings: dict[str, Any] = {"hyperparameters": hyperparameters}
    if learn_from is backtest:  # the estimates are scaled to the holdout's error
        settings["holdout"] = reference_digest(holdout, names)
    digest = reference_digest(learn_from, names, settings)
    written = [(m, "dle") for m in ("rmse", "mae")]
    weeks = split_weeks(analysis, names, digest, previous, "estimated_performance", written)
    computed = pd.DataFrame(columns=TABLE_COLUMNS)
    if len(weeks.to_compute):
        est = import_nannyml().DLE(
            feature_column_names=features,
            y_pred="y_pred",
            y_true="y_true",
            timestamp_column_name="date",
            chunker=week_chunker(),
            metrics=["rmse", "mae"],
            hyperparameters=hyperparameters,
        )
        est.fit(learn_from[cols])
        scale = {"rmse": 1.0, "mae": 1.0}
        if learn_from is backtest:
            scale = _holdout_scale(analysis_results(est.estimate(holdout[cols])))
        df = analysis_results(est.estimate(weeks.to_compute[cols]))
        out = []
        for m, method in written:
            rows = result_rows(df, ("chunk",), "estimated_performance", (m,))
            rows[["value", "lower", "upper"]] *= scale[m]
            out.append(rows.assign(feature=m, method=method, ignored=False))
        computed = pd.concat(out, ignore_index=True)
    return merge_weeks(weeks, computed, written)


def _holdout_scale(estimate: pd.DataFrame) -> dict[str, float]:
    """Per metric, the holdout's realized error over the error model's estimate of it
    (nannyml's weekly chunks of the holdout, pooled by their rows): the factor that puts
    backtest-trained estimates on the deployed model's level."""
    rows = chunk_sizes(estimate).to_numpy()

    def pooled(metric: str, column: str) -> float:
        values = estimate[(metric, column)].to_numpy(float)
        if metric == "rmse":
            return float(np.sqrt(np.sum(rows * values**2) / rows.sum()))
        return float(np.sum(rows * values) / rows.sum())

    scale = {}
    for m in ("rmse", "mae"):
        realized, estimated = pooled(m, "realized"), pooled(m, "value")
        ok = np.isfinite(realized) and np.isfinite(estimated) and estimated > 0 and realized > 0
        scale[m] = realized / estimated if ok else 1.0
    return scale


def estimate_support(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    meta: dict[str, Any],
    cols: MonitoredColumns,
    s: MonitoringSettings,
) -> pd.DataFrame:
    """Per week, the share of rows with an input from outside the region's own sales
    history (``outside_inputs``) beyond the range the model was fitted on.

    Trees are flat past their last split, and so is the error model DLE learns: drift that
    takes inputs there (a weather feed reading 20 C too warm) leaves the forecast where
    the edge of the training data was, and the estimate at the error the model made there.
    Such a week's estimate cannot say how much error the drift adds beyond that edge (only
    the realized error can); this share says which weeks those are."""
    inputs = outside_inputs(reference, meta, cols, s)
    if not inputs or analysis.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    values = analysis[inputs].astype(float)
    beyond = values.lt(reference[inputs].min()) | values.gt(reference[inputs].max())
    by_week = beyond.any(axis=1).groupby(week_start(analysis["date"]).to_numpy())
    share = by_week.mean()
    return pd.DataFrame(
        {
            "signal": "estimated_performance",
            "feature": OUTSIDE_TRAINING_RANGE,
            "method": "range",
            "week_start": pd.to_datetime(share.index),
            "rows": by_week.size().to_numpy(int),
            "value": share.to_numpy(float),
            "lower": np.nan,
            "upper": np.nan,
            "nml_alert": False,
            "ignored": False,
            "realized": np.nan,
        }
    )
