"""Tests for train -> gate -> register of one region (the body of the ``region_model`` asset):
the approval policy, what is recorded, and how a new model is compared with the approved one.

Data: region ``Sud`` of the long generated sample of ``test_training.py`` (two stores x
three departments, three years), trained with few trees (``FAST``).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.gate import GATE_CHECKS
from mlops_assets.metrics import regression_metrics
from mlops_assets.region_models import UNTRUSTED_BASIS, TrainingOutcome, train_and_register
from mlops_assets.registry import (
    APPROVED,
    ARCHIVED,
    PENDING,
    REJECTED,
    ModelRegistry,
    RegistryError,
)
from mlops_assets.spec import DatasetSpec, GateSettings
from mlops_assets.training import like_dtypes, predict_frame
from mlops_assets.workspace import Workspace
from mlops_assets_tests.registry.support import edit_record
from mlops_assets_tests.test_training import FAST, REGION, SPEC, history, sample_features

IMPOSSIBLE = SPEC.model_copy(update={"gate": GateSettings(max_value=0.0001)})
# judges nothing but the comparison with the approved model
LENIENT = SPEC.model_copy(
    update={
        "gate": GateSettings(
            max_value=10.0, min_reduction_vs_baseline=-10.0, require_beats_seasonal_naive=False
        )
    }
)


def registry_at(root) -> ModelRegistry:
    return ModelRegistry.for_workspace(Workspace(root))


def run(
    registry: ModelRegistry,
    features: pd.DataFrame,
    fs,
    run_id: str,
    *,
    spec: DatasetSpec = SPEC,
    source: str = "recalibration",
) -> TrainingOutcome:
    return train_and_register(
        features,
        fs,
        spec,
        registry,
        REGION,
        run_id=run_id,
        features_version=f"features-{run_id}",
        source=source,
        settings=FAST,
    )


def approved_label(registry: ModelRegistry) -> str | None:
    mv = registry.latest_approved(REGION)
    return None if mv is None else mv.label


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frames, fs = sample_features(tmp_path_factory)
    return frames[REGION], fs


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory, data) -> dict[str, Any]:
    """Four trainings of Sud on the same data, in order: a recalibration with the default
    gate, one with an impossible gate, a tuning result, a recalibration again. The approved
    version is noted after each."""
    features, fs = data
    registry = registry_at(tmp_path_factory.mktemp("lifecycle"))
    outcomes, approved_after = {}, {}
    for name, kwargs in (
        ("first", {}),
        ("impossible", {"spec": IMPOSSIBLE}),
        ("tuning", {"source": "tuning"}),
        ("retrain", {}),
    ):
        outcomes[name] = run(registry, features, fs, f"run-{name}", **kwargs)
        approved_after[name] = approved_label(registry)
    return {"registry": registry, "outcomes": outcomes, "approved_after": approved_after}


# --------------------------------------------------------------------------------------
# approval policy


def test_first_model_passing_the_default_gate_is_approved_and_served(lifecycle, data):
    out = lifecycle["outcomes"]["first"]
    assert out.passed, [g.message for g in out.gate]
    assert [g.name for g in out.gate] == list(GATE_CHECKS)
    assert (out.version.version, out.version.status) == (1, APPROVED)
    assert out.version.reasons == []
    assert lifecycle["approved_after"]["first"] == "Sud:v1"
    assert out.approved.basis == "none" and out.approved.value is None
    # the registered artifact is the trained model: it forecasts the same numbers
    registry: ModelRegistry = lifecycle["registry"]
    text, meta = registry.load_artifacts(registry.get(REGION, 1))
    features, _ = data
    np.testing.assert_array_equal(
        predict_frame(lgb.Booster(model_str=text), meta, features),
        predict_frame(out.trained.booster, out.trained.meta, features),
    )
    # with the rows it was fitted on: monitoring's reference, whatever the features become
    # (as monitoring reads it: in the feature table's dtypes)
    saved = registry.load_reference(registry.get(REGION, 1))
    pd.testing.assert_frame_equal(
        like_dtypes(saved, features), out.trained.reference, check_exact=True
    )
    # every registration saves one: rejected, tuning and retrained versions alike
    assert all("reference.parquet" in v.checksums for v in registry.versions(REGION))


def test_the_record_says_what_was_trained_on_what_and_how_it_scored(lifecycle):
    out = lifecycle["outcomes"]["first"]
    record = lifecycle["registry"].get(REGION, 1).record
    trained = out.trained
    assert record["source"] == "recalibration" and record["run_id"] == "run-first"
    assert record["training_data_version"] == "features-run-first"
    assert record["metrics"] == pytest.approx(trained.metrics["model"])
    assert record["baseline_metrics"]["hist_avg"] == pytest.approx(trained.metrics["hist_avg"])
    assert set(record["baseline_metrics"]) == {"hist_avg", "hist_avg_dow", "seasonal_naive"}
    assert record["split"] == trained.split.to_dict()
    assert record["train_date_max"] == trained.meta["train_date_max"]
    assert record["num_boost_round"] == trained.best_iteration
    assert record["features"] == trained.meta["features"]
    assert [g["check"] for g in record["gate"]] == list(GATE_CHECKS)
    assert all(g["passed"] for g in record["gate"])
    assert record["compared_with"] == {
        "version": None,
        "value": None,
        "basis": "none",
        "candidate_value": None,
    }


def test_a_model_failing_the_gate_is_rejected_with_reasons_and_never_served(lifecycle):
    out = lifecycle["outcomes"]["impossible"]
    assert not out.passed
    assert (out.version.version, out.version.status) == (2, REJECTED)
    failed = [g for g in out.gate if not g.passed]
    assert [g.name for g in failed] == ["gate_metric_threshold"]
    mape = out.trained.metrics["model"]["mape"]
    [reason] = out.version.reasons  # only the failing rule, with the metric and numbers
    assert reason.startswith(f"gate_metric_threshold: mape {mape:.1%} > ")
    record = lifecycle["registry"].get(REGION, 2).record
    assert [g["passed"] for g in record["gate"]] == [False, True, True, True]
    # the approved model stays the one approved before
    assert lifecycle["approved_after"]["impossible"] == "Sud:v1"


def test_a_tuning_result_that_passes_waits_for_a_person(lifecycle):
    out = lifecycle["outcomes"]["tuning"]
    assert out.passed
    assert (out.version.version, out.version.status) == (3, PENDING)
    assert out.version.record["source"] == "tuning"
    assert lifecycle["approved_after"]["tuning"] == "Sud:v1"


def test_a_passing_recalibration_replaces_the_approved_model(lifecycle):
    out = lifecycle["outcomes"]["retrain"]
    assert out.passed and out.version.status == APPROVED
    assert lifecycle["approved_after"]["retrain"] == "Sud:v4"
    statuses = [mv.status for mv in lifecycle["registry"].versions(REGION)]
    assert statuses == [ARCHIVED, REJECTED, PENDING, APPROVED]


# --------------------------------------------------------------------------------------
# the comparison with the approved model


def test_retraining_on_the_same_data_compares_with_the_recorded_holdout_metric(lifecycle):
    """The approved model has seen the new holdout days: scoring it on them would flatter
    it, so its own recorded holdout metric is the comparison."""
    first = lifecycle["outcomes"]["first"]
    for name in ("impossible", "tuning", "retrain"):
        out = lifecycle["outcomes"][name]
        assert out.approved.basis == "recorded holdout metric", name
        assert out.approved.label == "Sud:v1", name
        assert out.approved.value == first.version.record["metrics"]["mape"], name
        rule = next(g for g in out.gate if g.name == "gate_no_worse_than_approved")
        assert rule.values["approved"] == out.approved.value
        assert rule.values["approved_version"] == "Sud:v1"
        assert "Sud:v1" in rule.message
    out = lifecycle["outcomes"]["retrain"]
    # same data, same settings: the same score, well within the tolerance
    assert out.trained.metrics["model"]["mape"] == out.approved.value
    assert out.version.record["compared_with"] == {
        "version": "Sud:v1",
        "value": out.approved.value,
        "basis": "recorded holdout metric",
        "candidate_value": None,
    }


def test_an_approved_model_trained_before_the_holdout_is_scored_on_the_same_holdout(tmp_path, data):
    features, fs = data
    dates = pd.to_datetime(features["date"])
    last = dates[~features["is_future"].astype(bool)].max()
    older = features[dates <= last - pd.Timedelta(days=60)]
    registry = registry_at(tmp_path)
    v1 = run(registry, older, fs, "old", spec=LENIENT)
    assert v1.version.status == APPROVED

    v2 = run(registry, features, fs, "new")

    holdout_start = v2.trained.split.holdout_start
    assert pd.Timestamp(v1.trained.meta["train_date_max"]) < holdout_start
    assert v2.approved.basis == "same holdout" and v2.approved.label == "Sud:v1"
    # independently: the v1 artifact's forecasts of v2's open holdout days, v2's floor
    text, meta = registry.load_artifacts(registry.get(REGION, 1))
    hist = history(features)
    rows = hist[hist["date"] >= holdout_start]
    pred = predict_frame(lgb.Booster(model_str=text), meta, rows)
    opened = rows["open"].to_numpy() == 1
    expected = regression_metrics(
        rows["target"].clip(lower=0).to_numpy()[opened], pred[opened], floor=20
    )["mape"]
    assert v2.approved.value == pytest.approx(expected, rel=1e-9)
    # not v1's recorded metric: that was measured on an earlier holdout
    assert v2.approved.value != pytest.approx(v1.version.record["metrics"]["mape"])
    rule = next(g for g in v2.gate if g.name == "gate_no_worse_than_approved")
    limit = expected * (1 + SPEC.gate.tolerance_vs_approved)
    assert rule.passed == (v2.trained.metrics["model"]["mape"] <= limit)
    assert "same holdout" in rule.message
    assert v2.version.record["compared_with"]["basis"] == "same holdout"


def test_an_approved_model_without_checksums_is_refused_and_a_retrain_replaces_it(tmp_path, data):
    """An approved version recorded before checksums were mandatory: its artifacts are
    refused, yet the retrain that fixes it still runs (compared with its recorded metric)."""
    features, fs = data
    registry = registry_at(tmp_path)
    v1 = run(registry, features, fs, "old", spec=LENIENT).version
    edit_record(registry, REGION, 1, lambda body: body.pop("checksums"))
    with pytest.raises(RegistryError, match="Sud:v1: artifact model.txt has no recorded checksum"):
        registry.load_artifacts(registry.latest_approved(REGION))

    v2 = run(registry, features, fs, "new", spec=LENIENT)

    assert v2.approved.basis == UNTRUSTED_BASIS and v2.approved.label == "Sud:v1"
    assert v2.approved.value == v1.record["metrics"]["mape"]
    assert v2.version.status == APPROVED and registry.latest_approved(REGION).version == 2
    assert registry.load_artifacts(v2.version)[0] == v2.trained.model_text


def test_an_approved_model_that_saw_part_of_the_holdout_is_compared_on_the_days_after(
    tmp_path, data
):
    """After a drift the new holdout mixes days the approved model trained on with days it
    never saw: both models are compared on the unseen days only, not the candidate's whole
    holdout against the approved model's calmer recorded metric."""
    features, fs = data
    dates = pd.to_datetime(features["date"])
    last = dates[~features["is_future"].astype(bool)].max()
    older = features[dates <= last - pd.Timedelta(days=14)]
    registry = registry_at(tmp_path)
    v1 = run(registry, older, fs, "old", spec=LENIENT)
    assert v1.version.status == APPROVED

    v2 = run(registry, features, fs, "new", spec=LENIENT)

    unseen_from = pd.Timestamp(v1.trained.meta["train_date_max"]) + pd.Timedelta(days=1)
    assert v2.trained.split.holdout_start < unseen_from <= v2.trained.split.holdout_end
    assert v2.approved.basis.startswith("holdout days after Sud:v1's training")
    text, meta = registry.load_artifacts(registry.get(REGION, 1))
    hold = v2.trained.holdout
    hold = hold[hold["eligible"] & (hold["date"] >= unseen_from)]
    hist = history(features)
    rows = hist.merge(hold[["store", "item", "date"]], on=["store", "item", "date"])
    approved = regression_metrics(
        rows["target"].clip(lower=0),
        predict_frame(lgb.Booster(model_str=text), meta, rows),
        floor=20,
    )["mape"]
    candidate = regression_metrics(hold["actual"], hold["model"], floor=20)["mape"]
    assert v2.approved.value == pytest.approx(approved, rel=1e-9)
    assert v2.approved.candidate_value == pytest.approx(candidate, rel=1e-9)
    rule = next(g for g in v2.gate if g.name == "gate_no_worse_than_approved")
    assert rule.values["compared_value"] == pytest.approx(candidate, rel=1e-9)
    assert rule.passed == (candidate <= approved * (1 + SPEC.gate.tolerance_vs_approved))
    assert "holdout days after Sud:v1" in rule.message


# --------------------------------------------------------------------------------------
# tuned parameters a person approved


def test_recalibrations_keep_the_tuned_parameters_a_person_approved(tmp_path, data):
    features, fs = data
    lenient = LENIENT.model_copy(
        update={"gate": LENIENT.gate.model_copy(update={"tolerance_vs_approved": 10.0})}
    )
    registry = registry_at(tmp_path)
    first = run(registry, features, fs, "run-1")
    assert "tuned_params" not in first.version.record
    tuned = {"num_leaves": 7, "max_depth": 4}
    found = train_and_register(
        features,
        fs,
        lenient,
        registry,
        REGION,
        run_id="run-tune",
        features_version="f",
        source="tuning",
        settings=FAST.model_copy(update={"params": {**FAST.params, **tuned}}),
        extra_record={"tuning": {"best_params": tuned}},
    )
    assert found.version.status == PENDING
    # pending: the weekly recalibration still uses the reviewed parameters of the spec
    pending = run(registry, features, fs, "run-2", spec=lenient)
    assert "tuned_params" not in pending.version.record
    assert pending.version.record["hyperparameters"].get("num_leaves") != 7

    registry.approve(REGION, found.version.version, actor="alice", reason="reviewed")
    for run_id in ("run-3", "run-4"):  # carried from the tuning result, then onwards
        out = run(registry, features, fs, run_id, spec=lenient)
        assert out.version.status == APPROVED
        assert out.version.record["tuned_params"] == tuned
        assert out.version.record["tuned_params_from"] == found.version.label
        params = out.version.record["hyperparameters"]
        assert (params["num_leaves"], params["max_depth"]) == (7, 4)
        assert out.trained.meta["params"]["num_leaves"] == 7

    # rolling back to a version trained with the spec's parameters drops them again
    registry.rollback(REGION, first.version.version, actor="alice", reason="back to v1")
    back = run(registry, features, fs, "run-5", spec=lenient)
    assert "tuned_params" not in back.version.record
    assert back.version.record["hyperparameters"].get("num_leaves") != 7


# --------------------------------------------------------------------------------------
# a retrain's number of trees


def test_a_retrain_reuses_the_approved_models_trees_until_its_probe_is_too_old(tmp_path, data):
    """With ``reuse_trees_days`` 10, weekly retrains: the first probes; one 7 days later
    boosts the approved model's number of trees without a probe; one 14 days after that
    probe probes again; a change of LightGBM parameters probes too."""
    features, fs = data
    dates = pd.to_datetime(features["date"])
    last = dates[~features["is_future"].astype(bool)].max()
    approving = LENIENT.model_copy(
        update={"gate": LENIENT.gate.model_copy(update={"tolerance_vs_approved": 10.0})}
    )
    reuse = FAST.model_copy(update={"reuse_trees_days": 10})
    registry = registry_at(tmp_path)

    def retrain(days_before_last: int, run_id: str, settings=reuse) -> TrainingOutcome:
        frame = features[dates <= last - pd.Timedelta(days=days_before_last)]
        outcome = train_and_register(
            frame,
            fs,
            approving,
            registry,
            REGION,
            run_id=run_id,
            features_version="f",
            settings=settings,
        )
        assert outcome.version.status == APPROVED
        return outcome

    first = retrain(21, "week-1")
    probed_through = str((last - pd.Timedelta(days=21)).date())
    assert first.trained.meta["trees_from"] == "probe"
    assert first.version.record["trees_from"] == "probe"
    assert first.version.record["trees_probed_through"] == probed_through

    second = retrain(14, "week-2")
    assert second.trained.meta["trees_from"] == "given"
    assert second.trained.best_iteration == first.trained.best_iteration
    assert second.version.record["num_boost_round"] == first.trained.best_iteration
    assert second.version.record["trees_from"] == "Sud:v1"
    assert second.version.record["trees_probed_through"] == probed_through  # carried

    third = retrain(7, "week-3")  # 14 days after the probe behind v2's trees
    assert third.trained.meta["trees_from"] == "probe"
    assert third.version.record["trees_probed_through"] == str((last - pd.Timedelta(days=7)).date())

    other = reuse.model_copy(update={"params": {**reuse.params, "lambda_l2": 3.0}})
    fourth = retrain(0, "week-4", settings=other)  # 7 days after v3's probe, new parameters
    assert fourth.trained.meta["trees_from"] == "probe"
    assert fourth.version.record["trees_from"] == "probe"
