"""A region's training run whose process is killed with SIGKILL right after it started is
failed by run monitoring and retried by Dagster's run retries, without a person: the
partition ends materialized by the retry, not left red."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.deployment.run_launcher import run_worker_pid
from mlops_assets_tests.deployment.daemon_support import Deployment, wait_for

pytestmark = pytest.mark.e2e

REGION = "Nord"


def test_a_run_killed_as_it_starts_is_retried_and_its_partition_ends_materialized(
    tmp_path: Path,
) -> None:
    dep = Deployment(tmp_path)  # ci: sensors off, only the launched run and its retry
    try:
        dep.cli("mlops-assets", "demo", timeout=900)
        instance = dg.DagsterInstance.from_config(str(dep.home))
        assert REGION in instance.get_dynamic_partitions("region")
        dep.start_daemon()
        dep.cli(
            "dagster",
            "job",
            "launch",
            "-w",
            "workspace.yaml",
            "-j",
            "train_job",
            "--tags",
            json.dumps({"dagster/partition": REGION}),
        )
        [run] = [
            r
            for r in instance.get_runs(dg.RunsFilter(job_name="train_job"))
            if r.tags.get("dagster/partition") == REGION and not r.is_finished
        ]
        found = wait_for(
            "the run worker's pid", lambda: run_worker_pid(instance, run.run_id), 300, dep
        )
        pid = run_worker_pid(instance, run.run_id)[0]
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        def status(run_id: str) -> dg.DagsterRunStatus:
            return instance.get_run_by_id(run_id).status

        wait_for(
            "run monitoring to fail the killed run",
            lambda: status(run.run_id) == dg.DagsterRunStatus.FAILURE,
            180,
            dep,
        )

        def retry() -> dg.DagsterRun | None:
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
            return runs[0] if runs else None

        wait_for("the retry run", retry, 180, dep)
        retried = retry()
        wait_for(
            "the retry to finish",
            lambda: (
                status(retried.run_id) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
            ),
            600,
            dep,
        )
        assert status(retried.run_id) == dg.DagsterRunStatus.SUCCESS, dep.daemon_log()
        assert retried.tags.get("dagster/partition") == REGION
        [latest] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("region_model"), asset_partitions=[REGION]),
            limit=1,
        ).records
        assert latest.run_id == retried.run_id
        print(
            f"killed worker {pid} at {found:.1f} s; retry {retried.run_id[:8]} succeeded "
            f"{time.monotonic() - killed_at:.0f} s after the kill"
        )
    finally:
        dep.stop()
    assert dep.stray_processes() == []
