"""The region sensor: raw data changed -> register new regions, refresh what they feed."""

import json

import dagster as dg

from mlops_assets.defs.features.jobs import FEATURES_JOB, REFRESH_JOB, features_job, refresh_job
from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.landing import ALL_REGIONS
from mlops_assets.warehouse import regions_with_sales

__all__ = ["FEATURES_JOB", "REFRESH_JOB", "build_region_sensor"]


def build_region_sensor(
    sources: list[str], default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    keys = [raw_asset_key(s) for s in sources]

    @dg.sensor(
        name="region_sensor",
        jobs=[features_job, refresh_job],
        minimum_interval_seconds=30,
        default_status=default_status,
        description="After raw data lands: adds a `region` partition for every region with "
        "sales (keys sanitised, display names kept in metadata) and requests one run per "
        "region the new files touched: `refresh_job` (features -> forecast -> "
        "realized_performance) where the region has an approved model, `features_job` "
        "where it has none yet (training and approval are `train_job` and the registry's). "
        "Run keys come from the raw materializations' storage ids: one run per region and "
        "change, whichever job it is.",
    )
    def region_sensor(
        context: dg.SensorEvaluationContext, workspace: WorkspaceResource
    ) -> dg.SensorResult | dg.SkipReason:
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        touched: set[str] = set()
        newest = 0
        for key in keys:
            after = cursor.get(key.to_user_string(), 0)
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=after or None),
                limit=1000,
                ascending=True,
            ).records
            for rec in records:
                regions = rec.asset_materialization.metadata.get("affected_regions")
                touched.update(regions.value if regions is not None else [])
                cursor[key.to_user_string()] = max(after, rec.storage_id)
                newest = max(newest, rec.storage_id)
        known = regions_with_sales(workspace.workspace(), workspace.dataset())
        existing = set(context.instance.get_dynamic_partitions(region_partitions.name))
        added = sorted(set(known) - existing)
        targets = set(known) if ALL_REGIONS in touched else touched & set(known)
        targets |= set(added)
        if not targets and not added:
            return dg.SensorResult(
                cursor=json.dumps(cursor, sort_keys=True), skip_reason="no raw data changes"
            )
        registry = workspace.registry()
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    job_name=(
                        REFRESH_JOB
                        if registry.latest_approved(region) is not None
                        else FEATURES_JOB
                    ),
                    partition_key=region,
                    # the same key whichever job: a re-evaluated tick never launches both
                    run_key=f"refresh-{region}-{newest}",
                    tags={"mlops/trigger": "region_sensor", "mlops/region": known[region]},
                )
                for region in sorted(targets)
            ],
            dynamic_partitions_requests=(
                [region_partitions.build_add_request(added)] if added else []
            ),
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return region_sensor
