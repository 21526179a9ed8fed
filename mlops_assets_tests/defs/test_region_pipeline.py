"""Every region asset in one op, over one region or several in one run (an asset backfill's
batch, the region sensor's refresh of neighbouring regions): each region is reported on its
own partition, a broken region fails alone, and a region whose result fails a blocking
check stops there while the others carry on."""

import base64

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.forecasts.assets import FORECAST_CHECKS, FORECAST_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.models.checks import REGISTRY_CHECK
from mlops_assets.defs.monitoring.assets import REALIZED_PERFORMANCE_KEY
from mlops_assets.defs.monitoring.drift import DRIFT_REPORT_KEY
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.gate import GATE_CHECKS

FIRST_THREE = ["Nord", "Ost", "Rhein_Main"]


def _run_batch(p, first: str, last: str, job: str = "train_job") -> dg.ExecuteInProcessResult:
    """``job`` over a range of regions in one run, as an asset backfill or the region
    sensor launches it."""
    return p.defs.resolve_job_def(job).execute_in_process(
        instance=p.instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.error.message


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

    # the run fails as each region's run alone would, naming the regions and the check
    assert not result.success
    assert (
        "2 of 2 regions failed: Nord: blocking check(s) failed: "
        "region_model:gate_metric_threshold; Ost: blocking check(s) failed: "
        "region_model:gate_metric_threshold"
    ) in _failure_message(result)
    assert p.instance.get_materialized_partitions(REGION_MODEL_KEY) == {"Nord", "Ost"}
    assert p.instance.get_materialized_partitions(FORECAST_KEY) == set()
    checks = _checks_by_partition(p.instance, result.run_id)
    for region in ("Nord", "Ost"):
        assert not checks[region]["region_model:gate_metric_threshold"].passed
        assert not any(name.startswith("forecast:") for name in checks[region])


def test_a_refresh_of_several_regions_is_one_run_and_a_blocked_region_stops_alone(
    model_pipeline, monkeypatch
):
    """refresh_job over three regions with approved models: one run conditions each one's
    features, forecasts, scores and reports its drift, each on its own partition. Ost's
    rows fell far below its last materialization's (a blocking features check fails): its
    features are reported with the failed check, and nothing is built on them. The
    refreshed regions' report plots are drawn in the refresh: the fleet's monitoring run
    that follows draws only Ost's."""
    p = model_pipeline()
    assert _run_batch(p, "Nord", "Rhein_Main").success  # three approved models
    before = {r: p.forecast_files(r) for r in FIRST_THREE}
    p.instance.report_runless_asset_event(
        dg.AssetMaterialization(FEATURES_KEY, partition="Ost", metadata={"rows": 10**9})
    )

    result = _run_batch(p, "Nord", "Rhein_Main", job="refresh_job")

    assert not result.success  # as Ost's run alone would fail on its check
    assert (
        "1 of 3 regions failed: Ost: blocking check(s) failed: features:features_row_count_change"
    ) in _failure_message(result)
    # the run's event log (a failed step's events are not in the in-process result)
    events = p.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    done = {
        (e.get_dagster_event().asset_key.to_user_string(), e.get_dagster_event().partition)
        for e in events
    }
    refreshed = ["features", "forecast", "realized_performance", "drift_report"]
    assert done == {(a, r) for a in refreshed for r in ("Nord", "Rhein_Main")} | {
        ("features", "Ost")
    }
    checks = _checks_by_partition(p.instance, result.run_id)
    assert not checks["Ost"]["features:features_row_count_change"].passed
    assert checks["Nord"]["features:features_row_count_change"].passed
    assert not any(name.startswith("forecast:") for name in checks["Ost"])
    assert p.forecast_files("Ost") == before["Ost"]  # not re-forecast from blocked features
    for region in ("Nord", "Rhein_Main"):
        drift = _latest(p.instance, DRIFT_REPORT_KEY, region)
        assert drift.metadata["model_label"].value == f"{region}:v1"
        # its estimate plot is the report's (stored), not drawn a second time
        [estimated] = (p.workspace.root / "monitoring" / region).glob("estimated_performance.*")
        shown = drift.metadata["estimated_performance"].value
        assert base64.b64encode(estimated.read_bytes()).decode() in shown
        realized = _latest(p.instance, REALIZED_PERFORMANCE_KEY, region)
        assert realized.metadata["origins"].value >= 1
    logs = [r.user_message for r in p.instance.all_logs(result.run_id)]
    assert any(
        "Ost: forecast, realized_performance, drift_report not computed, features failed "
        "the blocking check(s) features_row_count_change" in m
        for m in logs
    )

    drawn = _plots_drawn_by(p, "monitoring_job", monkeypatch)
    assert {region for region, _ in drawn} == {"Ost"}
    for region in FIRST_THREE:  # every report embeds its region's stored plots
        folder = p.workspace.root / "monitoring" / region
        html = (folder / "report.html").read_text()
        stored = sorted([*folder.glob("*.png"), *folder.glob("*.svg")])
        assert len(stored) >= 2  # at least the heatmap (svg) and the attribution (png)
        for image in stored:
            assert base64.b64encode(image.read_bytes()).decode() in html, image.name


def _plots_drawn_by(p, job: str, monkeypatch) -> list[tuple[str, str]]:
    """(region, plot name) of every report plot drawn while ``job`` runs."""
    from mlops_assets.storage.plot_store import RegionPlotStore

    drawn: list[tuple[str, str]] = []
    image = RegionPlotStore.image

    def spy(self, name, inputs, draw, **kwargs):
        def recorded():
            drawn.append((self.region, name))
            return draw()

        return image(self, name, inputs, recorded, **kwargs)

    monkeypatch.setattr(RegionPlotStore, "image", spy)
    assert p.execute(job).success
    monkeypatch.undo()
    return drawn


def test_a_backfill_of_features_and_models_runs_both_in_one_run(model_pipeline):
    """One op computes every region asset: an asset backfill of features and models
    groups them into one run per batch (no wait for the backfill daemon between them),
    and a batch builds each region's model on the features it has just written."""
    p = model_pipeline()
    asset_graph = p.defs.resolve_asset_graph()
    keys = [FEATURES_KEY, REGION_MODEL_KEY, FORECAST_KEY, REALIZED_PERFORMANCE_KEY]
    policies = {asset_graph.get(k).backfill_policy for k in [*keys, DRIFT_REPORT_KEY]}
    assert len(policies) == 1
    both = dg.define_asset_job("features_and_models", selection=dg.AssetSelection.assets(*keys[:3]))
    defs = dg.Definitions.merge(p.defs, dg.Definitions(jobs=[both]))

    result = defs.resolve_job_def("features_and_models").execute_in_process(
        instance=p.instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "Nord", ASSET_PARTITION_RANGE_END_TAG: "Ost"},
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )

    assert result.success
    for key in keys[:3]:
        assert p.instance.get_materialized_partitions(key) >= {"Nord", "Ost"}
    for region in ("Nord", "Ost"):
        features = _latest(p.instance, FEATURES_KEY, region)
        model = _latest(p.instance, REGION_MODEL_KEY, region)
        assert features.tags["dagster/data_version"]
        assert (
            p.registry.latest_approved(region).record["training_data_version"]
            == (features.tags["dagster/data_version"])
        )
        assert model.metadata["model_label"].value == f"{region}:v1"


def test_a_batch_refuses_to_run_beside_a_step_that_waits_on_it(defs, instance):
    """Only an unpartitioned asset can still wait on the region op (monitoring_alerts on
    drift_report). In a job over several regions Dagster would skip it and end the run
    SUCCESS with no fleet comparison: the run fails before any work, saying why."""
    both = dg.define_asset_job(
        "reports_and_alerts",
        selection=dg.AssetSelection.assets(DRIFT_REPORT_KEY, "monitoring_alerts"),
    )
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[both]))
    instance.add_dynamic_partitions(region_partitions.name, ["Nord", "Ost"])

    result = merged.resolve_job_def("reports_and_alerts").execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: "Nord", ASSET_PARTITION_RANGE_END_TAG: "Ost"},
        raise_on_error=False,
    )

    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "region_pipeline"
    message = failure.step_failure_data.error.message
    assert "a run over 2 regions cannot also run monitoring_alerts" in message
    assert "asset backfill" in message
    assert instance.get_materialized_partitions(DRIFT_REPORT_KEY) == set()
