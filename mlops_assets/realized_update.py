"""Realized performance kept up to date incrementally: only the forecast origins that are
new, rewritten, or whose ground truth changed are read and scored again.

A region accumulates one forecast file per origin (a year of weekly origins of a 500-series
region is about a million rows); scoring every file against all of its ground truth on
every refresh costs time and memory that grow without bound. What can change an origin's
scores: its forecast file (new, or rewritten by another model) and the ground truth of its
target dates (new actuals, or a late correction). So each refresh

- lists the forecast files with their stamps (size and modification time: no read);
- asks DuckDB for a digest of the region's ground truth per date (one aggregate query, a
  row per date: the rows themselves stay in the warehouse);
- scores again the origins whose stamp or whose target window's digest differ from what
  the last refresh saved (``realized_state.parquet`` beside the two tables), and the target
  weeks whose live forecast is one of them; every other row is kept as it was.

Anything it cannot vouch for (no saved state, a forecast file gone, another metric floor
or a newer ``STATE_VERSION``) scores every origin again, as ``realized`` always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_assets import realized
from mlops_assets.spec import DatasetSpec
from mlops_assets.training import week_start
from mlops_assets.warehouse import connect, has_view
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    import duckdb

STATE_FILE = "realized_state.parquet"
# raise when what a saved row means changes (metrics, eligibility): every origin is rescored
STATE_VERSION = 1
STATE_COLUMNS = [
    "origin",
    "stamp",  # the forecast file's size and modification time
    "date_min",  # the first and last target date of its forecast
    "date_max",
    "truth_digest",  # the ground truth of its target window (``_window_digest``)
    "floor",
    "state_version",
]


@dataclass
class RealizedUpdate:
    per_origin: pd.DataFrame  # realized.ORIGIN_COLUMNS
    weekly: pd.DataFrame  # realized.WEEKLY_COLUMNS
    origins_scored: int  # origins whose forecast file was read and scored this time
    full: bool  # every origin was scored (no usable state)


def update_realized(
    ws: Workspace, spec: DatasetSpec, region_key: str, *, floor: float
) -> RealizedUpdate:
    """Bring a region's realized tables up to date (written, with the state) and return
    them; see the module docstring for what is read again."""
    # one warehouse connection for the digests and the ground truth (defining its views
    # reads the manifest of every ingested file)
    with connect(ws, spec) as warehouse:
        return _update_realized(ws, spec, region_key, floor, warehouse)


def _update_realized(
    ws: Workspace,
    spec: DatasetSpec,
    region_key: str,
    floor: float,
    warehouse: duckdb.DuckDBPyConnection,
) -> RealizedUpdate:
    data = ws.data
    keys = realized.forecast_keys(ws, region_key)
    stamps = {_origin_of(k): f"{data.size(k)}-{data.modified_ns(k)}" for k in keys}
    state = _read_state(ws, region_key)
    old_origin = realized.read_realized_performance(ws, region_key)
    old_weekly = realized.read_weekly_realized(ws, region_key)
    usable = (
        len(state)
        and set(state["origin"]) <= set(stamps)  # no forecast file is gone
        and (state["floor"] == floor).all()
        and (state["state_version"] == STATE_VERSION).all()
        and set(pd.to_datetime(state["origin"])) == set(pd.to_datetime(old_origin["origin"]))
    )
    if not usable:
        state = pd.DataFrame(columns=STATE_COLUMNS)
    known = state.set_index("origin") if len(state) else None

    # an origin's target dates start the day after it
    since = min(stamps) + pd.Timedelta(days=1) if stamps else None
    truth = truth_digests(warehouse, spec, region_key, since=since)
    stale = []
    for origin, stamp in stamps.items():
        if known is None or origin not in known.index:
            stale.append(origin)
            continue
        row = known.loc[origin]
        digest = _window_digest(truth, row["date_min"], row["date_max"])
        if row["stamp"] != stamp or row["truth_digest"] != digest:
            stale.append(origin)

    forecasts = realized.read_forecasts(
        ws, region_key, [ws.forecast_key(region_key, str(o)) for o in sorted(stale)]
    )
    actuals = realized.forecast_ground_truth(ws, spec, region_key, forecasts, warehouse)
    new_origin = realized.realized_performance(forecasts, actuals, floor=floor)
    kept = old_origin[~old_origin["origin"].isin(pd.to_datetime(stale))] if usable else None
    per_origin = _combined(kept, new_origin, realized.ORIGIN_COLUMNS, "origin")

    windows = _windows(state, forecasts, stamps)
    rescored = set(pd.to_datetime(stale))
    weekly_new = realized.weekly_realized(forecasts, actuals, floor=floor)
    live = _live_origins(windows)
    weekly_new = weekly_new[weekly_new["week_start"].map(live).isin(rescored)]
    if usable:
        keep = old_weekly["week_start"].map(live)
        kept_weekly = old_weekly[keep.notna() & ~keep.isin(rescored)]
    else:
        kept_weekly = None
    weekly = _combined(kept_weekly, weekly_new, realized.WEEKLY_COLUMNS, "week_start")

    realized.write_realized(ws, region_key, per_origin, weekly)
    new_state = windows.assign(
        stamp=windows["origin"].map(lambda o: stamps[o.date()]),
        truth_digest=[
            _window_digest(truth, lo, hi)
            for lo, hi in zip(windows["date_min"], windows["date_max"], strict=True)
        ],
        floor=floor,
        state_version=STATE_VERSION,
    )[STATE_COLUMNS]
    ws.data.write_frame(new_state, ws.monitoring_key(region_key, STATE_FILE))
    return RealizedUpdate(per_origin, weekly, len(stale), not usable)


def truth_digests(
    warehouse: duckdb.DuckDBPyConnection, spec: DatasetSpec, region_key: str, *, since: date | None
) -> pd.Series:
    """date -> a digest of the region's ground truth rows of that date (the rows
    ``realized.read_ground_truth`` would return), computed by DuckDB without moving them
    (``warehouse``: a connection with the workspace views)."""
    cols = realized.ground_truth_columns(spec)
    if since is None or not has_view(warehouse, "ground_truth"):
        return pd.Series(dtype="uint64", index=pd.DatetimeIndex([]))
    frame = warehouse.execute(
        f"SELECT date, bit_xor(hash({', '.join(cols)})) AS digest, count(*) AS n "
        "FROM ground_truth_of_region($r) WHERE date >= CAST($since AS DATE) GROUP BY date",
        {"r": region_key, "since": str(since)},
    ).df()
    # the row count enters the digest: the same rows twice would cancel in the xor
    digest = frame["digest"].to_numpy("uint64") ^ frame["n"].to_numpy("uint64")
    return pd.Series(digest, index=pd.to_datetime(frame["date"])).sort_index()


def _window_digest(truth: pd.Series, date_min: pd.Timestamp, date_max: pd.Timestamp) -> str:
    window = truth[pd.Timestamp(date_min) : pd.Timestamp(date_max)]
    if window.empty:
        return "none"
    return f"{int(np.bitwise_xor.reduce(window.to_numpy())):x}-{len(window)}"


def _origin_of(key: str) -> date:
    return date.fromisoformat(key.rsplit("/", 1)[-1].removesuffix(realized.FORECAST_SUFFIX))


def _read_state(ws: Workspace, region_key: str) -> pd.DataFrame:
    state = ws.data.read_parquet_or(
        ws.monitoring_key(region_key, STATE_FILE), pd.DataFrame(columns=STATE_COLUMNS)
    )
    if len(state):
        state["origin"] = pd.to_datetime(state["origin"]).dt.date
    return state


def _windows(state: pd.DataFrame, forecasts: pd.DataFrame, stamps: dict) -> pd.DataFrame:
    """origin, date_min, date_max of every current origin: from the forecasts read now,
    else from the state."""
    fresh = (
        forecasts.assign(
            origin=pd.to_datetime(forecasts["origin"]).dt.normalize(),
            date=pd.to_datetime(forecasts["date"]).dt.normalize(),
        )
        .groupby("origin")["date"]
        .agg(date_min="min", date_max="max")
        .reset_index()
    )
    old = state.assign(origin=pd.to_datetime(state["origin"]))[["origin", "date_min", "date_max"]]
    old = old[~old["origin"].isin(fresh["origin"])]
    out = pd.concat([old, fresh], ignore_index=True) if len(old) else fresh
    out["date_min"] = pd.to_datetime(out["date_min"])
    out["date_max"] = pd.to_datetime(out["date_max"])
    current = {pd.Timestamp(o) for o in stamps}
    return out[out["origin"].isin(current)].sort_values("origin", ignore_index=True)


def _live_origins(windows: pd.DataFrame) -> pd.Series:
    """week_start -> the origin live for that week (``realized.weekly_realized``'s rule:
    the latest origin before the week's Monday whose forecast covers the week)."""
    live: dict[pd.Timestamp, pd.Timestamp] = {}
    for origin, lo, hi in zip(
        windows["origin"], windows["date_min"], windows["date_max"], strict=True
    ):
        weeks = week_start(pd.Series(pd.date_range(lo, hi, freq="D"))).unique()
        for week in weeks:
            if origin < week and (week not in live or origin > live[week]):
                live[week] = origin
    return pd.Series(live, dtype="datetime64[ns]")


def _combined(
    kept: pd.DataFrame | None, new: pd.DataFrame, columns: list[str], order: str
) -> pd.DataFrame:
    if kept is None or kept.empty:
        return new[columns].reset_index(drop=True)
    if new.empty:
        frame = kept[columns]
    else:
        frame = pd.concat([kept[columns], new[columns]], ignore_index=True)
    return realized.typed(frame.sort_values(order, ignore_index=True), columns)
