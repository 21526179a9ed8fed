"""Train a region's model, gate it and register it: the body of the ``region_model`` asset,
callable without Dagster (the evaluate command and tuning use it too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import pandas as pd

from mlops_assets import monitoring
from mlops_assets.conditioning import FeatureSet
from mlops_assets.gate import GateResult, evaluate_gate
from mlops_assets.metrics import regression_metrics
from mlops_assets.registry import (
    RECALIBRATION,
    TUNING,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    decide_status,
)
from mlops_assets.spec import DatasetSpec, ModelSettings
from mlops_assets.training import (
    TrainedModel,
    model_columns,
    predict_frame,
    reference_csv,
    train_region_model,
)
from mlops_assets.version import code_version

UNTRUSTED_BASIS = "recorded holdout metric (its artifacts are refused as untrusted)"


@dataclass
class ApprovedComparison:
    label: str | None
    value: float | None
    basis: str  # "same holdout" | "holdout days after ..." | "recorded holdout metric" | "none"
    candidate_value: float | None = None  # the new model on the same rows, when not all


@dataclass
class TrainingOutcome:
    trained: TrainedModel
    gate: list[GateResult]
    version: ModelVersion
    approved: ApprovedComparison

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gate)


def compare_with_approved(
    registry: ModelRegistry,
    region: str,
    features: pd.DataFrame,
    trained: TrainedModel,
    spec: DatasetSpec,
    *,
    floor: float,
) -> ApprovedComparison:
    """The approved model's gate metric, measured fairly.

    On the new holdout when the approved model was trained before it starts; on the
    holdout days after its training when it has seen only the first part (both models
    scored on those days: after a drift, the recent days are exactly where the two must
    be compared); otherwise (it has seen all those days) its own recorded holdout metric,
    so a retrain on the same data is not compared with a model scoring its training rows.
    When the approved model's artifacts are refused (no checksum recorded, or altered) it
    cannot be scored either: its recorded metric is the comparison, so retraining can
    still replace it.
    """
    metric = spec.gate.metric
    mv = registry.latest_approved(region)
    if mv is None:
        return ApprovedComparison(None, None, "none")
    recorded = (mv.record.get("metrics") or {}).get(metric)
    try:
        text, meta = registry.load_artifacts(mv)
    except RegistryError:
        return ApprovedComparison(mv.label, recorded, UNTRUSTED_BASIS)
    trained_until = pd.Timestamp(meta.get("train_date_max", "2262-01-01"))
    missing = [c for c in meta["features"] if c not in features.columns]
    unseen_from = max(trained.split.holdout_start, trained_until + pd.Timedelta(days=1))
    if unseen_from > trained.split.holdout_end or missing:
        return ApprovedComparison(mv.label, recorded, "recorded holdout metric")
    booster = lgb.Booster(model_str=text)
    rows = features[
        ~features["is_future"].astype(bool) & (pd.to_datetime(features["date"]) >= unseen_from)
    ].copy()
    rows["date"] = pd.to_datetime(rows["date"])
    rows = rows.sort_values(["date", "store", "item"], ignore_index=True)
    scored = trained.holdout.merge(
        rows.assign(approved=predict_frame(booster, meta, rows))[
            ["store", "item", "date", "approved"]
        ],
        on=["store", "item", "date"],
    )
    scored = scored[scored["eligible"]]
    value = regression_metrics(scored["actual"], scored["approved"], floor=floor)[metric]
    if unseen_from == trained.split.holdout_start:
        return ApprovedComparison(mv.label, value, "same holdout")
    candidate = regression_metrics(scored["actual"], scored["model"], floor=floor)[metric]
    if value is None or candidate is None:
        return ApprovedComparison(mv.label, recorded, "recorded holdout metric")
    basis = f"holdout days after {mv.label}'s training ({unseen_from.date()} on)"
    return ApprovedComparison(mv.label, value, basis, candidate)


def train_and_register(
    features: pd.DataFrame,
    feature_set: FeatureSet,
    spec: DatasetSpec,
    registry: ModelRegistry,
    region: str,
    *,
    run_id: str,
    features_version: str | None,
    source: str = "recalibration",
    settings: ModelSettings | None = None,
    extra_record: dict[str, Any] | None = None,
    fleet_gap: pd.DataFrame | None = None,
) -> TrainingOutcome:
    """Train, compare with the approved model, gate, and register with the policy status.

    A recalibration keeps the tuned parameters a person approved (see ``reviewed_settings``).
    ``fleet_gap``: the region's weather gap to the fleet by day
    (``warehouse.region_fleet_gap``); its training window is saved with the model."""
    carried: dict[str, Any] = {}
    if source == RECALIBRATION:
        settings, carried = reviewed_settings(registry, region, settings or spec.model)
    settings = settings or spec.model
    trees, tree_record = reused_tree_count(
        registry.latest_approved(region) if source == RECALIBRATION else None,
        settings,
        feature_set,
        data_end=last_history_date(features),
    )
    trained = train_region_model(features, feature_set, spec, settings=settings, trees=trees)
    floor = settings.metric_floor
    approved = compare_with_approved(registry, region, features, trained, spec, floor=floor)
    gate = evaluate_gate(
        trained.metrics,
        spec.gate,
        approved_metric=approved.value,
        approved_label=approved.label,
        candidate_metric=approved.candidate_value,
        basis=approved.basis,
    )
    passed = all(g.passed for g in gate)
    status = decide_status(passed, source)
    model = trained.metrics["model"]
    record = {
        "source": source,
        "run_id": run_id,
        "code_version": code_version(),
        "training_data_version": features_version,
        "train_date_min": trained.meta["train_date_min"],
        "train_date_max": trained.meta["train_date_max"],
        "train_rows": trained.train_rows,
        "split": trained.split.to_dict(),
        "hyperparameters": trained.meta["params"],
        "num_boost_round": trained.best_iteration,
        **tree_record,
        "features": trained.meta["features"],
        "metrics": model,
        "baseline_metrics": {k: v for k, v in trained.metrics.items() if k != "model"},
        "gate": [{"check": g.name, "passed": g.passed, "message": g.message} for g in gate],
        "compared_with": {
            "version": approved.label,
            "value": approved.value,
            "basis": approved.basis,
            "candidate_value": approved.candidate_value,
        },
        **carried,
        **(extra_record or {}),
    }
    version = registry.register(
        region,
        model_text=trained.model_text,
        model_meta=trained.meta,
        record=record,
        status=status,
        reasons=[f"{g.name}: {g.message}" for g in gate if not g.passed],
        actor=f"run:{run_id}",
        reference=trained.reference_parquet(),
        fleet_gap_csv=_fleet_gap_csv(fleet_gap, trained, spec),
    )
    return TrainingOutcome(trained, gate, version, approved)


def _fleet_gap_csv(
    fleet_gap: pd.DataFrame | None, trained: TrainedModel, spec: DatasetSpec
) -> str | None:
    """The region's weather gap to the fleet over the training window, as saved with the
    model (None without weather inputs)."""
    meta = trained.meta
    columns = monitoring.monitored_columns(meta, spec).region_level
    gap = monitoring.reference_fleet_gap(
        fleet_gap, columns, meta["train_date_min"], meta["train_date_max"]
    )
    return reference_csv(gap) if len(gap) else None


def approved_tuned_params(
    registry: ModelRegistry, region: str
) -> tuple[dict[str, Any], str | None]:
    """The tuned parameters behind the region's approved model, and the version that found
    them: approving a tuning result is the review that makes its parameters the region's
    reviewed ones, so weekly recalibrations keep them (merged over the spec's) until a
    version without them is approved or rolled back to."""
    mv = registry.latest_approved(region)
    if mv is None:
        return {}, None
    if mv.record.get("source") == TUNING:
        return dict((mv.record.get("tuning") or {}).get("best_params") or {}), mv.label
    return dict(mv.record.get("tuned_params") or {}), mv.record.get("tuned_params_from")


def probe_settings(settings: ModelSettings) -> dict[str, Any]:
    """What the probe's choice of a number of trees depends on besides the data."""
    return {
        "params": settings.lgbm_params,
        "num_boost_round": settings.num_boost_round,
        "early_stopping_rounds": settings.early_stopping_rounds,
        "probe_learning_rate_multiplier": settings.probe_learning_rate_multiplier,
    }


def last_history_date(features: pd.DataFrame) -> pd.Timestamp:
    """The last date with ground truth in a region's feature table."""
    return pd.Timestamp(features.loc[~features["is_future"].astype(bool), "date"].max())


def reused_tree_count(
    approved: ModelVersion | None,
    settings: ModelSettings,
    feature_set: FeatureSet,
    *,
    data_end: pd.Timestamp,
) -> tuple[int | None, dict[str, Any]]:
    """The number of trees a retrain boosts without a probe (None: run the probe), and what
    its registry record says about it: ``trees_from`` (``probe`` or the version whose
    count it reuses), ``trees_probed_through`` (the last day of data the probe that picked
    the count saw) and ``probe_settings``.

    A count is reused from ``approved`` while its probe saw data ending at most
    ``settings.reuse_trees_days`` days before ``data_end``, with the same probe settings
    and model inputs: a count carried over several retrains keeps its probe's date, so a
    region is probed again at least that often."""
    probed = {"trees_from": "probe", "trees_probed_through": str(data_end.date())}
    record = {**probed, "probe_settings": probe_settings(settings)}
    if settings.reuse_trees_days <= 0 or approved is None:
        return None, record
    old = approved.record
    through = old.get("trees_probed_through")
    if (
        through is None
        or old.get("probe_settings") != record["probe_settings"]
        or old.get("features") != model_columns(feature_set)[0]
        or not old.get("num_boost_round")
    ):
        return None, record
    age = (data_end - pd.Timestamp(through)).days
    if not 0 <= age <= settings.reuse_trees_days:
        return None, record
    reused = {"trees_from": approved.label, "trees_probed_through": through}
    return int(old["num_boost_round"]), {**record, **reused}


def reviewed_settings(
    registry: ModelRegistry, region: str, model: ModelSettings
) -> tuple[ModelSettings, dict[str, Any]]:
    """``model`` with the approved tuned parameters of ``region`` merged over its params,
    and what to record about them (``tuned_params``, ``tuned_params_from``; empty if none):
    the baseline of recalibrations and of the next tuning run."""
    tuned, origin = approved_tuned_params(registry, region)
    if not tuned:
        return model, {}
    merged = model.model_copy(update={"params": {**model.params, **tuned}})
    return merged, {"tuned_params": tuned, "tuned_params_from": origin}
