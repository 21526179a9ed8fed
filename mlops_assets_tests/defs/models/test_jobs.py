"""The registry job (launchpad config) and the weekly retrain schedule."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.models.jobs import TRAIN_JOB
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.registry import APPROVED, ARCHIVED, PENDING, REJECTED, ModelRegistry
from mlops_assets.workspace import Workspace

REGION = "Rhein_Main"


def _register(registry: ModelRegistry, status: str) -> int:
    """A version with placeholder artifacts (the registry job never loads the model)."""
    mv = registry.register(
        REGION,
        model_text="tree\nplaceholder\n",
        model_meta={"features": []},
        record={"source": "tuning"},
        status=status,
        reasons=["gate_metric_threshold: mape 99% > 45%"] if status == REJECTED else [],
        actor="test",
    )
    return mv.version


def _launch(defs, instance, region=REGION, **config) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("registry_job").execute_in_process(
        run_config={"region": region, **config}, instance=instance, raise_on_error=False
    )


def _observations(instance) -> list[dict]:
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=REGION_MODEL_KEY, asset_partitions=[REGION]), limit=10
    ).records
    return [
        {k: v.value for k, v in r.asset_observation.metadata.items()} for r in reversed(records)
    ]


def test_registry_job_approves_a_pending_version_and_refuses_a_rejected_one(
    defs, instance, settings
):
    registry = ModelRegistry.for_workspace(Workspace(settings.home))
    assert _register(registry, APPROVED) == 1
    assert _register(registry, PENDING) == 2

    result = _launch(
        defs,
        instance,
        version=2,
        action="approve",
        reason="reviewed the tuning report",
        actor="alice",
    )

    assert result.success
    assert [(v.version, v.status) for v in registry.versions(REGION)] == [
        (1, ARCHIVED),
        (2, APPROVED),
    ]
    approve, archive = registry.history(REGION)[-2:]
    assert (approve["action"], approve["version"], approve["actor"], approve["reason"]) == (
        "approve",
        2,
        "alice",
        "reviewed the tuning report",
    )
    assert (archive["action"], archive["version"], archive["to_status"]) == ("archive", 1, ARCHIVED)
    assert _observations(instance) == [
        {
            "action": "approve",
            "model_label": f"{REGION}:v2",
            "status": APPROVED,
            "approved_version": f"{REGION}:v2",
            "actor": "alice",
            "reason": "reviewed the tuning report",
        }
    ]

    # a rejected version can never be approved or rejected again: the run fails and says why
    assert _register(registry, REJECTED) == 3
    events_before = registry.history(REGION)
    failed = _launch(defs, instance, version=3, action="reject", reason="again", actor="bob")

    assert not failed.success
    error = failed.failure_data_for_node("change_model_status").error
    assert f"{REGION}:v3 is rejected; only a pending_approval version can be rejected" in (
        error.to_string()
    )
    assert registry.history(REGION) == events_before
    assert registry.latest_approved(REGION).version == 2
    assert len(_observations(instance)) == 1


def test_registry_job_refuses_an_unknown_region_or_version_before_any_run(defs, instance, settings):
    registry = ModelRegistry.for_workspace(Workspace(settings.home))
    assert _register(registry, PENDING) == 1
    events = registry.history(REGION)
    with pytest.raises(dg.DagsterInvalidConfigError, match="action"):
        _launch(defs, instance, version=1, action="delete", reason="looks good")
    with pytest.raises(
        dg.DagsterInvalidConfigError, match="reason: String should have at least 3 characters"
    ):
        _launch(defs, instance, version=1, action="approve", reason="ok")
    with pytest.raises(
        dg.DagsterInvalidConfigError,
        match=f"no model of region 'Atlantis' is registered; regions with models: {REGION}",
    ):
        _launch(defs, instance, region="Atlantis", version=1, action="approve", reason="ok!")
    with pytest.raises(
        dg.DagsterInvalidConfigError,
        match=rf"{REGION} has no model version 7; its versions: v1 \(pending_approval\)",
    ):
        _launch(defs, instance, version=7, action="approve", reason="looks good")
    # refused at launch: no run exists (nothing red on the Runs page), nothing changed
    assert instance.get_runs() == []
    assert registry.history(REGION) == events and registry.latest_approved(REGION) is None
    # the version is checked again in the run: one pruned from under a launched run fails
    # it with the same reason (a config-validated launch whose version vanished)
    job = defs.resolve_job_def("registry_job")
    op_config = {"region": REGION, "version": 7, "action": "approve", "reason": "race!"}
    failed = job.graph.execute_in_process(
        run_config={"ops": {"change_model_status": {"config": op_config}}},
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )
    error = failed.failure_data_for_node("change_model_status").error.to_string()
    assert f"{REGION} has no model version 7" in error


def test_registry_job_launchpad_fields_are_described(defs):
    job = defs.resolve_job_def("registry_job")
    assert job.partitions_def is None  # the region is a field: checked with the version
    config = job.run_config_schema.config_type.fields  # the launchpad's form
    assert set(config) == {"region", "version", "action", "reason", "actor"}
    assert all(f.description for f in config.values())


def test_weekly_schedule_requests_one_keyed_run_per_region(defs, instance):
    schedule = defs.resolve_schedule_def("weekly_retrain_schedule")
    assert schedule.job_name == TRAIN_JOB
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED  # ci drives runs itself
    regions = ["Nord", "Rhein_Main", "Sud"]
    instance.add_dynamic_partitions(region_partitions.name, regions)
    monday = datetime(2024, 2, 5, 3, tzinfo=UTC)
    repository = defs.get_repository_def()  # so the tick resolves partitions like the daemon

    def tick(when: datetime) -> list[dg.RunRequest]:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, repository_def=repository
        )
        return list(schedule.evaluate_tick(context).run_requests or [])

    requests = tick(monday)
    assert sorted(r.partition_key for r in requests) == regions
    assert sorted(r.run_key for r in requests) == [f"weekly-{r}-2024-02-05" for r in regions]
    assert {r.tags.get("mlops/trigger") for r in requests} == {"weekly_retrain_schedule"}
    # a re-evaluated tick asks for the same keys (launched once); next week's are new
    assert sorted(r.run_key for r in tick(monday)) == sorted(r.run_key for r in requests)
    next_week = {r.run_key for r in tick(monday + timedelta(days=7))}
    assert next_week == {f"weekly-{r}-2024-02-12" for r in regions}


def _retention(defs, instance, **config) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("registry_retention_job").execute_in_process(
        run_config={"ops": {"prune_registry": {"config": config}}}, instance=instance
    )


def test_retention_job_prunes_old_versions_per_the_spec_and_observes_it(defs, instance, settings):
    registry = ModelRegistry.for_workspace(Workspace(settings.home))
    instance.add_dynamic_partitions(region_partitions.name, [REGION])
    for _ in range(7):  # seven weekly recalibrations: v1..v6 archived, v7 approved
        _register(registry, APPROVED)
    _register(registry, REJECTED)  # v8
    size = registry.artifact_bytes(registry.get(REGION, 1))

    dry = _retention(defs, instance, dry_run=True)
    assert dry.success
    assert registry.pruned(REGION) == {}
    assert _observations(instance)[-1]["retention"] == "would prune 2 version(s)"

    # the spec's defaults: 4 archived and 2 rejected kept -> v1 and v2 go
    assert _retention(defs, instance, actor="ops").success
    assert sorted(registry.pruned(REGION)) == [1, 2]
    observed = _observations(instance)[-1]
    assert observed["pruned_versions"] == f"{REGION}:v1, {REGION}:v2"
    assert observed["freed_bytes"] == 2 * size
    assert (observed["keep_archived"], observed["keep_rejected"]) == (4, 2)

    # the launchpad overrides the spec
    assert _retention(defs, instance, keep_archived=1, keep_rejected=0).success
    assert sorted(registry.pruned(REGION)) == [1, 2, 3, 4, 5, 8]
    assert registry.latest_approved(REGION).version == 7
    registry.rollback(REGION, 6, actor="ops", reason="the kept one is a rollback target")


def test_retention_schedule_runs_the_retention_job_after_the_retrain(defs):
    schedule = defs.resolve_schedule_def("registry_retention_schedule")
    assert schedule.job_name == "registry_retention_job"
    assert schedule.cron_schedule == "0 6 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
