"""Environment selection (dev, ci, prod): where data lives and which dataset is served.

Chosen by environment variables only, so the same code runs everywhere:

``MLOPS_ENV``   dev (default) | ci | prod
``MLOPS_HOME``  workspace root (landing zone, raw, features...). Default for dev and ci:
                ``.mlops/<env>`` below the current directory; prod must set it.
``MLOPS_SPEC``  dataset spec: a shipped name (``sample``, ``rossmann``) or a YAML path.
``MLOPS_DATABASE_URL``  the state database, a SQLAlchemy URL (e.g. ``postgresql+psycopg2://...``:
                SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which is not installed).
                Default: SQLite below the workspace root. A secret (it may carry a password):
                Dagster resources receive it as an ``EnvVar``, and ``Settings`` never shows it.
``MLOPS_STORAGE_ROOT``  storage every worker host reaches: a path or an fsspec URL such as
                ``s3://bucket/prefix`` (credentials and endpoint from the filesystem's own
                variables, e.g. ``AWS_ENDPOINT_URL``). It holds the model artifacts
                (``<root>/models``), the data tables (``raw``, ``features``, ...), the
                landing zone and the quarantine. Default: none, all of them stay below
                ``MLOPS_HOME``.
``MLOPS_REGIONS_PER_RUN``  at most this many regions in one run of an asset backfill of
                the region assets (``BackfillPolicy.multi_run``) and of the region
                sensor's features_job and refresh_job; default
                ``DEFAULT_REGIONS_PER_RUN``, measured on rossmann-100 (BENCHMARKS.md).
``MLOPS_EXECUTOR``  where a run's steps execute: ``in_process`` (default in dev and ci: in
                the run's process) or ``celery`` (default in prod: on Celery workers, which
                needs ``MLOPS_CELERY_BROKER_URL`` and ``MLOPS_CELERY_BACKEND_URL``; see
                deployment/celery.py). On Kubernetes the run launcher gives each run its own
                pod, and ``in_process`` is the choice there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.workspace import Workspace

ENVIRONMENTS = ("dev", "ci", "prod")
DATABASE_URL_ENV = "MLOPS_DATABASE_URL"
STORAGE_ROOT_ENV = "MLOPS_STORAGE_ROOT"
REGIONS_PER_RUN_ENV = "MLOPS_REGIONS_PER_RUN"
EXECUTOR_ENV = "MLOPS_EXECUTOR"
EXECUTORS = ("in_process", "celery")
# measured on rossmann-100 (12 regions, two run slots): the backfill's runs spanned 90.8 s
# with 3 a run, 95.5 s with 6, 113.8 s with 12 and 115.5 s with 1 (BENCHMARKS.md)
DEFAULT_REGIONS_PER_RUN = 3


class SettingsError(ValueError):
    """An environment variable has a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    spec: str
    # the state database's SQLAlchemy URL; None: SQLite below ``home``. Left out of the repr:
    # a postgresql:// URL carries its password
    database_url: str | None = field(default=None, repr=False)
    regions_per_run: int = DEFAULT_REGIONS_PER_RUN
    executor: str = "in_process"
    storage_root: str | None = None

    def workspace(self) -> Workspace:
        """The workspace these settings name (its root, state database and storage root)."""
        return Workspace(self.home, self.database_url, self.storage_root)

    @property
    def sensors_running_by_default(self) -> bool:
        """Sensors start with the daemon in dev and prod; CI drives runs itself."""
        return self.env != "ci"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    env = environ.get("MLOPS_ENV", "dev").strip() or "dev"
    if env not in ENVIRONMENTS:
        raise SettingsError(f"MLOPS_ENV={env!r}: expected one of {ENVIRONMENTS}")
    home = environ.get("MLOPS_HOME", "").strip()
    if not home:
        if env == "prod":
            raise SettingsError("MLOPS_ENV=prod needs MLOPS_HOME (the workspace root) to be set")
        home = str(Path.cwd() / ".mlops" / env)
    spec = environ.get("MLOPS_SPEC", "sample").strip() or "sample"
    database_url = environ.get(DATABASE_URL_ENV, "").strip() or None
    if database_url is not None and "://" not in database_url:
        # the message names the variable, never its value (a secret)
        raise SettingsError(
            f"{DATABASE_URL_ENV} is not a database URL (expected e.g. postgresql+psycopg2://... or "
            "sqlite:///...)"
        )
    storage_root = environ.get(STORAGE_ROOT_ENV, "").strip() or None
    if storage_root is not None and "@" in storage_root.partition("://")[2].partition("/")[0]:
        # credentials belong in the filesystem's own variables, not in a URL that is shown
        raise SettingsError(
            f"{STORAGE_ROOT_ENV} holds credentials (user@host); set them through the storage's "
            "own variables (e.g. AWS_ACCESS_KEY_ID) instead"
        )
    per_run = environ.get(REGIONS_PER_RUN_ENV, "").strip() or str(DEFAULT_REGIONS_PER_RUN)
    if not per_run.isdigit() or int(per_run) < 1:
        raise SettingsError(f"{REGIONS_PER_RUN_ENV}={per_run!r}: expected a whole number >= 1")
    default_executor = "celery" if env == "prod" else "in_process"
    executor = environ.get(EXECUTOR_ENV, "").strip() or default_executor
    if executor not in EXECUTORS:
        raise SettingsError(f"{EXECUTOR_ENV}={executor!r}: expected one of {EXECUTORS}")
    if executor == "celery":
        from mlops_assets.deployment.celery import check_broker_settings

        check_broker_settings(environ)
    return Settings(
        env=env,
        home=Path(home).expanduser().resolve(),
        spec=spec,
        database_url=database_url,
        regions_per_run=int(per_run),
        executor=executor,
        storage_root=storage_root,
    )
