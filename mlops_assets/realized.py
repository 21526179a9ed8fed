"""Realized performance: forecasts scored against the ground truth that arrived later.

Why two views of the same errors:

- per forecast origin (``realized_performance``): how good was each forecast we issued,
  once its horizon's actuals are in; an origin whose actuals have not arrived yet is
  reported with ``n_rows`` 0 and NaN metrics, so nothing silently disappears;
- per target week (``weekly_realized``): how good was the forecast a planner actually
  used for that week, i.e. the latest origin strictly before the week's first day. This
  is the time series monitoring watches: one point per week, each scored on the forecast
  that was live, so a level shift shows up as a jump, not smeared over many origins.

Rows are scored like the holdout in training: the actual is the target clipped at 0, and
only eligible rows count (an actual is present and the store was open: ``open = 0`` rows
are excluded, forecasts are 0 there by construction). Metrics come from
``metrics.regression_metrics`` (MAPE/RMSPE over actuals above the spec's floor).

Files (``monitoring/<region>/``, written by the ``realized_performance`` asset)::

    realized_performance.parquet   one row per origin, columns ORIGIN_COLUMNS
    realized_weekly.parquet        one row per target week with actuals, WEEKLY_COLUMNS
    realized_state.parquet         what each origin was scored on (``realized_update``)
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mlops_assets.metrics import regression_metrics
from mlops_assets.spec import DatasetSpec
from mlops_assets.training import eligible_rows, week_start
from mlops_assets.warehouse import connect, has_view
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    import duckdb

REALIZED_FILE = "realized_performance.parquet"
WEEKLY_FILE = "realized_weekly.parquet"
METRICS = ("mape", "rmspe", "wape", "rmse", "rmse_zero", "mae", "bias")
_KEY = ["store", "item", "date"]

ORIGIN_COLUMNS = [
    "origin",  # forecast origin (last day with actuals when the forecast was made)
    "model_version",
    "model_label",
    "forecast_rows",  # rows in the origin's forecast file
    "horizon_days",  # distinct target dates the forecast covers
    "days_with_actuals",  # of those, dates with at least one actual
    "horizon_coverage",  # days_with_actuals / horizon_days
    "first_actual_date",  # first / last target date with an actual (NaT: none yet)
    "last_actual_date",
    "n_rows",  # rows scored: actual present and open
    "n_pct_rows",  # rows in MAPE/RMSPE: actual above the floor
    *METRICS,
]
WEEKLY_COLUMNS = [
    "week_start",  # Monday of the target week
    "origin",  # the forecast live for the week: latest origin before week_start
    "model_version",
    "model_label",
    "lead_days",  # week_start - origin, in days
    "days_with_actuals",  # dates of the week with at least one actual (7: a full week)
    "n_rows",
    "n_pct_rows",
    *METRICS,
]


def _prepared(forecasts: pd.DataFrame, actuals: pd.DataFrame) -> pd.DataFrame:
    """Forecast rows with ``actual`` (NaN: not arrived), ``has_actual`` and ``scored``."""
    f = forecasts.copy()
    f["date"] = pd.to_datetime(f["date"]).dt.normalize()
    f["origin"] = pd.to_datetime(f["origin"]).dt.normalize()
    if "model_label" not in f.columns:
        f["model_label"] = None
    truth_cols = [c for c in (*_KEY, "target", "open") if c in actuals.columns]
    a = actuals[truth_cols].copy()
    a["date"] = pd.to_datetime(a["date"]).dt.normalize()
    # later rows are later deliveries: the last row of a key wins
    a = a.drop_duplicates(_KEY, keep="last")
    rows = f.merge(a, on=_KEY, how="left", validate="many_to_one")
    rows["has_actual"] = rows["target"].notna()
    rows["actual"] = rows["target"].clip(lower=0)
    rows["scored"] = rows["has_actual"] & eligible_rows(rows)
    return rows


def _scores(rows: pd.DataFrame, floor: float) -> dict[str, float | int]:
    scored = rows[rows["scored"]]
    m = regression_metrics(scored["actual"], scored["prediction"], floor=floor)
    out: dict[str, float | int] = {"n_rows": int(m["n"]), "n_pct_rows": int(m["n_pct"])}
    out.update({name: np.nan if m[name] is None else float(m[name]) for name in METRICS})
    return out


def _model(rows: pd.DataFrame) -> dict[str, object]:
    """The model of a forecast file (one run writes one file: one version per origin)."""
    last = rows.sort_values("model_version").iloc[-1]
    return {"model_version": int(last["model_version"]), "model_label": last["model_label"]}


def realized_performance(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, *, floor: float
) -> pd.DataFrame:
    """One row per forecast origin (``ORIGIN_COLUMNS``), oldest first.

    ``forecasts``: rows of forecast files (store, item, date, origin, prediction,
    model_version[, model_label]). ``actuals``: ground truth (store, item, date, target
    [, open]); where a key repeats, the last row wins. ``floor``: the spec's metric floor.
    """
    rows = _prepared(forecasts, actuals)
    records = []
    for origin, g in rows.groupby("origin", sort=True):
        dates = g.loc[g["has_actual"], "date"]
        horizon = int(g["date"].nunique())
        seen = int(dates.nunique())
        records.append(
            {
                "origin": origin,
                **_model(g),
                "forecast_rows": len(g),
                "horizon_days": horizon,
                "days_with_actuals": seen,
                "horizon_coverage": seen / horizon if horizon else np.nan,
                "first_actual_date": dates.min() if seen else pd.NaT,
                "last_actual_date": dates.max() if seen else pd.NaT,
                **_scores(g, floor),
            }
        )
    return _frame(records, ORIGIN_COLUMNS)


def weekly_realized(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, *, floor: float
) -> pd.DataFrame:
    """One row per target week (Monday start) that has actuals (``WEEKLY_COLUMNS``),
    scored on the forecast that was live for it: the latest origin strictly before the
    week's Monday among the origins whose forecast covers that week. Weeks without any
    actual yet are left out (there is nothing realized to report); a partly observed
    week is kept and says so in ``days_with_actuals``."""
    rows = _prepared(forecasts, actuals)
    rows["week_start"] = week_start(rows["date"])
    candidates = rows[rows["origin"] < rows["week_start"]]
    live = candidates.groupby("week_start")["origin"].transform("max")
    chosen = candidates[candidates["origin"] == live]
    records = []
    for week, g in chosen.groupby("week_start", sort=True):
        seen = int(g.loc[g["has_actual"], "date"].nunique())
        if not seen:
            continue
        origin = g["origin"].iloc[0]
        records.append(
            {
                "week_start": week,
                "origin": origin,
                **_model(g),
                "lead_days": int((week - origin).days),
                "days_with_actuals": seen,
                **_scores(g, floor),
            }
        )
    return _frame(records, WEEKLY_COLUMNS)


def _frame(records: list[dict], columns: list[str]) -> pd.DataFrame:
    return typed(pd.DataFrame.from_records(records, columns=columns), columns)


def typed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame``'s ``columns`` (ORIGIN_COLUMNS or WEEKLY_COLUMNS) with the tables' dtypes."""
    frame = frame[columns].copy()
    for col in ("origin", "week_start", "first_actual_date", "last_actual_date"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col])
    for col in ("model_version", "n_rows", "n_pct_rows"):
        frame[col] = frame[col].astype("int64")
    for col in METRICS:
        frame[col] = frame[col].astype(float)
    frame["model_label"] = frame["model_label"].astype("string")
    return frame


# -- workspace I/O ---------------------------------------------------------------------


FORECAST_SUFFIX = ".forecast.parquet"


def forecast_keys(ws: Workspace, region_key: str) -> list[str]:
    """The data-store keys of a region's forecast origin files."""
    return ws.data.keys(ws.forecasts_folder(region_key), FORECAST_SUFFIX)


def read_forecasts(ws: Workspace, region_key: str, keys: list[str] | None = None) -> pd.DataFrame:
    """Every forecast origin file of a region (or those of ``keys``), concatenated (empty:
    none written yet)."""
    data = ws.data
    keys = forecast_keys(ws, region_key) if keys is None else keys
    if not keys:
        from mlops_assets.forecasting import FORECAST_COLUMNS

        return pd.DataFrame(columns=FORECAST_COLUMNS)
    return pd.concat([data.read_parquet(k) for k in keys], ignore_index=True)


def ground_truth_columns(spec: DatasetSpec) -> list[str]:
    """The ground-truth columns a forecast is scored on: store, item, date, target[, open]."""
    return [*_KEY, "target"] + (["open"] if "open" in spec.source("sales").columns else [])


def read_ground_truth(
    ws: Workspace,
    spec: DatasetSpec,
    region_key: str,
    *,
    since: date | None = None,
    warehouse: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """The region's ground truth (store, item, date, target[, open]) on or after ``since``:
    sales and actuals files, an actuals row winning over a sales row of the same key and
    otherwise the latest file (``warehouse.ground_truth_of_region``). ``warehouse``: a
    connection with the workspace views (``warehouse.connect``) to reuse, for a caller
    that reads many regions (defining the views reads the manifest of every ingested
    file); default: one opened here."""
    if warehouse is None:
        with connect(ws, spec) as con:
            return read_ground_truth(ws, spec, region_key, since=since, warehouse=con)
    cols = ground_truth_columns(spec)
    if not has_view(warehouse, "ground_truth"):
        return pd.DataFrame(columns=cols)
    where = "WHERE date >= CAST($since AS DATE)" if since is not None else ""
    params = {"r": region_key, **({"since": str(since)} if since is not None else {})}
    frame = warehouse.execute(
        f"SELECT {', '.join(cols)} FROM ground_truth_of_region($r) {where} "
        "ORDER BY store, item, date",
        params,
    ).df()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def forecast_ground_truth(
    ws: Workspace,
    spec: DatasetSpec,
    region_key: str,
    forecasts: pd.DataFrame,
    warehouse: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """The ground truth that can score ``forecasts``: from their first target date on
    (an empty frame with the key columns when there are no forecasts)."""
    if forecasts.empty:
        return pd.DataFrame(columns=[*_KEY, "target"])
    since = pd.to_datetime(forecasts["date"]).min().date()
    return read_ground_truth(ws, spec, region_key, since=since, warehouse=warehouse)


def realized_keys(ws: Workspace, region_key: str) -> tuple[str, str]:
    """(per-origin table, weekly table) of a region in the data store."""
    return ws.monitoring_key(region_key, REALIZED_FILE), ws.monitoring_key(region_key, WEEKLY_FILE)


def write_realized(
    ws: Workspace, region_key: str, per_origin: pd.DataFrame, weekly: pd.DataFrame
) -> tuple[str, str]:
    """Write both tables (each replaced whole) with a leading ``region_key`` column; their
    locations."""
    origin_key, weekly_key = realized_keys(ws, region_key)
    return (
        ws.data.write_frame(_with_region(per_origin, region_key), origin_key),
        ws.data.write_frame(_with_region(weekly, region_key), weekly_key),
    )


def _with_region(frame: pd.DataFrame, region_key: str) -> pd.DataFrame:
    return frame.assign(region_key=region_key)[["region_key", *frame.columns]]


def read_realized_performance(ws: Workspace, region_key: str) -> pd.DataFrame:
    """A region's per-origin table (``region_key`` + ``ORIGIN_COLUMNS``); empty with those
    columns before the asset first ran for the region."""
    return _read(ws, realized_keys(ws, region_key)[0], ORIGIN_COLUMNS)


def read_weekly_realized(ws: Workspace, region_key: str) -> pd.DataFrame:
    """A region's weekly realized metrics (``region_key`` + ``WEEKLY_COLUMNS``), oldest
    week first; the last row is the latest week with actuals. Empty with those columns
    before the asset first ran for the region. This is what fleet monitoring reads."""
    return _read(ws, realized_keys(ws, region_key)[1], WEEKLY_COLUMNS)


def _read(ws: Workspace, key: str, columns: list[str]) -> pd.DataFrame:
    return ws.data.read_parquet_or(key, pd.DataFrame(columns=["region_key", *columns]))


# -- plot ------------------------------------------------------------------------------


def weekly_plot(weekly: pd.DataFrame, *, title: str = "") -> str:
    """Weekly realized metrics over time as a base64 PNG: percentage errors (MAPE, WAPE)
    above, absolute errors (RMSE, RMSE on zero actuals) below."""
    from mlops_assets.plots import png_base64, use_agg_backend

    use_agg_backend()
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True)
    x = pd.to_datetime(weekly["week_start"])
    for name, style in (("mape", "-o"), ("wape", "-s"), ("rmspe", ":")):
        top.plot(x, weekly[name] * 100, style, label=name.upper(), ms=3, lw=1.2)
    top.set_ylabel("%", fontsize=8)
    for name, style in (("rmse", "-o"), ("rmse_zero", "--")):
        bottom.plot(x, weekly[name], style, label=name.upper().replace("_ZERO", " on 0"), ms=3)
    bottom.set_ylabel("units", fontsize=8)
    for ax in (top, bottom):
        ax.legend(fontsize=7, loc="upper left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.autofmt_xdate()
    fig.tight_layout()
    return png_base64(fig)
