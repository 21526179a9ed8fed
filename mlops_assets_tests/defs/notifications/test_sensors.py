"""The run-failure notifier turns a failed run into a feed entry (and webhook post)."""

import json

import dagster as dg

from mlops_assets.defs.resources import NotifierResource


def test_failed_run_is_notified_with_its_region(tmp_path, instance):
    @dg.op
    def explode():
        raise RuntimeError("disk full")

    @dg.job
    def broken_job():
        explode()

    result = broken_job.execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/partition": "Nord"}
    )
    assert not result.success
    feed = tmp_path / "notifications.jsonl"
    from mlops_assets.defs.notifications.sensors import build_run_failure_notifier

    sensor = build_run_failure_notifier(dg.DefaultSensorStatus.STOPPED)
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"notifier": NotifierResource(feed_path=str(feed))},
    ).for_run_failure()
    sensor(context)
    [entry] = [json.loads(line) for line in feed.read_text().splitlines()]
    assert entry["kind"] == "run_failure" and entry["region"] == "Nord"
    assert "broken_job failed" in entry["message"]
    assert entry["details"]["run_id"] == result.run_id
