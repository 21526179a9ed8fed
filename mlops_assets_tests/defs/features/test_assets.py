"""features: materialized per region, gated by blocking checks that stop only that region."""

import json

import dagster as dg
import pandas as pd

from mlops_assets.defs.local_driver import run_sensors
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.notifications import Notifier
from mlops_assets_tests.defs.conftest import drop, drop_all


def test_sensors_take_sample_data_to_checked_features(defs, instance, settings, sample_source):
    drop_all(sample_source, settings)
    runs = run_sensors(defs, instance)
    assert all(r.success for r in runs), runs
    assert [r.failed_checks for r in runs] == [[]] * len(runs)
    regions = sorted(instance.get_dynamic_partitions(region_partitions.name))
    assert regions == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    materialized = instance.get_materialized_partitions(dg.AssetKey("features"))
    assert materialized == set(regions)
    event = instance.get_latest_materialization_event(dg.AssetKey("features"))
    meta = event.asset_materialization.metadata
    assert meta["rows"].value == meta["history_rows"].value + meta["future_rows"].value > 0
    assert event.asset_materialization.tags.get("dagster/data_version")

    # running again changes nothing: no new runs
    assert run_sensors(defs, instance) == []


def test_failing_blocking_check_stops_downstream_for_that_region_only(
    defs, instance, settings, sample_source
):
    """Ost gets no weather: its features fail the null-rate gate, other regions go on."""
    for source in ("stores", "sales", "events", "future"):
        drop(sample_source, settings, source)
    weather = pd.read_csv(sample_source / "weather" / "weather.csv")
    (settings.home / "landing" / "weather").mkdir(parents=True)
    weather[weather["region"] != "Ost"].to_csv(
        settings.home / "landing" / "weather" / "weather.csv", index=False
    )
    run_sensors(defs, instance, ["landing_sensor"])
    instance.add_dynamic_partitions(region_partitions.name, ["Ost", "Nord"])

    @dg.asset(partitions_def=region_partitions, deps=["features"])
    def downstream_model() -> None:
        """Stands in for the per-region model asset of the next issue."""

    job_defs = dg.Definitions.merge(defs, dg.Definitions(assets=[downstream_model]))
    job = job_defs.resolve_implicit_global_asset_job_def()
    selection = [dg.AssetKey("features"), dg.AssetKey("downstream_model")]
    bad = job.execute_in_process(
        instance=instance, partition_key="Ost", asset_selection=selection, raise_on_error=False
    )
    good = job.execute_in_process(
        instance=instance, partition_key="Nord", asset_selection=selection, raise_on_error=False
    )
    assert not bad.success
    failed = [
        e.asset_check_evaluation_data
        for e in bad.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and not e.asset_check_evaluation_data.passed
    ]
    assert [f.check_name for f in failed] == ["features_null_rates"]
    assert "temperature_c" in failed[0].description
    notices = Notifier.for_workspace(settings.workspace()).read()
    assert [(n["kind"], n["region"]) for n in notices] == [("check_failure", "Ost")]
    assert "features_null_rates" in notices[0]["message"]
    assert _materialized(bad) == ["features"]
    assert good.success and _materialized(good) == ["downstream_model", "features"]


def _materialized(result) -> list[str]:
    return sorted(
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    )


def test_feature_tables_go_below_the_storage_root(tmp_path, instance, sample_source, s3_env):
    """With ``MLOPS_STORAGE_ROOT`` on S3 the landing zone is there: the sensors ingest the
    files dropped there (a bad one is quarantined there, with its reason, and the rest
    carries on), the ingest writes the validated files there and the features asset every
    region's table (a worker on another host reads them), checked there, and the readers
    (the warehouse's ``features`` view, the models' loader) find them; nothing lands
    locally."""
    from mlops_assets.definitions import build_definitions
    from mlops_assets.landing import landing_status, quarantined
    from mlops_assets.settings import Settings
    from mlops_assets.spec import load_spec
    from mlops_assets.tuning import load_region_features
    from mlops_assets.warehouse import connect

    settings = Settings(env="ci", home=tmp_path / "home", spec="sample", storage_root=s3_env)
    defs = build_definitions(settings)
    ws, spec = settings.workspace(), load_spec("sample")
    drop_all(sample_source, settings)
    broken = b"date,store_id,department,units,open,promo\n2024-01-01,S0001,D01,abc,1,0\n"
    bad = ws.landing_zone.put("sales", "broken.csv", broken)
    runs = run_sensors(defs, instance, ["landing_sensor", "region_sensor"])
    assert runs and all(r.success for r in runs)
    assert [r.failed_checks for r in runs] == [["raw_sales:landing_files_valid"]] + [[]] * (
        len(runs) - 1
    )
    for folder in ("landing", "quarantine", "features", "raw"):
        assert not (settings.home / folder).exists(), folder
    status = {f["path"]: f["state"] for f in landing_status(ws, spec)}
    assert status.pop(bad) == "quarantined" and set(status.values()) == {"ingested"}
    dropped = ("stores", "sales", "weather", "events", "future")  # what drop_all drops
    assert len(status) == sum(len(list((sample_source / s).iterdir())) for s in dropped)
    [record] = quarantined(ws)
    assert record["file"] == bad and record["reason"] == "bad_type"
    assert "units" in record["message"] and "mlops-landing-" not in json.dumps(record)
    assert ws.landing_zone.reason_files() == [record["quarantined_copy"] + ".reason.json"]
    assert ws.landing_zone.read_text(record["quarantined_copy"]).encode() == broken
    with ws.landing_zone.open("sales", bad) as fh:
        assert fh.read() == broken  # never modified or deleted
    regions = sorted(instance.get_dynamic_partitions(region_partitions.name))
    assert ws.data.keys("features") == [f"features/{r}.parquet" for r in regions]
    assert ws.data.keys("raw/sales") and ws.data.keys("raw/stores")  # the ingested files
    event = instance.get_latest_materialization_event(dg.AssetKey("features"))
    meta = event.asset_materialization.metadata
    assert meta["path"].value.startswith(f"{s3_env}/features/")

    features, feature_set = load_region_features(ws, spec, regions[0])
    assert len(features) > 0 and set(feature_set.numeric) <= set(features.columns)
    with connect(ws, spec, features=True) as con:
        [(rows,)] = con.execute("SELECT count(*) FROM features").fetchall()
    assert rows == sum(len(ws.data.read_parquet(ws.features_key(r))) for r in regions)
