"""The landing sensor: new file content in the landing zone -> one ingest run."""

import hashlib
import json
import time

import dagster as dg

from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.landing import plan_landing, requeue_count

INGEST_JOB = "ingest_job"


def build_landing_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        job_name=INGEST_JOB,
        minimum_interval_seconds=30,
        default_status=default_status,
        description="Watches landing/<source>/ folders; requests one ingest run per tick for "
        "file contents not yet in the manifest (keyed by SHA-256, so renamed or re-dropped "
        "copies are not ingested twice).",
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, workspace: WorkspaceResource
    ) -> dg.SensorResult | dg.SkipReason:
        ws, spec = workspace.workspace(), workspace.dataset()
        cursor = json.loads(context.cursor) if context.cursor else None
        plan = plan_landing(ws, spec, cursor, now=time.time())
        new_cursor = json.dumps(plan.cursor, sort_keys=True)
        if not plan.files:
            context.update_cursor(new_cursor)
            return dg.SkipReason(
                f"no new landing files ({plan.skipped_known} known, {plan.deferred} deferred)"
            )
        # a requeued file needs a new key: Dagster launches a run key only once
        attempts = "".join(f"{sha}:{requeue_count(ws, sha)};" for sha in plan.shas)
        run_key = "ingest-" + hashlib.sha256(attempts.encode()).hexdigest()[:32]
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
            tags={"mlops/trigger": "landing_sensor"},
        )
        return dg.SensorResult(run_requests=[request], cursor=new_cursor)

    return landing_sensor
