"""Region partitions: discovered from the data, added by the region sensor."""

import warnings

import dagster as dg

region_partitions = dg.DynamicPartitionsDefinition(name="region")


def latest_materialization(
    instance: dg.DagsterInstance, key: dg.AssetKey, partition: str
) -> dg.AssetMaterialization | None:
    """The latest materialization of one partition of an asset, or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].asset_materialization if records else None


def region_check_spec(
    name: str, asset: dg.AssetKey, *, blocking: bool, description: str
) -> dg.AssetCheckSpec:
    """A check of a region-partitioned asset whose results are recorded per region: without
    the partitions definition, Dagster files every region's result under one unpartitioned
    check, so its history (and the plots on the Checks tab) mixes regions in one series."""
    # per-partition checks are a preview in dagster 1.13 (pinned to 1.13.* in pyproject)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name,
            asset=asset,
            blocking=blocking,
            description=description,
            partitions_def=region_partitions,
        )
