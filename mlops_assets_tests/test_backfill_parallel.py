"""Two backfill-style runs at once, in separate processes, on one workspace and instance.

Each is the `dagster asset materialize` command a backfill of one region partition
amounts to (region_model then forecast, default multiprocess executor), against a sqlite
DAGSTER_HOME. Runs of different regions must not contend: registry, model store and
forecasts are per-region files, and nothing writes a shared DuckDB file.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.forecasts.assets import FORECAST_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.registry import APPROVED, ModelRegistry
from mlops_assets.workspace import Workspace
from mlops_assets_tests.defs.models.pipeline_support import (
    shared_prepared_workspace,
    write_fast_spec,
)

# a backfill in real run processes: `make e2e`
pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
REGIONS = ("Rhein_Main", "Sud")
# a lock conflict anywhere: sqlite "database is locked", DuckDB "Could not set lock"...
LOCK_ERROR = re.compile(r"\block(s|ed)?\b", re.IGNORECASE)
TIMEOUT_S = 300


@pytest.fixture
def prepared(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, sample_dir: Path):
    return shared_prepared_workspace(tmp_path_factory, sample_dir).copy_to(tmp_path)


def test_two_region_backfill_runs_in_parallel_processes(prepared, tmp_path: Path):
    assert set(REGIONS) <= set(prepared.regions)
    spec = write_fast_spec(tmp_path / "fast.yaml")
    env = {
        **os.environ,
        "MLOPS_ENV": "ci",
        "MLOPS_HOME": str(prepared.home),
        "MLOPS_SPEC": str(spec),
        "DAGSTER_HOME": str(prepared.dagster_home),
    }
    started = time.monotonic()
    procs = {
        region: subprocess.Popen(
            [
                str(DAGSTER),
                *("asset", "materialize", "-m", "mlops_assets.definitions"),
                *("--select", "region_model,forecast", "--partition", region),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for region in REGIONS
    }
    try:
        outputs = {region: proc.communicate(timeout=TIMEOUT_S)[0] for region, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    print(f"two parallel `dagster asset materialize` runs took {elapsed:.1f} s")

    for region, proc in procs.items():
        out = outputs[region]
        assert proc.returncode == 0, f"{region} exited {proc.returncode}:\n{out[-6000:]}"
        locks = sorted({line for line in out.splitlines() if LOCK_ERROR.search(line)})
        assert not locks, f"{region} hit lock errors:\n" + "\n".join(locks)

    registry = ModelRegistry.for_workspace(Workspace(prepared.home))
    with dg.instance_for_test(temp_dir=str(prepared.dagster_home)) as instance:
        runs = [r for r in instance.get_runs() if r.job_name == "__ASSET_JOB"]
        assert sorted(r.tags.get("dagster/partition") for r in runs) == sorted(REGIONS)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert instance.get_materialized_partitions(REGION_MODEL_KEY) == set(REGIONS)
        assert instance.get_materialized_partitions(FORECAST_KEY) == set(REGIONS)
    for region in REGIONS:
        approved = registry.latest_approved(region)
        assert approved is not None and approved.version == 1
        assert [v.status for v in registry.versions(region)] == [APPROVED]
        data = Workspace(prepared.home).data
        [key] = data.keys(f"forecasts/{region}", ".forecast.parquet")
        forecast = data.read_parquet(key)
        assert len(forecast) > 0 and set(forecast["model_label"]) == {f"{region}:v1"}
        assert set(forecast["run_id"]) == {approved.record["run_id"]}  # same backfill run
