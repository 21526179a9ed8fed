"""Monitoring triggers: region refreshes -> fleet alerts; a quality breach -> tuning.

Drift alone only notifies (the reference policy); a model-quality breach of region R starts
one tuning run for R, once per approved model version, and the tuned model then waits for a
person's approval.
"""

import json

import dagster as dg

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.features.jobs import FEATURES_JOB, REFRESH_JOB
from mlops_assets.defs.models.tuning import TUNING_JOB
from mlops_assets.defs.monitoring.alerts import MONITORING_ALERTS_KEY
from mlops_assets.defs.monitoring.drift import DRIFT_REPORT_KEY
from mlops_assets.defs.run_status import materializing
from mlops_assets.naming import is_safe_key

MONITORING_JOB = "monitoring_job"

monitoring_job = dg.define_asset_job(
    MONITORING_JOB,
    selection=dg.AssetSelection.assets(MONITORING_ALERTS_KEY),
    description="Compare every region's monitoring statistics, raise and notify alerts, "
    "write the HTML reports.",
)


def _newest_storage_id(context: dg.SensorEvaluationContext, key: dg.AssetKey) -> int:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key), limit=1, ascending=False
    ).records
    return records[0].storage_id if records else 0


def build_monitoring_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="monitoring_sensor",
        job=monitoring_job,
        # an idle tick reads one materialization record (10 ms with 300 regions), one
        # during a refresh also the active runs (27 ms with 100 queued): at 30 s,
        # rossmann-100's alerts waited 20.9 s for it, at 60 s 49.7 s
        minimum_interval_seconds=10,
        default_status=default_status,
        description="Once new drift reports exist and no region refresh is still running "
        "(no refresh_job or features_job run, no other run or asset backfill of features or "
        "drift_report with partitions still to launch or runs still going), runs "
        "`monitoring_alerts` over all regions (the cross-region comparison needs them all).",
    )
    def monitoring_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        newest = _newest_storage_id(context, DRIFT_REPORT_KEY)
        seen = int(context.cursor or 0)
        if newest <= seen:
            return dg.SkipReason("no new drift reports")
        # a refresh of the regions (the region sensor's runs, a backfill from the UI) must
        # end first: fleet alerts compare every region's same week
        busy = materializing(
            context.instance, [FEATURES_KEY, DRIFT_REPORT_KEY], [REFRESH_JOB, FEATURES_JOB]
        )
        if busy:
            return dg.SkipReason(
                f"region refreshes still running ({busy}); waiting for all regions"
            )
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"monitoring-{newest}", tags={"mlops/trigger": "monitoring_sensor"}
                )
            ],
            cursor=str(newest),
        )

    return monitoring_sensor


def build_quality_tuning_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="quality_tuning_sensor",
        job_name=TUNING_JOB,
        minimum_interval_seconds=60,
        default_status=default_status,
        description="A model-quality breach of region R (the ERROR check of "
        "`monitoring_alerts`) starts a tuning run for R only, once per approved model "
        "version. Drift alerts never retrain.",
    )
    def quality_tuning_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult | dg.SkipReason:
        after = int(context.cursor or 0)
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=MONITORING_ALERTS_KEY, after_storage_id=after or None),
            limit=100,
            ascending=True,
        ).records
        if not records:
            return dg.SkipReason("no new monitoring results")
        requests = {}
        for rec in records:
            meta = rec.asset_materialization.metadata.get("quality_breaches")
            for breach in meta.value if meta is not None else []:
                region = breach.get("region", "")
                if not is_safe_key(region):
                    continue
                run_key = f"tuning-{region}-v{int(breach['approved_version'])}"
                requests[run_key] = dg.RunRequest(
                    run_key=run_key,
                    partition_key=region,
                    tags={
                        "mlops/trigger": "quality_tuning_sensor",
                        "mlops/breach_week": str(breach.get("week_start")),
                    },
                )
        return dg.SensorResult(
            run_requests=list(requests.values()),
            cursor=json.dumps(records[-1].storage_id),
        )

    return quality_tuning_sensor
