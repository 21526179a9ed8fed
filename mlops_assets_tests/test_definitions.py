"""The Definitions object: the graph people see in the UI, for each shipped dataset."""

from datetime import timedelta

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.settings import DATABASE_URL_ENV, Settings, SettingsError, load_settings
from mlops_assets.spec import SPECS_DIR


def _graph(spec: str, tmp_path) -> dict:
    defs = build_definitions(Settings(env="ci", home=tmp_path, spec=spec))
    graph = defs.resolve_asset_graph()
    return {
        "assets": {
            key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()
        },
        "checks": sorted(
            f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys
        ),
        "sensors": sorted(s.name for s in defs.sensors),
        "jobs": sorted(j.name for j in defs.jobs),
        "described": all(graph.get(k).description for k in graph.get_all_asset_keys()),
    }


def test_sample_graph(tmp_path):
    g = _graph("sample", tmp_path)
    assert g["assets"] == {
        "raw_stores": "ingest",
        "raw_sales": "ingest",
        "raw_weather": "ingest",
        "raw_events": "ingest",
        "raw_future": "ingest",
        "raw_actuals": "ingest",
        "features": "features",
        "region_model": "models",
        "forecast": "forecasts",
        "realized_performance": "monitoring",
        "drift_report": "monitoring",
        "monitoring_alerts": "monitoring",
    }
    assert "features:features_null_rates" in g["checks"]
    for raw in ("raw_stores", "raw_sales", "raw_weather", "raw_events", "raw_future"):
        assert f"{raw}:landing_files_valid" in g["checks"]
        assert f"{raw}:no_unknown_columns" in g["checks"]
    assert g["sensors"] == [
        "landing_sensor",
        "monitoring_sensor",
        "quality_tuning_sensor",
        "region_sensor",
        "run_failure_notifier",
    ]
    assert g["jobs"] == [
        "features_job",
        "ingest_job",
        "monitoring_job",
        "refresh_job",
        "region_monitoring_job",
        "registry_job",
        "registry_retention_job",
        "train_job",
        "tuning_job",
    ]
    assert "region_model:gate_reduction_vs_baseline" in g["checks"]
    assert "region_model:registry_artifacts_intact" in g["checks"]
    assert "forecast:approved_model_available" in g["checks"]
    for check in ("data_drift", "attribution_drift", "data_quality", "model_quality"):
        assert f"monitoring_alerts:{check}" in g["checks"]
    assert g["described"]


def test_every_job_sensor_schedule_and_launchpad_field_is_described(tmp_path):
    """What a UI user reads before launching anything: no job, sensor, schedule or config
    field (of any op or asset a job runs) without a description."""
    defs = build_definitions(Settings(env="ci", home=tmp_path, spec="sample"))
    repo = defs.get_repository_def()
    jobs = [j for j in repo.get_all_jobs() if not j.name.startswith("__")]  # not Dagster's own
    undescribed = [f"job {j.name}" for j in jobs if not j.description]
    undescribed += [f"sensor {s.name}" for s in repo.sensor_defs if not s.description]
    undescribed += [f"schedule {s.name}" for s in repo.schedule_defs if not s.description]

    def fields(config_type, path: str):  # noqa: ANN001, ANN202
        for name, field in (getattr(config_type, "fields", None) or {}).items():
            if not field.description:
                undescribed.append(f"config {path}.{name}")
            fields(field.config_type, f"{path}.{name}")

    for job in jobs:
        for node in job.graph.node_defs:
            schema = getattr(node, "config_schema", None)
            if schema is not None and schema.config_type is not None:
                fields(schema.config_type, f"{job.name}:{node.name}")
    assert sorted(set(undescribed)) == []


@pytest.mark.parametrize("max_age_days", [8, 3])
def test_only_the_sales_feed_has_a_freshness_policy_of_the_spec_max_age(tmp_path, max_age_days):
    spec = tmp_path / "spec.yaml"
    text = (SPECS_DIR / "sample.yaml").read_text()
    spec.write_text(text + f"thresholds:\n  landing_max_age_days: {max_age_days}\n")
    defs = build_definitions(Settings(env="ci", home=tmp_path / "ws", spec=str(spec)))
    graph = defs.resolve_asset_graph()
    policies = {
        key.to_user_string(): graph.get(key).freshness_policy
        for key in graph.get_all_asset_keys()
        if graph.get(key).freshness_policy is not None
    }
    assert list(policies) == ["raw_sales"]
    assert policies["raw_sales"].fail_window.to_timedelta() == timedelta(days=max_age_days)


def test_rossmann_graph_has_its_own_sources(tmp_path):
    g = _graph("rossmann", tmp_path)
    assert "raw_store_regions" in g["assets"] and "raw_events" not in g["assets"]


def test_environment_selection():
    assert load_settings({}).env == "dev"
    ci = load_settings({"MLOPS_ENV": "ci", "MLOPS_HOME": "/tmp/x", "MLOPS_SPEC": "rossmann"})
    assert (ci.env, str(ci.home), ci.spec, ci.sensors_running_by_default) == (
        "ci",
        "/tmp/x",
        "rossmann",
        False,
    )
    with pytest.raises(SettingsError, match="MLOPS_HOME"):
        load_settings({"MLOPS_ENV": "prod"})
    with pytest.raises(SettingsError, match="staging"):
        load_settings({"MLOPS_ENV": "staging"})


def test_regions_per_backfill_run_come_from_the_environment(tmp_path):
    assert load_settings({}).regions_per_run == 3
    settings = load_settings({"MLOPS_HOME": str(tmp_path), "MLOPS_REGIONS_PER_RUN": "25"})
    graph = build_definitions(settings).resolve_asset_graph()
    for key in ("region_model", "forecast"):
        policy = graph.get(dg.AssetKey(key)).backfill_policy
        assert policy == dg.BackfillPolicy.multi_run(25)
    for bad in ("0", "six", "-2"):
        with pytest.raises(SettingsError, match="MLOPS_REGIONS_PER_RUN"):
            load_settings({"MLOPS_REGIONS_PER_RUN": bad})


def test_the_state_database_url_comes_from_the_environment_and_is_never_shown(tmp_path):
    home = tmp_path / "ws"
    default = load_settings({"MLOPS_HOME": str(home)})
    assert default.database_url is None
    assert default.workspace().state_database_url == f"sqlite:///{home / 'state' / 'mlops.sqlite'}"

    url = "postgresql://mlops:s3cret@db:5432/mlops"
    prod = load_settings(
        {"MLOPS_ENV": "prod", "MLOPS_HOME": str(home), DATABASE_URL_ENV: url}
        | {"MLOPS_EXECUTOR": "in_process"}
    )
    assert prod.workspace().state_database_url == url
    assert prod.workspace().root == home
    assert "s3cret" not in repr(prod)
    with pytest.raises(SettingsError, match=DATABASE_URL_ENV) as err:
        load_settings({DATABASE_URL_ENV: "mlops:s3cret@db"})
    assert "s3cret" not in str(err.value)


def test_the_workspace_resource_reads_the_database_url_through_an_env_var(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    monkeypatch.setenv(DATABASE_URL_ENV, url + "\n")  # as `kubectl create secret --from-file`
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("MLOPS_ENV", "ci")
    resource = build_definitions(load_settings()).resources["workspace"]
    # the config names the variable (what the UI shows), not the secret
    assert resource.database_url == dg.EnvVar(DATABASE_URL_ENV)
    with dg.build_resources({"workspace": resource}) as built:
        assert built.workspace.workspace().state_database_url == url

    monkeypatch.delenv(DATABASE_URL_ENV)
    resource = build_definitions(load_settings()).resources["workspace"]
    assert resource.database_url is None
    assert resource.workspace().state_database_url.endswith("/ws/state/mlops.sqlite")


# what each run process and code server pays before any work: lightgbm alone (with sklearn
# and scipy) took 4 s, pandas and matplotlib 1.4 s each on the 2-core CI machine
HEAVY_MODULES = ("lightgbm", "nannyml", "optuna", "matplotlib", "sklearn", "scipy", "pandas")
_WHO_IMPORTS = """
import sys, traceback
HEAVY = {heavy!r}
found = {{}}
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in found:
            chain = [f"{{f.filename.rsplit('/mlops_assets/', 1)[-1]}}:{{f.lineno}}"
                     for f in traceback.extract_stack() if "/mlops_assets/" in f.filename]
            found[name] = " <- ".join(reversed(chain)) or "outside the package"
        return None
sys.meta_path.insert(0, Recorder())
import {module}
for name, chain in found.items():
    print(f"{{name}} imported by {{chain}}")
"""


@pytest.mark.parametrize("module", ["mlops_assets.definitions", "mlops_assets.cli"])
def test_loading_the_code_location_imports_no_heavy_library(module):
    """Every run process loads the definitions before its first step: heavy libraries are
    imported inside the functions that use them (a run that trains still loads LightGBM,
    when its step starts)."""
    import subprocess
    import sys

    code = _WHO_IMPORTS.format(heavy=HEAVY_MODULES, module=module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "", f"importing {module} loads:\n{out.stdout}"
