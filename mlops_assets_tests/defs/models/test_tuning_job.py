"""The tuning job: one region partition, the launchpad budget, the observation on
``region_model``, the notification, and the never-auto-approved policy through Dagster.

The workspace is the tiny sample ingested and conditioned for ``Nord`` with the plain
functions (no sensors), copied per test; the spec is the fast sample spec with a gate
that passes any model.
"""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.models.tuning import TUNING_JOB
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.notifications import Notifier
from mlops_assets.registry import PENDING, ModelRegistry
from mlops_assets.settings import Settings
from mlops_assets.workspace import Workspace
from mlops_assets_tests.defs.models.pipeline_support import write_fast_spec
from mlops_assets_tests.test_conditioning import make_workspace, write_region

REGION = "Nord"
PASS_ANY = {
    "max_value": 10.0,
    "min_reduction_vs_baseline": -10.0,
    "require_beats_seasonal_naive": False,
}


@pytest.fixture(scope="module")
def source_home(tmp_path_factory, sample_dir) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("tuning_job") / "home", sample_dir)
    write_region(ws, REGION)
    return ws.root


@pytest.fixture
def setup(tmp_path, source_home, instance):
    home = tmp_path / "home"
    shutil.copytree(source_home, home)
    spec = write_fast_spec(tmp_path / "spec.yaml", gate=PASS_ANY)
    settings = Settings(env="ci", home=home, spec=str(spec))
    instance.add_dynamic_partitions(region_partitions.name, [REGION])
    return build_definitions(settings), instance, Workspace(home)


def _run(defs, instance, **config) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(TUNING_JOB).execute_in_process(
        instance=instance,
        partition_key=REGION,
        raise_on_error=False,
        run_config={
            "ops": {"tune_region_model": {"config": config}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
    )


def test_tuning_job_registers_pending_approval_observes_and_notifies(setup):
    defs, instance, ws = setup
    job = defs.resolve_job_def(TUNING_JOB)
    assert job.partitions_def == region_partitions

    result = _run(defs, instance, n_trials=3, timeout_seconds=60)

    assert result.success
    registry = ModelRegistry.for_workspace(ws)
    [mv] = registry.versions(REGION)
    assert mv.status == PENDING and mv.record["source"] == "tuning"
    assert registry.latest_approved(REGION) is None
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=REGION_MODEL_KEY, asset_partitions=[REGION]), limit=5
    ).records
    [obs] = [r.asset_observation for r in records]
    meta = {k: v.value for k, v in obs.metadata.items()}
    assert (meta["model_label"], meta["status"], meta["source"]) == (mv.label, PENDING, "tuning")
    assert meta["trials_this_run"] == meta["trials_total"] == 3
    assert meta["trials_complete"] + meta["trials_pruned"] + meta["trials_failed"] == 3
    assert meta["best_value"] <= meta["baseline_value"]
    assert meta["best_params"] == mv.record["tuning"]["best_params"]
    assert meta["study_storage"] == ws.state_database_url
    assert {"improvement", "best_val_mape", "baseline_val_mape", "holdout_mape"} <= set(meta)
    feed = Notifier.for_workspace(ws).read()
    started, note = [e for e in feed if e["region"] == REGION]
    assert started["kind"] == "tuning_started"
    assert started["details"]["trigger"] == "launched by a person"  # no sensor's tags
    assert "up to 3 trials / 60 s" in started["message"]
    assert note["kind"] == "model_pending_approval"
    assert note["details"]["study"] == mv.record["tuning"]["study_name"]
    assert "tuning over 3 trials" in note["message"]


def test_tuning_job_refuses_an_invalid_budget(setup):
    defs, instance, ws = setup

    result = _run(defs, instance, n_trials=0)

    assert not result.success
    failure = result.failure_data_for_node("tune_region_model")
    assert "n_trials" in failure.error.message
    assert ModelRegistry.for_workspace(ws).versions(REGION) == []
