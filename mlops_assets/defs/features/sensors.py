"""The region sensor: raw data changed -> register new regions, refresh their features."""

import json

import dagster as dg

from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.landing import ALL_REGIONS
from mlops_assets.warehouse import regions_with_sales

FEATURES_JOB = "features_job"


def build_region_sensor(
    sources: list[str], default_status: dg.DefaultSensorStatus
) -> dg.SensorDefinition:
    keys = [raw_asset_key(s) for s in sources]

    @dg.sensor(
        name="region_sensor",
        job_name=FEATURES_JOB,
        minimum_interval_seconds=30,
        default_status=default_status,
        description="After raw data lands: adds a `region` partition for every region with "
        "sales (keys sanitised, display names kept in metadata) and requests `features` "
        "runs for the regions the new files touched.",
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
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    partition_key=region,
                    run_key=f"features-{region}-{newest}",
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
