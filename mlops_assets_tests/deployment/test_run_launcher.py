"""LocalRunLauncher: run monitoring can tell a dead run worker from a live one, and a launch
refused by a code server that is shutting down goes back to the queue."""

import socket
import subprocess
import sys
import time
import uuid

import dagster as dg
import pytest
from dagster._core.errors import DagsterLaunchFailedError
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher

from mlops_assets.deployment.run_launcher import HOST_TAG, LocalRunLauncher, process_gone

_LAUNCHER = {"module": "mlops_assets.deployment.run_launcher", "class": "LocalRunLauncher"}


@pytest.fixture
def instance():
    with dg.instance_for_test(
        overrides={
            "run_launcher": _LAUNCHER,
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


# what Dagster's code server answers a launch once it has been told to shut down
_SHUTTING_DOWN = "Tried to start a run on a server after telling it to shut down"


def _refuse_launch(message):
    def launch_run(self, context):
        raise DagsterLaunchFailedError(message)

    return launch_run


def _queued_run(instance):
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )

    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=RegisteredCodeLocationOrigin("mlops_assets"),
            repository_name="__repository__",
        ),
        job_name="train_job",
    )
    run = dg.DagsterRun(
        job_name="train_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.QUEUED,
        remote_job_origin=origin,
    )
    instance.add_run(run)
    # what the queued run coordinator records when a run is submitted
    enqueued = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.PIPELINE_ENQUEUED.value, job_name=run.job_name
    )
    instance.report_dagster_event(enqueued, run_id=run.run_id)
    return run


@pytest.fixture
def queued_instance():
    with dg.instance_for_test(
        overrides={
            "run_launcher": _LAUNCHER,
            "run_queue": {"max_user_code_failure_retries": 2, "user_code_failure_retry_delay": 0},
        }
    ) as inst:
        yield inst


def _dequeue_once(instance):
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
        QueuedRunCoordinatorDaemon,
    )

    with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace:
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))


def test_a_launch_refused_by_a_server_shutting_down_goes_back_to_the_queue(
    queued_instance, monkeypatch
):
    """A code server frozen past its heartbeat TTL shuts itself down when it wakes and, while
    its last executions end, refuses launches (dagster-io/dagster#14154): the refused run,
    which never started, is queued again instead of failed."""
    monkeypatch.setattr(DefaultRunLauncher, "launch_run", _refuse_launch(_SHUTTING_DOWN))
    run = _queued_run(queued_instance)

    _dequeue_once(queued_instance)

    assert queued_instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.QUEUED
    messages = [
        e.message or ""
        for e in queued_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
    ]
    assert any(m.startswith("Run dequeue failed to reach the user code server") for m in messages)


def test_any_other_refused_launch_still_fails_the_run(queued_instance, monkeypatch):
    """Only the shutting-down refusal is retried: a launch the server rejects for another
    reason (a broken job, a bad run) fails as before, nothing is retried blindly."""
    monkeypatch.setattr(
        DefaultRunLauncher, "launch_run", _refuse_launch("GRPC server: Subprocess terminated")
    )
    run = _queued_run(queued_instance)

    _dequeue_once(queued_instance)

    assert queued_instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
