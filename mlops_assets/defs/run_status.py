"""Whether a job has runs that are still on their way (queued, starting or running)."""

import dagster as dg

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def job_in_progress(instance: dg.DagsterInstance, job_name: str) -> bool:
    """True while a run of ``job_name`` is queued, starting or running."""
    return bool(
        instance.get_run_records(
            dg.RunsFilter(job_name=job_name, statuses=ACTIVE_RUN_STATUSES), limit=1
        )
    )
