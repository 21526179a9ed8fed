"""A run whose launch cannot reach the code server (the code server frozen with SIGSTOP
until the daemon's request times out: the "User code server request timed out" that a
busy machine produced) goes back to the queue and starts once the server answers again:
the same run ends SUCCESS and materializes its partition, nothing is left red."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets_tests.deployment.daemon_support import Deployment, wait_for

pytestmark = pytest.mark.e2e

REGION = "Nord"
GRPC_TIMEOUT_S = 15  # the daemon's code-server calls give up after this long
REQUEUED = "Run dequeue failed to reach the user code server, re-submitting the run"


def _engine_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    return [e.message or "" for e in entries]


def test_a_run_whose_launch_times_out_is_queued_again_and_succeeds(tmp_path: Path) -> None:
    dep = Deployment(tmp_path, extra_env={"DAGSTER_GRPC_TIMEOUT_SECONDS": str(GRPC_TIMEOUT_S)})
    frozen: list[int] = []
    try:
        dep.cli("mlops-assets", "demo", timeout=900)
        instance = dg.DagsterInstance.from_config(str(dep.home))
        assert REGION in instance.get_dynamic_partitions("region")
        demo_runs = {r.run_id for r in instance.get_runs()}
        dep.start_daemon()
        wait_for("the daemon's code server", dep.code_server_pids, 120, dep)
        time.sleep(5)  # let it finish loading the code location
        frozen = dep.code_server_pids()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
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
        [run] = [r for r in instance.get_runs() if r.run_id not in demo_runs]

        def requeued() -> bool:
            return any(m.startswith(REQUEUED) for m in _engine_messages(instance, run.run_id))

        waited = wait_for("the launch to time out and requeue the run", requeued, 300, dep)
        # back in the queue, or already in its next launch attempt (the queue retries after
        # user_code_failure_retry_delay): waiting to start, not failed
        assert instance.get_run_by_id(run.run_id).status in (
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.STARTING,
        )
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = []

        def finished() -> bool:
            return instance.get_run_by_id(run.run_id).is_finished

        wait_for("the requeued run to finish", finished, 900, dep)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS, (
            _engine_messages(instance, run.run_id),
            dep.daemon_log(),
        )
        [latest] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("region_model"), asset_partitions=[REGION]),
            limit=1,
        ).records
        assert latest.run_id == run.run_id
        # the launch failure was absorbed by the queue: no failed run, no retry run needed
        assert [r.status for r in instance.get_runs() if r.run_id not in demo_runs] == [
            dg.DagsterRunStatus.SUCCESS
        ]
        requeues = [m for m in _engine_messages(instance, run.run_id) if m.startswith(REQUEUED)]
        print(
            f"launch requeued after {waited:.0f} s, {len(requeues)} requeue(s) in all;"
            f" run {run.run_id[:8]} succeeded"
        )
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        dep.stop()
    assert dep.stray_processes() == []
