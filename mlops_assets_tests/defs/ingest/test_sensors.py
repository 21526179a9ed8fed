"""The landing sensor: new content -> one ingest run; known content -> nothing."""

import json
import shutil
import uuid

import dagster as dg

from mlops_assets.defs.local_driver import evaluate_sensor, run_sensors
from mlops_assets.storage.landing_zone_copy import source_folders
from mlops_assets.storage.manifest import Manifest
from mlops_assets_tests.defs.conftest import drop, drop_all


def _ingest_and_tick(defs, instance, cursor=None):
    run_sensors(defs, instance, ["landing_sensor"])
    return evaluate_sensor(defs, instance, "landing_sensor", cursor)


def test_new_files_request_one_run_for_their_sources(defs, instance, settings, sample_source):
    drop(sample_source, settings, "stores")
    drop(sample_source, settings, "sales")
    tick = evaluate_sensor(defs, instance, "landing_sensor")
    assert len(tick.run_requests) == 1
    req = tick.run_requests[0]
    assert {k.to_user_string() for k in req.asset_selection} == {"raw_stores", "raw_sales"}
    sales_files = req.run_config["ops"]["raw_sales"]["config"]["files"]
    assert sales_files and all(f.startswith("landing/sales/") for f in sales_files)
    assert req.run_key.startswith("ingest-")

    # the same tick again (run still queued) does not request the files a second time
    again = evaluate_sensor(defs, instance, "landing_sensor", tick.cursor)
    assert again.run_requests == []


def test_ingested_content_is_not_requested_again_even_renamed(
    defs, instance, settings, sample_source
):
    drop_all(sample_source, settings)
    runs = run_sensors(defs, instance, ["landing_sensor"])
    assert [r.success for r in runs] == [True]
    # a renamed copy of an ingested file, and a re-drop of the same bytes
    stores = settings.home / "landing" / "stores" / "stores.csv"
    shutil.copyfile(stores, stores.with_name("stores_copy.csv"))
    stores.touch()
    tick = evaluate_sensor(defs, instance, "landing_sensor")  # fresh cursor: a restart
    assert tick.run_requests == []
    assert "no new landing files" in tick.skip_reason


def test_restart_loses_nothing_and_repeats_nothing(defs, instance, settings, sample_source):
    drop(sample_source, settings, "stores")
    first = evaluate_sensor(defs, instance, "landing_sensor")
    assert len(first.run_requests) == 1
    # the daemon restarts before the run happened and the cursor is lost: requested again
    lost = evaluate_sensor(defs, instance, "landing_sensor", None)
    assert lost.run_requests[0].run_key == first.run_requests[0].run_key  # same run key
    run_sensors(defs, instance, ["landing_sensor"])
    drop(sample_source, settings, "sales")
    later = evaluate_sensor(defs, instance, "landing_sensor", None)
    assert [k.to_user_string() for k in later.run_requests[0].asset_selection] == ["raw_sales"]


def test_bad_file_is_quarantined_and_the_rest_carries_on(defs, instance, settings, sample_source):
    drop_all(sample_source, settings)
    bad = settings.home / "landing" / "sales" / "broken.csv"
    bad.write_text("date,store_id,department,units,open,promo\n2024-01-01,S0001,D01,abc,1,0\n")
    original = bad.read_bytes()
    runs = run_sensors(defs, instance, ["landing_sensor"])
    assert len(runs) == 1 and runs[0].success
    assert "raw_sales:landing_files_valid" in runs[0].failed_checks
    assert bad.read_bytes() == original  # never modified or deleted
    reasons = list((settings.home / "quarantine" / "sales").glob("*.reason.json"))
    assert len(reasons) == 1
    reason = json.loads(reasons[0].read_text())
    assert reason["reason"] == "bad_type" and "units" in reason["message"]
    good = list((settings.home / "raw" / "sales").glob("*.parquet"))
    assert len(good) == len(list((sample_source / "sales").iterdir()))

    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("raw_sales"), "landing_files_valid")]
    )
    evaluation = next(iter(check.values())).event.dagster_event.asset_check_evaluation_data
    assert not evaluation.passed and "bad_type" in evaluation.description
    # a quarantined file is not requested again
    assert evaluate_sensor(defs, instance, "landing_sensor").run_requests == []


def test_sales_landing_before_the_store_master_wait_for_it(defs, instance, settings, sample_source):
    """Sales (and weather) land before the store master, as an upload in any order does:
    the weather is ingested, the sales wait in the landing zone (validated alone they would
    be quarantined for unknown stores) and are ingested in the store master's run; the
    region sensor, which saw the weather first, then requests every region's features."""
    from mlops_assets.defs.local_driver import _load_state
    from mlops_assets.landing import WAITING_FOR_STORE_MASTER, landing_status, quarantined
    from mlops_assets.spec import load_spec

    ws = settings.workspace()
    drop(sample_source, settings, "sales")
    drop(sample_source, settings, "weather")
    runs = run_sensors(defs, instance, ["landing_sensor", "region_sensor"])
    assert [r.assets for r in runs] == [["raw_weather"]] and runs[0].success
    tick = evaluate_sensor(defs, instance, "landing_sensor")
    assert tick.run_requests == [] and "2 waiting for a store master" in tick.skip_reason
    status = {f["path"]: f for f in landing_status(ws, load_spec(settings.spec))}
    sales = [f for path, f in status.items() if path.startswith("landing/sales/")]
    assert len(sales) == 2
    assert {(f["state"], f["reason"]) for f in sales} == {("pending", WAITING_FOR_STORE_MASTER)}

    drop(sample_source, settings, "stores")
    runs = run_sensors(defs, instance, ["landing_sensor"])
    assert [sorted(r.assets) for r in runs] == [["raw_sales", "raw_stores"]]
    assert runs[0].success and quarantined(ws) == []
    cursor = _load_state(instance)["cursors"].get("region_sensor")
    regions = evaluate_sensor(defs, instance, "region_sensor", cursor)
    added = [k for req in regions.partition_requests for k in req.partition_keys]
    assert added == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    assert {r.job_name for r in regions.run_requests} == {"features_job"}


def test_sales_of_a_store_the_master_lacked_are_ingested_once_a_master_has_it(
    defs, instance, settings, sample_source
):
    """Sales of a store the store master lacks are quarantined; a new store master with
    the store requeues them and the next tick ingests them, keeping the quarantine record
    and the requeue history."""
    from mlops_assets.landing import quarantined

    zone, ws = settings.workspace().landing_zone, settings.workspace()
    master = (sample_source / "stores" / "stores.csv").read_text().splitlines(keepends=True)
    zone.put("stores", "stores.csv", "".join(master[:-1]).encode())  # without the last store
    drop(sample_source, settings, "sales")
    runs = run_sensors(defs, instance, ["landing_sensor"])
    assert [sorted(r.assets) for r in runs] == [["raw_sales", "raw_stores"]]
    records = quarantined(ws)
    assert {r["reason"] for r in records} == {"unknown_store"} and records
    missing = master[-1].split(",")[0]
    assert f"['{missing}'] (add them to the store master first)" in records[0]["message"]
    assert evaluate_sensor(defs, instance, "landing_sensor").run_requests == []

    drop(sample_source, settings, "stores", name="stores_full.csv")
    runs = run_sensors(defs, instance, ["landing_sensor"])
    assert [r.assets for r in runs] == [["raw_stores"], ["raw_sales"]]
    assert all(r.success for r in runs)
    assert len(list((settings.home / "raw" / "sales").glob("*.parquet"))) == 2
    event = instance.get_latest_materialization_event(dg.AssetKey("raw_stores"))
    requeued = event.asset_materialization.metadata["requeued_unknown_store_files"].value
    assert sorted(requeued) == sorted(r["file"] for r in records)
    # the quarantine records and the requeue history are kept
    assert len(quarantined(ws)) == len(records)
    counts = Manifest.for_workspace(ws).requeue_counts()
    assert [counts.get(r["sha256"]) for r in records] == [1] * len(records)


def test_after_migrate_data_the_sensor_on_s3_ingests_only_what_is_new(
    defs, instance, settings, sample_source, s3_env, monkeypatch
):
    """`mlops-assets migrate-data` copies the landing zone and the quarantine to S3, where
    every mtime is new: the landing sensor of the workspace running there (same instance,
    the cursor it had, or none) requests nothing already ingested or quarantined, and a
    file dropped there afterwards is ingested."""
    from dataclasses import replace

    from mlops_assets.cli import main
    from mlops_assets.definitions import build_definitions
    from mlops_assets.landing import quarantined

    drop_all(sample_source, settings)
    zone = settings.workspace().landing_zone
    zone.put("sales", "broken.csv", b"date,store_id,department,units,open,promo\nx,S1,D,1,1,0\n")
    assert [r.success for r in run_sensors(defs, instance, ["landing_sensor"])] == [True]
    for name, value in (("MLOPS_HOME", settings.home), ("MLOPS_SPEC", settings.spec)):
        monkeypatch.setenv(name, str(value))  # main() sets them: restored afterwards
    monkeypatch.delenv("MLOPS_STORAGE_ROOT", raising=False)
    assert main(["migrate-data", "--to", s3_env]) == 0

    shared = replace(settings, storage_root=s3_env)
    shared_defs = build_definitions(shared)
    assert run_sensors(shared_defs, instance, ["landing_sensor"]) == []
    tick = evaluate_sensor(shared_defs, instance, "landing_sensor")  # a lost cursor
    landed = sum(len(zone.files(source)) for source in source_folders(zone))
    assert tick.run_requests == []
    assert f"no new landing files ({landed} known, 0 in flight" in tick.skip_reason
    assert len(quarantined(shared.workspace())) == 1
    late = (sample_source / "events" / "events.csv").read_bytes() + b"2024-12-24,,Heiligabend\n"
    shared.workspace().landing_zone.put("events", "late.csv", late)
    runs = run_sensors(shared_defs, instance, ["landing_sensor"])
    assert [(r.assets, r.success) for r in runs] == [(["raw_events"], True)]


def _ended_run(instance, run_key, status=dg.DagsterRunStatus.FAILURE):
    """A landing-sensor ingest run under ``run_key`` that ended without ingesting anything
    (what run monitoring leaves of a run whose process was killed)."""
    run = dg.DagsterRun(
        job_name="ingest_job",
        run_id=str(uuid.uuid4()),
        status=status,
        tags={"dagster/run_key": run_key, "mlops/trigger": "landing_sensor"},
    )
    instance.add_run(run)
    return run


def test_files_a_run_did_not_ingest_are_requested_again_under_a_new_attempt_key(
    defs, instance, settings, sample_source
):
    drop(sample_source, settings, "stores")
    first = evaluate_sensor(defs, instance, "landing_sensor")
    key = first.run_requests[0].run_key
    # while the run is queued or running, nothing is requested again
    running = _ended_run(instance, key, dg.DagsterRunStatus.STARTED)
    assert evaluate_sensor(defs, instance, "landing_sensor", first.cursor).run_requests == []
    # the run's process died and run monitoring marked it failed: a new attempt, same files
    instance.report_run_failed(running)
    second = evaluate_sensor(defs, instance, "landing_sensor", first.cursor)
    assert [r.run_key for r in second.run_requests] == [f"{key}.2"]
    assert second.run_requests[0].run_config == first.run_requests[0].run_config
    assert second.run_requests[0].tags["dagster/max_retries"] == "0"
    # the attempt is found in the instance, not in the cursor: a lost cursor asks the same
    assert [r.run_key for r in evaluate_sensor(defs, instance, "landing_sensor").run_requests] == [
        f"{key}.2"
    ]
    # even a run that ended in success without ingesting (the manifest decides) is retried
    _ended_run(instance, f"{key}.2", dg.DagsterRunStatus.SUCCESS)
    third = evaluate_sensor(defs, instance, "landing_sensor", second.cursor)
    assert [r.run_key for r in third.run_requests] == [f"{key}.3"]
    # once ingested, the files are never requested again
    run_sensors(defs, instance, ["landing_sensor"])
    assert evaluate_sensor(defs, instance, "landing_sensor").run_requests == []


def test_the_sensor_stops_asking_after_five_ended_attempts(defs, instance, settings, sample_source):
    drop(sample_source, settings, "stores")
    key = evaluate_sensor(defs, instance, "landing_sensor").run_requests[0].run_key
    for attempt in range(1, 6):
        _ended_run(instance, key if attempt == 1 else f"{key}.{attempt}")
    tick = evaluate_sensor(defs, instance, "landing_sensor")
    assert tick.run_requests == []
    assert "gave up after 5 ingest runs" in tick.skip_reason


def test_a_request_whose_run_never_appeared_is_requested_again_after_the_grace(
    defs, instance, settings, sample_source, monkeypatch
):
    """The daemon died between the tick and creating the run: the files are asked again."""
    import mlops_assets.defs.ingest.sensors as sensors

    drop(sample_source, settings, "stores")
    first = evaluate_sensor(defs, instance, "landing_sensor")
    assert evaluate_sensor(defs, instance, "landing_sensor", first.cursor).run_requests == []
    monkeypatch.setattr(sensors, "REQUEST_GRACE_SECONDS", 0.0)
    again = evaluate_sensor(defs, instance, "landing_sensor", first.cursor)
    assert [r.run_key for r in again.run_requests] == [first.run_requests[0].run_key]


def test_check_shows_a_one_line_reason_without_paths(defs, instance, settings, sample_source):
    drop(sample_source, settings, "stores")
    lines = next((sample_source / "sales").iterdir()).read_text().splitlines()
    lines[9000] += ",oops"  # a ragged row deep in the file: DuckDB's error spans lines
    bad = settings.home / "landing" / "sales" / "ragged.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("\n".join(lines) + "\n")
    runs = run_sensors(defs, instance, ["landing_sensor"])
    assert "raw_sales:landing_files_valid" in runs[0].failed_checks

    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("raw_sales"), "landing_files_valid")]
    )
    evaluation = next(iter(check.values())).event.dagster_event.asset_check_evaluation_data
    assert evaluation.description.startswith(
        "landing/sales/ragged.csv: unparseable: could not read ragged.csv: line 9001 has 7"
    )
    [shown] = evaluation.metadata["quarantined"].value
    for text in (evaluation.description, shown["reason"]):
        assert "\n" not in text and str(settings.home) not in text and "/tmp" not in text
    assert shown["reason"] == evaluation.description.split(": ", 1)[1]
    reason_file = json.loads((settings.home / shown["reason_file"]).read_text())
    assert str(bad) in reason_file["details"]["engine_error"]


def test_files_a_killed_run_ingested_are_announced_by_the_next_materialization(
    defs, instance, settings, sample_source
):
    """A run killed after ingesting a file never materialized, so no affected_regions named
    that file's region; the next raw materialization does, so its region is refreshed."""
    import pandas as pd

    from mlops_assets.landing import ingest_file
    from mlops_assets.spec import load_spec
    from mlops_assets.workspace import Workspace

    drop(sample_source, settings, "stores")
    run_sensors(defs, instance, ["landing_sensor"])
    stores = pd.read_csv(sample_source / "stores" / "stores.csv")
    sales = pd.concat(pd.read_csv(p) for p in sorted((sample_source / "sales").iterdir()))
    nord = stores.loc[stores["region"] == "Nord", "store_id"].tolist()
    west = stores.loc[stores["region"] == "West", "store_id"].tolist()
    landing = settings.home / "landing" / "sales"
    landing.mkdir(parents=True)

    def put(name, store):
        sales[sales["store_id"] == store].to_csv(landing / name, index=False)
        return f"landing/sales/{name}"

    def announced():
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_sales"))
        return event.asset_materialization.metadata["affected_regions"].value

    # what a run killed between ingesting a file and materializing leaves behind
    killed = ingest_file(
        Workspace(settings.home), load_spec("sample"), "sales", put("a.csv", nord[0])
    )
    assert killed.status == "ingested"
    put("b.csv", west[0])
    (run,) = run_sensors(defs, instance, ["landing_sensor"])
    assert run.success
    assert announced() == ["Nord", "West"]  # b.csv's region and the killed run's a.csv's
    put("c.csv", west[1])
    run_sensors(defs, instance, ["landing_sensor"])
    assert announced() == ["West"]  # announced once, not again
