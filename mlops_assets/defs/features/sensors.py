"""The region sensor: raw data changed -> register new regions, refresh what they feed."""

import json
from collections.abc import Sequence

import dagster as dg

from mlops_assets.defs.features.assets import FEATURES_KEY
from mlops_assets.defs.features.jobs import FEATURES_JOB, REFRESH_JOB, features_job, refresh_job
from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.ingest.sensors import INGEST_JOB
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.defs.run_status import job_in_progress
from mlops_assets.landing import ALL_REGIONS
from mlops_assets.settings import DEFAULT_REGIONS_PER_RUN
from mlops_assets.warehouse import regions_with_sales

__all__ = ["FEATURES_JOB", "REFRESH_JOB", "build_region_sensor"]

# the run tags of a run over a range of partitions (what an asset backfill sets)
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def build_region_sensor(
    sources: list[str],
    default_status: dg.DefaultSensorStatus,
    regions_per_run: int = DEFAULT_REGIONS_PER_RUN,
) -> dg.SensorDefinition:
    keys = [raw_asset_key(s) for s in sources]

    @dg.sensor(
        name="region_sensor",
        jobs=[features_job, refresh_job],
        # a tick without new raw data reads the raw assets' newest materializations (28 ms
        # with 300 regions): at 30 s, rossmann-100's features waited 27 s after ingestion
        minimum_interval_seconds=10,
        default_status=default_status,
        description="After raw data lands: adds a `region` partition for every region with "
        "sales (keys sanitised, display names kept in metadata) and requests runs for the "
        f"regions the new files touched, up to {regions_per_run} neighbouring regions per "
        "run (a range of partitions): `refresh_job` (features -> forecast -> "
        "realized_performance -> drift_report) where the region has an approved model, "
        "`features_job` where it has none yet (training and approval are `train_job` and "
        "the registry's). Run keys come from the raw materializations' "
        "storage ids: one run per region (or range) and change. While an `ingest_job` "
        "run is queued or running it waits, so a region's features are built once from "
        "all the files that run ingests.",
    )
    def region_sensor(
        context: dg.SensorEvaluationContext, workspace: WorkspaceResource
    ) -> dg.SensorResult | dg.SkipReason:
        if job_in_progress(context.instance, INGEST_JOB):
            # its raw assets are materialized one step at a time: features built after the
            # first (e.g. the store master) are built again after raw_sales (cursor kept)
            return dg.SkipReason("an ingest run is in progress; waiting for it to finish")
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
        if not newest:
            # regions only appear with raw data: no new materialization, no warehouse
            # query (it reads the store column of every raw sales row)
            return dg.SkipReason("no raw data changes")
        known = regions_with_sales(workspace.workspace(), workspace.dataset())
        # in Dagster's order (the order they were added): a run over a range of regions
        # takes every region between its first and last
        existing = list(context.instance.get_dynamic_partitions(region_partitions.name))
        added = sorted(set(known) - set(existing))
        targets = set(known) if ALL_REGIONS in touched else touched & set(known)
        targets |= set(added)
        # regions whose features were built after the newest change already saw it (a
        # demo or another driver ran them): one run per region and change, whatever the
        # run keys of those runs were (a batch's key names a range, not each region)
        targets -= features_built_after(context.instance, targets, newest)
        if not targets and not added:
            return dg.SensorResult(
                cursor=json.dumps(cursor, sort_keys=True), skip_reason="no raw data changes"
            )
        registry = workspace.registry()
        approved = {r for r in targets if registry.latest_approved(r) is not None}
        order = [*existing, *added]
        requests = [
            region_request(REFRESH_JOB, batch, newest, known)
            for batch in contiguous_batches(order, approved, regions_per_run)
        ]
        requests += [
            region_request(FEATURES_JOB, batch, newest, known)
            for batch in contiguous_batches(order, targets - approved, regions_per_run)
        ]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=(
                [region_partitions.build_add_request(added)] if added else []
            ),
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return region_sensor


def features_built_after(
    instance: dg.DagsterInstance, regions: set[str], storage_id: int
) -> set[str]:
    """The ``regions`` whose features were materialized after event ``storage_id``."""
    if not regions or not storage_id:
        return set()
    found: set[str] = set()
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=FEATURES_KEY,
                asset_partitions=sorted(regions),
                after_storage_id=storage_id,
            ),
            limit=1000,
            cursor=cursor,
        )
        found.update(r.partition_key for r in result.records if r.partition_key)
        if not result.has_more:
            return found
        cursor = result.cursor


def contiguous_batches(order: Sequence[str], wanted: set[str], size: int) -> list[list[str]]:
    """``wanted`` regions cut into runs of at most ``size`` regions that are neighbours in
    ``order``, so each run is a range of partitions that holds nothing else."""
    batches: list[list[str]] = []
    current: list[str] = []
    for region in order:
        if region in wanted and len(current) < size:
            current.append(region)
            continue
        if current:
            batches.append(current)
        current = [region] if region in wanted else []
    if current:
        batches.append(current)
    return batches


def region_request(
    job_name: str, batch: list[str], newest: int, known: dict[str, str]
) -> dg.RunRequest:
    """``job_name`` for one region, or for a range of neighbouring regions. The run key
    names the regions and the change: a re-evaluated tick never launches either twice
    (a region is refreshed or has its features built, never both, for one change)."""
    first, last = batch[0], batch[-1]
    tags = {"mlops/trigger": "region_sensor"}
    if len(batch) == 1:
        return dg.RunRequest(
            job_name=job_name,
            partition_key=first,
            run_key=f"refresh-{first}-{newest}",
            tags={**tags, "mlops/region": known[first]},
        )
    return dg.RunRequest(
        job_name=job_name,
        run_key=f"refresh-{first}-{last}-{newest}",
        tags={
            **tags,
            "mlops/regions": str(len(batch)),
            RANGE_START_TAG: first,
            RANGE_END_TAG: last,
        },
    )
