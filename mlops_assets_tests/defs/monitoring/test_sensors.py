"""The monitoring sensor: fleet alerts once new drift reports exist and every region's
refresh has ended, however the refresh was started."""

import time

import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.local_driver import evaluate_sensor
from mlops_assets.defs.monitoring.drift import DRIFT_REPORT_KEY
from mlops_assets.defs.partitions import region_partitions


@pytest.fixture
def new_report(instance):
    """A region's new drift report (as a refresh run of it records one)."""
    instance.add_dynamic_partitions(region_partitions.name, ["Nord", "Sud"])
    instance.report_runless_asset_event(dg.AssetMaterialization(DRIFT_REPORT_KEY, partition="Nord"))


def _tick(defs, instance):
    return evaluate_sensor(defs, instance, "monitoring_sensor")


def test_new_drift_reports_with_no_refresh_running_start_the_fleet_comparison(
    defs, instance, new_report
):
    tick = _tick(defs, instance)
    assert [r.job_name or "monitoring_job" for r in tick.run_requests] == ["monitoring_job"]
    # the same reports never start it twice
    assert evaluate_sensor(defs, instance, "monitoring_sensor", tick.cursor).run_requests == []


@pytest.mark.parametrize(
    ("job", "selection"),
    [
        ("refresh_job", None),  # the region sensor's refresh of some regions
        ("features_job", None),
        ("__ASSET_JOB", frozenset({DRIFT_REPORT_KEY})),  # a materialization from the UI
        ("__ASSET_JOB", frozenset({FEATURES_KEY})),
    ],
)
def test_it_waits_while_a_run_still_refreshes_regions(defs, instance, new_report, job, selection):
    run = instance.add_run(
        dg.DagsterRun(job_name=job, asset_selection=selection, status=dg.DagsterRunStatus.STARTED)
    )
    tick = _tick(defs, instance)
    assert tick.run_requests == []
    assert tick.skip_reason.startswith(f"region refreshes still running (run {run.run_id[:8]}")

    instance.report_run_failed(run)  # ended: how does not matter
    assert len(_tick(defs, instance).run_requests) == 1


def test_a_run_of_other_assets_does_not_hold_it_back(defs, instance, new_report):
    instance.add_run(
        dg.DagsterRun(
            job_name="__ASSET_JOB",
            asset_selection=frozenset({dg.AssetKey("region_model")}),
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    assert len(_tick(defs, instance).run_requests) == 1


def _refresh_backfill(defs, instance, backfill_id):
    """An asset backfill of the refresh's assets over both regions, as the UI submits it
    (REQUESTED, nothing launched yet)."""
    return PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=["Nord", "Sud"],
        asset_selection=[FEATURES_KEY, DRIFT_REPORT_KEY],
        backfill_timestamp=time.time(),
        tags={},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=None,
        description=None,
        run_config=None,
    )


def test_it_waits_for_an_asset_backfill_of_the_refresh_between_its_runs(defs, instance, new_report):
    """An asset backfill of the refresh's assets has batches still to launch while none of
    its runs is running: the fleet comparison would compare half-refreshed regions."""
    backfill = _refresh_backfill(defs, instance, "refresh01")
    instance.add_backfill(backfill)
    tick = _tick(defs, instance)
    assert tick.run_requests == []
    assert tick.skip_reason == (
        "region refreshes still running (backfill refresh01); waiting for all regions"
    )

    from dagster._core.execution.backfill import BulkActionStatus

    instance.update_backfill(backfill.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    assert len(_tick(defs, instance).run_requests) == 1


def test_an_asset_backfill_whose_runs_have_all_ended_does_not_hold_it_back(
    defs, instance, new_report
):
    """Once every partition of the refresh's backfill has been requested and its runs have
    ended, the comparison starts without waiting up to 30 s for the backfill daemon to mark
    the backfill done; while one of its runs is still going, it waits."""
    backfill = _refresh_backfill(defs, instance, "refresh02")
    data = backfill.asset_backfill_data
    launched = backfill.with_asset_backfill_data(
        data.replace_requested_subset(data.target_subset), instance, defs.resolve_asset_graph()
    )
    instance.add_backfill(launched)  # still REQUESTED: the daemon has not marked it done
    run = instance.add_run(
        dg.DagsterRun(
            job_name="__ASSET_JOB",
            asset_selection=frozenset({DRIFT_REPORT_KEY}),
            status=dg.DagsterRunStatus.STARTED,
            tags={"dagster/backfill": "refresh02"},
        )
    )
    assert _tick(defs, instance).run_requests == []

    instance.report_run_failed(run)
    assert len(_tick(defs, instance).run_requests) == 1
