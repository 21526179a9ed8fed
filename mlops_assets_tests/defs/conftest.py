"""Fixtures for the Dagster layer: a temporary workspace, instance and definitions."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.defs.local_driver import run_sensors
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.settings import Settings
from mlops_assets.workspace import Workspace


@pytest.fixture(scope="session")
def sample_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated dataset in landing layout (stores/, sales/, weather/ ...)."""
    out = tmp_path_factory.mktemp("sample_source")
    generate(SampleConfig.tiny(), out)
    return out


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="ci", home=tmp_path / "home", spec="sample")


@pytest.fixture
def defs(settings: Settings) -> dg.Definitions:
    return build_definitions(settings)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def drop(source_dir: Path, settings: Settings, source: str, name: str | None = None) -> str:
    """Copy every file of ``source_dir/source`` into the landing zone (below the storage
    root when the settings name one), optionally renamed; the last one's relpath."""
    zone = settings.workspace().landing_zone
    last = ""
    for path in sorted((source_dir / source).iterdir()):
        last = zone.put(source, name or path.name, path)
    return last


def drop_all(source_dir: Path, settings: Settings) -> None:
    for source in ("stores", "sales", "weather", "events", "future"):
        drop(source_dir, settings, source)


def conditioned_on_disk(
    tmp_path: Path, source_dir: Path, spec: str = "sample"
) -> tuple[Path, Settings, dg.Definitions]:
    """A Dagster instance folder (``tmp_path/dagster_home``, telemetry off) and a workspace
    whose sample data the sensors ingested and conditioned: what a process of its own (a
    run killed in a fault-injection test) can open again. Returns (dagster home, settings,
    definitions)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    settings = Settings(env="ci", home=tmp_path / "ws", spec=spec)
    defs = build_definitions(settings)
    drop_all(source_dir, settings)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = run_sensors(defs, instance, ["landing_sensor", "region_sensor"])
    assert runs and all(r.success for r in runs), runs
    return home, settings, defs


# --- models and forecasts: a prepared workspace copied per test (see defs/models/pipeline_support)


def move_data_tables(local: Workspace, storage_root: str) -> None:
    """Move a local workspace's ingested files and feature tables below ``storage_root``."""
    shared = Workspace(local.root, storage_root=storage_root).data
    sources = [p.name for p in (local.root / "raw").iterdir()]
    for folder in ["features", *(local.raw_folder(s) for s in sources)]:
        for key in local.data.keys(folder):
            shared.write_bytes(key, local.data.read_bytes(key))
    for folder in ("features", "raw"):
        shutil.rmtree(local.root / folder)


@pytest.fixture(scope="session")
def prepared_workspace(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path):
    """Sample data ingested and conditioned by the sensors once per session (read only)."""
    from mlops_assets_tests.defs.models.pipeline_support import shared_prepared_workspace

    return shared_prepared_workspace(tmp_path_factory, sample_dir)


@pytest.fixture
def model_pipeline(tmp_path: Path, prepared_workspace):
    """Factory: ``model_pipeline(gate={...}, model={...}, monitoring={...}, forecast={...})`` -> a
    ``Pipeline`` on a private copy of the prepared workspace and instance, with the fast
    spec plus the overrides."""
    from contextlib import ExitStack

    from mlops_assets_tests.defs.models.pipeline_support import Pipeline, write_fast_spec

    with ExitStack() as stack:

        def make(
            *,
            gate: dict | None = None,
            model: dict | None = None,
            monitoring: dict | None = None,
            forecast: dict | None = None,
            storage_root: str | None = None,
        ) -> Pipeline:
            copy = prepared_workspace.copy_to(tmp_path / "pipeline")
            if storage_root is not None:  # the data tables move to the shared root
                move_data_tables(Workspace(copy.home), storage_root)
            spec = write_fast_spec(
                tmp_path / "spec.yaml",
                gate=gate,
                model=model,
                monitoring=monitoring,
                forecast=forecast,
            )
            settings = Settings(env="ci", home=copy.home, spec=str(spec), storage_root=storage_root)
            instance = stack.enter_context(dg.instance_for_test(temp_dir=str(copy.dagster_home)))
            return Pipeline(settings, build_definitions(settings), instance, copy.regions)

        yield make
