"""A training run killed with SIGKILL at registration (its artifacts written, its version
not yet committed): no half version is visible, the next run sweeps what was left and
registers the version number the killed run would have taken."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.local_driver import run_partitions
from mlops_assets.registry import APPROVED, ModelRegistry
from mlops_assets.workspace import Workspace
from mlops_assets_tests.defs.conftest import conditioned_on_disk
from mlops_assets_tests.defs.models.pipeline_support import write_fast_spec

pytestmark = pytest.mark.e2e

# Runs one region's train_job in a process of its own that SIGKILLs itself when the
# registry is about to commit the new version (every artifact is written by then).
_KILLED_TRAINING_RUN = """
import os, signal, sys
import dagster as dg
from mlops_assets import registry
from mlops_assets.definitions import build_definitions
from mlops_assets.settings import Settings

home, ws_root, spec, region = sys.argv[1:5]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

registry.ModelRegistry._commit = die
defs = build_definitions(Settings(env="ci", home=ws_root, spec=spec))
with dg.DagsterInstance.from_config(home) as instance:
    defs.resolve_job_def("train_job").execute_in_process(instance=instance, partition_key=region)
print("not killed")
"""


def test_a_training_run_killed_at_registration_leaves_no_half_version(
    tmp_path: Path, sample_source: Path
) -> None:
    spec = write_fast_spec(tmp_path / "spec.yaml")
    home, settings, defs = conditioned_on_disk(tmp_path, sample_source, str(spec))
    region = "Nord"

    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_TRAINING_RUN,
            str(home),
            str(settings.home),
            str(spec),
            region,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    # the artifacts of the uncommitted version are on disk, but no version exists
    left = sorted(p.name for p in (settings.home / "models" / region).rglob("*") if p.is_file())
    assert "model.txt" in left
    registry = ModelRegistry.for_workspace(Workspace(settings.home))
    assert registry.versions(region) == []
    assert registry.latest_approved(region) is None

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = run_partitions(defs, instance, "train_job", [region])
    assert run.success
    versions = registry.versions(region)
    assert [(v.version, v.status) for v in versions] == [(1, APPROVED)]
    assert registry.verify() == []
    hidden = [p for p in settings.home.rglob(".*") if p.is_file() and "partial" in p.name]
    assert hidden == []
    # only the committed version's artifacts remain below the region's model folder
    folders = sorted(p.name for p in (settings.home / "models" / region).iterdir())
    assert folders == ["0001"]
