"""monitoring_alerts: the fleet view that turns every region's statistics into alerts.

The other regions are the control group, so alerts are decided here, over all regions at
once: a drift that moves every region alike (a season, a national holiday) is not an
alert, and a signal must persist (see ``mlops_assets.monitoring``). Checks: data drift,
attribution drift and data quality WARN (people are told, nothing retrains); model quality
is an ERROR, and the tuning sensor turns it into a tuning run for that region only.
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.defs.monitoring.assets import REALIZED_PERFORMANCE_KEY
from mlops_assets.defs.monitoring.drift import DRIFT_REPORT_KEY
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.naming import is_safe_key
from mlops_assets.registry import ModelRegistry, ModelVersion
from mlops_assets.spec import DatasetSpec
from mlops_assets.warehouse import connect, region_display_names
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets import monitoring

MONITORING_ALERTS_KEY = dg.AssetKey("monitoring_alerts")
# check -> (severity, signals it covers, notification kind, what it means)
ALERT_CHECKS = {
    "data_drift": (
        "WARN",
        ("data_drift", "multivariate_drift"),
        "drift_alert",
        "No region's inputs drift apart from the other regions for consecutive weeks.",
    ),
    "attribution_drift": (
        "WARN",
        ("attribution_drift",),
        "drift_alert",
        "No region's Shapley ranking falls below the NDCG threshold for consecutive weeks.",
    ),
    "data_quality": (
        "WARN",
        ("data_quality",),
        "drift_alert",
        "No missing values, unseen categories or out-of-range values beyond the training data.",
    ),
    "model_quality": (
        "ERROR",
        ("model_quality",),
        "quality_breach",
        "No region's weekly error exceeds its model's holdout error by the configured factor "
        "(and stands out from the other regions) for consecutive weeks.",
    ),
}


def build_monitoring_alerts_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    s = spec.monitoring
    metric = spec.gate.metric
    quality = (
        f"weekly {metric} above {s.quality_degradation:g}x the model's holdout {metric}"
        if s.quality_signal == "realized"
        else f"weekly RMSE estimated by nannyml DLE above {s.quality_degradation:g}x the "
        "model's holdout RMSE"
    )

    @dg.asset(
        key=MONITORING_ALERTS_KEY,
        group_name="monitoring",
        deps=[DRIFT_REPORT_KEY, REALIZED_PERFORMANCE_KEY],
        kinds={"nannyml", "html"},
        description=(
            "Alerts over every region: nannyml drift and data-quality findings that stand out "
            f"from the other regions by {s.stand_out_ratio:g}x, {quality}, attribution NDCG "
            f"below {s.ndcg_threshold:g}; each for {s.persistence_weeks} consecutive week(s). "
            "Notifies each new alert once, writes `monitoring/_fleet/alerts.parquet` and a "
            "self-contained HTML report per region (`monitoring/<region>/report.html`)."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                name,
                asset=MONITORING_ALERTS_KEY,
                blocking=False,
                description=f"[{sev}] {text}",
            )
            for name, (sev, _, _, text) in ALERT_CHECKS.items()
        ],
    )
    def monitoring_alerts(
        context: dg.AssetExecutionContext,
        workspace: WorkspaceResource,
        notifier: NotifierResource,
    ) -> dg.MaterializeResult:
        import pandas as pd

        from mlops_assets import monitoring
        from mlops_assets.plots import markdown_table

        # a week's quality against the model's holdout value of the same measure
        holdout_metric = monitoring.quality_metric(s, metric)
        ws, ds = workspace.workspace(), workspace.dataset()
        registry = workspace.registry()
        regions = [
            r
            for r in context.instance.get_dynamic_partitions(region_partitions.name)
            if is_safe_key(r)
        ]
        fleet = monitoring.fleet_inputs(ws, registry, regions, holdout_metric)
        approved, all_tables = fleet.approved, fleet.all_tables
        status = monitoring.fleet_status(
            all_tables, fleet.weekly, fleet.holdout_error, s, metric=metric
        )
        alerts_location = ws.data.write_frame(status.alerts, monitoring.alerts_key(ws))

        sent = _notify_new_alerts(notifier, status, approved, context.run.run_id)
        report_paths = _write_reports(ws, ds, registry, status, approved, fleet.tables)

        check_results, breaches = [], []
        for name, (sev, signals, _, _) in ALERT_CHECKS.items():
            hits = status.alerting(*signals)
            if name == "model_quality":
                breaches = [
                    {
                        "region": r.region,
                        "week_start": str(pd.Timestamp(r.week_start).date()),
                        "approved_version": approved[r.region].version,
                    }
                    for r in hits.itertuples()
                ]
            description = (
                "no region alerting"
                if hits.empty
                else "alerting: " + ", ".join(sorted(hits["region"].unique()))
            )
            check_metadata = {
                "regions": sorted(hits["region"].unique().tolist()),
                "findings": dg.MetadataValue.md(_findings(hits)),
            }
            if name == "model_quality" and s.quality_signal == "estimated":
                # a pass means little where the estimate cannot see the error
                blind = monitoring.estimate_blind_weeks(all_tables)
                if len(blind):
                    regions = sorted(blind["region"].unique())
                    description += (
                        "; estimate blind (inputs outside the training range) for: "
                        + ", ".join(regions)
                    )
                    check_metadata["estimate_blind_weeks"] = dg.MetadataValue.md(
                        markdown_table(blind.assign(week_start=blind["week_start"].astype(str)))
                    )
            check_results.append(
                dg.AssetCheckResult(
                    check_name=name,
                    passed=hits.empty,
                    severity=dg.AssetCheckSeverity[sev],
                    description=description,
                    metadata=check_metadata,
                )
            )
        metadata = {
            "regions_monitored": len(approved),
            "weeks": int(status.alerts["week_start"].nunique()) if len(status.alerts) else 0,
            "alerting_regions": sorted(status.alerting(*monitoring.ALERT_SIGNALS)["region"]),
            "quality_breaches": dg.MetadataValue.json(breaches),
            "notifications_sent": sent,
            "current_status": dg.MetadataValue.md(_findings(status.latest)),
            "alerts_path": dg.MetadataValue.path(alerts_location),
            "reports": dg.MetadataValue.md(
                markdown_table(
                    pd.DataFrame(
                        {"region": list(report_paths), "report": list(report_paths.values())}
                    )
                )
                if report_paths
                else "no reports"
            ),
            "notifications": notifier.feed_hint(),
        }
        return dg.MaterializeResult(metadata=metadata, check_results=check_results)

    return monitoring_alerts


def _findings(rows: "pd.DataFrame") -> str:
    import pandas as pd

    from mlops_assets.plots import markdown_table

    if rows.empty:
        return "no findings"
    shown = rows[["region", "signal", "week_start", "alert", "detail"]].copy()
    shown["week_start"] = pd.to_datetime(shown["week_start"]).dt.date.astype(str)
    return markdown_table(shown)


def _notify_new_alerts(
    notifier: NotifierResource,
    status: "monitoring.FleetStatus",
    approved: dict[str, ModelVersion],
    run_id: str,
) -> int:
    """One notification when a region's check starts alerting (not one a week while it
    lasts); once it stops, a new episode notifies again. State: which region x check x
    model version is alerting now (table ``alerting`` of the state database)."""
    import pandas as pd

    from mlops_assets.storage.notification_tables import alerting_keys, replace_alerting_keys

    engine = notifier.notifier().engine  # opening it imports a file-based state once
    before = alerting_keys(engine)
    now: set[str] = set()
    sent = 0
    for name, (_, signals, kind, _) in ALERT_CHECKS.items():
        for r in status.alerting(*signals).itertuples():
            week = str(pd.Timestamp(r.week_start).date())
            key = f"{r.region}|{name}|v{approved[r.region].version}"
            now.add(key)
            if key in before:
                continue
            notifier.send(
                kind,
                f"{name} in {r.region} since week of {week}: {r.detail or r.signal}",
                region=r.region,
                check=name,
                week_start=week,
                model_version=approved[r.region].version,
                run_id=run_id,
            )
            sent += 1
    replace_alerting_keys(engine, now)
    return sent


def _write_reports(
    ws: Workspace,
    ds: DatasetSpec,
    registry: ModelRegistry,
    status: "monitoring.FleetStatus",
    approved: dict[str, ModelVersion],
    tables: "dict[str, pd.DataFrame]",
) -> dict[str, str]:
    """The self-contained HTML report of every monitored region (``tables``: each one's
    drift report rows of its approved model). A plot whose inputs did not change since it
    was drawn is reused (``storage.plot_store``): the drift_report asset drew a refreshed
    region's plots in its run, and the other regions' plots did not change."""
    import pandas as pd

    from mlops_assets import reports

    paths = {}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    alerts = status.alerts
    # one warehouse connection for every region's ground truth: its views are defined
    # from the manifest of every ingested file, which grows with the fleet
    with connect(ws, ds) as warehouse:
        names = region_display_names(warehouse)
        for region, mv in approved.items():
            html = reports.region_report_html(
                ws,
                ds,
                registry,
                mv,
                drift_table=tables.get(region, pd.DataFrame()),
                alerts=alerts[alerts["region"] == region] if len(alerts) else pd.DataFrame(),
                region_name=names.get(region, region),
                generated_at=now,
                warehouse=warehouse,
            )
            key = ws.monitoring_key(region, "report.html")
            paths[region] = ws.data.write_bytes(key, html.encode("utf-8"))
    return paths
