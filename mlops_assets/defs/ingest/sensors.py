"""The landing sensor: landing files whose content is not in the manifest -> an ingest run.

It compares the landing zone with the manifest on every tick instead of trusting that a
requested run did its work: a file stays requested until the manifest has it, and when
the run it was requested under ends (success, failure, a crash that run monitoring
marked failed) without ingesting it, the next tick requests it again under a new run
key. A run key names the attempt, not only the files: Dagster launches a key at most once.
"""

import hashlib
import json
import time

import dagster as dg

from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.landing import LANDING_SENSOR_INTERVAL_S, plan_landing, requeue_counts

INGEST_JOB = "ingest_job"
LANDING_SENSOR = "landing_sensor"
TRIGGER_TAG = "mlops/trigger"
RUN_KEY_TAG = "dagster/run_key"
# a request whose run does not exist yet is trusted this long (the daemon creates the run
# right after the tick; a daemon killed in between leaves no run behind)
REQUEST_GRACE_SECONDS = 120.0
# attempts of the same files before the sensor stops asking (`landing status` says so)
MAX_INGEST_ATTEMPTS = 5


def runs_with_key(instance: dg.DagsterInstance, run_key: str) -> list[dg.DagsterRun]:
    """The landing sensor's runs launched under ``run_key`` (retries of them included)."""
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key, TRIGGER_TAG: LANDING_SENSOR})
        )
    )


def next_attempt_key(instance: dg.DagsterInstance, base_key: str) -> tuple[str | None, str]:
    """The run key for the next attempt at ingesting a set of files (None: do not request
    now), and why.

    Attempt 1 is ``base_key``, attempt n is ``base_key.n``. The first key with no run is
    the next attempt; a key whose run is still queued or running means the files are being
    ingested; after ``MAX_INGEST_ATTEMPTS`` ended attempts the sensor gives up. The
    attempts live in the instance, so a lost cursor changes nothing.
    """
    for attempt in range(1, MAX_INGEST_ATTEMPTS + 1):
        key = base_key if attempt == 1 else f"{base_key}.{attempt}"
        runs = runs_with_key(instance, key)
        if not runs:
            return key, f"attempt {attempt}"
        if not all(run.is_finished for run in runs):
            return None, f"attempt {attempt} is queued or running ({runs[0].run_id})"
    return None, f"gave up after {MAX_INGEST_ATTEMPTS} ingest runs ended without ingesting them"


def build_landing_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name=LANDING_SENSOR,
        job_name=INGEST_JOB,
        minimum_interval_seconds=LANDING_SENSOR_INTERVAL_S,
        default_status=default_status,
        description="Compares landing/<source>/ folders with the ingestion manifest and "
        "requests one ingest run for file contents the manifest does not have and no queued "
        "or running ingest run is working on (keyed by SHA-256: renamed or re-dropped copies "
        "are not ingested twice; a run that ended without ingesting its files is followed by "
        "a new attempt).",
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, workspace: WorkspaceResource
    ) -> dg.SensorResult | dg.SkipReason:
        ws, spec = workspace.workspace(), workspace.dataset()
        cursor = json.loads(context.cursor) if context.cursor else None
        now = time.time()
        finished: dict[str, bool] = {}

        def in_flight(run_key: str | None, requested_at: float) -> bool:
            if run_key is None:
                return now - requested_at < REQUEST_GRACE_SECONDS
            if run_key not in finished:
                runs = runs_with_key(context.instance, run_key)
                finished[run_key] = bool(runs) and all(run.is_finished for run in runs)
                if not runs and now - requested_at >= REQUEST_GRACE_SECONDS:
                    finished[run_key] = True
            return not finished[run_key]

        plan = plan_landing(ws, spec, cursor, now=now, in_flight=in_flight)
        summary = (
            f"{plan.skipped_known} known, {plan.in_flight} in flight, {plan.deferred} deferred"
        )
        if plan.waiting_for_stores:
            summary += f", {plan.waiting_for_stores} waiting for a store master"
        run_key, why = None, ""
        if plan.files:
            # a requeued file needs a new key too: its requeue count is part of the files' key
            counts = requeue_counts(ws, list(plan.shas))
            attempts = "".join(f"{sha}:{counts[sha]};" for sha in plan.shas)
            base_key = "ingest-" + hashlib.sha256(attempts.encode()).hexdigest()[:32]
            run_key, why = next_attempt_key(context.instance, base_key)
            if run_key is not None:
                plan.requested_as(run_key)
        new_cursor = json.dumps(plan.cursor, sort_keys=True)
        if run_key is None:
            context.update_cursor(new_cursor)
            if plan.files:
                return dg.SkipReason(
                    f"{len(plan.shas)} landing file(s) not requested: {why} ({summary}); "
                    "see `mlops-assets landing status`"
                )
            return dg.SkipReason(f"no new landing files ({summary})")
        request = dg.RunRequest(
            run_key=run_key,
            run_config={
                "ops": {
                    raw_asset_key(source).to_python_identifier(): {
                        "config": {"files": [rel for rel, _ in files]}
                    }
                    for source, files in plan.files.items()
                }
            },
            asset_selection=[raw_asset_key(source) for source in plan.files],
            # the sensor is the retry: it requests again exactly what is still missing
            tags={TRIGGER_TAG: LANDING_SENSOR, "dagster/max_retries": "0"},
        )
        return dg.SensorResult(run_requests=[request], cursor=new_cursor)

    return landing_sensor


def pending_reasons(instance: dg.DagsterInstance, relpaths: list[str]) -> dict[str, str]:
    """Why each pending landing file is not ingested yet, from the newest landing-sensor
    run that listed it (files no run listed are left out)."""
    wanted, out = set(relpaths), {}
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TRIGGER_TAG: LANDING_SENSOR}), limit=500)
    for run in runs:  # newest first
        listed = {
            path
            for op in (run.run_config.get("ops") or {}).values()
            for path in (op.get("config") or {}).get("files", [])
        }
        for path in (wanted & listed) - out.keys():
            out[path] = _run_outcome(run)
    return out


def _run_outcome(run: dg.DagsterRun) -> str:
    key = run.tags.get(RUN_KEY_TAG, "")
    attempt = int(key.rsplit(".", 1)[1]) if "." in key else 1
    label = f"ingest run {run.run_id[:8]} (attempt {attempt})"
    if not run.is_finished:
        return f"{label} is {run.status.value.lower()}"
    if attempt >= MAX_INGEST_ATTEMPTS:
        return (
            f"{label} ended {run.status.value} without ingesting it; the landing sensor gave "
            f"up after {MAX_INGEST_ATTEMPTS} attempts: see the run's logs, fix the cause, then "
            "drop the file again under a new name or requeue it"
        )
    return (
        f"{label} ended {run.status.value} without ingesting it; the landing sensor requests "
        f"attempt {attempt + 1} on its next tick"
    )
