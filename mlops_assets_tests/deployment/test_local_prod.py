"""`mlops-assets local-prod` (`make prod`) as a user starts it: the webserver answers with
the code location loaded, both Celery workers answer a ping through the broker, SIGTERM
stops every process and server it started and keeps its state folder, and a second run
finds the PostgreSQL cluster and its data again. Needs Debian's PostgreSQL and Redis
(``make e2e-prod``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_assets.deployment.local_prod import processes_with_home
from mlops_assets.deployment.local_services import PostgresServer, RedisServer, free_port
from mlops_assets_tests.deployment.daemon_support import BIN, REPO_ROOT
from mlops_assets_tests.deployment.services import require_services

pytestmark = pytest.mark.e2e_prod


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(root: int) -> set[int]:
    """Every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(proc.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _start(state: Path, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(BIN / "mlops-assets"), "local-prod", "--state", str(state)]
            + ["--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_ready(proc: subprocess.Popen, state: Path, log: Path, timeout: float = 900) -> dict:
    """The status the command writes once the webserver and every worker answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"local-prod exited {proc.returncode}:\n{_logs(state, log)}")
        with contextlib.suppress(OSError, ValueError):
            status = json.loads((state / "local-prod.json").read_text())
            if status["state"] == "ready" and status["pid"] == proc.pid:
                return status
        time.sleep(1)
    raise AssertionError(f"local-prod not ready within {timeout} s:\n{_logs(state, log)}")


def _logs(state: Path, log: Path) -> str:
    paths = [log, *sorted((state / "logs").glob("*.log"))]
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in paths)


def _code_location_loaded(ui_url: str) -> bool:
    request = urllib.request.Request(
        f"{ui_url}/graphql",
        data=json.dumps(
            {"query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with (
        contextlib.suppress(OSError, ValueError, KeyError, TypeError),
        urllib.request.urlopen(request, timeout=30) as response,
    ):
        return bool(json.loads(response.read())["data"]["repositoriesOrError"]["nodes"])
    return False


def _workers(state: Path, redis_port: int) -> set[str]:
    from celery import Celery

    password = (state / "secrets" / "redis.password").read_text().strip()
    app = Celery("test", broker=f"redis://:{password}@127.0.0.1:{redis_port}/0")
    try:
        return {name.split("@")[0] for reply in app.control.ping(timeout=3) for name in reply}
    finally:
        app.close()


def _postgres(state: Path, status: dict) -> PostgresServer:
    password = (state / "secrets" / "postgres.password").read_text().strip()
    return PostgresServer(state / "postgres", password=password, port=status["postgres"]["port"])


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_local_prod_starts_answers_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    require_services()
    # not below tmp_path (private to root): PostgreSQL runs as postgres and passes through it
    state = Path(tempfile.mkdtemp(prefix="mlops-local-prod-"))
    log, port = tmp_path / "local-prod.log", free_port()
    proc = None
    try:
        proc = _start(state, port, log)
        status = _wait_ready(proc, state, log)
        assert status["ui_url"] == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while not _code_location_loaded(status["ui_url"]):
            assert time.monotonic() < deadline, _logs(state, log)
            time.sleep(2)
        assert _workers(state, status["redis"]["port"]) == {"w1", "w2"}
        assert "created cluster" in log.read_text()
        _postgres(state, status).sql("mlops", "CREATE TABLE kept (note text)")
        _postgres(state, status).sql("mlops", "INSERT INTO kept VALUES ('first run')")

        postmaster = status["postgres"]["pid"]
        started = _descendants(proc.pid) | {postmaster} | _descendants(postmaster)
        assert set(status["processes"].values()) | {status["redis"]["pid"]} <= started
        ports = [port, status["postgres"]["port"], status["redis"]["port"]]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0, _logs(state, log)
        left = sorted(p for p in started if _alive(p))
        assert left == [], left
        assert processes_with_home(state / "dagster_home") == []
        assert [p for p in ports if _listening(p)] == []
        # the state folder stays: the cluster, the secrets, the instance file, the workspace
        assert (state / "postgres" / "data" / "PG_VERSION").is_file()
        assert (state / "dagster_home" / "dagster.yaml").is_file()
        assert (state / "workspace").is_dir()
        assert json.loads((state / "local-prod.json").read_text())["state"] == "stopped"
        # the passwords stay in secrets/, not in what the command printed
        output = log.read_text()
        for name in ("postgres", "redis"):
            secret = (state / "secrets" / f"{name}.password").read_text().strip()
            assert (state / "secrets" / f"{name}.password").stat().st_mode & 0o077 == 0
            assert secret not in output

        # a second run finds the cluster and what the first one wrote
        proc = _start(state, port, log)
        status = _wait_ready(proc, state, log)
        assert "kept cluster" in log.read_text()
        assert _postgres(state, status).sql("mlops", "SELECT note FROM kept") == "first run"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=180) == 0, _logs(state, log)
        assert processes_with_home(state / "dagster_home") == []
    finally:
        _stop(proc)
        # whatever a failed run left: its processes, Redis, PostgreSQL; then the folder
        for pid in processes_with_home(state / "dagster_home"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        RedisServer(state / "redis").stop_leftover()
        if (state / "postgres" / "data").exists():
            PostgresServer(state / "postgres").stop()
        shutil.rmtree(state, ignore_errors=True)
