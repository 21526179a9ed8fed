"""Where monitoring keeps its tables and drawings in the data store (``ws.data``): each
region's drift table and heatmap, the fleet's alerts."""

from __future__ import annotations

import pandas as pd

from mlops_assets.monitoring.table import TABLE_COLUMNS
from mlops_assets.workspace import Workspace


def drift_report_key(ws: Workspace, region: str) -> str:
    """A region's drift table in the data store (``ws.data``)."""
    return ws.monitoring_key(region, "drift_report.parquet")


def read_drift_report(ws: Workspace, region: str) -> pd.DataFrame:
    key = drift_report_key(ws, region)
    return ws.data.read_parquet_or(key, pd.DataFrame(columns=TABLE_COLUMNS))


def model_drift_report(ws: Workspace, region: str, version: int) -> pd.DataFrame:
    """The region's last drift table if model ``version`` wrote it (else none of its
    rows): what a refresh of the same model reuses (``region_drift``'s ``previous``)."""
    table = read_drift_report(ws, region)
    if "model_version" in table.columns:
        table = table[table["model_version"] == version]
    return table


def stored_drift_heatmap(ws: Workspace, region: str, table: pd.DataFrame, *, draw: bool) -> str:
    """``reports.drift_heatmap(table)`` (base64 SVG), kept beside the region's drift report
    as ``drift_heatmap.<digest of what it draws>.svg`` (``storage.plot_store``). The
    drift_report asset draws it (``draw``: always, so a changed drawing replaces the stored
    one) and the region's HTML report reuses it for the same table: the fleet's monitoring
    run, which writes every region's report, reads one small file a region instead of
    pivoting and drawing each table again."""
    from mlops_assets import reports
    from mlops_assets.storage.plot_store import RegionPlotStore

    return RegionPlotStore(ws, region).image(
        "drift_heatmap",
        # the table's rows that it draws, in any order and as a Parquet round trip leaves them
        (reports.drift_heatmap_digest(table),),
        lambda: reports.drift_heatmap(table),
        fmt="svg",
        redraw=draw,
    )


def alerts_key(ws: Workspace) -> str:
    """The fleet's alerts table in the data store (``ws.data``)."""
    return ws.fleet_monitoring_key("alerts.parquet")


def read_alerts(ws: Workspace) -> pd.DataFrame:
    """The fleet's alerts as the last monitoring pass wrote them (empty before it ran)."""
    key = alerts_key(ws)
    return ws.data.read_parquet_or(key, pd.DataFrame())
