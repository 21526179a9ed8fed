"""PostgreSQL, Redis and moto's S3 server on 127.0.0.1, started from what this machine has
installed: Debian's ``postgresql`` and ``redis-server`` packages (`.ci/install-services.sh`)
and moto from the dev dependencies (Debian has no MinIO). Nothing is downloaded, nothing
listens beyond loopback.

Two users: `mlops-assets local-prod` keeps each server's data in a folder of its state
folder from one run to the next, behind a password of its own; the prod-profile tests give
each server a temporary folder (trust authentication, nothing to keep), deleted on stop.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("MLOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# PostgreSQL refuses to run as root: the cluster belongs to the user Debian's package made
PG_USER = "postgres"
# the role that owns the databases: Dagster's instance and the state database
PG_ROLE = "mlops"
DATABASES = ("dagster", "mlops")
BIN = Path(sys.executable).parent


class ServiceError(RuntimeError):
    """A server did not start or answer (the message ends with the tail of its log)."""


def missing_services() -> list[str]:
    """What this machine lacks to start PostgreSQL and Redis (empty: nothing)."""
    missing = [str(PG_BIN / p) for p in ("initdb", "pg_ctl") if not (PG_BIN / p).exists()]
    if not shutil.which("psql"):
        missing.append("psql")
    if not Path(REDIS_SERVER).exists():
        missing.append("redis-server")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            missing.append(f"the {PG_USER!r} user (PostgreSQL refuses to run as root)")
    return missing


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _folder(folder: Path | None, prefix: str) -> tuple[Path, bool]:
    """The server's folder and whether it is a temporary one (deleted on stop)."""
    if folder is None:
        return Path(tempfile.mkdtemp(prefix=prefix)), True
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder, False


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class PostgresServer:
    """``initdb`` (once) and ``pg_ctl start`` on 127.0.0.1:<port>, the databases in
    ``DATABASES`` owned by ``PG_ROLE``. With a ``password`` every connection needs it
    (scram-sha-256); without one, trust authentication (a test's throwaway server)."""

    def __init__(
        self, folder: Path | None = None, *, password: str | None = None, port: int | None = None
    ) -> None:
        # a temporary one is not below pytest's tmp_path: that is private to root, and the
        # server runs as postgres
        self.dir, self.temporary = _folder(folder, "mlops-pg-")
        self.password = password
        self.port = port or free_port()
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.created = False  # whether start() made the cluster (else it found one)

    def _as_owner(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", PG_USER, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self._as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args])

    def running(self) -> bool:
        return self.data.exists() and self._pg_ctl("status").returncode == 0

    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER)
            if self._as_owner(["test", "-w", str(self.dir)]).returncode:
                raise ServiceError(
                    f"PostgreSQL runs as {PG_USER!r}, who cannot write {self.dir}: choose a "
                    "folder every user may pass through (o+x on each parent)"
                )
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        if self.running():  # left by an earlier run that was killed
            self._pg_ctl("-m", "fast", "-w", "stop")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir}"
        if self.temporary:
            options += " -c fsync=off"
        out = self._pg_ctl("-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        if out.returncode:
            raise ServiceError(f"pg_ctl start failed: {out.stdout}{out.stderr}{self.tail()}")
        existing = set(self.sql("postgres", "SELECT datname FROM pg_database").split())
        for db in DATABASES:
            if db not in existing:
                self.sql("postgres", f"CREATE DATABASE {db}")

    def _initdb(self) -> None:
        auth = "scram-sha-256" if self.password else "trust"
        argv = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_ROLE, "-A", auth]
        pwfile = self.dir / ".initdb-password"
        if self.password:
            # initdb reads the superuser's password from a file (never a command line)
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.password + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, PG_USER)
            argv += ["--pwfile", str(pwfile)]
        try:
            out = self._as_owner(argv)
        finally:
            pwfile.unlink(missing_ok=True)
        if out.returncode:
            raise ServiceError(f"initdb failed: {out.stdout}{out.stderr}")
        self.created = True

    def url(self, db: str, driver: str = "postgresql") -> str:
        """A SQLAlchemy / libpq URL of one database (with the password: a secret)."""
        secret = f":{self.password}" if self.password else ""
        return f"{driver}://{PG_ROLE}{secret}@127.0.0.1:{self.port}/{db}"

    def sql(self, db: str, statement: str) -> str:
        """Run one statement with psql; its output, unaligned, without headers."""
        env = {**os.environ, **({"PGPASSWORD": self.password} if self.password else {})}
        out = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
            + ["-p", str(self.port), "-U", PG_ROLE, "-d", db, "-c", statement],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if out.returncode:
            raise ServiceError(f"psql {statement!r}: {out.stderr}")
        return out.stdout.strip()

    def tail(self) -> str:
        return _tail(self.log)

    def stop(self) -> None:
        """Stop the server (a fast, clean shutdown of a kept one); delete a temporary one."""
        if self.running():
            mode = "immediate" if self.temporary else "fast"
            self._pg_ctl("-m", mode, "-w", "-t", "60", "stop")
        if self.temporary:
            shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """``redis-server`` on 127.0.0.1:<port> from a config file of its folder, nothing
    persisted (a broker's queue is only worth anything to the runs that are alive). With a
    ``password`` every client needs it (``requirepass``, in the 0600 config file)."""

    def __init__(
        self, folder: Path | None = None, *, password: str | None = None, port: int | None = None
    ) -> None:
        self.dir, self.temporary = _folder(folder, "mlops-redis-")
        self.password = password
        self.port = port or free_port()
        self.log = self.dir / "redis.log"
        self.pidfile = self.dir / "redis.pid"
        self.proc: subprocess.Popen | None = None

    def stop_leftover(self) -> None:
        """Stop a server an earlier run left behind (its pid file names it)."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().strip())
            if _alive(pid) and b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)

    def start(self) -> None:
        self.stop_leftover()
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            'save ""',
            "appendonly no",
            f'dir "{self.dir}"',
            f'pidfile "{self.pidfile}"',
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        conf = self.dir / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError("redis-server exited: " + self.tail())
            if self._pong():
                return
            time.sleep(0.2)
        raise ServiceError("redis-server did not answer within 30 s: " + self.tail())

    def _pong(self) -> bool:
        """Whether the server answers PING (after AUTH when it has a password)."""
        request = b""
        if self.password:
            secret = self.password.encode()
            request += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret)
        request += b"*1\r\n$4\r\nPING\r\n"
        answer = b""
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
        ):
            s.sendall(request)
            while b"+PONG" not in answer and len(answer) < 256:
                chunk = s.recv(256)
                if not chunk:
                    break
                answer += chunk
        return b"+PONG" in answer

    def url(self, db: int) -> str:
        """The server's URL for one database number (with the password: a secret)."""
        secret = f":{self.password}@" if self.password else ""
        return f"redis://{secret}127.0.0.1:{self.port}/{db}"

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def tail(self) -> str:
        return _tail(self.log)

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 30 s; delete a temporary folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self.temporary:
            shutil.rmtree(self.dir, ignore_errors=True)


class S3Server:
    """moto's S3-compatible server (``moto_server``, a dev dependency) on 127.0.0.1:<free
    port>, in memory, with one bucket; ``environment()`` is what a deployment sets to reach
    it. In memory only: what it holds is gone when it stops."""

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

        with open(self.dir / "moto.log", "wb") as log:
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
            if self.proc.poll() is not None:
                raise ServiceError("moto_server exited: " + self.tail())
            with contextlib.suppress(Exception):
                client.create_bucket(Bucket=self.BUCKET)
                return
            time.sleep(0.3)
        raise ServiceError("moto_server did not answer within 30 s: " + self.tail())

    def tail(self) -> str:
        return _tail(self.dir / "moto.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def prod_environment(postgres: PostgresServer, redis: RedisServer) -> dict[str, str]:
    """The prod profile's variables for these servers (`deploy/prod/dagster.yaml` reads
    DAGSTER_POSTGRES_URL). Secrets when the servers have passwords: never print them."""
    return {
        "MLOPS_ENV": "prod",
        "DAGSTER_POSTGRES_URL": postgres.url("dagster", "postgresql+psycopg2"),
        "MLOPS_DATABASE_URL": postgres.url("mlops", "postgresql+psycopg2"),
        "MLOPS_CELERY_BROKER_URL": redis.url(0),
        "MLOPS_CELERY_BACKEND_URL": redis.url(1),
    }
