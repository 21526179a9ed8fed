"""A real Dagster daemon for fault-injection tests: started in its own process group on a
temporary instance (the repo's dagster.yaml), killed with SIGKILL, restarted, cleaned up.

The benchmarks (``benchmarks/deployment.py``) build on the same ``Deployment``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlops_assets.storage.manifest import Manifest
from mlops_assets.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Deployment:
    """A DAGSTER_HOME with the shipped dagster.yaml, a workspace root and the daemon."""

    def __init__(
        self,
        tmp: Path,
        *,
        spec: str = "sample",
        mlops_env: str = "ci",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = tmp / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copyfile(REPO_ROOT / "dagster.yaml", self.home / "dagster.yaml")
        self.ws_root = tmp / "ws"
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.env = {
            # as `make dev`: headroom for code-server calls on a busy 2-core machine
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_TELEMETRY_DISABLED": "1",
            # ci: sensors start stopped, the test switches on the ones it needs; dev: the
            # sensors and schedules start with the daemon, as a user's deployment does
            "MLOPS_ENV": mlops_env,
            "MLOPS_HOME": str(self.ws_root),
            "MLOPS_SPEC": spec,
            **(extra_env or {}),
        }
        self.daemon: subprocess.Popen | None = None
        self.starts = 0

    def cli(self, *args: str, timeout: float = 120) -> str:
        out = subprocess.run(
            [str(BIN / args[0]), *args[1:]],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode:
            raise AssertionError(f"{args} exited {out.returncode}: {out.stdout}{out.stderr}")
        return out.stdout

    def start_sensor(self, name: str) -> None:
        self.cli("dagster", "sensor", "start", "-w", "workspace.yaml", name)

    def start_daemon(self) -> None:
        self.starts += 1
        log = open(self.logs / f"daemon-{self.starts}.log", "wb")  # noqa: SIM115
        self.daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: code server and runs with it
        )

    def kill_daemon(self) -> None:
        """SIGKILL the daemon's whole process group (daemon, code server, run workers)."""
        if self.daemon is not None and self.daemon.poll() is None:
            group = self.daemon.pid
            os.killpg(group, signal.SIGKILL)
            self.daemon.wait(timeout=30)
            # SIGKILL is delivered at once but a member's exit takes a moment: wait until
            # none is left, so a check right after sees the group gone (a process outside
            # the group is untouched by this and still found by ``stray_processes``)
            deadline = time.monotonic() + 30
            while _group_members(group) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.daemon = None

    def code_server_pids(self) -> list[int]:
        """The daemon's code server processes (its children serving the code location)."""
        if self.daemon is None:
            return []
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.daemon.pid and b"grpc" in argv:
                found.append(int(proc.name))
        return found

    def stray_processes(self) -> list[int]:
        """Processes still running with this deployment's DAGSTER_HOME."""
        marker = f"DAGSTER_HOME={self.home}".encode()
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        """Kill everything this deployment started, pass or fail."""
        self.kill_daemon()
        for pid in self.stray_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def daemon_log(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-4000:]
            for p in sorted(self.logs.glob("daemon-*.log"))
        )


def wait_for(
    what: str, condition: Callable[[], object], timeout: float, deployment: Deployment
) -> float:
    """Poll ``condition`` until truthy; return the seconds it took (fail with the logs)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}\n{deployment.daemon_log()}"
    )


def manifest_records(ws_root: Path, database_url: str | None = None) -> list[dict]:
    """The ingestion manifest of a workspace (its state database: SQLite below the root
    unless ``database_url`` names another, as the prod profile's MLOPS_DATABASE_URL does)."""
    return Manifest.for_workspace(Workspace(ws_root, database_url)).records()


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(proc.name))
    return found
