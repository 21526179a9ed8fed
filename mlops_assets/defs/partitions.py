"""Region partitions: discovered from the data, added by the region sensor."""

import dagster as dg

region_partitions = dg.DynamicPartitionsDefinition(name="region")
