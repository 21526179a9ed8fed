"""Tune one region's LightGBM hyper-parameters with optuna, then register the result for a
person to review (a tuned model is never approved automatically: see ``registry``).

The study
    persists per region in optuna's RDB storage in the state database, SQLite in a local
    workspace and PostgreSQL in prod, through one code path
    (``storage.tuning_studies.study_storage``). A run continues the study its data
    belongs to: the study name is ``<dataset>.<region>.<fingerprint>``, where the
    fingerprint covers the validation window, the rows fitted on, the fixed
    configuration and the reviewed parameters. Trial values are only comparable on the
    same data, so new data (or a new reviewed configuration) starts a new study, and a
    re-run on unchanged data adds trials to the existing one. Older workspaces kept each
    region's studies in an optuna journal file (``tuning/<region>.journal``): ``mlops-assets
    migrate-state``, or the region's next run, copies them into the database
    (``migrate_journal_studies``); the files stay.
Killed runs
    One tuning process per region holds the region's lock for its whole run: a
    PostgreSQL session advisory lock (dropped with the holder's connection), on SQLite
    an ``flock`` beside the database file (dropped by the kernel when the process dies;
    see ``storage.tuning_studies``). A second concurrent run of the same region fails at
    once with :class:`TuningBusyError`. Holding the lock, a RUNNING trial can only be a
    dead process's: it is marked FAIL on resume (with a ``fail_reason``) and counts as
    failed, never complete. Optuna's heartbeat (``heartbeat_interval``,
    ``fail_stale_trials``) is not used: it fails a trial only a grace period after its
    last heartbeat (a run resumed sooner would leave it RUNNING), never one killed
    before its first heartbeat, and its thread writes every interval to a database that
    has one writer at a time.
Validation
    the split of ``training.py``: a trial fits on the training window and is scored on the
    inner validation window before the holdout, with early stopping as the training's
    first fit does. The holdout is never seen, so the quality gate of the tuned model
    (on the holdout) stays an honest test. The objective is LightGBM's validation metric
    of the spec (l2 on the log1p target by default); the gate metric on the validation
    window (e.g. ``val_mape``) is recorded per trial for people.
Cost
    the LightGBM Datasets are built once per run and shared by every trial, so only
    booster parameters are searched (:func:`suggest_params`). ``min_data_in_leaf`` and
    ``max_bin`` are left out on purpose: binning (``max_bin``) and the feature pre-filter
    (which depends on ``min_data_in_leaf``) happen when a Dataset is constructed, and
    LightGBM refuses to change them on a constructed Dataset;
    ``min_sum_hessian_in_leaf`` plays the role of ``min_data_in_leaf`` for l2 (the
    hessian is 1 per row).
Budget
    ``tuning.n_trials`` new trials and ``tuning.timeout_seconds`` per run (a running trial
    finishes; then no new one starts); each trial reports its validation metric every
    ``report_every`` rounds and a median pruner stops unpromising ones. The spec's
    reviewed parameters are the first trial of every study (the baseline, never pruned),
    so the improvement is measured on the same rows.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from mlops_assets.conditioning import FeatureSet, feature_set
from mlops_assets.metrics import regression_metrics
from mlops_assets.naming import require_safe_key
from mlops_assets.region_models import TrainingOutcome, reviewed_settings, train_and_register
from mlops_assets.registry import TUNING, ModelRegistry, ModelVersion
from mlops_assets.spec import DatasetSpec, ModelSettings, TuningSettings
from mlops_assets.storage.tuning_studies import TuningError, study_storage
from mlops_assets.training import RegionData, predict_frame, prepare_region
from mlops_assets.warehouse import connect, region_fleet_gap
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    pass

SEARCH_SPACE_VERSION = "1"  # bump when suggest_params changes (starts new studies)
VALID = "valid"
BASELINE_ATTR = "baseline"


def suggest_params(trial: optuna.Trial) -> dict[str, float | int]:
    """The search space: booster parameters only (see the module docstring)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 255, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, 12),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.4, 1.0),
        "bagging_freq": trial.suggest_int("bagging_freq", 0, 7),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
        "min_sum_hessian_in_leaf": trial.suggest_float(
            "min_sum_hessian_in_leaf", 1e-3, 100.0, log=True
        ),
        "min_gain_to_split": trial.suggest_float("min_gain_to_split", 1e-8, 1.0, log=True),
    }


TUNED_PARAMS = (
    "learning_rate",
    "num_leaves",
    "max_depth",
    "feature_fraction",
    "bagging_fraction",
    "bagging_freq",
    "lambda_l1",
    "lambda_l2",
    "min_sum_hessian_in_leaf",
    "min_gain_to_split",
)


@dataclass(frozen=True)
class TuningResult:
    """What a tuning run found, over the whole study (all runs that continued it)."""

    region: str
    study_name: str
    storage_path: str  # where the study is: the state database URL, without password
    metric: str  # LightGBM's validation metric, in the model's target space
    gate_metric: str  # the gate's metric, also measured on the validation window
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_val_gate_metric: float | None
    baseline_params: dict[str, Any]
    baseline_value: float | None  # the spec's reviewed parameters on the same rows
    baseline_val_gate_metric: float | None
    improvement: float | None  # (baseline - best) / baseline; 0 when the baseline is best
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    new_trials: int  # trials this run added
    stale_trials_failed: int  # RUNNING trials of a killed process, failed on resume
    validation_window: str
    elapsed_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line for people: what the search found against the reviewed parameters."""
        head = f"tuning over {self.n_trials} trials ({self.new_trials} new)"
        if self.baseline_value is None or self.improvement is None:
            return (
                f"{head}: validation {self.metric} {self.best_value:.5g} (the reviewed "
                "parameters have no completed trial to compare with)"
            )
        return (
            f"{head}: validation {self.metric} {self.best_value:.5g} vs "
            f"{self.baseline_value:.5g} with the reviewed parameters "
            f"({self.improvement:.1%} better)"
        )


@dataclass
class TuningOutcome:
    """A tuning run and the model trained with its best parameters and registered."""

    result: TuningResult
    training: TrainingOutcome

    @property
    def version(self) -> ModelVersion:
        return self.training.version


def load_region_features(
    workspace: Workspace, spec: DatasetSpec, region: str
) -> tuple[pd.DataFrame, FeatureSet]:
    """A region's feature table and its model inputs, as the ``region_model`` asset reads
    them (for the tuning job and the command line); ``FileNotFoundError`` without one."""
    features = workspace.read_features(region)
    with connect(workspace, spec) as con:
        fs = feature_set(con, spec, list(features.columns))
    return features, fs


def tuned_settings(model: ModelSettings, params: dict[str, Any]) -> ModelSettings:
    """The spec's model settings with tuned parameters merged over its reviewed ones."""
    return model.model_copy(update={"params": {**model.params, **params}})


def reviewed_params(model: ModelSettings) -> dict[str, Any]:
    """The spec's values of the searched parameters (absent ones: LightGBM's defaults)."""
    params = model.lgbm_params
    return {k: params[k] for k in TUNED_PARAMS if k in params}


def tune_region(
    features: pd.DataFrame,
    feature_set: FeatureSet,
    spec: DatasetSpec,
    region: str,
    *,
    workspace: Workspace,
    tuning: TuningSettings | None = None,
    settings: ModelSettings | None = None,
) -> TuningResult:
    """Run (or continue) the region's study for one budget and summarise the whole study.

    ``settings``: the reviewed model settings the search starts from and is compared with
    (default: the spec's)."""
    started = time.perf_counter()
    tuning = tuning or spec.tuning
    settings = settings or spec.model
    region = require_safe_key(region)
    data = prepare_region(features, feature_set, spec, settings=settings)
    reviewed = reviewed_params(settings)
    context = _study_context(spec, region, data, settings, reviewed)
    digest = hashlib.sha256(json.dumps(context, sort_keys=True, default=str).encode())
    name = f"{spec.name}.{region}.{digest.hexdigest()[:12]}"

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with study_storage(workspace, region) as (storage, where):
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                direction="minimize",
                load_if_exists=True,
                pruner=_pruner(tuning),
            )
            if "context" not in study.user_attrs:
                study.set_user_attr("context", context)
            stale = _fail_dead_trials(study, storage)
            before = len(study.get_trials(deepcopy=False))
            # a fixed seed would replay the same random start-up points in every run
            study.sampler = optuna.samplers.TPESampler(seed=tuning.seed + before)
            if not any(
                t.user_attrs.get(BASELINE_ATTR)
                and t.state in (TrialState.COMPLETE, TrialState.WAITING)
                for t in study.get_trials(deepcopy=False)
            ):
                study.enqueue_trial({}, user_attrs={BASELINE_ATTR: True})
            d_train = data.dataset(data.train_mask)
            d_val = data.dataset(data.val_mask, reference=d_train)
            study.optimize(
                _objective(data, d_train, d_val, spec, settings, tuning, reviewed),
                n_trials=tuning.n_trials,
                timeout=tuning.timeout_seconds,
                catch=(lgb.basic.LightGBMError,),
                gc_after_trial=False,
            )
            trials = study.get_trials(deepcopy=False)
    finally:
        optuna.logging.set_verbosity(verbosity)

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise TuningError(f"no trial of study {name!r} completed ({len(trials)} trials)")
    best = min(complete, key=lambda t: t.value)
    baseline = next((t for t in complete if t.user_attrs.get(BASELINE_ATTR)), None)
    gate_key = f"val_{spec.gate.metric}"
    improvement = None
    if baseline is not None and baseline.value > 0:
        improvement = (baseline.value - best.value) / baseline.value
    return TuningResult(
        region=region,
        study_name=name,
        storage_path=where,
        metric=str(best.user_attrs.get("metric", "")),
        gate_metric=spec.gate.metric,
        best_params=dict(best.user_attrs["params"]),
        best_value=float(best.value),
        best_trial=best.number,
        best_val_gate_metric=best.user_attrs.get(gate_key),
        baseline_params=reviewed,
        baseline_value=None if baseline is None else float(baseline.value),
        baseline_val_gate_metric=None if baseline is None else baseline.user_attrs.get(gate_key),
        improvement=improvement,
        n_trials=len(trials),
        n_complete=len(complete),
        n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
        n_failed=sum(t.state == TrialState.FAIL for t in trials),
        new_trials=len(trials) - before,
        stale_trials_failed=stale,
        validation_window=f"{data.split.val_start.date()}..{data.split.val_end.date()}",
        elapsed_seconds=round(time.perf_counter() - started, 3),
    )


def tune_and_register(
    features: pd.DataFrame,
    feature_set: FeatureSet,
    spec: DatasetSpec,
    registry: ModelRegistry,
    region: str,
    *,
    workspace: Workspace,
    run_id: str,
    features_version: str | None,
    tuning: TuningSettings | None = None,
) -> TuningOutcome:
    """Tune, then train with the best parameters, gate and register as a *tuning* result:
    ``pending_approval`` when the gate passes, ``rejected`` when it fails, never approved."""
    # the reviewed parameters: the spec's, or a tuning result a person approved since
    base, _ = reviewed_settings(registry, region, spec.model)
    result = tune_region(
        features, feature_set, spec, region, workspace=workspace, tuning=tuning, settings=base
    )
    training = train_and_register(
        features,
        feature_set,
        spec,
        registry,
        result.region,
        run_id=run_id,
        features_version=features_version,
        source=TUNING,
        settings=tuned_settings(base, result.best_params),
        extra_record={"tuning": result.to_dict()},
        fleet_gap=region_fleet_gap(workspace, spec, result.region),
    )
    return TuningOutcome(result, training)


# ------------------------------------------------------------------------------ internals


def _study_context(
    spec: DatasetSpec,
    region: str,
    data: RegionData,
    settings: ModelSettings,
    reviewed: dict[str, Any],
) -> dict[str, Any]:
    """What a trial's value depends on besides its parameters (hashed into the name)."""
    fitted = data.hist[data.usable & (data.hist["date"] <= data.split.val_end)]
    rows = pd.util.hash_pandas_object(fitted[[*data.columns, "date", "target"]], index=False)
    return {
        "dataset": spec.name,
        "region": region,
        "split": data.split.to_dict(),
        "rows_sha256": hashlib.sha256(rows.to_numpy().tobytes()).hexdigest(),
        "features": data.columns,
        "fixed_params": {k: v for k, v in settings.lgbm_params.items() if k not in TUNED_PARAMS},
        "reviewed_params": reviewed,
        "num_boost_round": settings.num_boost_round,
        "early_stopping_rounds": settings.early_stopping_rounds,
        "target_transform": settings.target_transform,
        "level_features": data.meta["level_features"],
        "train_on_positive_target": settings.train_on_positive_target,
        "metric_floor": settings.metric_floor,
        "gate_metric": spec.gate.metric,
        "search_space": SEARCH_SPACE_VERSION,
    }


def _pruner(tuning: TuningSettings) -> optuna.pruners.BasePruner:
    if tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=tuning.pruner_startup_trials,
        n_warmup_steps=tuning.pruner_warmup_rounds,
    )


def _objective(
    data: RegionData,
    d_train: lgb.Dataset,
    d_val: lgb.Dataset,
    spec: DatasetSpec,
    settings: ModelSettings,
    tuning: TuningSettings,
    reviewed: dict[str, Any],
) -> Callable[[optuna.Trial], float]:
    base = settings.lgbm_params
    val = data.val
    actual = val["target"].clip(lower=0)

    def objective(trial: optuna.Trial) -> float:
        baseline = bool(trial.user_attrs.get(BASELINE_ATTR))
        # the baseline suggests nothing: its values (e.g. lambda_l1 = 0) may lie outside
        # the search ranges, and the sampler learns from suggested values only
        tuned = dict(reviewed) if baseline else suggest_params(trial)
        trial.set_user_attr("params", tuned)
        booster = lgb.train(
            {**base, **tuned},
            d_train,
            num_boost_round=settings.num_boost_round,
            valid_sets=[d_val],
            valid_names=[VALID],
            callbacks=[
                lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
                _report_and_prune(trial, tuning.report_every, prune=not baseline),
            ],
        )
        metric, value = next(iter(booster.best_score[VALID].items()))
        pred = predict_frame(booster, data.meta, val)
        gate = regression_metrics(actual, pred, floor=settings.metric_floor)[spec.gate.metric]
        trial.set_user_attr("metric", metric)
        trial.set_user_attr("best_iteration", int(booster.best_iteration))
        trial.set_user_attr(f"val_{spec.gate.metric}", gate)
        return float(value)

    return objective


def _report_and_prune(
    trial: optuna.Trial, every: int, *, prune: bool
) -> Callable[[lgb.callback.CallbackEnv], None]:
    """A LightGBM callback: report the validation metric every ``every`` rounds to the
    trial, and stop the trial when the pruner says so (optuna's own LightGBM callback
    lives in the separate optuna-integration package)."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        step = env.iteration + 1
        if step % every:
            return
        for data_name, metric, value, higher_is_better in env.evaluation_result_list:
            if data_name != VALID:
                continue
            if higher_is_better:
                raise TuningError(f"tuning minimises the validation metric; {metric} is not")
            trial.report(float(value), step)
            if prune and trial.should_prune():
                raise optuna.TrialPruned(f"{metric} {value:.6g} at round {step}")
            return

    callback.order = 40  # type: ignore[attr-defined]  # after early stopping (30)
    return callback


def _fail_dead_trials(study: optuna.Study, storage: BaseStorage) -> int:
    """Mark RUNNING trials FAIL: under the region's lock they belong to a dead process."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in running:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "fail_reason", "its process died mid-trial")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(running)
