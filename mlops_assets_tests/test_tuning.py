"""Tests for tuning one region: the budget, the persistent study (continued, killed and
resumed, copied from an older workspace's journal), pruning, the Datasets built once, and
the registration policy (a tuned model is never approved automatically); also the
``mlops-assets tune`` and ``migrate-state`` commands.

Data: region ``Nord`` (two stores x three departments) of the tiny generated sample,
conditioned once per module; training with few boosting rounds (``FAST``) on one thread.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightgbm as lgb
import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState
from pydantic import ValidationError

from mlops_assets import cli
from mlops_assets import tuning as tuning_module
from mlops_assets.conditioning import FeatureSet
from mlops_assets.notifications import Notifier
from mlops_assets.region_models import train_and_register
from mlops_assets.registry import APPROVED, PENDING, REJECTED, ModelRegistry
from mlops_assets.spec import DatasetSpec, GateSettings, TuningSettings, load_spec
from mlops_assets.storage import tuning_studies
from mlops_assets.storage.database import dispose_engine
from mlops_assets.storage.tuning_studies import TuningBusyError, rdb_storage
from mlops_assets.training import prepare_region
from mlops_assets.tuning import (
    TUNED_PARAMS,
    load_region_features,
    reviewed_params,
    tune_and_register,
    tune_region,
)
from mlops_assets.workspace import Workspace
from mlops_assets_tests.test_conditioning import SPEC, make_workspace, write_region

REGION = "Nord"
FAST = SPEC.model.model_copy(
    update={"num_boost_round": 60, "early_stopping_rounds": 10, "metric_floor": 20}
)
# judges nothing: a tuned model passes whatever its metrics (the tiny sample is too short
# for the shipped gate), so the registration policy alone decides its status
LENIENT = GateSettings(
    max_value=10.0,
    min_reduction_vs_baseline=-10.0,
    require_beats_seasonal_naive=False,
    tolerance_vs_approved=10.0,
)
IMPOSSIBLE = GateSettings(max_value=0.0001)
TEST_SPEC: DatasetSpec = SPEC.model_copy(update={"model": FAST, "gate": LENIENT})
QUICK = TuningSettings(n_trials=4, timeout_seconds=120, report_every=5, pruner="none")


@pytest.fixture(scope="module")
def source(tmp_path_factory, sample_dir) -> Workspace:
    """A workspace with the tiny sample ingested and Nord's features written (read only)."""
    ws = make_workspace(tmp_path_factory.mktemp("tuning_source") / "ws", sample_dir)
    write_region(ws, REGION)
    return ws


@pytest.fixture(scope="module")
def data(source) -> tuple[pd.DataFrame, FeatureSet]:
    return load_region_features(source, SPEC, REGION)


def tune(data, ws: Workspace, tuning: TuningSettings = QUICK, spec: DatasetSpec = TEST_SPEC):
    features, fs = data
    return tune_region(features, fs, spec, REGION, workspace=ws, tuning=tuning)


def study_trials(ws: Workspace, name: str) -> list[optuna.trial.FrozenTrial]:
    """A study's trials as stored in the workspace's state database."""
    storage = rdb_storage(ws.state_database_url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    finally:
        storage.engine.dispose()


def write_spec(path: Path, spec: DatasetSpec) -> Path:
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    return path


# --------------------------------------------------------------------------------------
# the spec's tuning section


def test_tuning_section_defaults_and_ranges():
    assert load_spec("sample").tuning == TuningSettings()
    assert TuningSettings().n_trials == 20 and TuningSettings().timeout_seconds == 300
    for bad in ({"n_trials": 0}, {"timeout_seconds": 0}, {"pruner": "hyperband"}, {"x": 1}):
        with pytest.raises(ValidationError):
            TuningSettings(**bad)


# --------------------------------------------------------------------------------------
# the budget, the baseline, the Datasets


def test_budget_of_trials_with_the_reviewed_parameters_first(data, tmp_path, monkeypatch):
    constructed = []
    lazy_init = lgb.Dataset._lazy_init

    def counting(self, *args, **kwargs):
        constructed.append(self)
        return lazy_init(self, *args, **kwargs)

    monkeypatch.setattr(lgb.Dataset, "_lazy_init", counting)
    ws = Workspace(tmp_path / "ws")

    result = tune(data, ws)

    assert (result.n_trials, result.new_trials, result.n_complete) == (4, 4, 4)
    assert result.n_pruned == result.n_failed == result.stale_trials_failed == 0
    # training and validation Datasets are built once and shared by the four trials
    assert len(constructed) == 2
    trials = study_trials(ws, result.study_name)
    assert trials[0].user_attrs["baseline"] is True
    assert trials[0].user_attrs["params"] == reviewed_params(FAST) == result.baseline_params
    assert trials[0].value == result.baseline_value
    for trial in trials[1:]:
        assert sorted(trial.params) == sorted(TUNED_PARAMS)
        assert trial.user_attrs["params"] == trial.params
        assert trial.user_attrs["val_mape"] > 0
    assert result.best_value == min(t.value for t in trials)
    assert result.best_params == trials[result.best_trial].user_attrs["params"]
    assert result.improvement == pytest.approx(
        (result.baseline_value - result.best_value) / result.baseline_value
    )
    assert result.metric == "l2" and result.gate_metric == "mape"
    assert result.storage_path == ws.state_database_url  # optuna's RDB storage in it
    assert not ws.study_path(REGION).exists()  # no journal file any more
    assert result.study_name.startswith(f"{SPEC.name}.{REGION}.")
    split = prepare_region(*data, SPEC).split
    assert result.validation_window == f"{split.val_start.date()}..{split.val_end.date()}"
    assert split.val_end < split.holdout_start  # tuning never sees the holdout
    json.dumps(result.to_dict())  # recorded in the registry as is


def test_a_tiny_timeout_stops_before_the_trial_budget(data, tmp_path):
    start = time.perf_counter()
    result = tune(
        data,
        Workspace(tmp_path / "ws"),
        QUICK.model_copy(update={"n_trials": 10_000, "timeout_seconds": 0.2}),
    )
    assert 1 <= result.new_trials < 100
    assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------------------
# the persistent study


def test_a_second_run_continues_the_same_study(data, tmp_path):
    ws = Workspace(tmp_path / "ws")
    first = tune(data, ws, QUICK.model_copy(update={"n_trials": 3}))
    second = tune(data, ws, QUICK.model_copy(update={"n_trials": 3}))

    assert second.study_name == first.study_name
    assert (second.n_trials, second.new_trials, second.n_complete) == (6, 3, 6)
    assert second.best_value <= first.best_value
    trials = study_trials(ws, first.study_name)
    assert sum(bool(t.user_attrs.get("baseline")) for t in trials) == 1
    # the second run does not replay the first run's random start-up points
    searched = [tuple(sorted(t.params.items())) for t in trials if t.params]
    assert len(set(searched)) == len(searched) == 5


def test_new_data_starts_a_new_study_in_the_same_storage(data, tmp_path):
    ws = Workspace(tmp_path / "ws")
    features, fs = data
    first = tune(data, ws, QUICK.model_copy(update={"n_trials": 2}))
    dates = pd.to_datetime(features["date"])
    history_end = dates[~features["is_future"].astype(bool)].max()
    shorter = features[dates <= history_end - pd.Timedelta(days=7)]

    second = tune((shorter, fs), ws, QUICK.model_copy(update={"n_trials": 2}))

    assert second.study_name != first.study_name
    assert second.storage_path == first.storage_path
    assert (second.n_trials, second.new_trials) == (2, 2)
    assert second.baseline_value is not None  # the reviewed parameters, on the new rows


def test_a_second_process_on_the_same_region_is_refused(data, tmp_path):
    ws = Workspace(tmp_path / "ws")
    # another open file description's flock conflicts as another process's would
    with tuning_studies._region_lock(ws.state_database_url, REGION):
        lock = ws.root / "state" / "mlops.sqlite.locks" / f"tuning.{REGION}.lock"
        assert lock.read_text() == f"pid {os.getpid()}\n"  # beside the database file
        with pytest.raises(TuningBusyError, match="another process"):
            tune(data, ws)
        with tuning_studies._region_lock(ws.state_database_url, "Ost"):  # another region
            pass
    assert tune(data, ws, QUICK.model_copy(update={"n_trials": 1})).n_complete == 1


_CHILD = """
import sys
from mlops_assets.spec import load_spec
from mlops_assets.tuning import load_region_features, tune_region
from mlops_assets.workspace import Workspace
from mlops_assets.notifications import Notifier
source, target, spec_path, region = sys.argv[1:]
spec = load_spec(spec_path)
features, fs = load_region_features(Workspace(source), spec, region)
tune_region(features, fs, spec, region, workspace=Workspace(target))
"""


def _kill_mid_trial(args: list[str], ws: Workspace) -> tuple[str, int]:
    """Start tuning in a child process, SIGKILL it while a trial runs after at least one
    completed; returns the study name and the number of the trial left RUNNING."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args], stderr=subprocess.PIPE, text=True
    )
    database = ws.root / "state" / "mlops.sqlite"
    storage = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read()
            if database.exists():
                storage = storage or rdb_storage(ws.state_database_url)
                names = optuna.get_all_study_names(storage)
                if names:
                    trials = optuna.load_study(study_name=names[0], storage=storage).trials
                    done = [t for t in trials if t.state == TrialState.COMPLETE]
                    # mid-trial: it has reported a round already
                    running = [
                        t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values
                    ]
                    if done and running:
                        os.kill(child.pid, signal.SIGKILL)
                        child.wait()
                        return names[0], running[-1].number
            time.sleep(0.02)
        raise AssertionError("the child never completed a trial")
    finally:
        if storage is not None:
            storage.engine.dispose()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()


def test_a_study_killed_mid_trial_resumes(data, tmp_path, source):
    spec = TEST_SPEC.model_copy(
        update={
            # long trials (no early stopping), so the kill lands inside one
            "model": FAST.model_copy(update={"num_boost_round": 250, "early_stopping_rounds": 250}),
            "tuning": TuningSettings(
                n_trials=10_000, timeout_seconds=120, pruner="none", report_every=5
            ),
        }
    )
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    ws = Workspace(tmp_path / "ws")
    args = [str(source.root), str(ws.root), str(spec_path), REGION]
    for _ in range(3):  # a kill landing between two trials leaves nothing RUNNING: again
        name, killed = _kill_mid_trial(args, ws)
        states = {t.number: t.state for t in study_trials(ws, name)}
        if states.get(killed) == TrialState.RUNNING:
            break
    assert states[killed] == TrialState.RUNNING
    complete_before = sum(s == TrialState.COMPLETE for s in states.values())

    result = tune(
        data, ws, spec.tuning.model_copy(update={"n_trials": 2}), spec=load_spec(spec_path)
    )

    assert result.study_name == name
    assert result.stale_trials_failed == 1
    assert result.new_trials == 2
    assert result.n_complete == complete_before + 2
    trials = study_trials(ws, name)
    assert trials[killed].state == TrialState.FAIL
    assert trials[killed].user_attrs["fail_reason"] == "its process died mid-trial"
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert result.n_trials == len(states) + 2


_TWO_REGIONS = """
import sys
from mlops_assets.spec import load_spec
from mlops_assets.tuning import load_region_features, tune_region
from mlops_assets.workspace import Workspace
source, target, spec_path, region = sys.argv[1:]
spec = load_spec(spec_path)
features, fs = load_region_features(Workspace(source), spec, "Nord")
print(tune_region(features, fs, spec, region, workspace=Workspace(target)).n_complete)
"""


def test_regions_tuned_at_once_share_a_new_sqlite_database(tmp_path, source):
    """Two processes tuning two regions at once on a new workspace, each writing every
    boosting round: both create the storage and write without "database is locked"."""
    spec = TEST_SPEC.model_copy(
        update={"tuning": QUICK.model_copy(update={"n_trials": 3, "report_every": 1})}
    )
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    ws = Workspace(tmp_path / "ws")
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _TWO_REGIONS, str(source.root), str(ws.root), str(spec_path), r],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (REGION, "Ost")
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == "3"


# --------------------------------------------------------------------------------------
# studies of older workspaces: journal files, copied into the state database


def _journal_study(journal: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    """A study as older workspaces kept it: a COMPLETE trial (intermediate values, user
    attrs), a FAIL one and one left RUNNING by a killed process; returns its trials."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize")
    study.set_user_attr("context", {"dataset": "sample", "study": name})
    space = {
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "num_leaves": IntDistribution(8, 255, log=True),
    }
    complete = study.ask(space)
    complete.set_user_attr("params", complete.params)
    complete.set_user_attr("val_mape", 0.25)
    complete.report(0.5, 5)
    complete.report(0.4, 10)
    study.tell(complete, 0.4)
    failed = study.ask(space)
    failed.set_user_attr("fail_reason", "LightGBMError")
    study.tell(failed, state=TrialState.FAIL)
    study.ask(space)  # its process was killed
    return study.get_trials()


def _as_stored(trial: optuna.trial.FrozenTrial) -> tuple:
    return (
        trial.number,
        trial.state,
        trial.params,
        trial.distributions,
        trial.values,
        trial.user_attrs,
        trial.intermediate_values,
        trial.datetime_start,
    )


def test_migrate_state_copies_journal_studies_once(tmp_path, capsys, monkeypatch):
    for var in ("MLOPS_DATABASE_URL", "MLOPS_HOME", "MLOPS_SPEC"):
        monkeypatch.delenv(var, raising=False)
    ws = Workspace(tmp_path / "ws")
    journals = {REGION: ws.study_path(REGION), "Ost": ws.study_path("Ost")}
    old = {
        "sample.Nord.a": _journal_study(journals[REGION], "sample.Nord.a"),
        "sample.Nord.b": _journal_study(journals[REGION], "sample.Nord.b"),
        "sample.Ost.a": _journal_study(journals["Ost"], "sample.Ost.a"),
    }
    with journals[REGION].open("ab") as fh:  # a write cut by a crash: optuna skips it
        fh.write(b'{"op_code": 5, "worker_id": "dead", "trial_id"')
    # a copy cut short by a crash (copy_study adds trials one by one): copied again, whole
    cut = rdb_storage(ws.state_database_url)
    cut_id = cut.create_new_study([StudyDirection.MINIMIZE], "sample.Ost.a")
    cut.create_new_trial(cut_id, template_trial=old["sample.Ost.a"][0])
    cut.engine.dispose()
    files = {path: path.read_bytes() for path in journals.values()}

    assert cli.main(["migrate-state", "--home", str(ws.root)]) == 0
    assert "tuning_studies +3" in capsys.readouterr().out
    for name, trials in old.items():
        copied = study_trials(ws, name)
        assert [_as_stored(t) for t in copied] == [_as_stored(t) for t in trials]
        states = [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING]
        assert [t.state for t in copied] == states
    storage = rdb_storage(ws.state_database_url)
    study = optuna.load_study(study_name="sample.Nord.b", storage=storage)
    assert study.user_attrs == {"context": {"dataset": "sample", "study": "sample.Nord.b"}}
    storage.engine.dispose()

    dispose_engine(ws.state_database_url)  # a new process: only what is stored tells
    assert cli.main(["migrate-state", "--home", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "tuning_studies +0" in out and "nothing to import" in out
    # a journal changed since is read again: its studies are there, none is copied twice
    os.utime(journals["Ost"], ns=(1, 1))
    assert tuning_studies.migrate_journal_studies(ws).present == 1
    assert len(study_trials(ws, "sample.Ost.a")) == 3
    assert {path: path.read_bytes() for path in journals.values()} == files  # they stay


def test_a_regions_next_run_continues_its_journal_study(data, tmp_path):
    """An older workspace's region continues its journal's study on its next run, copied
    with its trials; the trial its killed process left RUNNING is failed, not complete."""
    new = Workspace(tmp_path / "new")
    first = tune(data, new, QUICK.model_copy(update={"n_trials": 2}))
    old = Workspace(tmp_path / "old")
    old.study_path(REGION).parent.mkdir(parents=True)
    journal = JournalStorage(JournalFileBackend(str(old.study_path(REGION))))
    source = rdb_storage(new.state_database_url)
    optuna.copy_study(from_study_name=first.study_name, from_storage=source, to_storage=journal)
    source.engine.dispose()
    journal.create_new_trial(journal.get_study_id_from_name(first.study_name))

    second = tune(data, old, QUICK.model_copy(update={"n_trials": 1}))

    assert second.study_name == first.study_name
    assert (second.n_trials, second.new_trials, second.stale_trials_failed) == (4, 1, 1)
    assert (second.n_complete, second.n_failed) == (3, 1)
    assert second.baseline_value == first.baseline_value  # the journal's, not run again
    assert tuning_studies.migrate_journal_studies(old).copied == 0  # its run copied it


# --------------------------------------------------------------------------------------
# pruning


def test_an_aggressive_pruner_prunes_deterministically(data, tmp_path):
    aggressive = QUICK.model_copy(
        update={
            "n_trials": 6,
            "pruner": "median",
            "pruner_startup_trials": 1,
            "pruner_warmup_rounds": 0,
            "report_every": 1,
            "seed": 3,
        }
    )
    outcomes = []
    for run in ("a", "b"):
        ws = Workspace(tmp_path / run)
        result = tune(data, ws, aggressive)
        trials = study_trials(ws, result.study_name)
        outcomes.append([(t.state, t.value, t.last_step) for t in trials])

    assert outcomes[0] == outcomes[1]
    states = [state for state, _, _ in outcomes[0]]
    assert states[0] == TrialState.COMPLETE  # the baseline is never pruned
    assert states.count(TrialState.PRUNED) >= 1
    assert result.n_pruned == states.count(TrialState.PRUNED)


# --------------------------------------------------------------------------------------
# registration: never approved automatically


def test_tuned_models_wait_for_approval_or_are_rejected(data, tmp_path, monkeypatch):
    features, fs = data
    ws = Workspace(tmp_path / "ws")
    registry = ModelRegistry.for_workspace(ws)
    approved = train_and_register(
        features, fs, TEST_SPEC, registry, REGION, run_id="recal", features_version="f1"
    ).version
    assert approved.status == APPROVED

    def tuned(spec: DatasetSpec, run_id: str):
        return tune_and_register(
            features,
            fs,
            spec,
            registry,
            REGION,
            workspace=ws,
            run_id=run_id,
            features_version="f1",
            tuning=QUICK,
        )

    passed = tuned(TEST_SPEC, "tune-1")
    assert passed.training.passed
    assert passed.version.status == PENDING
    record = passed.version.record
    assert record["source"] == "tuning" and record["run_id"] == "tune-1"
    assert record["tuning"] == passed.result.to_dict()
    for name, value in passed.result.best_params.items():
        assert record["hyperparameters"][name] == value
    assert registry.latest_approved(REGION).label == approved.label

    rejected = tuned(TEST_SPEC.model_copy(update={"gate": IMPOSSIBLE}), "tune-2")
    assert not rejected.training.passed
    assert rejected.version.status == REJECTED
    assert rejected.version.reasons
    assert registry.latest_approved(REGION).label == approved.label
    assert [v.status for v in registry.versions(REGION)] == [APPROVED, PENDING, REJECTED]

    # once a person approves it, its parameters are the reviewed ones the next search
    # starts from and is compared with
    registry.approve(REGION, passed.version.version, actor="alice", reason="reviewed")
    seen = {}

    def capture(*args, settings=None, **kwargs):
        seen["settings"] = settings
        raise RuntimeError("stop after the search's settings")

    monkeypatch.setattr(tuning_module, "tune_region", capture)
    with pytest.raises(RuntimeError, match="stop after"):
        tuned(TEST_SPEC, "tune-3")
    assert seen["settings"].params == {**FAST.params, **passed.result.best_params}


# --------------------------------------------------------------------------------------
# the command line


def test_cli_tune_registers_for_approval_and_notifies(source, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    shutil.copytree(source.root, home)
    spec_path = write_spec(tmp_path / "spec.yaml", TEST_SPEC)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("MLOPS_ENV", "ci")
    monkeypatch.setenv("MLOPS_HOME", str(home))  # the command sets both for the process
    monkeypatch.setenv("MLOPS_SPEC", str(spec_path))

    code = cli.main(
        [
            "tune",
            "--region",
            REGION,
            "--trials",
            "3",
            "--timeout",
            "60",
            "--home",
            str(home),
            "--spec",
            str(spec_path),
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert f"registered {REGION}:v1 as pending_approval" in out
    assert "tuning over 3 trials (3 new)" in out
    assert ModelRegistry.for_workspace(Workspace(home)).latest_approved(REGION) is None
    feed = Notifier.for_workspace(Workspace(home)).read()
    assert [(e["kind"], e["region"]) for e in feed] == [("model_pending_approval", REGION)]

    assert cli.main(["tune", "--region", REGION, "--trials", "0", "--home", str(home)]) == 2
    assert "n_trials" in capsys.readouterr().err
