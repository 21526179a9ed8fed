"""A run launcher whose run workers Dagster's run monitoring can check on one host.

Dagster's ``DefaultRunLauncher`` starts each run in a process of the code server and
cannot tell the run monitoring daemon whether that process still lives: when the code
server dies with its runs (a SIGKILL of ``dg dev``, a reboot), the runs stay STARTED
forever and hold their concurrency slots. ``LocalRunLauncher`` is the default launcher
plus the health check Dagster asks launchers for (``check_run_worker_health``): the code
server records the run worker's pid in the run's event log ("Started process for run
(pid: N)"); the worker is alive while that pid is a live process that started before the
event was written. With ``run_monitoring`` on, the daemon then marks a dead worker's run
FAILURE, which frees its slot and lets run retries and sensors request the work again.

It judges only runs whose code server is on this machine (the usual one-host ``dev`` /
``ci`` instance); a run it cannot judge is reported RUNNING, never failed on a guess.

A launch refused by a code server that is shutting down is reported as an unreachable
code server, so the run queue puts the run back and tries again
(``run_queue.max_user_code_failure_retries``) instead of failing a run that never started.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun
from dagster._core.errors import DagsterLaunchFailedError, DagsterUserCodeUnreachableError
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher

HOST_TAG = "mlops/run_worker_host"
_PID_EVENT = "Started process for run (pid: "
_LOCAL_GRPC_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})
# a process that started this long after the pid event is another process with a reused pid
_CLOCK_SLACK_SECONDS = 5.0
# what a code server answers a launch once it has been told to shut down (a server frozen
# longer than its heartbeat TTL, 20 s for the daemon's, shuts itself down when it wakes and
# stays up until its running executions end; dagster-io/dagster#14154)
_SERVER_SHUTTING_DOWN = "after telling it to shut down"


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` with a run-worker health check for one-host instances."""

    def launch_run(self, context: LaunchRunContext) -> None:
        """Launch as the default launcher does, tagging the run with this host's name; a
        refusal by a code server that is shutting down is raised as unreachable (requeued)."""
        self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: socket.gethostname()})
        try:
            super().launch_run(context)
        except DagsterLaunchFailedError as error:
            if _SERVER_SHUTTING_DOWN not in str(error):
                raise
            # the server started nothing: the queue may launch the run again on its successor
            raise DagsterUserCodeUnreachableError(
                f"The code server refused the launch because it is shutting down: {error}"
            ) from error

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if run.tags.get(HOST_TAG) != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "launched on another host")
        found = run_worker_pid(self._instance, run.run_id)
        if found is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker pid recorded yet")
        pid, started_at = found
        why_dead = process_gone(pid, started_at)
        if why_dead is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, why_dead, run_worker_id=str(pid))


def run_worker_pid(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid the code server recorded for a run's worker process, and when."""
    entries = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    for entry in reversed(list(entries)):
        message = entry.message or ""
        if message.startswith(_PID_EVENT):
            digits = message[len(_PID_EVENT) :].split(")", 1)[0]
            if digits.isdigit():
                return int(digits), entry.timestamp
    return None


def process_gone(pid: int, not_started_after: float) -> str | None:
    """Why process ``pid`` is not the live run worker (None while it is).

    Reads ``/proc`` (Linux): the process must exist, not be a zombie, and have started no
    later than ``not_started_after`` (epoch seconds) plus a little clock slack; otherwise
    the pid belongs to a process that replaced the dead worker.
    """
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return f"run worker process {pid} no longer exists"
    except OSError:
        return None  # cannot tell: never fail a run on a guess
    state, start_ticks = fields[0], int(fields[19])
    if state in ("Z", "X"):
        return f"run worker process {pid} has exited"
    started = _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK")
    if started > not_started_after + _CLOCK_SLACK_SECONDS:
        return f"run worker process {pid} is gone (the pid now belongs to a newer process)"
    return None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")
