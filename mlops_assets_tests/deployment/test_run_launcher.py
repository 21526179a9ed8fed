"""LocalRunLauncher: run monitoring can tell a dead run worker from a live one."""

import socket
import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus

from mlops_assets.deployment.run_launcher import HOST_TAG, LocalRunLauncher, process_gone


@pytest.fixture
def instance():
    with dg.instance_for_test(
        overrides={
            "run_launcher": {
                "module": "mlops_assets.deployment.run_launcher",
                "class": "LocalRunLauncher",
            },
            "run_monitoring": {"enabled": True, "max_resume_run_attempts": 0},
        }
    ) as inst:
        yield inst


def _started_run(instance, pid, host=None):
    run = dg.DagsterRun(
        job_name="ingest_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={HOST_TAG: host or socket.gethostname()},
    )
    instance.add_run(run)
    # what the code server writes when it starts the run's process
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run


def test_the_instance_uses_the_launcher_with_a_health_check(instance):
    assert isinstance(instance.run_launcher, LocalRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health


def test_a_live_worker_is_running_and_a_killed_one_failed(instance):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = _started_run(instance, worker.pid)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.RUNNING
        worker.kill()
        worker.wait()
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED
        assert f"run worker process {worker.pid}" in health.msg
    finally:
        worker.kill()


def test_a_pid_reused_by_a_newer_process_is_not_the_worker(instance):
    # pid 1 started at boot: a "worker" recorded long before boot cannot be that process
    assert process_gone(1, not_started_after=0.0) is not None
    assert process_gone(1, not_started_after=time.time()) is None


def test_runs_it_cannot_judge_are_never_failed_on_a_guess(instance):
    elsewhere = _started_run(instance, 999_999, host="another-host")
    assert instance.run_launcher.check_run_worker_health(elsewhere).status == WorkerStatus.RUNNING
    no_pid = dg.DagsterRun(
        job_name="ingest_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={HOST_TAG: socket.gethostname()},
    )
    instance.add_run(no_pid)
    assert instance.run_launcher.check_run_worker_health(no_pid).status == WorkerStatus.RUNNING


def test_run_monitoring_marks_a_dead_workers_run_failed(instance):
    """The daemon's own monitoring iteration, with this launcher: the run ends FAILURE."""
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    worker.wait()
    run = _started_run(instance, worker.pid)
    record = instance.get_run_record_by_id(run.run_id)
    monitor_started_run(instance, None, record, __import__("logging").getLogger("test"))
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
