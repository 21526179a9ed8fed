"""region_model + forecast over several regions in one run (an asset backfill's batch): each
region is reported on its own partition, and a broken region fails alone."""

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from mlops_assets.defs.forecasts.assets import FORECAST_CHECKS, FORECAST_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.models.checks import REGISTRY_CHECK
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.gate import GATE_CHECKS

FIRST_THREE = ["Nord", "Ost", "Rhein_Main"]


def _run_batch(p, first: str, last: str) -> dg.ExecuteInProcessResult:
    """train_job over a range of regions in one run, as an asset backfill launches it."""
    return p.defs.resolve_job_def("train_job").execute_in_process(
        instance=p.instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


def _checks_by_partition(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = record.get_dagster_event().asset_check_evaluation_data
        out.setdefault(ev.partition, {})[f"{ev.asset_key.to_user_string()}:{ev.check_name}"] = ev
    return out


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, region: str):
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[region]), limit=1
    ).records
    return record.asset_materialization


def test_a_batch_reports_each_region_on_its_partition_and_fails_only_the_broken_one(
    model_pipeline,
):
    p = model_pipeline()
    assert p.regions[:3] == FIRST_THREE
    p.workspace.features_path("Ost").unlink()  # Ost cannot train

    result = _run_batch(p, "Nord", "Rhein_Main")

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "1 of 3 regions failed: Ost: Failure: no features for region 'Ost'" in message
    ok = {"Nord", "Rhein_Main"}
    assert p.instance.get_materialized_partitions(REGION_MODEL_KEY) == ok
    assert p.instance.get_materialized_partitions(FORECAST_KEY) == ok
    status = p.instance.get_status_by_partition(REGION_MODEL_KEY, FIRST_THREE, region_partitions)
    assert {r: s.value for r, s in status.items()} == {
        "Nord": "MATERIALIZED",
        "Ost": "FAILED",
        "Rhein_Main": "MATERIALIZED",
    }
    # each region's own metadata and data version, not the batch's
    for region in ok:
        model = _latest(p.instance, REGION_MODEL_KEY, region)
        assert model.metadata["model_label"].value == f"{region}:v1"
        assert model.tags["dagster/data_version"] == f"{region}:v1"
        forecast = _latest(p.instance, FORECAST_KEY, region)
        assert forecast.metadata["model_label"].value == f"{region}:v1"
    expected = {f"region_model:{c}" for c in [*GATE_CHECKS, REGISTRY_CHECK]} | {
        f"forecast:{c}" for c in FORECAST_CHECKS
    }
    checks = _checks_by_partition(p.instance, result.run_id)
    assert set(checks) == ok  # none for Ost, none without a partition
    for region in ok:
        assert set(checks[region]) == expected
        assert all(c.passed for c in checks[region].values())
    assert [v.label for v in p.registry.versions("Ost")] == []


def test_a_batch_makes_no_forecast_for_a_model_that_fails_its_gate(model_pipeline):
    p = model_pipeline(gate={"max_value": 0.0001})  # no model gets a MAPE this low

    result = _run_batch(p, "Nord", "Ost")

    assert result.success  # a rejected model is an outcome, not an error
    assert p.instance.get_materialized_partitions(REGION_MODEL_KEY) == {"Nord", "Ost"}
    assert p.instance.get_materialized_partitions(FORECAST_KEY) == set()
    checks = _checks_by_partition(p.instance, result.run_id)
    for region in ("Nord", "Ost"):
        assert not checks[region]["region_model:gate_metric_threshold"].passed
        assert not any(name.startswith("forecast:") for name in checks[region])


def test_a_batch_refuses_to_run_beside_steps_that_wait_on_it(model_pipeline):
    """features + region_model over several regions in one run: the features batch yields
    no outputs, so Dagster would skip the model step and end the run SUCCESS with nothing
    trained. The run fails instead, saying why and what to do."""
    p = model_pipeline()
    both = dg.define_asset_job(
        "features_and_models",
        selection=dg.AssetSelection.assets("features", REGION_MODEL_KEY, FORECAST_KEY),
    )
    defs = dg.Definitions.merge(p.defs, dg.Definitions(jobs=[both]))

    result = defs.resolve_job_def("features_and_models").execute_in_process(
        instance=p.instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "Nord", ASSET_PARTITION_RANGE_END_TAG: "Ost"},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "features"
    message = failure.step_failure_data.error.message
    assert "cannot also run region_model_and_forecast" in message
    assert "asset backfill" in message
    assert p.instance.get_materialized_partitions(REGION_MODEL_KEY) == set()


def test_a_backfill_never_groups_features_with_the_models_in_one_run(model_pipeline):
    """Dagster's asset backfill puts a parent and child into one run when their backfill
    policies are equal (where the batch above would refuse); different policies make it run
    the models once their features are materialized."""
    asset_graph = model_pipeline().defs.resolve_asset_graph()
    features = asset_graph.get(dg.AssetKey("features")).backfill_policy
    model = asset_graph.get(REGION_MODEL_KEY).backfill_policy
    assert features is not None and model is not None
    assert features != model
    assert features.max_partitions_per_run > model.max_partitions_per_run
