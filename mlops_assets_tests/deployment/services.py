"""Test helpers around the prod profile's servers: skip (or fail in CI) without them, and
workers started on a test's ``Deployment``. The servers themselves (throwaway PostgreSQL,
Redis and moto S3 on 127.0.0.1, in temporary folders) are the package's
``mlops_assets.deployment.local_services``, which `mlops-assets local-prod` uses too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from mlops_assets.deployment.local_services import missing_services
from mlops_assets_tests.deployment.daemon_support import BIN, REPO_ROOT, Deployment


def require_services() -> None:
    """Skip the test when the services are missing, or fail it where CI must have them
    (``MLOPS_E2E_REQUIRE_SERVICES=1``)."""
    import pytest

    missing = missing_services()
    if missing and os.environ.get("MLOPS_E2E_REQUIRE_SERVICES") == "1":
        pytest.fail(f"the prod-profile test needs {missing} (.ci/install-services.sh)")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: run .ci/install-services.sh as root")


def use_prod_instance(dep: Deployment) -> None:
    """Replace the deployment's dev dagster.yaml with the prod one (PostgreSQL storage)."""
    (dep.home / "dagster.yaml").write_text(
        (REPO_ROOT / "deploy" / "prod" / "dagster.yaml").read_text()
    )


def start_worker(
    dep: Deployment, name: str, concurrency: int = 1, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`mlops-assets worker` in its own process group (dagster-celery, celery and its pool
    processes): SIGKILL to the group is a worker host dying. ``env`` replaces the
    deployment's variables (a worker host's own MLOPS_HOME and DAGSTER_HOME)."""
    log = open(dep.logs / f"worker-{name}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [str(BIN / "mlops-assets"), "worker", "--name", name] + ["--concurrency", str(concurrency)],
        cwd=REPO_ROOT,
        env=dep.env if env is None else env,
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
