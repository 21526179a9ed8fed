"""Tell people when a run fails (checks, approvals and drift notify from their own steps)."""

import time

import dagster as dg

from mlops_assets.defs.resources import NotifierResource
from mlops_assets.notifications import FailureGroups, failure_signature


def failure_cause(instance: dg.DagsterInstance, run: dg.DagsterRun, fallback: str) -> tuple:
    """(failing step or None, the error's first line): the last failed step's error, else
    the last engine event that carries an error (a run worker that died or never started:
    Dagster then marks the run failed "from outside the execution context"), else
    ``fallback`` (the run failure event's message)."""
    steps = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if steps:
        event = steps[-1].get_dagster_event()
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:  # the user code's own error,
            error = error.cause  # not Dagster's "Error occurred while executing op" wrapper
        text = (error.message if error else None) or event.message or fallback
        return event.step_key, _first_line(text)
    for record in reversed(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        data = record.get_dagster_event().engine_event_data
        if data and data.error:
            return None, _first_line(data.error.message or record.get_dagster_event().message)
    return None, _first_line(fallback)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def run_region(run: dg.DagsterRun) -> str | None:
    """The region partition (or range of them) the run was for."""
    tags = run.tags
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    return f"{start}..{end}" if start and end else None


def build_run_failure_notifier(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_notifier",
        default_status=default_status,
        monitor_all_code_locations=False,
        description="Sends a `run_failure` notification (feed + webhook) for every failed run, "
        "with the failing step, the error's first line, the region and a link to the run. "
        "Failures of one kind (job, step, error) within an hour of the last post are recorded "
        "in the feed and counted in the next post instead of posted one by one.",
    )
    def run_failure_notifier(
        context: dg.RunFailureSensorContext, notifier: NotifierResource
    ) -> None:
        run = context.dagster_run
        step, error = failure_cause(
            context.instance, run, context.failure_event.message or "run failed"
        )
        region = run_region(run)
        groups = FailureGroups(notifier.workspace.workspace().state_database_url)
        post, held = groups.record(failure_signature(run.job_name, step, error), time.time())
        where = f" at step {step}" if step else ""
        more = f" ({held} more failure(s) of this kind since the last message)" if held else ""
        link = notifier.run_url(run.run_id)
        notifier.send(
            "run_failure",
            f"{run.job_name} failed{where}: {error}{more} {link}",
            region=region,
            deliver=post,
            run_id=run.run_id,
            job=run.job_name,
            step=step,
            error=error,
            run_url=link,
            grouped=not post,
        )

    return run_failure_notifier
