"""The region sensor: discovers regions from data and refreshes only what changed:
features alone for a region without an approved model, features -> forecast ->
realized_performance -> drift_report (`refresh_job`) for a region with one; either for
several neighbouring regions per run."""

import dataclasses

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.data_checks import FEATURE_CHECKS
from mlops_assets.definitions import build_definitions
from mlops_assets.defs.features import sensors
from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.features.sensors import contiguous_batches
from mlops_assets.defs.local_driver import evaluate_sensor, run_partitions, run_sensors
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.naming import region_key
from mlops_assets.realized import read_realized_performance, read_weekly_realized
from mlops_assets.registry import ModelRegistry
from mlops_assets_tests.defs.conftest import drop_all
from mlops_assets_tests.defs.models.pipeline_support import materializations
from mlops_assets_tests.registry.support import register_approved_placeholder


def test_regions_are_discovered_with_safe_keys(defs, instance, settings, sample_source):
    drop_all(sample_source, settings)
    run_sensors(defs, instance, ["landing_sensor"])
    tick = evaluate_sensor(defs, instance, "region_sensor")
    added = [k for req in tick.partition_requests for k in req.partition_keys]
    assert added == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    assert not any("," in k or " " in k for k in added)
    # features for every new region, up to regions_per_run (3) neighbours per run
    assert {r.job_name for r in tick.run_requests} == {"features_job"}
    ranges = [(r.partition_key_range.start, r.partition_key_range.end) for r in tick.run_requests]
    assert ranges == [("Nord", "Rhein_Main"), ("Sud", "West")]
    assert all(r.partition_key is None for r in tick.run_requests)


def test_regions_with_approved_models_are_refreshed_several_per_run(
    defs, instance, settings, sample_source
):
    """Nord, Ost and Sud have approved models: neighbouring approved regions share a
    refresh run (a range of partitions), the others get their features the same way."""
    drop_all(sample_source, settings)
    run_sensors(defs, instance, ["landing_sensor"])
    registry = ModelRegistry.for_workspace(settings.workspace())
    for region in ("Nord", "Ost", "Sud"):
        register_approved_placeholder(registry, region)
    tick = evaluate_sensor(defs, instance, "region_sensor")

    def runs(job: str) -> list[tuple[str, str]]:
        return [
            (r.partition_key, r.partition_key)
            if r.partition_key
            else (r.partition_key_range.start, r.partition_key_range.end)
            for r in tick.run_requests
            if r.job_name == job
        ]

    assert runs("refresh_job") == [("Nord", "Ost"), ("Sud", "Sud")]
    assert runs("features_job") == [("Rhein_Main", "Rhein_Main"), ("West", "West")]
    keys = [r.run_key for r in tick.run_requests]
    assert len(set(keys)) == len(keys)


def test_with_one_region_per_run_each_region_gets_its_own_run_and_display_name(
    instance, settings, sample_source
):
    defs = build_definitions(dataclasses.replace(settings, regions_per_run=1))
    drop_all(sample_source, settings)
    run_sensors(defs, instance, ["landing_sensor"])
    requests = evaluate_sensor(defs, instance, "region_sensor").run_requests
    assert [r.partition_key for r in requests] == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    assert all(r.partition_key_range is None for r in requests)
    assert {r.tags["mlops/region"] for r in requests} >= {"Rhein, Main", "Süd"}


def test_a_feature_batch_reports_each_region_and_fails_only_the_broken_one(
    defs, instance, settings, sample_source, monkeypatch
):
    import mlops_assets.defs.features.assets as feature_assets

    real_copy = feature_assets.copy_features

    def copy_features(con, ds, region, path):
        if region == "Ost":
            raise ValueError("Ost's table cannot be written")
        return real_copy(con, ds, region, path)

    monkeypatch.setattr(feature_assets, "copy_features", copy_features)
    drop_all(sample_source, settings)
    runs = run_sensors(defs, instance)

    assert [(r.job, r.partition_range, r.success) for r in runs] == [
        ("ingest_job", None, True),
        ("features_job", ("Nord", "Rhein_Main"), False),
        ("features_job", ("Sud", "West"), True),
    ]
    ok = {"Nord", "Rhein_Main", "Sud", "West"}
    assert instance.get_materialized_partitions(FEATURES_KEY) == ok
    status = instance.get_status_by_partition(FEATURES_KEY, ["Nord", "Ost"], region_partitions)
    assert {r: s.value for r, s in status.items()} == {"Nord": "MATERIALIZED", "Ost": "FAILED"}
    [failure] = instance.all_logs(runs[1].run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    message = failure.get_dagster_event().step_failure_data.error.message
    assert "1 of 3 regions failed: Ost: ValueError: Ost's table cannot be written" in message
    checked: dict[str, set[str]] = {}
    for run in runs[1:]:
        for record in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            ev = record.get_dagster_event().asset_check_evaluation_data
            checked.setdefault(ev.partition, set()).add(ev.check_name)
    assert checked == {region: set(FEATURE_CHECKS) for region in ok}
    for region in ok:  # each region's own metadata
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=FEATURES_KEY, asset_partitions=[region]), limit=1
        ).records
        meta = record.asset_materialization.metadata
        assert meta["path"].value.endswith(f"{region}.parquet")
        assert meta["history_rows"].value > 0


def test_batches_hold_only_wanted_neighbours_and_at_most_the_run_size():
    order = ["a", "b", "c", "d", "e", "f", "g"]
    wanted = {"a", "b", "c", "d", "f", "g"}
    assert contiguous_batches(order, wanted, 3) == [["a", "b", "c"], ["d"], ["f", "g"]]
    assert contiguous_batches(order, wanted, 1) == [[r] for r in sorted(wanted)]
    assert contiguous_batches(order, set(), 3) == []


def test_only_regions_touched_by_new_files_are_refreshed(
    defs, instance, settings, sample_source, monkeypatch
):
    drop_all(sample_source, settings)
    run_sensors(defs, instance)  # ingest + all regions' features
    # nothing new: the tick does not read the raw sales (their stores) at all
    queried: list[int] = []
    real = sensors.regions_with_sales
    monkeypatch.setattr(sensors, "regions_with_sales", lambda *a: queried.append(1) or real(*a))
    tick = evaluate_sensor(
        defs, instance, "region_sensor", _driver_cursor(instance, "region_sensor")
    )
    assert tick.run_requests == [] and tick.skip_reason == "no raw data changes"
    assert queried == []

    weather = pd.read_csv(sample_source / "weather" / "weather.csv")
    patch = weather[weather["region"] == "Ost"].tail(3).assign(temperature_c=30.0)
    patch.to_csv(settings.home / "landing" / "weather" / "ost_correction.csv", index=False)
    runs = run_sensors(defs, instance)
    # Ost has no approved model: its features only (a forecast would fail its ERROR check)
    assert [(r.job, r.partition_key) for r in runs] == [
        ("ingest_job", None),
        ("features_job", "Ost"),
    ]
    assert all(r.success for r in runs)
    assert runs[1].assets == ["features"]


def test_a_fresh_sensor_after_the_driver_requests_nothing_for_features_already_built(
    defs, instance, settings, sample_source
):
    """The daemon after `make demo`: its region sensor starts without a cursor and sees
    every raw change again, but every region's features were built after it."""
    drop_all(sample_source, settings)
    runs = run_sensors(defs, instance)
    assert [r.partition_range for r in runs if r.job == "features_job"] == [
        ("Nord", "Rhein_Main"),
        ("Sud", "West"),
    ]
    tick = evaluate_sensor(defs, instance, "region_sensor", cursor=None)
    assert tick.run_requests == [] and tick.skip_reason == "no raw data changes"


def test_features_wait_until_the_ingest_run_has_ingested_every_file(
    defs, instance, settings, sample_source
):
    """An ingest run materializes its raw assets one step at a time: a tick between two
    of them must not build features that the next materialization makes stale."""
    drop_all(sample_source, settings)
    run_sensors(defs, instance, ["landing_sensor"])  # every file ingested
    ingesting = instance.add_run(
        dg.DagsterRun(job_name="ingest_job", status=dg.DagsterRunStatus.STARTED)
    )
    tick = evaluate_sensor(defs, instance, "region_sensor")
    assert tick.run_requests == [] and tick.partition_requests == []
    assert tick.skip_reason == "an ingest run is in progress; waiting for it to finish"
    assert tick.cursor is None  # the changes it has not looked at stay ahead of it

    instance.report_run_failed(ingesting)  # the run ended (how does not matter here)
    tick = evaluate_sensor(defs, instance, "region_sensor", cursor=tick.cursor)
    ranges = [(r.partition_key_range.start, r.partition_key_range.end) for r in tick.run_requests]
    assert ranges == [("Nord", "Rhein_Main"), ("Sud", "West")]


def _driver_cursor(instance, name):
    from mlops_assets.defs.local_driver import _load_state

    return _load_state(instance)["cursors"].get(name)


@pytest.mark.e2e  # trains and refreshes every region twice: `make e2e`
def test_new_files_refresh_features_forecast_and_realized_performance_of_their_regions(
    model_pipeline,
):
    """Nord and Sud have approved models, Ost has none. A calendar file for Nord re-forecasts
    Nord only; ground truth for Nord's first forecast week (a sales file, with some Ost
    rows) moves Nord's origin on a week and scores the earlier forecast; an actuals file
    for Sud refreshes Sud."""
    p = model_pipeline()
    trained = run_partitions(p.defs, p.instance, "train_job", ["Nord", "Sud"])
    assert all(r.success for r in trained), trained
    landing = p.settings.home / "landing"
    stores = pd.read_csv(landing / "stores" / "stores.csv", dtype=str)
    region_of = dict(zip(stores["store_id"], stores["region"].map(region_key), strict=True))
    future = pd.read_csv(landing / "future" / "future.csv", dtype={"date": str})
    future["region"] = future["store_id"].map(region_of)
    origin = pd.Timestamp(p.origin("Nord"))
    first_week = future["date"] <= str((origin + pd.Timedelta(days=7)).date())
    sud_files = {f: f.stat().st_mtime_ns for f in p.forecast_files("Sud")}

    # 1. a corrected calendar for Nord: every series on promotion in the first week
    promo = future[(future["region"] == "Nord") & first_week].assign(promo=1)
    promo.drop(columns="region").to_csv(landing / "future" / "nord_promo.csv", index=False)
    runs = run_sensors(p.defs, p.instance)

    assert [(r.job, r.partition_key, r.success) for r in runs] == [
        ("ingest_job", None, True),
        ("refresh_job", "Nord", True),
        ("monitoring_job", None, True),  # the fleet comparison after every refresh
    ]
    assert runs[1].assets == ["drift_report", "features", "forecast", "realized_performance"]
    forecast = pd.read_parquet(p.workspace.forecast_path("Nord", str(origin.date())))
    assert set(forecast["run_id"]) == {runs[1].run_id}  # re-forecast from the same origin
    meta = materializations(p.instance, runs[1].run_id)["realized_performance"].metadata
    assert "have no ground truth yet" in meta["note"].value
    assert {f: f.stat().st_mtime_ns for f in p.forecast_files("Sud")} == sud_files

    # 2. ground truth of that week arrives in the sales feed: 25% above Nord's forecast
    keys = ["store_id", "department", "date"]
    predicted = forecast.assign(
        store_id=forecast["store"], department=forecast["item"],
        date=forecast["date"].dt.strftime("%Y-%m-%d"),
    )[[*keys, "prediction"]]  # fmt: skip
    week = future[future["region"].isin(["Nord", "Ost"]) & first_week]
    week = week.merge(predicted, on=keys, how="left")
    week["units"] = (1.25 * week["prediction"]).fillna(10.0)
    week[["date", "store_id", "department", "units", "open", "promo"]].to_csv(
        landing / "sales" / "late_week.csv", index=False
    )
    runs = run_sensors(p.defs, p.instance)

    assert [(r.job, r.partition_key, r.success) for r in runs] == [
        ("ingest_job", None, True),
        ("refresh_job", "Nord", True),
        ("features_job", "Ost", True),
        ("monitoring_job", None, True),
    ]
    next_origin = str((origin + pd.Timedelta(days=7)).date())
    assert p.origin("Nord") == next_origin
    assert p.workspace.forecast_path("Nord", next_origin).is_file()  # a new origin file
    assert not p.workspace.forecast_path("Sud", next_origin).exists()
    per_origin = read_realized_performance(p.workspace, "Nord")
    assert [str(o.date()) for o in per_origin["origin"]] == [str(origin.date()), next_origin]
    scored, pending = per_origin.iloc[0], per_origin.iloc[1]
    assert scored["days_with_actuals"] == 7 and scored["n_rows"] > 0
    assert scored["mape"] == pytest.approx(0.2) and scored["wape"] == pytest.approx(0.2)
    assert pending["n_rows"] == 0
    weekly = read_weekly_realized(p.workspace, "Nord")
    assert [str(w.date()) for w in weekly["week_start"]] == [
        str((origin + pd.Timedelta(days=1)).date())
    ]
    assert list(weekly["lead_days"]) == [1]
    meta = materializations(p.instance, runs[1].run_id)["realized_performance"].metadata
    assert meta["latest_week_mape_pct"].value == 20.0

    # 3. ground truth for Sud arrives as an actuals file
    sud = future[(future["region"] == "Sud") & (future["date"] == future["date"].min())]
    (landing / "actuals").mkdir()
    sud = sud.drop(columns="region").assign(units=5.0)
    sud.to_csv(landing / "actuals" / "sud.csv", index=False)
    runs = run_sensors(p.defs, p.instance)

    assert [(r.job, r.partition_key, r.success) for r in runs] == [
        ("ingest_job", None, True),
        ("refresh_job", "Sud", True),
        ("monitoring_job", None, True),
    ]
    assert read_realized_performance(p.workspace, "Sud")["n_rows"].iloc[0] > 0
    assert run_sensors(p.defs, p.instance) == []
