"""Throwaway PostgreSQL, Redis and S3 servers on 127.0.0.1 for the prod-profile test:
Debian's PostgreSQL and Redis (`.ci/install-services.sh` installs them) and moto's S3 server
(a dev dependency: Debian has no MinIO), data in a temporary folder, stopped and deleted
afterwards, pass or fail."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from mlops_assets_tests.deployment.daemon_support import BIN, REPO_ROOT, Deployment
from mlops_assets_tests.deployment.ui_support import free_port

PG_BIN = Path(os.environ.get("MLOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# PostgreSQL refuses to run as root: the cluster belongs to the user Debian's package made
PG_USER = "postgres"


def missing_services() -> list[str]:
    """What this machine lacks for the prod-profile test (empty: it can run)."""
    missing = [str(PG_BIN / p) for p in ("initdb", "pg_ctl") if not (PG_BIN / p).exists()]
    if not Path(REDIS_SERVER).exists():
        missing.append("redis-server")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            missing.append(f"the {PG_USER!r} user (PostgreSQL refuses to run as root)")
    return missing


def require_services() -> None:
    """Skip the test when the services are missing, or fail it where CI must have them
    (``MLOPS_E2E_REQUIRE_SERVICES=1``)."""
    import pytest

    missing = missing_services()
    if missing and os.environ.get("MLOPS_E2E_REQUIRE_SERVICES") == "1":
        pytest.fail(f"the prod-profile test needs {missing} (.ci/install-services.sh)")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: run .ci/install-services.sh as root")


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` on 127.0.0.1:<free port>, trust authentication."""

    def __init__(self) -> None:
        self.port = free_port()
        # not below pytest's tmp_path: that is private to root, and the server runs as postgres
        self.dir = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"

    def _as_owner(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", PG_USER, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER)
        out = self._as_owner(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "mlops", "-A", "trust"]
        )
        assert out.returncode == 0, f"initdb failed: {out.stdout}{out.stderr}"
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        out = self._as_owner(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
            + ["-o", options, "-w", "-t", "60", "start"]
        )
        assert out.returncode == 0, f"pg_ctl start failed: {out.stdout}{out.stderr}{self.tail()}"
        for db in ("dagster", "mlops"):
            self.sql("postgres", f"CREATE DATABASE {db}")

    def url(self, db: str, driver: str = "postgresql") -> str:
        return f"{driver}://mlops@127.0.0.1:{self.port}/{db}"

    def sql(self, db: str, statement: str) -> str:
        out = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.url(db), "-c", statement],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, f"psql {statement!r}: {out.stderr}"
        return out.stdout.strip()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.data.exists():
            self._as_owner(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
            )
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port>, nothing persisted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mlops-redis-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.dir / "redis.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "redis-server exited: " + self.tail()
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            time.sleep(0.2)
        raise AssertionError("redis-server did not answer within 30 s: " + self.tail())

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def tail(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class S3Server:
    """moto's S3-compatible server (``moto_server``) on 127.0.0.1:<free port>, in memory,
    with one bucket; ``environment()`` is what a deployment sets to reach it."""

    BUCKET = "mlops"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mlops-s3-"))
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The standard AWS variables (credentials never go into the storage URL)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> None:
        import boto3

        log = open(self.dir / "moto.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        env = self.environment()
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "moto_server exited: " + self.tail()
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket=self.BUCKET)
                return
            time.sleep(0.3)
        raise AssertionError("moto_server did not answer within 30 s: " + self.tail())

    def tail(self) -> str:
        path = self.dir / "moto.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def prod_environment(postgres: PostgresServer, redis: RedisServer) -> dict[str, str]:
    """The prod profile's variables for services on loopback (`deploy/prod/dagster.yaml`
    reads DAGSTER_POSTGRES_URL)."""
    return {
        "MLOPS_ENV": "prod",
        "DAGSTER_POSTGRES_URL": postgres.url("dagster", "postgresql+psycopg2"),
        "MLOPS_DATABASE_URL": postgres.url("mlops", "postgresql+psycopg2"),
        "MLOPS_CELERY_BROKER_URL": redis.url(0),
        "MLOPS_CELERY_BACKEND_URL": redis.url(1),
    }


def use_prod_instance(dep: Deployment) -> None:
    """Replace the deployment's dev dagster.yaml with the prod one (PostgreSQL storage)."""
    (dep.home / "dagster.yaml").write_text(
        (REPO_ROOT / "deploy" / "prod" / "dagster.yaml").read_text()
    )


def start_worker(dep: Deployment, name: str, concurrency: int = 1) -> subprocess.Popen:
    """`mlops-assets worker` in its own process group (dagster-celery, celery and its pool
    processes): SIGKILL to the group is a worker host dying."""
    log = open(dep.logs / f"worker-{name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [str(BIN / "mlops-assets"), "worker", "--name", name] + ["--concurrency", str(concurrency)],
        cwd=REPO_ROOT,
        env=dep.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_worker(proc: subprocess.Popen) -> None:
    """SIGKILL a worker's whole process group (a worker host dying) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
