"""The single Definitions object `dg dev` (make dev), `dg check defs` and the CLI load.

Which dataset and workspace it serves comes from the environment (see settings.py).
"""

import os

import dagster as dg

from mlops_assets.defs.features.jobs import features_job, refresh_job
from mlops_assets.defs.features.sensors import build_region_sensor
from mlops_assets.defs.ingest.assets import build_raw_assets
from mlops_assets.defs.ingest.sensors import INGEST_JOB, build_landing_sensor
from mlops_assets.defs.models.jobs import (
    TRAIN_JOB,
    build_registry_job,
    build_registry_retention_schedule,
    build_weekly_retrain_schedule,
    registry_retention_job,
)
from mlops_assets.defs.models.tuning import tuning_job
from mlops_assets.defs.monitoring.alerts import build_monitoring_alerts_asset
from mlops_assets.defs.monitoring.jobs import region_monitoring_job
from mlops_assets.defs.monitoring.sensors import (
    build_monitoring_sensor,
    build_quality_tuning_sensor,
    monitoring_job,
)
from mlops_assets.defs.notifications.sensors import build_run_failure_notifier
from mlops_assets.defs.region_pipeline import build_region_pipeline
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.notifications import WEBHOOK_ENV, check_webhook_url
from mlops_assets.settings import DATABASE_URL_ENV, Settings, load_settings
from mlops_assets.spec import load_spec


def build_definitions(settings: Settings) -> dg.Definitions:
    """Everything the code location serves; a bad configuration (spec, webhook URL) is
    refused here, when the code location loads, not in the first run that needs it."""
    spec = load_spec(settings.spec)
    # SettingsError naming the variable (never its secret value) for a non-http(s) URL
    check_webhook_url(os.environ.get(WEBHOOK_ENV))
    status = (
        dg.DefaultSensorStatus.RUNNING
        if settings.sensors_running_by_default
        else dg.DefaultSensorStatus.STOPPED
    )
    ingest_job = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups("ingest"),
        description="Ingest landing files (the landing sensor selects the sources).",
    )
    schedule_status = (
        dg.DefaultScheduleStatus.RUNNING
        if settings.sensors_running_by_default
        else dg.DefaultScheduleStatus.STOPPED
    )
    train_job = dg.define_asset_job(
        TRAIN_JOB,
        selection=dg.AssetSelection.assets("region_model", "forecast"),
        description="Train, gate and register one region's model, then forecast with the "
        "region's approved model.",
    )
    workspace = WorkspaceResource(
        root=str(settings.home),
        spec=settings.spec,
        database_url=_database_url(settings),
        storage_root=settings.storage_root,
    )
    return dg.Definitions(
        assets=[
            *build_raw_assets(spec),
            build_region_pipeline(spec, settings.regions_per_run),
            build_monitoring_alerts_asset(spec),
        ],
        jobs=[
            ingest_job,
            features_job,
            refresh_job,
            region_monitoring_job,
            train_job,
            build_registry_job(settings.workspace()),
            registry_retention_job,
            tuning_job,
            monitoring_job,
        ],
        schedules=[
            build_weekly_retrain_schedule(schedule_status),
            build_registry_retention_schedule(schedule_status),
        ],
        sensors=[
            build_landing_sensor(status),
            build_region_sensor(list(spec.sources), status, settings.regions_per_run),
            build_run_failure_notifier(status),
            build_monitoring_sensor(status),
            build_quality_tuning_sensor(status),
        ],
        resources={
            "workspace": workspace,
            "notifier": NotifierResource(
                workspace=workspace,
                # a secret: only ever through EnvVar, and only when it is set
                webhook_url=dg.EnvVar(WEBHOOK_ENV) if os.environ.get(WEBHOOK_ENV) else None,
                # where notifications link runs to (default: `make dev`'s address)
                **({"ui_url": ui_url} if (ui_url := os.environ.get("MLOPS_UI_URL")) else {}),
            ),
        },
        executor=_executor(settings),
    )


def _executor(settings: Settings) -> dg.ExecutorDefinition:
    """in_process (dev, ci, a pod per run on Kubernetes): all steps of a run execute in the
    run's process; runs of region partitions give the parallelism, and a process per step
    would re-import the stack (~3.5 s) each time. celery (prod): steps go to the workers."""
    if settings.executor == "celery":
        from dagster_celery import celery_executor

        from mlops_assets.deployment.celery import executor_config

        return celery_executor.configured(executor_config(), name="celery_executor")
    return dg.in_process_executor


def _database_url(settings: Settings) -> str | None:
    """The state database for the workspace resource: as an EnvVar when it came from the
    environment (a secret: the UI then shows the variable's name, not its value)."""
    from_env = os.environ.get(DATABASE_URL_ENV, "").strip() or None
    if settings.database_url is not None and settings.database_url == from_env:
        return dg.EnvVar(DATABASE_URL_ENV)
    return settings.database_url


defs = build_definitions(load_settings())
