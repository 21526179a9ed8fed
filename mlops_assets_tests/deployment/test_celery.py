"""The prod profile's Celery engine: chosen by configuration, one config for the executor
and the workers, secrets named and never written out. (The engine itself, with a real
broker, workers and a kill: test_prod_celery.py, `make e2e-prod`.)"""

from pathlib import Path

import pytest
import yaml

from mlops_assets.definitions import build_definitions
from mlops_assets.deployment.celery import (
    BACKEND_ENV,
    BROKER_ENV,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    VISIBILITY_TIMEOUT_ENV,
    executor_config,
    worker_command,
    write_worker_config,
)
from mlops_assets.settings import SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER = {BROKER_ENV: "redis://:s3cret@broker:6379/0", BACKEND_ENV: "redis://broker:6379/1"}


def _prod(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"MLOPS_ENV": "prod", "MLOPS_HOME": str(tmp_path / "ws"), **extra}


def test_prod_runs_steps_on_celery_and_dev_in_the_run_process(tmp_path):
    assert load_settings({}).executor == "in_process"
    assert load_settings({"MLOPS_ENV": "ci"}).executor == "in_process"
    assert load_settings(_prod(tmp_path, **BROKER)).executor == "celery"
    # Kubernetes: a pod per run, the steps in it (deploy/helm/values.yaml sets this)
    assert load_settings(_prod(tmp_path, MLOPS_EXECUTOR="in_process")).executor == "in_process"
    with pytest.raises(SettingsError, match="MLOPS_EXECUTOR='dask'"):
        load_settings(_prod(tmp_path, MLOPS_EXECUTOR="dask", **BROKER))


def test_celery_without_a_broker_is_refused_naming_the_variables(tmp_path):
    with pytest.raises(SettingsError, match=f"{BROKER_ENV} and {BACKEND_ENV}"):
        load_settings(_prod(tmp_path))
    with pytest.raises(SettingsError, match=BACKEND_ENV) as err:
        load_settings(_prod(tmp_path, **{BROKER_ENV: BROKER[BROKER_ENV]}))
    assert "s3cret" not in str(err.value)
    for bad in ("0", "soon", "-5"):
        with pytest.raises(SettingsError, match=VISIBILITY_TIMEOUT_ENV):
            load_settings(_prod(tmp_path, **BROKER, **{VISIBILITY_TIMEOUT_ENV: bad}))


def test_the_code_location_picks_the_executor_and_names_the_secrets(tmp_path, monkeypatch):
    dev = build_definitions(load_settings({"MLOPS_HOME": str(tmp_path / "ws")}))
    assert dev.executor.name == "in_process"

    for name, value in BROKER.items():
        monkeypatch.setenv(name, value)
    prod = build_definitions(load_settings(_prod(tmp_path, **BROKER)))
    assert prod.executor.name == "celery_executor"
    job = prod.resolve_job_def("train_job")
    assert job.executor_def.name == "celery_executor"
    # what the definitions hold names the variables; their values are read when a run starts
    assert executor_config()["broker"] == {"env": BROKER_ENV}
    assert "s3cret" not in repr(executor_config())
    config = job.executor_def.config_schema.resolve_config({}).value["config"]
    assert (config["broker"], config["backend"]) == (BROKER[BROKER_ENV], BROKER[BACKEND_ENV])
    source = config["config_source"]
    assert (source["task_acks_late"], source["task_reject_on_worker_lost"]) == (True, True)
    assert source["broker_transport_options"]["visibility_timeout"] == DEFAULT_VISIBILITY_TIMEOUT_S


def test_workers_get_the_executors_config(tmp_path):
    from dagster_celery.cli import get_validated_config

    environ = {**BROKER, VISIBILITY_TIMEOUT_ENV: "90"}
    path = write_worker_config(tmp_path / "celery" / "w1.yaml", environ)
    written = yaml.safe_load(path.read_text())["execution"]["config"]
    assert written == executor_config(environ)
    assert "s3cret" not in path.read_text()
    # dagster-celery's own reading of the file (what `worker start -y` does), with the
    # variables resolved in the worker's environment
    with pytest.MonkeyPatch.context() as mp:
        for name, value in BROKER.items():
            mp.setenv(name, value)
        validated = get_validated_config(str(path))
    assert validated["broker"] == BROKER[BROKER_ENV]
    assert validated["config_source"]["broker_transport_options"]["visibility_timeout"] == 90

    argv = worker_command("w1", path, 2)
    assert argv[1:] == ["worker", "start", "-A", "dagster_celery.app", "-y", str(path)] + [
        "-n",
        "w1",
        "--",
        "--concurrency=2",
    ]


def test_the_prod_instance_file_names_postgres_retries_and_limits():
    from dagster._core.instance.config import dagster_instance_config

    instance_yaml = REPO_ROOT / "deploy" / "prod" / "dagster.yaml"
    raw = yaml.safe_load(instance_yaml.read_text())
    assert raw["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert raw["run_retries"]["enabled"] is True
    assert raw["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert raw["telemetry"]["enabled"] is False
    # Dagster's own schema accepts it
    config, _ = dagster_instance_config(str(instance_yaml.parent), "dagster.yaml")
    assert config["run_launcher"]["class"] == "LocalRunLauncher"
