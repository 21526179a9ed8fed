"""Freshness of the landing feed: Dagster's built-in last-update checks on raw sales."""

from datetime import timedelta

import dagster as dg

from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.spec import DatasetSpec


def build_landing_freshness(
    spec: DatasetSpec, default_status: dg.DefaultSensorStatus
) -> tuple[list[dg.AssetChecksDefinition], dg.SensorDefinition]:
    """WARN when no sales file has been ingested for ``thresholds.landing_max_age_days``."""
    checks = list(
        dg.build_last_update_freshness_checks(
            assets=[raw_asset_key(spec.source_name("sales"))],
            lower_bound_delta=timedelta(days=spec.thresholds.landing_max_age_days),
            severity=dg.AssetCheckSeverity.WARN,
        )
    )
    sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=checks,
        name="landing_freshness_sensor",
        minimum_interval_seconds=3600,
        default_status=default_status,
    )
    return checks, sensor
