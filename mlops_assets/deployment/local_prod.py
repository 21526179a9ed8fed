"""`mlops-assets local-prod` (`make prod`): the prod profile on this one machine, one command.

It starts, listening on 127.0.0.1 only and from what is installed (nothing is downloaded):
PostgreSQL (Dagster's instance and the state database) and Redis (the Celery broker and
result backend) from Debian's packages, then the Dagster webserver, the daemon and Celery
workers with the prod profile's variables and `deploy/prod/dagster.yaml`, exactly what
README "Production" runs on several hosts. The data stays in a state folder (default
``.mlops/local-prod``) from one run to the next; Ctrl-C or SIGTERM stops everything this
run started and leaves the folder. Model artifacts and data tables stay below the
workspace folder in it (the local storage root), unless ``MLOPS_STORAGE_ROOT`` is set.

The servers' passwords are made once and kept in ``secrets/`` (0600), never printed; the
processes get them in their environment, as on real hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mlops_assets.deployment.local_services import (
    BIN,
    PostgresServer,
    RedisServer,
    ServiceError,
    missing_services,
    prod_environment,
)

DEFAULT_STATE = Path(".mlops") / "local-prod"
STATUS_FILE = "local-prod.json"
# seconds a process has to stop after SIGTERM (a worker finishes its step) before SIGKILL
GRACE_S = 30


@dataclass(frozen=True)
class StateFolder:
    """The kept folders of one local prod profile."""

    root: Path

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def workspace(self) -> Path:
        """MLOPS_HOME."""
        return self.root / "workspace"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def status(self) -> Path:
        """What runs (ports, pids, the UI's address; no secret), for scripts and tests."""
        return self.root / STATUS_FILE

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # private, but PostgreSQL (user postgres when we are root) must pass through it
        self.root.chmod(0o711 if os.geteuid() == 0 else 0o700)
        for folder in (self.secrets, self.dagster_home, self.logs):
            folder.mkdir(exist_ok=True)
            folder.chmod(0o700)
        self.workspace.mkdir(exist_ok=True)

    def password(self, name: str) -> str:
        """A server's password: made on the first run, then read (its data outlives us)."""
        path = self.secrets / f"{name}.password"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(24) + "\n")
        return path.read_text().strip()


class _Interrupted(BaseException):
    """SIGINT or SIGTERM: stop everything (a BaseException, as KeyboardInterrupt is)."""


def _interrupt(signum: int, frame: object) -> None:
    raise _Interrupted(signum)


def _lock(path: Path) -> int:
    """Hold the state folder for this run: two runs on one folder would share its servers."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServiceError(f"another local-prod runs on {path.parent}") from None
    return fd


def processes_with_home(dagster_home: Path) -> list[int]:
    """Processes running with this DAGSTER_HOME: ours, or left by a run that was killed."""
    marker = f"DAGSTER_HOME={dagster_home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
    return found


def _kill_strays(dagster_home: Path) -> None:
    for pid in processes_with_home(dagster_home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _port_in_use(port: int) -> bool:
    """Whether something listens on the port (connections of a server that just stopped,
    in TIME_WAIT, do not count: the webserver binds with SO_REUSEADDR as this does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def profile_environment(
    state: StateFolder, postgres: PostgresServer, redis: RedisServer
) -> dict[str, str]:
    """The variables every process of the profile gets (secrets: never printed)."""
    return {
        **os.environ,
        # as `make dev`: headroom for code-server calls on a busy small machine
        "DAGSTER_GRPC_TIMEOUT_SECONDS": os.environ.get("DAGSTER_GRPC_TIMEOUT_SECONDS", "300"),
        **prod_environment(postgres, redis),
        "MLOPS_HOME": str(state.workspace.resolve()),
        "DAGSTER_HOME": str(state.dagster_home.resolve()),
        # dagster-celery starts `celery` from PATH: the one beside this Python
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    }


def _spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    """A process in its own process group (its children with it), output to its log, in
    the project folder (workspace.yaml's working_directory is relative to it)."""
    with open(logs / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=Path.cwd(),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(procs: dict[str, subprocess.Popen], grace: float = GRACE_S) -> None:
    """SIGTERM every process group at once, SIGKILL what is left after ``grace`` s."""
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs.values():
        while time.monotonic() < deadline and (proc.poll() is None or _group_alive(proc.pid)):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)


def _exited(procs: dict[str, subprocess.Popen], logs: Path) -> None:
    for name, proc in procs.items():
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode}: see {logs}/{name}.log")


def _answers(url: str) -> bool:
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(url, timeout=5) as response,
    ):
        return response.status == 200
    return False


def _workers_seen(broker_url: str) -> set[str]:
    """Names (``w1@host``) of the workers that answer a ping through the broker."""
    from celery import Celery

    app = Celery("mlops-local-prod", broker=broker_url, set_as_current=False)
    try:
        with contextlib.suppress(Exception):
            return {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
        return set()
    finally:
        app.close()


def wait_until_ready(
    ui_url: str,
    broker_url: str,
    procs: dict[str, subprocess.Popen],
    workers: int,
    logs: Path,
    timeout: float,
) -> list[str]:
    """Until the webserver answers and every worker answers a ping; their names."""
    deadline = time.monotonic() + timeout
    ui_up, seen = False, set()
    while time.monotonic() < deadline:
        _exited(procs, logs)
        ui_up = ui_up or _answers(f"{ui_url}/server_info")
        if len(seen) < workers:
            seen |= _workers_seen(broker_url)
        if ui_up and len(seen) >= workers:
            return sorted(seen)
        time.sleep(1)
    what = "the webserver" if not ui_up else f"the workers ({len(seen)} of {workers} answer)"
    raise ServiceError(f"{what} not ready within {timeout:.0f} s: see {logs}")


def _write_status(state: StateFolder, status: dict) -> None:
    tmp = state.status.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, indent=2) + "\n")
    tmp.replace(state.status)


def run(args: argparse.Namespace) -> int:
    """Start the profile, wait for Ctrl-C / SIGTERM (or a process that exits), stop it."""
    project = Path.cwd()
    for needed in ("workspace.yaml", "deploy/prod/dagster.yaml"):
        if not (project / needed).is_file():
            raise ServiceError(f"no {needed} here: run local-prod from the project folder")
    if missing := missing_services():
        raise ServiceError(f"needs {', '.join(missing)} (as root: .ci/install-services.sh)")
    if _port_in_use(args.port):
        raise ServiceError(f"127.0.0.1:{args.port} is in use: choose another with --port")
    state = StateFolder(Path(args.state).resolve())
    state.prepare()
    lock = _lock(state.root / "local-prod.lock")
    try:
        postgres = PostgresServer(state.root / "postgres", password=state.password("postgres"))
        redis = RedisServer(state.root / "redis", password=state.password("redis"))
    except BaseException:
        os.close(lock)
        raise
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: dict[str, subprocess.Popen] = {}
    code = 0
    try:
        _kill_strays(state.dagster_home)  # left by a run that was killed with SIGKILL
        print(f"local-prod: state folder {state.root}", flush=True)
        postgres.start()
        made = "created" if postgres.created else "kept"
        print(f"  PostgreSQL on 127.0.0.1:{postgres.port} ({made} cluster)", flush=True)
        redis.start()
        print(f"  Redis on 127.0.0.1:{redis.port}", flush=True)
        shutil.copyfile(project / "deploy/prod/dagster.yaml", state.dagster_home / "dagster.yaml")
        # dagster-celery writes each worker's broker URL there, password and all
        shutil.rmtree(state.dagster_home / "dagster_celery", ignore_errors=True)
        env = profile_environment(state, postgres, redis)
        # create Dagster's tables once, before several processes race to, and bring a kept
        # database up to this dagster's schema
        with open(state.logs / "migrate.log", "ab") as log:
            migrate = subprocess.run(
                [str(BIN / "dagster"), "instance", "migrate"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if migrate.returncode:
            raise ServiceError(f"dagster instance migrate failed: see {state.logs}/migrate.log")
        ui_url = f"http://127.0.0.1:{args.port}"
        env.setdefault("MLOPS_UI_URL", ui_url)
        workspace = ["-w", str(project / "workspace.yaml")]
        procs["webserver"] = _spawn(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(args.port), *workspace],
            env,
            state.logs,
        )
        procs["daemon"] = _spawn(
            "daemon", [str(BIN / "dagster-daemon"), "run", *workspace], env, state.logs
        )
        for i in range(1, args.workers + 1):
            name = f"w{i}"
            procs[f"worker-{name}"] = _spawn(
                f"worker-{name}",
                [str(BIN / "mlops-assets"), "worker", "--name", name]
                + ["--concurrency", str(args.concurrency)],
                env,
                state.logs,
            )
        print("  webserver, daemon and workers starting (logs in logs/) ...", flush=True)
        names = wait_until_ready(
            ui_url, env["MLOPS_CELERY_BROKER_URL"], procs, args.workers, state.logs, args.timeout
        )
        _write_status(
            state,
            {
                "state": "ready",
                "pid": os.getpid(),
                "ui_url": ui_url,
                "postgres": {"port": postgres.port, "pid": postgres.pid()},
                "redis": {"port": redis.port, "pid": redis.pid()},
                "processes": {name: proc.pid for name, proc in procs.items()},
                "workers": names,
            },
        )
        print(f"  workers: {', '.join(names)}", flush=True)
        print(f"The Dagster UI: {ui_url}  (Ctrl-C stops everything)", flush=True)
        while True:
            _exited(procs, state.logs)
            time.sleep(1)
    except _Interrupted:
        print("\nlocal-prod: stopping ...", flush=True)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)  # let nothing cut the stopping short
        stop_groups(procs)
        _kill_strays(state.dagster_home)
        redis.stop()
        postgres.stop()
        shutil.rmtree(state.dagster_home / "dagster_celery", ignore_errors=True)
        _write_status(state, {"state": "stopped", "pid": os.getpid()})
        os.close(lock)
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(f"local-prod: stopped; state kept in {state.root}", flush=True)
    return code


def cmd_local_prod(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``local-prod`` subcommand of `mlops-assets`."""
    p = sub.add_parser(
        "local-prod",
        help="the prod profile on this machine: PostgreSQL, Redis (127.0.0.1), the Dagster "
        "webserver, daemon and Celery workers; Ctrl-C stops them all",
    )
    p.add_argument("--state", default=str(DEFAULT_STATE), help="kept state folder")
    p.add_argument("--port", type=int, default=3000, help="the webserver's port (127.0.0.1)")
    p.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    p.add_argument("--concurrency", type=int, default=1, help="steps at once per worker")
    p.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for everything to answer"
    )
    p.set_defaults(func=cmd_local_prod)
