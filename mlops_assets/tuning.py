"""Tune one region's LightGBM hyper-parameters with optuna, then register the result for a
person to review (a tuned model is never approved automatically: see ``registry``).

The study
    persists per region in optuna's RDB storage in the state database, SQLite in a local
    workspace and PostgreSQL in prod, through one code path (:func:`study_storage`). A run
    continues the study its data belongs to: the study name
    is ``<dataset>.<region>.<fingerprint>``, where the fingerprint covers the validation
    window, the rows fitted on, the fixed configuration and the reviewed parameters. Trial
    values are only comparable on the same data, so new data (or a new reviewed
    configuration) starts a new study, and a re-run on unchanged data adds trials to the
    existing one. Older workspaces kept each region's studies in an optuna journal file
    (``tuning/<region>.journal``): ``mlops-assets migrate-state``, or the region's next
    run, copies them into the database (:func:`migrate_journal_studies`); the files stay.
Killed runs
    One tuning process per region holds the region's lock for its whole run: a PostgreSQL
    session advisory lock (dropped with the holder's connection), on SQLite an ``flock``
    beside the database file (dropped by the kernel when the process dies; see
    :func:`_named_lock`). A second concurrent run of the same region fails at once with
    :class:`TuningBusyError`. Holding the lock, a RUNNING trial can only be a dead
    process's: it is marked FAIL on resume (with a ``fail_reason``) and counts as failed,
    never complete. Optuna's heartbeat (``heartbeat_interval``, ``fail_stale_trials``)
    is not used: it fails a trial only a grace period after its last heartbeat (a run
    resumed sooner would leave it RUNNING), never one killed before its first heartbeat,
    and its thread writes every interval to a database that has one writer at a time.
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

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import optuna
import pandas as pd
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mlops_assets.conditioning import FeatureSet, feature_set
from mlops_assets.metrics import regression_metrics
from mlops_assets.naming import require_safe_key
from mlops_assets.region_models import TrainingOutcome, reviewed_settings, train_and_register
from mlops_assets.registry import TUNING, ModelRegistry, ModelVersion
from mlops_assets.spec import DatasetSpec, ModelSettings, TuningSettings
from mlops_assets.training import RegionData, predict_frame, prepare_region
from mlops_assets.warehouse import connect, region_level_inputs
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SEARCH_SPACE_VERSION = "1"  # bump when suggest_params changes (starts new studies)
VALID = "valid"
BASELINE_ATTR = "baseline"
JOURNAL_SUFFIX = ".journal"  # older workspaces' studies: tuning/<region>.journal
MIGRATED_ATTR = "mlops_assets:copied_from"  # study system attr: the journal it came from


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


class TuningError(RuntimeError):
    """Tuning could not produce a result (e.g. no trial completed)."""


class TuningBusyError(TuningError):
    """Another process is tuning the same region right now."""


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
    them (for the tuning job and the command line)."""
    data, key = workspace.data, workspace.features_key(region)
    if not data.exists(key):
        raise FileNotFoundError(f"no features for region {region!r}: materialize `features` first")
    features = data.read_parquet(key)
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
    train, val = data.train, data.val
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
            d_train = data.dataset(train)
            d_val = data.dataset(val, reference=d_train)
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
        region_inputs=region_level_inputs(workspace, spec),
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


@contextmanager
def study_storage(workspace: Workspace, region: str) -> Iterator[tuple[BaseStorage, str]]:
    """The region's optuna storage, held by this process alone for the whole run, and
    where it is: optuna's RDB storage in the state database (SQLite in a local workspace,
    PostgreSQL in prod), one code path for both. Holding the region's lock, it first copies
    the region's journal studies of an older workspace (:func:`migrate_journal_studies`)."""
    url = workspace.state_database_url
    region = require_safe_key(region)
    with _region_lock(url, region):
        storage = rdb_storage(url)
        try:
            _migrate_journal(workspace, storage, workspace.study_path(region))
            yield storage, _where(url)
        finally:
            storage.engine.dispose()


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """optuna's RDB storage on the state database at ``url`` (dispose its engine after use).

    On SQLite the engine waits for the write lock as the state database's own does (busy
    timeout) and takes it when a transaction starts to write (``BEGIN IMMEDIATE`` instead
    of pysqlite's deferred ``BEGIN``), so processes tuning other regions, or recording
    files and models, make it wait instead of failing with "database is locked"; reads
    take no lock (WAL mode, set by :func:`~mlops_assets.storage.database.engine_for`).
    Creating the storage (optuna's tables and schema version, checked then created) is
    serialized between processes: several tuning runs starting on a new database at once
    would otherwise race to create the same tables."""
    from mlops_assets.storage.database import BUSY_TIMEOUT_MS, engine_for

    if _is_sqlite(url):
        with engine_for(url).connect():  # creates the folder and switches to WAL
            pass
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": "IMMEDIATE"}
        }
    else:
        kwargs = {"pool_pre_ping": True}
    # not "tuning:<x>": a region's lock (see _region_lock)
    with _named_lock(url, "tuning-storage", wait=True):
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


@dataclass
class JournalMigration:
    """What :func:`migrate_journal_studies` did."""

    copied: int = 0  # studies copied into the RDB storage
    present: int = 0  # studies copied before
    skipped: list[str] = field(default_factory=list)  # why a journal or study was not copied


def migrate_journal_studies(workspace: Workspace) -> JournalMigration:
    """Copy the studies of an older workspace's journal files (``tuning/<region>.journal``)
    into the RDB storage of the state database with ``optuna.copy_study``: trials with
    their states, parameters, values, intermediate values and attributes. Idempotent: a
    study copied before is not copied again, and a journal unchanged since it was copied
    is not even read; the journal files stay. A region being tuned right now is skipped
    (its run copies its journal itself, holding the region's lock)."""
    journals = sorted((workspace.root / "tuning").glob(f"*{JOURNAL_SUFFIX}"))
    result = JournalMigration()
    if not journals:
        return result
    url = workspace.state_database_url
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not one line per study copied
    storage = rdb_storage(url)
    try:
        for journal in journals:
            region = journal.name.removesuffix(JOURNAL_SUFFIX)
            try:
                with _region_lock(url, require_safe_key(region)):
                    _migrate_journal(workspace, storage, journal, result)
            except (TuningBusyError, ValueError) as exc:
                result.skipped.append(f"{journal.name}: {exc}")
    finally:
        storage.engine.dispose()
        optuna.logging.set_verbosity(verbosity)
    return result


def _migrate_journal(
    workspace: Workspace,
    storage: optuna.storages.RDBStorage,
    journal: Path,
    result: JournalMigration | None = None,
) -> None:
    """Copy one journal's studies not copied yet (the caller holds the region's lock). The
    journal's size and mtime are recorded once all its studies are in, so later runs skip
    it with one query; an older version still tuning this region (its ``.owner`` flock)
    makes the copy wait for another time (:class:`TuningBusyError`)."""
    result = result if result is not None else JournalMigration()
    if not journal.is_file():
        return
    from mlops_assets.storage.database import engine_for

    engine = engine_for(workspace.state_database_url)
    key = f"tuning.journal:{journal.name}"
    stat = journal.stat()
    seen = json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if _state_value(engine, key) == seen:
        return
    owner = journal.with_name(journal.name + ".owner")
    with owner.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise TuningBusyError(
                f"an older version is tuning with this journal (lock {owner})"
            ) from exc
        # read only: a last line cut by a crash is ignored by optuna's reader
        source = JournalStorage(JournalFileBackend(str(journal)))
        conflicts = 0
        for name in optuna.get_all_study_names(source):
            done = _copied_before(storage, source, name)
            if done is None:
                conflicts += 1
                result.skipped.append(
                    f"{journal.name}: study {name!r} exists in the state database with "
                    "trials the journal does not have; not copied"
                )
            elif done:
                result.present += 1
            else:
                optuna.copy_study(from_study_name=name, from_storage=source, to_storage=storage)
                study_id = storage.get_study_id_from_name(name)
                storage.set_study_system_attr(study_id, MIGRATED_ATTR, journal.name)
                result.copied += 1
    if not conflicts:
        _set_state_value(engine, key, seen)


def _copied_before(
    storage: optuna.storages.RDBStorage, source: BaseStorage, name: str
) -> bool | None:
    """True when study ``name`` was copied before, False when it is to be copied (absent,
    or a copy cut short: ``copy_study`` adds trials one by one, and marks the study copied
    only at the end, so a cut copy has a prefix of the journal's trials and is deleted),
    None when the database has a study of that name that is no such prefix."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    if MIGRATED_ATTR in storage.get_study_system_attrs(study_id):
        return True
    ours = storage.get_all_trials(study_id, deepcopy=False)
    theirs = source.get_all_trials(source.get_study_id_from_name(name), deepcopy=False)
    if len(ours) > len(theirs) or any(
        (a.number, a.state, a.values, a.params) != (b.number, b.state, b.values, b.params)
        for a, b in zip(ours, theirs, strict=False)
    ):
        return None
    storage.delete_study(study_id)
    return False


def _state_value(engine: Engine, key: str) -> str | None:
    from sqlalchemy import select

    from mlops_assets.storage.database import ensure_tables, reading
    from mlops_assets.storage.manifest import STATE

    ensure_tables(engine, STATE.metadata)
    with reading(engine) as con:
        return con.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()


def _set_state_value(engine: Engine, key: str, value: str) -> None:
    from sqlalchemy import delete, insert

    from mlops_assets.storage.manifest import STATE

    with engine.begin() as con:
        con.execute(delete(STATE).where(STATE.c.key == key))
        con.execute(insert(STATE).values(key=key, value=value))


def _is_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() == "sqlite"


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _region_lock(url: str, region: str) -> Iterator[None]:
    """One tuning run per region at a time, for the whole run. Holding it, a RUNNING trial
    of the region's studies can only be a dead process's (:func:`_fail_dead_trials`)."""
    with _named_lock(url, f"tuning:{region}", wait=False) as lock:
        if lock is None:
            raise TuningBusyError(f"region {region!r} is being tuned by another process")
        yield


@contextmanager
def _named_lock(url: str, name: str, *, wait: bool) -> Iterator[str | None]:
    """A lock between processes that dies with its holder; yields what it is, or None when
    ``wait`` is False and another process holds it.

    PostgreSQL: a session advisory lock, dropped with the holder's connection (every host
    reaches it). SQLite: an ``flock`` on ``<database>.locks/<name>.lock`` beside the
    database file, dropped by the kernel with the holder's process. A SQLite database is
    only written by processes of one host (SQLite's own locking needs that), so a lock of
    that host is enough; SQLite has no lock of its own that outlives one transaction
    without blocking every other writer of the database."""
    if not _is_sqlite(url):
        with _advisory_lock(url, name, wait=wait) as lock:
            yield lock
        return
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        raise TuningError(f"tuning needs a database file, not {_where(url)}")
    path = Path(database).with_name(Path(database).name + ".locks") / (
        name.replace(":", ".") + ".lock"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        yield f"lock {path}"


@contextmanager
def _advisory_lock(url: str, name: str, *, wait: bool = False) -> Iterator[str | None]:
    """A PostgreSQL session advisory lock on ``mlops_assets.<name>`` (see :func:`_named_lock`)."""
    from sqlalchemy import text

    from mlops_assets.storage.database import advisory_key, engine_for

    key = advisory_key(f"mlops_assets.{name}")
    with engine_for(url).connect() as con:
        con = con.execution_options(isolation_level="AUTOCOMMIT")
        if wait:
            con.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        elif not con.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            yield None
            return
        try:
            yield f"advisory lock {key}"
        finally:
            con.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _fail_dead_trials(study: optuna.Study, storage: BaseStorage) -> int:
    """Mark RUNNING trials FAIL: under the region's lock they belong to a dead process."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in running:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "fail_reason", "its process died mid-trial")
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(running)
