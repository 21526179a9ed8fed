"""The Celery engine of the prod profile: one configuration for the run's executor and the
workers, so both sides agree on the broker, the result backend and the delivery rules.

Steps of a run go to Celery workers through a Redis broker (``dagster-celery``'s
``celery_executor``; its ``CeleryRunLauncher`` is not used: combined with the executor it
fails, dagster-io/dagster #32915). What makes a killed worker lose nothing:

* ``task_acks_late``: a step's message is acknowledged when the step has finished, not
  when a worker takes it, so a worker that dies mid-step has not acknowledged it;
* ``task_reject_on_worker_lost``: a pool process that dies hands its message back at once;
* the broker's ``visibility_timeout``: a whole worker killed (``SIGKILL``, a lost machine)
  cannot hand anything back; Redis delivers its unacknowledged message again after this
  many seconds, to a worker that is alive. It must exceed the longest step, or a step
  that is still running is delivered a second time (Celery's own caveat for Redis).

The URLs are secrets (a password may be in them): the executor's config names the
environment variables, never their values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

BROKER_ENV = "MLOPS_CELERY_BROKER_URL"
BACKEND_ENV = "MLOPS_CELERY_BACKEND_URL"
VISIBILITY_TIMEOUT_ENV = "MLOPS_CELERY_VISIBILITY_TIMEOUT"
# two hours: far above a region's step on rossmann-100 (~10-40 s) or at 40M rows
DEFAULT_VISIBILITY_TIMEOUT_S = 7200
# the app dagster-celery's workers load (its tasks execute a run's steps)
WORKER_APP = "dagster_celery.app"


def visibility_timeout(environ: Mapping[str, str] | None = None) -> int:
    """Seconds before Redis delivers a dead worker's unacknowledged step again."""
    environ = os.environ if environ is None else environ
    raw = environ.get(VISIBILITY_TIMEOUT_ENV, "").strip() or str(DEFAULT_VISIBILITY_TIMEOUT_S)
    if not raw.isdigit() or int(raw) < 1:
        from mlops_assets.settings import SettingsError

        raise SettingsError(f"{VISIBILITY_TIMEOUT_ENV}={raw!r}: expected whole seconds >= 1")
    return int(raw)


def executor_config(environ: Mapping[str, str] | None = None) -> dict:
    """``celery_executor``'s config: the same dict serves the run (the executor) and the
    workers (``dagster-celery worker start -y``, see :func:`write_worker_config`)."""
    from dagster_celery.defaults import broker_transport_options

    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV},
        "config_source": {
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "broker_transport_options": {
                **broker_transport_options,
                "visibility_timeout": visibility_timeout(environ),
                # look for messages of dead workers every 5 s (kombu's default: 100 s)
                "unacked_restore_interval": 5,
                "unacked_restore_throttle": 1,
            },
            "broker_connection_retry_on_startup": True,
            # one step per worker process at a time, none held back for later
            "worker_prefetch_multiplier": 1,
        },
    }


def check_broker_settings(environ: Mapping[str, str] | None = None) -> None:
    """Refuse a Celery profile without its broker and backend when the code location loads,
    naming the variables (never their values)."""
    from mlops_assets.settings import SettingsError

    environ = os.environ if environ is None else environ
    missing = [name for name in (BROKER_ENV, BACKEND_ENV) if not environ.get(name, "").strip()]
    if missing:
        raise SettingsError(
            f"MLOPS_EXECUTOR=celery needs {' and '.join(missing)} (e.g. redis://host:6379/0 "
            "for the broker, redis://host:6379/1 for the results)"
        )
    visibility_timeout(environ)


def write_worker_config(path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The worker's ``-y`` file: the executor's config under ``execution.config``."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"execution": {"config": executor_config(environ)}}))
    return path


def worker_command(name: str, config_path: Path, concurrency: int) -> list[str]:
    """``dagster-celery worker start`` for one named worker (``name@host``) with
    ``concurrency`` pool processes."""
    import sys

    program = str(Path(sys.executable).parent / "dagster-celery")
    return [
        program,
        "worker",
        "start",
        "-A",
        WORKER_APP,
        "-y",
        str(config_path),
        "-n",
        name,
        "--",
        f"--concurrency={concurrency}",
    ]
