"""A feature run killed with SIGKILL mid-write: the region's previous features stay
readable, and the rerun writes the same table and leaves no temporary file behind."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.defs.local_driver import run_partitions
from mlops_assets_tests.defs.conftest import conditioned_on_disk

pytestmark = pytest.mark.e2e

# Runs one region's features_job in a process of its own that SIGKILLs itself at the
# moment the new table is complete in its temporary file and about to replace the old one.
_KILLED_FEATURE_RUN = """
import os, signal, sys
import dagster as dg
from mlops_assets.definitions import build_definitions
from mlops_assets.settings import Settings

home, ws_root, region = sys.argv[1:4]
real_replace = os.replace

def replace_then_die(src, dst):
    if os.path.basename(str(dst)) == region + ".parquet":
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(src, dst)

os.replace = replace_then_die
defs = build_definitions(Settings(env="ci", home=ws_root, spec="sample"))
with dg.DagsterInstance.from_config(home) as instance:
    defs.resolve_job_def("features_job").execute_in_process(
        instance=instance, partition_key=region
    )
print("not killed")
"""


def test_a_feature_run_killed_mid_write_leaves_the_previous_partition_readable(
    tmp_path: Path, sample_source: Path
) -> None:
    home, settings, defs = conditioned_on_disk(tmp_path, sample_source)
    region = "Nord"
    path = settings.home / "features" / f"{region}.parquet"
    before_bytes = path.read_bytes()
    before = pd.read_parquet(path)

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_FEATURE_RUN, str(home), str(settings.home), region],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    # the previous partition is intact and readable; the new table sits in a temp file
    assert path.read_bytes() == before_bytes
    pd.testing.assert_frame_equal(pd.read_parquet(path), before)
    leftovers = sorted(p.name for p in path.parent.glob(f".{region}.parquet.*"))
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial.tmp")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for _ in range(2):  # the rerun, and once more: the same table each time
            (run,) = run_partitions(defs, instance, "features_job", [region])
            assert run.success
            pd.testing.assert_frame_equal(pd.read_parquet(path), before)
            assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []
