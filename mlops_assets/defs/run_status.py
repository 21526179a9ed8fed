"""Whether runs are still on their way (queued, starting or running)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.storage.tags import BACKFILL_ID_TAG  # the tag of a backfill's runs

if TYPE_CHECKING:
    from dagster._core.execution.backfill import PartitionBackfill

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


def materializing(
    instance: dg.DagsterInstance, assets: Iterable[dg.AssetKey], jobs: Iterable[str]
) -> str | None:
    """What is still on its way to materialize one of ``assets``: a run of one of ``jobs``
    (asset jobs that select them), any other run selecting one of them (a UI
    materialization, an asset backfill's run), or an asset backfill that targets one of
    them and still has work (between its runs nothing may be running). None when nothing
    is."""
    from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster

    wanted, job_names = set(assets), set(jobs)
    for record in instance.get_run_records(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES)):
        run = record.dagster_run
        if run.job_name in job_names or wanted & set(run.asset_selection or ()):
            return f"run {run.run_id[:8]} of {run.job_name}"
    for status in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
        for backfill in instance.get_backfills(status=status):
            if wanted & set(backfill.asset_selection or ()) and not backfill_work_finished(
                instance, backfill
            ):
                return f"backfill {backfill.backfill_id}"
    return None


def backfill_work_finished(instance: dg.DagsterInstance, backfill: PartitionBackfill) -> bool:
    """An asset backfill still REQUESTED whose every target partition has been requested and
    whose runs have all ended: nothing more will run, only the backfill daemon's next loop
    (every 30 s, not configurable) has yet to mark it done. A job backfill, a canceling one
    or one whose data cannot be read counts as working."""
    from dagster._core.execution.backfill import BulkActionStatus  # not exported by dagster

    data = backfill.asset_backfill_data
    if backfill.status != BulkActionStatus.REQUESTED or data is None:
        return False
    if backfill.submitting_run_requests:
        return False  # the daemon is creating runs it has already counted as requested
    if not (data.target_subset - data.requested_subset).is_empty:
        return False  # partitions still to launch (a later wave, or failed upstream)
    active = dg.RunsFilter(
        tags={BACKFILL_ID_TAG: backfill.backfill_id}, statuses=ACTIVE_RUN_STATUSES
    )
    return not instance.get_run_records(active, limit=1)
