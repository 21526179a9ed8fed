"""One region's monitoring: its reference, recent weeks and holdout from the feature
table and the serving model (``monitoring_inputs``), and every statistic of the drift
table (``region_drift``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_assets.monitoring.attribution import attribution_drift
from mlops_assets.monitoring.data_drift import (
    feature_drift,
    fleet_gap_drift,
    fleet_gap_frame,
    multivariate_drift,
)
from mlops_assets.monitoring.input_quality import data_quality
from mlops_assets.monitoring.nannyml_support import quiet_nannyml
from mlops_assets.monitoring.performance import (
    dle_features,
    estimate_support,
    estimated_performance,
    outside_inputs,
)
from mlops_assets.monitoring.table import MIN_DLE_ROWS, TABLE_COLUMNS, monitored_columns
from mlops_assets.spec import DatasetSpec
from mlops_assets.training import (
    as_datetime,
    eligible_rows,
    like_dtypes,
    predict_frame,
    week_start,
)

if TYPE_CHECKING:
    import lightgbm as lgb


@dataclass
class RegionMonitoringInputs:
    """What ``region_drift`` compares: frames carry ``date``, the series keys and the
    model's features; ``analysis`` also ``y_pred`` (the deployed model) and ``y_true``
    (NaN until actuals arrive); ``holdout`` is the model's out-of-sample holdout with its
    forecasts as ``y_pred``, ``backtest`` likewise its backtest folds (empty for models
    registered without them)."""

    region: str
    reference: pd.DataFrame
    analysis: pd.DataFrame
    holdout: pd.DataFrame
    reference_gap: pd.DataFrame
    analysis_gap: pd.DataFrame
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)


def monitoring_inputs(
    region: str,
    features: pd.DataFrame,
    booster: lgb.Booster,
    meta: dict[str, Any],
    spec: DatasetSpec,
    region_inputs: pd.DataFrame | None = None,
    saved_reference: pd.DataFrame | None = None,
    saved_gap: pd.DataFrame | None = None,
    fleet_gap: pd.DataFrame | None = None,
) -> RegionMonitoringInputs:
    """Reference, recent weeks and holdout of one region from its feature table and the
    model that serves it.

    Reference: the rows the model was fitted on, ``saved_reference`` (saved with it, see
    ``ModelRegistry.load_reference``; cast to the feature table's dtypes so nannyml treats
    every column alike on both sides), else the feature table's rows of the training window
    (models registered without one: a corrected history or recomputed features then
    change it). Analysis: rows after the window (history with actuals and known-future
    rows without), at most ``max_analysis_weeks`` recent weeks, scored by the model. Only
    rows the model is judged on count (open days; positive targets where the spec trains
    on those only). Holdout: the model's out-of-sample forecasts with the inputs and
    actuals of those rows, from the same source as the reference. The weather's fleet
    gap: ``fleet_gap``, the region's (``warehouse.region_fleet_gap``), else computed from
    ``region_inputs`` (every region's weather); its training window from ``saved_gap``
    (``ModelRegistry.load_fleet_gap``) when given."""

    def judged(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.copy()
        rows["date"] = as_datetime(rows["date"])
        rows = rows[eligible_rows(rows)]
        future = rows.get("is_future", pd.Series(False, index=rows.index)).astype(bool)
        truth = rows["target"].where(~future)
        if spec.model.train_on_positive_target:
            truth = truth.where(truth > 0)
        rows["y_true"] = truth.clip(lower=0)
        return rows

    frame = judged(features)
    train_min = pd.Timestamp(meta["train_date_min"])
    train_max = pd.Timestamp(meta["train_date_max"])
    known = judged(like_dtypes(saved_reference, features)) if saved_reference is not None else frame
    reference = known[known["date"].between(train_min, train_max) & known["y_true"].notna()]
    analysis = frame[frame["date"] > train_max].copy()
    if len(analysis):
        weeks = week_start(analysis["date"])
        first = weeks.max() - pd.Timedelta(weeks=spec.monitoring.max_analysis_weeks - 1)
        analysis = analysis[weeks >= first].copy()
    analysis["y_pred"] = predict_frame(booster, meta, analysis) if len(analysis) else []
    # out-of-sample forecasts with their rows' inputs and actuals, as the model was fitted
    # on them (the holdout: its last weeks; the backtest: the year before)
    keys = known.assign(store=known["store"].astype(str), item=known["item"].astype(str))

    def with_inputs(record: dict[str, list] | None) -> pd.DataFrame:
        forecasts = pd.DataFrame(record or {})
        if forecasts.empty:
            return forecasts
        forecasts["date"] = pd.to_datetime(forecasts["date"])
        forecasts = forecasts.rename(columns={"prediction": "y_pred"})
        rows = keys.merge(forecasts, on=["store", "item", "date"])
        return rows[rows["y_true"].notna()]

    cols = monitored_columns(meta, spec)
    gap = pd.DataFrame(columns=["date", *cols.region_level])
    if fleet_gap is not None and set(cols.region_level) <= set(fleet_gap.columns):
        gap = fleet_gap[["date", *cols.region_level]]
    elif region_inputs is not None and cols.region_level and len(region_inputs):
        gap = fleet_gap_frame(region_inputs, region, cols.region_level)
    reference_gap = gap[gap["date"].between(train_min, train_max)]
    if saved_gap is not None and set(cols.region_level) <= set(saved_gap.columns):
        reference_gap = saved_gap[["date", *cols.region_level]]
    return RegionMonitoringInputs(
        region=region,
        reference=reference,
        analysis=analysis,
        holdout=with_inputs(meta.get("holdout_forecasts")),
        backtest=with_inputs(meta.get("backtest_forecasts")),
        reference_gap=reference_gap,
        analysis_gap=gap[gap["date"] > train_max],
    )


def recent_weeks(reference: pd.DataFrame, weeks: int | None) -> pd.DataFrame:
    """The rows of ``reference``'s last ``weeks`` Monday..Sunday weeks (all with None)."""
    if weeks is None or reference.empty:
        return reference
    starts = week_start(reference["date"])
    first = starts.max() - pd.Timedelta(weeks=weeks - 1)
    return reference[(starts >= first).to_numpy()]


def region_drift(
    inputs: RegionMonitoringInputs,
    booster: lgb.Booster,
    meta: dict[str, Any],
    spec: DatasetSpec,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every monitoring statistic of one region, one tidy row per signal x feature x week.

    ``previous``: this region's last table for the same model (reuses unchanged work)."""
    s = spec.monitoring
    cols = monitored_columns(meta, spec)
    analysis = inputs.analysis.assign(week_start=week_start(inputs.analysis["date"]))
    # the error model learns from the backtest saved with the model unless it is switched off
    use_backtest = s.estimate_backtest_folds > 0 and len(inputs.backtest) >= MIN_DLE_ROWS
    backtest = inputs.backtest if use_backtest else None
    recent = recent_weeks(inputs.reference, s.drift_reference_weeks)
    with quiet_nannyml():
        warnings.simplefilter("ignore")
        parts = [
            feature_drift(recent, analysis, cols, s, previous),
            fleet_gap_drift(
                inputs.reference_gap, inputs.analysis_gap, cols.region_level, s, previous
            ),
            multivariate_drift(recent, analysis, cols, previous),
            # the range and levels the model was trained on: all of its reference
            data_quality(inputs.reference, analysis, cols, previous),
            estimated_performance(
                inputs.holdout,
                analysis,
                dle_features(meta, s, outside_inputs(inputs.reference, meta, cols, s))
                if backtest is not None
                else dle_features(meta, s),
                backtest,
                s.dle_params,
                previous,
            ),
            estimate_support(inputs.reference, analysis, meta, cols, s),
            attribution_drift(booster, meta, analysis, s, previous, inputs.reference),
        ]
    table = pd.concat([p for p in parts if not p.empty], ignore_index=True)[TABLE_COLUMNS]
    table["region"] = inputs.region
    return table
