"""Region partitions: discovered from the data, added by the region sensor."""

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
