"""Drive the sensors and their runs in-process, the way the daemon would.

`make demo`, the end-to-end tests and CI use this instead of a running daemon: each
round evaluates every sensor once against a real DagsterInstance, applies the dynamic
partition requests, and executes the requested runs (in the same process). Run keys are
honoured like the daemon does: a key is launched at most once per sensor. Cursors are
kept in the instance's key-value store so a later call carries on where this one ended.
"""

import json
from dataclasses import dataclass, field

import dagster as dg

_STATE_KEY = "mlops_assets/local_driver"
# the sensors that move data forward; the run-failure notifier is left to the daemon
PIPELINE_SENSORS = ("landing_sensor", "region_sensor", "monitoring_sensor", "quality_tuning_sensor")


@dataclass
class DriverRun:
    sensor: str
    job: str
    partition_key: str | None
    run_id: str
    success: bool
    assets: list[str]
    failed_checks: list[str] = field(default_factory=list)
    # a run over a range of partitions (the region sensor's batches): its first and last
    partition_range: tuple[str, str] | None = None


def _load_state(instance: dg.DagsterInstance) -> dict:
    raw = instance.run_storage.get_cursor_values({_STATE_KEY}).get(_STATE_KEY)
    return json.loads(raw) if raw else {"cursors": {}, "run_keys": {}}


def _save_state(instance: dg.DagsterInstance, state: dict) -> None:
    instance.run_storage.set_cursor_values({_STATE_KEY: json.dumps(state)})


def run_sensors(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    sensor_names: list[str] | None = None,
    *,
    max_rounds: int = 10,
    log_level: str = "WARNING",
) -> list[DriverRun]:
    """Tick the sensors until none requests a run; return every run launched."""
    names = list(sensor_names or PIPELINE_SENSORS)
    state = _load_state(instance)
    launched: list[DriverRun] = []
    for _ in range(max_rounds):
        requested = 0
        for name in names:
            sensor = defs.resolve_sensor_def(name)
            tick = evaluate_sensor(defs, instance, name, state["cursors"].get(name))
            if tick.cursor is not None:
                state["cursors"][name] = tick.cursor
            for req in tick.partition_requests:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            seen = state["run_keys"].setdefault(name, [])
            for req in tick.run_requests:
                if req.run_key and req.run_key in seen:
                    continue
                requested += 1
                launched.append(_execute(defs, instance, sensor, req, log_level))
                if req.run_key:
                    seen.append(req.run_key)
            _save_state(instance, state)
        if not requested:
            break
    return launched


def run_partitions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str,
    partition_keys: list[str],
    *,
    log_level: str = "WARNING",
    tags: dict[str, str] | None = None,
) -> list[DriverRun]:
    """Run a partitioned job once per partition, as a backfill or schedule would."""
    job = defs.resolve_job_def(job_name)
    runs = []
    for key in partition_keys:
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            instance=instance,
            partition_key=key,
            tags=tags or {},
            raise_on_error=False,
        )
        runs.append(_summarise(job_name, key, result, "-"))
    return runs


@dataclass
class SensorTick:
    run_requests: list[dg.RunRequest]
    partition_requests: list
    cursor: str | None
    skip_reason: str | None


def evaluate_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, name: str, cursor: str | None = None
) -> SensorTick:
    """Evaluate one sensor tick and return its raw requests and new cursor.

    The sensor is called directly: `evaluate_tick` would validate partition keys before
    the tick's own dynamic-partition requests are applied, which the daemon does first.
    """
    sensor = defs.resolve_sensor_def(name)
    # entered as the daemon does: the notifier resource nests the workspace resource
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources=dict(defs.resources or {}),
        sensor_name=name,
    ) as context:
        result = sensor(context)
    runs: list[dg.RunRequest] = []
    partitions: list = []
    skip = None
    if isinstance(result, dg.SensorResult):
        runs, partitions = (
            list(result.run_requests or []),
            list(result.dynamic_partitions_requests or []),
        )
        skip = result.skip_reason.skip_message if result.skip_reason else None
        new_cursor = result.cursor if result.cursor is not None else context.cursor
    else:
        if isinstance(result, dg.RunRequest):
            runs = [result]
        elif isinstance(result, list):
            runs = [r for r in result if isinstance(r, dg.RunRequest)]
        elif isinstance(result, dg.SkipReason):
            skip = result.skip_message
        new_cursor = context.cursor
    return SensorTick(runs, partitions, new_cursor, skip)


def _execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    sensor: dg.SensorDefinition,
    req: dg.RunRequest,
    log_level: str,
) -> DriverRun:
    job_name = req.job_name or sensor.job_name
    job = defs.resolve_job_def(job_name)
    result = job.execute_in_process(
        run_config={
            **(req.run_config or {}),
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        instance=instance,
        partition_key=req.partition_key,
        asset_selection=list(req.asset_selection) if req.asset_selection else None,
        # the tags the daemon gives a sensor's run, so both see the same run history
        tags={
            **req.tags,
            "dagster/sensor_name": sensor.name,
            **({"dagster/run_key": req.run_key} if req.run_key else {}),
        },
        raise_on_error=False,
    )
    run = _summarise(job_name, req.partition_key, result, sensor.name)
    if req.partition_key_range is not None:
        run.partition_range = (req.partition_key_range.start, req.partition_key_range.end)
    return run


def _summarise(
    job_name: str,
    partition_key: str | None,
    result: dg.ExecuteInProcessResult,
    sensor_name: str,
) -> DriverRun:
    failed = [
        f"{ev.asset_check_evaluation_data.asset_key.to_user_string()}:"
        f"{ev.asset_check_evaluation_data.check_name}"
        for ev in result.all_events
        if ev.event_type_value == "ASSET_CHECK_EVALUATION"
        and not ev.asset_check_evaluation_data.passed
    ]
    assets = sorted(
        {
            ev.asset_key.to_user_string()
            for ev in result.all_events
            if ev.event_type_value == "ASSET_MATERIALIZATION"
        }
    )
    return DriverRun(
        sensor=sensor_name,
        job=job_name,
        partition_key=partition_key,
        run_id=result.run_id,
        success=result.success,
        assets=assets,
        failed_checks=failed,
    )
