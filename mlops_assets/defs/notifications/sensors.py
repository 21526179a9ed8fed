"""Tell people when a run fails (checks, approvals and drift notify from their own steps)."""

import dagster as dg

from mlops_assets.defs.resources import NotifierResource


def build_run_failure_notifier(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_notifier",
        default_status=default_status,
        monitor_all_code_locations=False,
        description="Sends a `run_failure` notification (feed + webhook) for every failed run.",
    )
    def run_failure_notifier(
        context: dg.RunFailureSensorContext, notifier: NotifierResource
    ) -> None:
        run = context.dagster_run
        error = context.failure_event.message or "run failed"
        notifier.send(
            "run_failure",
            f"{run.job_name} failed: {error}",
            region=run.tags.get("dagster/partition"),
            run_id=run.run_id,
            job=run.job_name,
        )

    return run_failure_notifier
