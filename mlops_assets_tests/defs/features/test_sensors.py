"""The region sensor: discovers regions from data and refreshes only what changed."""

import pandas as pd

from mlops_assets.defs.local_driver import evaluate_sensor, run_sensors
from mlops_assets_tests.defs.conftest import drop_all


def test_regions_are_discovered_with_safe_keys(defs, instance, settings, sample_source):
    drop_all(sample_source, settings)
    run_sensors(defs, instance, ["landing_sensor"])
    tick = evaluate_sensor(defs, instance, "region_sensor")
    added = [k for req in tick.partition_requests for k in req.partition_keys]
    assert sorted(added) == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    assert sorted(r.partition_key for r in tick.run_requests) == sorted(added)
    assert {r.tags["mlops/region"] for r in tick.run_requests} >= {"Rhein, Main", "Süd"}
    assert not any("," in k or " " in k for k in added)


def test_only_regions_touched_by_new_files_are_refreshed(defs, instance, settings, sample_source):
    drop_all(sample_source, settings)
    run_sensors(defs, instance)  # ingest + all regions' features
    assert (
        evaluate_sensor(
            defs, instance, "region_sensor", _driver_cursor(instance, "region_sensor")
        ).run_requests
        == []
    )

    weather = pd.read_csv(sample_source / "weather" / "weather.csv")
    patch = weather[weather["region"] == "Ost"].tail(3).assign(temperature_c=30.0)
    patch.to_csv(settings.home / "landing" / "weather" / "ost_correction.csv", index=False)
    runs = run_sensors(defs, instance)
    assert [(r.job, r.partition_key) for r in runs] == [
        ("ingest_job", None),
        ("features_job", "Ost"),
    ]
    assert all(r.success for r in runs)


def _driver_cursor(instance, name):
    from mlops_assets.defs.local_driver import _load_state

    return _load_state(instance)["cursors"].get(name)
