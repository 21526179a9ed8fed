"""The per-region monitoring report: one self-contained HTML file per region and run.

Why a single file: it is written next to the region's monitoring tables on every run and
linked from asset metadata, so it must open anywhere (a file share, an e-mail attachment,
an air-gapped laptop) without a server. Everything is inline: a small CSS block and PNG
or SVG plots as base64 ``data:`` URIs; no JavaScript, no external URL, nothing fetched.

Every string that comes from data (region names, store and item ids, feature names, alert
details, model labels) is passed through ``html.escape``: region names come from the
data files and are treated as hostile input. Matplotlib labels escape ``$`` so a feature
name cannot switch on mathtext and break a plot.

The key plots (``forecast_vs_actual_plot``, ``metrics_over_time_plot``,
``estimated_performance_plot``, ``drift_heatmap``, ``attribution_plot``) are public so the
asset can also embed them in its metadata. Each returns a base64 PNG (the heatmap: SVG, see
``charts``; ``plots.data_uri`` tells them apart) and, on empty input, an *empty-state
image*: a small PNG that says what is missing (never an empty string), so callers can
embed the result unconditionally.

Frames may be passed for the whole fleet: rows of other regions (column ``region`` or
``region_key``) are ignored. Any frame may be empty or lack columns; its section then
says why there is nothing to show.
"""

from __future__ import annotations

import base64
import html
import logging
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mlops_assets.monitoring import OUTSIDE_TRAINING_RANGE  # noqa: E402
from mlops_assets.plots import data_uri, png_base64  # noqa: E402

if TYPE_CHECKING:
    import duckdb

    from mlops_assets.registry import ModelRegistry, ModelVersion
    from mlops_assets.spec import DatasetSpec
    from mlops_assets.workspace import Workspace

log = logging.getLogger(__name__)

# alert signals (mlops_assets.monitoring.fleet_alerts), in the order the report lists them
ALERT_SIGNAL_ORDER = (
    "data_drift",
    "multivariate_drift",
    "data_quality",
    "attribution_drift",
    "model_quality",
)
HEATMAP_SIGNALS = ("feature_drift", "fleet_gap_drift", "multivariate_drift")
PCT_METRICS = frozenset({"mape", "wape", "rmspe", "bias"})
METRIC_LABELS = {
    "mape": "MAPE",
    "wape": "WAPE",
    "rmspe": "RMSPE",
    "rmse": "RMSE",
    "rmse_zero": "RMSE on 0",
    "mae": "MAE",
    "bias": "bias",
}
TOP_FEATURES = 15
N_ORIGINS_PLOTTED = 3
ACTUALS_LOOKBACK_DAYS = 28
MAX_TABLE_ROWS = 60

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  margin: 1.5em auto; max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
  margin-top: 1.8em; }
h3 { font-size: 1em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; }
.finding { color: #9a6700; font-weight: bold; }
.alert { color: #fff; background: #cf222e; font-weight: bold; padding: 0 0.3em; }
.muted, .note { color: #666; }
.note { font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; margin: 0.3em 0; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dl.meta dt { font-weight: bold; }
dl.meta dd { margin: 0; }
"""


# -- formatting -------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _esc(value: Any, missing: str = "n/a") -> str:
    """Any value from data as escaped HTML text; missing values as ``n/a``."""
    return missing if _missing(value) else html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    """A fraction as a percentage with one decimal (0.123 -> 12.3%)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    return "n/a" if math.isnan(v) else f"{v * 100:.1f}%"


def _num(value: Any, digits: int = 2) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    return "n/a" if math.isnan(v) else f"{v:,.{digits}f}"


def _int(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _esc(value)
    return "n/a" if math.isnan(v) else f"{int(round(v)):,}"


def _date(value: Any) -> str:
    """A date (or timestamp) as ``YYYY-MM-DD`` (with the time when it has one)."""
    if _missing(value):
        return "n/a"
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return _esc(value)
    fmt = "%Y-%m-%d" if ts == ts.normalize() else "%Y-%m-%d %H:%M"
    return html.escape(ts.strftime(fmt))


def _metric(name: str, value: Any) -> str:
    return _pct(value) if name in PCT_METRICS else _num(value)


def _mpl(text: Any) -> str:
    """Data text for a matplotlib label: ``$`` would switch on mathtext (and can raise)."""
    return str(text).replace("$", r"\$")


def _table(headers: list[str], rows: Iterable[list[str]], numeric: Iterable[int] = ()) -> str:
    """An HTML table from cells that are already escaped / formatted HTML."""
    nums = set(numeric)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in nums else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _p(text: str, cls: str = "note") -> str:
    """A sentence written by this module (not data: callers escape data before)."""
    return f'<p class="{cls}">{text}</p>'


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="{data_uri(b64)}">'


# -- frames -----------------------------------------------------------------------------


def _usable(frame: pd.DataFrame | None, columns: Iterable[str]) -> pd.DataFrame | None:
    """The frame if it has rows and every needed column, else None (an empty section)."""
    if frame is None or frame.empty:
        return None
    if any(c not in frame.columns for c in columns):
        return None
    return frame


def _for_region(frame: pd.DataFrame | None, region: str) -> pd.DataFrame | None:
    """Rows of this region when the frame carries a region column (fleet-wide tables)."""
    if frame is None:
        return None
    for col in ("region", "region_key"):
        if col in frame.columns and not frame.empty:
            return frame[frame[col].astype(str) == str(region)]
    return frame


def _weeks(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce").dt.normalize()


def _bool(values: pd.Series) -> pd.Series:
    """Flags read back from files may be object dtype with NaN: missing means False."""
    return values.map(lambda v: not _missing(v) and bool(v)).astype(bool)


def _numeric(frame: pd.DataFrame, col: str) -> pd.Series:
    if col not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[col], errors="coerce").astype(float)


def _severity(rows: pd.DataFrame) -> pd.Series:
    """How far a drift statistic is from its nannyml threshold (1 = on the threshold).

    Distances (Jensen-Shannon, PCA error) have an upper threshold only: value / upper.
    The fleet gap has a band around the reference mean: distance from the band centre
    over half the band width, so a gap far below the band is as severe as one above."""
    value, lower, upper = _numeric(rows, "value"), _numeric(rows, "lower"), _numeric(rows, "upper")
    sev = value / upper.where(upper > 0)
    band = (rows["signal"] == "fleet_gap_drift") & lower.notna() & upper.notna() & (upper > lower)
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    sev[band] = ((value - mid).abs() / half)[band]
    return sev


# -- plots ------------------------------------------------------------------------------


def empty_plot(message: str) -> str:
    """The empty-state image: a small PNG saying what is missing, so metadata shows a
    reason instead of a broken or absent image."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.text(0.5, 0.5, _mpl(message), ha="center", va="center", fontsize=10, color="#555")
    ax.set_axis_off()
    return png_base64(fig)


def forecast_vs_actual_plot(
    forecasts: pd.DataFrame, ground_truth: pd.DataFrame, n_series: int = 4
) -> str:
    """Actuals (solid) and the forecasts of the latest origins (dashed, origin marked by a
    dotted line) for the highest-volume series: whether recent forecasts track reality.

    Returns a base64 PNG; the empty-state image when there are no forecasts."""
    f = _usable(forecasts, ("store", "item", "date", "origin", "prediction"))
    if f is None:
        return empty_plot("no forecasts yet")
    f = f.assign(
        store=f["store"].astype(str),
        item=f["item"].astype(str),
        date=pd.to_datetime(f["date"], errors="coerce"),
        origin=pd.to_datetime(f["origin"], errors="coerce"),
        prediction=pd.to_numeric(f["prediction"], errors="coerce"),
    ).dropna(subset=["date", "origin"])
    if f.empty:
        return empty_plot("no forecasts with valid dates")
    origins = sorted(f["origin"].unique())[-N_ORIGINS_PLOTTED:]
    f = f[f["origin"].isin(origins)]
    start = min(origins) - pd.Timedelta(days=ACTUALS_LOOKBACK_DAYS)
    end = f["date"].max()

    g = _usable(ground_truth, ("store", "item", "date", "target"))
    if g is not None:
        g = g.assign(
            store=g["store"].astype(str),
            item=g["item"].astype(str),
            date=pd.to_datetime(g["date"], errors="coerce"),
            target=pd.to_numeric(g["target"], errors="coerce"),
        )
        g = g[(g["date"] >= start) & (g["date"] <= end)]
    keys = ["store", "item"]
    volume = pd.DataFrame({"predicted": f.groupby(keys)["prediction"].sum()})
    volume["actual"] = 0.0
    if g is not None and not g.empty:
        volume["actual"] = g.groupby(keys)["target"].sum().reindex(volume.index).fillna(0)
    # rank by actual volume in the window (forecast volume before actuals arrive)
    ranked = volume.sort_values(["actual", "predicted"], ascending=False)
    chosen = ranked.head(max(int(n_series), 1)).index

    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(
        len(chosen), 1, figsize=(8, 2.1 * len(chosen)), squeeze=False, sharex=True
    )
    for ax, (store, item) in zip(axes[:, 0], chosen, strict=False):
        if g is not None:
            s = g[(g["store"] == store) & (g["item"] == item)].sort_values("date")
            ax.plot(s["date"], s["target"], color="black", lw=1.4, label="actual")
        sf = f[(f["store"] == store) & (f["item"] == item)]
        for i, origin in enumerate(origins):
            c = colors[(i + 1) % len(colors)]
            o = sf[sf["origin"] == origin].sort_values("date")
            label = f"origin {pd.Timestamp(origin):%Y-%m-%d}"
            ax.plot(o["date"], o["prediction"], ls="--", lw=1.2, color=c, label=label)
            ax.axvline(pd.Timestamp(origin), color=c, ls=":", lw=1)
        ax.set_title(_mpl(f"store {store} / item {item}"), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    if g is None or g.empty:
        axes[0, 0].text(
            0.99,
            0.95,
            "no actuals yet",
            transform=axes[0, 0].transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="#a00",
        )
    fig.autofmt_xdate()
    fig.tight_layout()
    return png_base64(fig)


def metrics_over_time_plot(
    realized_weekly: pd.DataFrame, holdout_metrics: dict[str, Any] | None = None
) -> str:
    """Weekly realized MAPE / WAPE (top, %) and RMSE (bottom), each on the forecast that
    was live, with the model's holdout value as a dotted reference line: a drift of the
    error level away from what training promised is the signal to look for.

    Returns a base64 PNG; the empty-state image when no week has actuals yet."""
    w = _usable(realized_weekly, ("week_start",))
    if w is None:
        return empty_plot("no weeks with actuals yet")
    w = w.assign(week_start=_weeks(w["week_start"])).sort_values("week_start")
    ref = holdout_metrics or {}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True)
    panels = ((top, ("mape", "wape"), 100.0, "%"), (bottom, ("rmse",), 1.0, "units"))
    colors = plt.get_cmap("tab10").colors
    for ax, names, scale, unit in panels:
        for i, name in enumerate(names):
            c = colors[i]
            if name in w.columns:
                ax.plot(
                    w["week_start"],
                    _numeric(w, name) * scale,
                    "-o",
                    ms=3,
                    lw=1.2,
                    color=c,
                    label=f"{METRIC_LABELS[name]} weekly",
                )
            holdout = ref.get(name)
            if not _missing(holdout) and isinstance(holdout, (int, float)):
                ax.axhline(
                    float(holdout) * scale,
                    color=c,
                    ls=":",
                    lw=1.2,
                    label=f"{METRIC_LABELS[name]} holdout",
                )
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return png_base64(fig)


def estimated_performance_plot(monitoring: pd.DataFrame, holdout_rmse: float | None = None) -> str:
    """nannyml DLE estimated RMSE per week (dashed) with the realized RMSE where actuals
    exist (solid), the nannyml threshold and the holdout RMSE: the estimate is the early
    warning for weeks whose actuals have not arrived. Weeks with inputs outside the
    training range, where the estimate cannot see the error, are shaded.

    Returns a base64 PNG; the empty-state image when there is no estimate."""
    m = _usable(monitoring, ("signal", "feature", "week_start", "value"))
    outside = pd.Series(dtype=float)
    if m is not None:
        m = m[m["signal"] == "estimated_performance"]
        share = m[m["feature"] == OUTSIDE_TRAINING_RANGE]
        outside = _numeric(share, "value").set_axis(_weeks(share["week_start"]))
        m = m[m["feature"] == "rmse"]
    if m is None or m.empty:
        return empty_plot("no estimated performance yet")
    m = m.assign(week_start=_weeks(m["week_start"])).sort_values("week_start")
    fig, ax = plt.subplots(figsize=(8, 3))
    for i, week in enumerate(outside[outside > 0].index):
        ax.axvspan(
            week,
            week + pd.Timedelta(days=7),
            color="tab:orange",
            alpha=0.15,
            lw=0,
            label="inputs outside the training range (estimate blind)" if i == 0 else None,
        )
    ax.plot(
        m["week_start"],
        _numeric(m, "value"),
        "--o",
        ms=3,
        color="tab:purple",
        label="estimated RMSE (DLE)",
    )
    realized = _numeric(m, "realized")
    if realized.notna().any():
        ax.plot(m["week_start"], realized, "-s", ms=3, color="black", label="realized RMSE")
    upper = _numeric(m, "upper")
    if upper.notna().any():
        ax.plot(m["week_start"], upper, ":", color="tab:red", lw=1, label="nannyml threshold")
    if holdout_rmse is not None and not _missing(holdout_rmse):
        ax.axhline(float(holdout_rmse), color="tab:gray", ls="-.", lw=1, label="holdout RMSE")
    ax.set_ylabel("units", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return png_base64(fig)


def _heat_label(signal: str, feature: str) -> str:
    if signal == "fleet_gap_drift":
        return f"{feature} (gap to fleet)"
    if signal == "multivariate_drift":
        return "all numerics (PCA reconstruction)"
    return str(feature)


def drift_heatmap(monitoring: pd.DataFrame) -> str:
    """Features x weeks of drift severity (value / nannyml threshold, >1 beyond it) for
    feature drift, the fleet gap of region-level inputs and the PCA reconstruction error,
    each cell with its number. Cells where nannyml alerted are outlined; ignored features
    (calendar, expanding history) are computed but never alert, so they get their own grey
    panel below.

    Returns a base64 SVG (``charts.heatmap``: drawn by arithmetic in milliseconds, where
    matplotlib took most of a second a region); the empty-state PNG when there are no drift
    statistics."""
    from mlops_assets.charts.heatmap import HeatmapPanel, heatmap_svg

    m = _usable(monitoring, ("signal", "feature", "week_start", "value", "upper"))
    if m is not None:
        m = m[m["signal"].isin(HEATMAP_SIGNALS)]
    if m is None or m.empty:
        return empty_plot("no drift statistics yet")
    m = m.assign(
        week=_weeks(m["week_start"]),
        severity=_severity(m),
        label=[_heat_label(s, f) for s, f in zip(m["signal"], m["feature"], strict=True)],
        order=m["signal"].map({s: i for i, s in enumerate(HEATMAP_SIGNALS)}),
        nml_alert=_bool(m["nml_alert"]) if "nml_alert" in m.columns else False,
        ignored=_bool(m["ignored"]) if "ignored" in m.columns else False,
    ).dropna(subset=["week"])
    if m.empty:
        return empty_plot("no drift statistics with valid weeks")
    weeks = sorted(m["week"].unique())
    panels = []
    for rows, title, colormap, outline in (
        (m[~m["ignored"]], "watched features", "YlOrRd", True),
        (m[m["ignored"]], "features without drift alerts (shown, never alert)", "Greys", False),
    ):
        if rows.empty:
            continue
        labels = list(rows.sort_values(["order", "label"])["label"].drop_duplicates())
        grid = rows.pivot_table(index="label", columns="week", values="severity", aggfunc="max")
        grid = grid.reindex(index=labels, columns=weeks)
        flags = rows.assign(flag=rows["nml_alert"].astype(float))
        alerts = flags.pivot_table(index="label", columns="week", values="flag", aggfunc="max")
        alerts = alerts.reindex(index=labels, columns=weeks).fillna(0.0) > 0
        panels.append(
            HeatmapPanel(
                title=title,
                rows=labels,
                values=grid.to_numpy(float),
                colormap=colormap,
                outlined=alerts.to_numpy() if outline else None,
            )
        )
    svg = heatmap_svg(
        panels,
        [f"{pd.Timestamp(w):%Y-%m-%d}" for w in weeks],
        vmin=0.0,
        vmax=2.0,
        dark_above=1.4,
        caption="week (Monday); severity = value / threshold, >1 beyond it; "
        "outlined: nannyml alert",
    )
    return base64.b64encode(svg.encode("utf-8")).decode("ascii")


def drift_heatmap_digest(monitoring: pd.DataFrame | None) -> str:
    """A digest of what ``drift_heatmap`` draws from ``monitoring`` (its rows of the heatmap
    signals, in any order and with the dtypes a Parquet round trip leaves): two tables
    with the same digest give the same heatmap."""
    import hashlib

    cols = ("signal", "feature", "week_start", "value", "lower", "upper", "nml_alert", "ignored")
    m = monitoring if monitoring is not None else pd.DataFrame()
    if "signal" in m.columns:
        m = m[m["signal"].isin(HEATMAP_SIGNALS)]
    canon = pd.DataFrame(
        {
            "signal": m.get("signal", pd.Series(dtype=str)).astype(str),
            "feature": m.get("feature", pd.Series(dtype=str)).astype(str),
            "week": _weeks(m["week_start"]).dt.strftime("%Y-%m-%d")
            if "week_start" in m.columns
            else "",
            **{c: _numeric(m, c) for c in ("value", "lower", "upper")},
            **{c: _bool(m[c]) if c in m.columns else False for c in ("nml_alert", "ignored")},
        }
    )
    canon = canon.sort_values(["signal", "feature", "week"], ignore_index=True)
    hashed = pd.util.hash_pandas_object(canon, index=False).to_numpy().tobytes()
    return hashlib.sha256(",".join(cols).encode() + hashed).hexdigest()[:16]


def _clean(importance: dict[str, float] | None) -> dict[str, float]:
    out = {}
    for name, value in (importance or {}).items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[str(name)] = abs(v)
    return out


def _shares(importance: dict[str, float]) -> dict[str, float]:
    total = sum(importance.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in importance.items()}


def _ranks(importance: dict[str, float]) -> dict[str, int]:
    ordered = sorted(importance, key=lambda k: (-importance[k], k))
    return {k: i + 1 for i, k in enumerate(ordered)}


def attribution_plot(
    importance: dict[str, float], recent_importance: dict[str, float] | None = None
) -> str:
    """The saved feature ranking (mean |Shapley| at training) next to the recent one, as
    shares of the total, top 15: a feature that climbs or falls shows what the model
    now relies on. Labels carry the ranks, saved -> recent.

    Returns a base64 PNG; the empty-state image when no ranking is available."""
    saved, recent = _clean(importance), _clean(recent_importance)
    if not saved and not recent:
        return empty_plot("no feature attribution available")
    s_share, r_share = _shares(saved), _shares(recent)
    s_rank, r_rank = _ranks(saved), _ranks(recent)
    names = set(saved) | set(recent)
    top = sorted(names, key=lambda n: (-max(s_share.get(n, 0), r_share.get(n, 0)), n))
    top = sorted(top[:TOP_FEATURES], key=lambda n: (-s_share.get(n, 0), -r_share.get(n, 0), n))
    y = np.arange(len(top))
    h = 0.4 if recent and saved else 0.7
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(top) + 1.2))
    if saved:
        ax.barh(
            y - (h / 2 if recent else 0),
            [s_share.get(n, 0) * 100 for n in top],
            height=h,
            color="tab:blue",
            label="saved with the model",
        )
    if recent:
        ax.barh(
            y + (h / 2 if saved else 0),
            [r_share.get(n, 0) * 100 for n in top],
            height=h,
            color="tab:orange",
            label="recent weeks",
        )

    def label(n: str) -> str:
        if saved and recent:
            return f"{n} (#{s_rank.get(n, '-')} -> #{r_rank.get(n, '-')})"
        return n

    ax.set_yticks(y, [_mpl(label(n)) for n in top], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of total mean |SHAP| (%)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return png_base64(fig)


class PlotCache(Protocol):
    """Where a report's plots may be kept between reports (``storage.plot_store``)."""

    def image(self, name: str, inputs: tuple[Any, ...], draw: Callable[[], str]) -> str:
        """The plot ``name`` drawn from ``inputs`` (base64 PNG or SVG): kept, or ``draw()``."""
        ...


def _plot_html(
    draw: Callable[[], str],
    alt: str,
    plots: PlotCache | None = None,
    name: str = "",
    inputs: tuple[Any, ...] = (),
) -> str:
    """A plot for the report; a failing plot costs its image, not the whole report. With
    ``plots``, the plot ``name`` is taken from there when ``inputs`` are those it was drawn
    from (``inputs``: everything ``draw`` draws from)."""
    try:
        image = plots.image(name, inputs, draw) if plots is not None else draw()
        return _img(image, alt)
    except Exception as exc:  # the report must render whatever the data
        log.warning("report plot %r failed", alt, exc_info=True)
        return _p(
            f"The plot could not be drawn: {html.escape(type(exc).__name__)}: "
            f"{html.escape(str(exc))}"
        )


# -- sections ---------------------------------------------------------------------------


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


NO_QUALITY_ALERTS = ' <span class="muted">(no data-quality alerts)</span>'


def _region_label(region_name: str, region: str, *, muted: bool = False) -> str:
    """The region's display name, with its key only where the two differ ("Rhein, Main
    (Rhein_Main)", but "Nord", not "Nord (Nord)")."""
    if region_name == region:
        return _esc(region_name)
    key = f'<span class="muted">({_esc(region)})</span>' if muted else f"({_esc(region)})"
    return f"{_esc(region_name)} {key}"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _header(region: str, region_name: str, generated_at: str, model: dict[str, Any]) -> str:
    label = model.get("label")
    status = model.get("status")
    window = f"{_date(model.get('train_date_min'))} to {_date(model.get('train_date_max'))}"
    items = [
        ("Region", _region_label(region_name, region)),
        (
            "Model",
            f"{_esc(label)} &middot; status {_esc(status)} &middot; "
            f"version {_esc(model.get('version'))}",
        ),
        ("Trained at", _date(model.get("trained_at"))),
        ("Training window", window),
        ("Report generated", _esc(generated_at)),
    ]
    meta = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    parts = [
        f"<h1>Monitoring report: {_region_label(region_name, region, muted=True)}</h1>",
        f'<dl class="meta">{meta}</dl>',
    ]
    metrics = model.get("metrics") if isinstance(model.get("metrics"), dict) else None
    baselines = model.get("baseline_metrics")
    baselines = baselines if isinstance(baselines, dict) else {}
    rows = []
    if metrics:
        rows.append(["model", *(_metric(k, metrics.get(k)) for k in METRIC_LABELS)])
    for name, values in baselines.items():
        if isinstance(values, dict):
            rows.append([_esc(name), *(_metric(k, values.get(k)) for k in METRIC_LABELS)])
    if rows:
        parts.append("<h3>Holdout metrics at training</h3>")
        parts.append(_table(["", *METRIC_LABELS.values()], rows, range(1, 8)))
    else:
        parts.append(_p("No holdout metrics were recorded with the model."))
    return "<header>" + "\n".join(parts) + "</header>"


def _status(raw: bool, alert: bool) -> str:
    if alert:
        return '<span class="alert">ALERT</span>'
    if raw:
        return '<span class="finding">finding</span>'
    return '<span class="ok">OK</span>'


def _alerts_section(alerts: pd.DataFrame | None) -> str:
    rules = _p(
        "How to read this: a week's <em>finding</em> counts only when this region stands "
        "out from the other regions in the same week (they are the control group: a season "
        "or a holiday moves them all), on chunks large enough to be reliable, and ignoring "
        "calendar features; it becomes an <em>ALERT</em> only when it persists for the "
        "configured number of consecutive weeks (<code>persistence_weeks</code>)."
    )
    a = _usable(alerts, ("week_start", "signal"))
    if a is None:
        return _section(
            "alerts",
            "Alerts",
            _p("No alert evaluation yet: the fleet monitoring has not run for this region.")
            + rules,
        )
    a = a.assign(
        week_start=_weeks(a["week_start"]),
        raw=_bool(a["raw"]) if "raw" in a.columns else False,
        alert=_bool(a["alert"]) if "alert" in a.columns else False,
        detail=a["detail"].map(lambda d: _esc(d, "")) if "detail" in a.columns else "",
    )
    latest = a["week_start"].max()
    now = a[a["week_start"] == latest]
    signals = list(ALERT_SIGNAL_ORDER) + sorted(
        set(a["signal"].astype(str)) - set(ALERT_SIGNAL_ORDER)
    )
    rows = []
    for signal in signals:
        r = now[now["signal"] == signal]
        if r.empty:
            rows.append([_esc(signal), '<span class="muted">no data</span>', ""])
            continue
        raw, alert = bool(r["raw"].any()), bool(r["alert"].any())
        detail = ", ".join(d for d in r["detail"] if d)
        rows.append([_esc(signal), _status(raw, alert), detail])
    parts = [
        f"<h3>Latest week: {_date(latest)}</h3>",
        _table(["signal", "status", "detail"], rows),
        rules,
    ]
    fired = a[a["alert"]].sort_values(["week_start", "signal"], ascending=[False, True])
    n_findings = int((a["raw"] & ~a["alert"]).sum())
    if fired.empty:
        parts.append(
            _p(
                f"No alert in the {a['week_start'].nunique()} weeks evaluated "
                f"({n_findings} signal-weeks with a finding that did not, or not yet, "
                "persist)."
            )
        )
    else:
        parts.append(f"<h3>Alert weeks ({len(fired)})</h3>")
        parts.append(
            _table(
                ["week", "signal", "detail"],
                (
                    [_date(r.week_start), _esc(r.signal), r.detail]
                    for r in fired.head(MAX_TABLE_ROWS).itertuples(index=False)
                ),
            )
        )
        if n_findings:
            parts.append(
                _p(f"{n_findings} further signal-weeks had a finding that was not an alert.")
            )
    return _section("alerts", "Alerts", "\n".join(parts))


def _forecast_section(
    forecasts: pd.DataFrame | None,
    ground_truth: pd.DataFrame | None,
    plots: PlotCache | None = None,
) -> str:
    f = _usable(forecasts, ("store", "item", "date", "origin", "prediction"))
    if f is None:
        return _section(
            "forecast",
            "Forecast vs actual",
            _p("No forecasts yet: the region has no approved model or no forecast run."),
        )
    origins = pd.to_datetime(f["origin"], errors="coerce").dropna()
    n_series = f[["store", "item"]].drop_duplicates().shape[0]
    shown = sorted(origins.unique())[-N_ORIGINS_PLOTTED:]
    latest = "the latest origin" if len(shown) == 1 else f"the latest {len(shown)} origins"
    text = (
        f"{_plural(origins.nunique(), 'forecast origin')} for {n_series:,} series; latest "
        f"origin {_date(origins.max())}. The plot shows the highest-volume series: actuals "
        f"as a solid line, the forecasts of {latest} dashed, each origin marked by a dotted "
        "vertical line of the same colour."
    )
    g = _usable(ground_truth, ("store", "item", "date", "target"))
    if g is None:
        text += " No actuals have arrived yet, so only forecasts are drawn."
    body = _p(text) + _plot_html(
        lambda: forecast_vs_actual_plot(forecasts, ground_truth),
        "forecast vs actual",
        plots,
        "forecast_vs_actual",
        (forecasts, ground_truth),
    )
    return _section("forecast", "Forecast vs actual", body)


def _metrics_section(
    weekly: pd.DataFrame | None,
    by_origin: pd.DataFrame | None,
    model: dict[str, Any],
    plots: PlotCache | None = None,
) -> str:
    holdout = model.get("metrics") if isinstance(model.get("metrics"), dict) else {}
    parts = []
    w = _usable(weekly, ("week_start",))
    if w is None:
        parts.append(
            _p(
                "No week has actuals yet: realized metrics appear once ground truth "
                "for forecast dates arrives."
            )
        )
    else:
        ref = [n for n in ("mape", "wape", "rmse") if not _missing(holdout.get(n))]
        ref_text = (
            " Dotted lines: the model's holdout "
            + ", ".join(METRIC_LABELS[n] for n in ref)
            + " at training."
            if ref
            else " The model has no holdout metrics to compare with."
        )
        parts.append(
            _p(
                "Each week is scored on the forecast that was live for it (the "
                "latest origin before the week)." + ref_text
            )
        )
        parts.append(
            _plot_html(
                lambda: metrics_over_time_plot(weekly, holdout),
                "metrics over time",
                plots,
                "metrics_over_time",
                (weekly, holdout),
            )
        )
        w = w.assign(week_start=_weeks(w["week_start"])).sort_values("week_start", ascending=False)
        cols = ["mape", "wape", "rmse", "bias"]
        rows = [
            [
                _date(r["week_start"]),
                _date(r.get("origin")),
                _esc(r.get("model_label")),
                _int(r.get("lead_days")),
                _int(r.get("days_with_actuals")),
                _int(r.get("n_rows")),
                *(_metric(c, r.get(c)) for c in cols),
            ]
            for _, r in w.head(MAX_TABLE_ROWS).iterrows()
        ]
        parts.append("<h3>Per target week (newest first)</h3>")
        parts.append(
            _table(
                [
                    "week",
                    "live origin",
                    "model",
                    "lead days",
                    "days with actuals",
                    "rows",
                    *(METRIC_LABELS[c] for c in cols),
                ],
                rows,
                range(3, 10),
            )
        )
    o = _usable(by_origin, ("origin",))
    if o is None:
        parts.append(_p("No forecast origin has been scored yet."))
    else:
        o = o.assign(origin=pd.to_datetime(o["origin"], errors="coerce")).sort_values(
            "origin", ascending=False
        )
        cols = ["mape", "wape", "rmse", "bias"]
        rows = [
            [
                _date(r["origin"]),
                _esc(r.get("model_label")),
                f"{_int(r.get('days_with_actuals'))} / {_int(r.get('horizon_days'))}",
                _pct(r.get("horizon_coverage")),
                _int(r.get("n_rows")),
                *(_metric(c, r.get(c)) for c in cols),
            ]
            for _, r in o.head(MAX_TABLE_ROWS).iterrows()
        ]
        parts.append("<h3>Per forecast origin (newest first)</h3>")
        parts.append(
            _table(
                [
                    "origin",
                    "model",
                    "days with actuals",
                    "horizon coverage",
                    "rows",
                    *(METRIC_LABELS[c] for c in cols),
                ],
                rows,
                range(2, 9),
            )
        )
        parts.append(_p("An origin whose horizon has no actuals yet shows n/a metrics."))
    return _section("metrics", "Metrics over time", "\n".join(parts))


def _estimated_section(
    monitoring: pd.DataFrame | None, model: dict[str, Any], plots: PlotCache | None = None
) -> str:
    m = _usable(monitoring, ("signal", "feature", "week_start", "value"))
    if m is not None:
        m = m[m["signal"] == "estimated_performance"]
    if m is None or m.empty:
        return _section(
            "estimated",
            "Estimated vs realized performance",
            _p(
                "No performance estimate yet: nannyml DLE needs the model's out-of-sample "
                "forecasts (backtest or holdout) and at least one monitored week."
            ),
        )
    holdout = model.get("metrics") if isinstance(model.get("metrics"), dict) else {}
    rmse = holdout.get("rmse")
    rmse = float(rmse) if isinstance(rmse, (int, float)) and not _missing(rmse) else None
    m = m.assign(week_start=_weeks(m["week_start"]))
    by_week = {}
    for r in m.itertuples(index=False):
        entry = by_week.setdefault(r.week_start, {})
        if r.feature == OUTSIDE_TRAINING_RANGE:
            entry["outside"] = r.value
            continue
        entry[f"est_{r.feature}"] = r.value
        entry[f"real_{r.feature}"] = getattr(r, "realized", np.nan)
        if r.feature == "rmse":
            flag = getattr(r, "nml_alert", False)
            entry["alert"] = not _missing(flag) and bool(flag)
    rows = [
        [
            _date(week),
            _num(e.get("est_rmse")),
            _num(e.get("real_rmse")),
            _num(e.get("est_mae")),
            _num(e.get("real_mae")),
            _pct(e.get("outside", np.nan)),
            _status(False, True) if e.get("alert") else "",
        ]
        for week, e in sorted(by_week.items(), key=lambda kv: kv[0], reverse=True)
    ][:MAX_TABLE_ROWS]
    body = [
        _p(
            "nannyml DLE estimates the error from the inputs alone, learned on the model's "
            "out-of-sample errors over a year of backtest folds (the holdout alone for "
            "models saved without them) and scaled to the holdout's error: it covers weeks "
            "whose actuals have not arrived, and rises where inputs move to where the model "
            "erred before (a warm spell for a model that under-forecasts warm days). Where "
            "actuals exist the realized value is shown next to it. Rows whose inputs "
            "(weather, promotions) lie outside the training range are beyond what it can "
            "judge: the model and the estimate are both flat past the training data, so "
            "there the estimate cannot say how much error the drift adds until the actuals "
            "arrive."
        ),
        _plot_html(
            lambda: estimated_performance_plot(monitoring, rmse),
            "estimated RMSE",
            plots,
            "estimated_performance",
            (monitoring, rmse),
        ),
        _table(
            [
                "week",
                "estimated RMSE",
                "realized RMSE",
                "estimated MAE",
                "realized MAE",
                "rows outside training range",
                "nannyml alert",
            ],
            rows,
            range(1, 6),
        ),
    ]
    return _section("estimated", "Estimated vs realized performance", "\n".join(body))


def _weeks_list(weeks: Iterable[Any]) -> str:
    return ", ".join(_date(w) for w in sorted(set(weeks)))


def _drift_section(monitoring: pd.DataFrame | None, heatmap: str | None = None) -> str:
    m = _usable(monitoring, ("signal", "feature", "week_start", "value"))
    if m is not None:
        m = m[m["signal"].isin(HEATMAP_SIGNALS)]
    if m is None or m.empty:
        return _section(
            "drift",
            "Drift per feature over time",
            _p("No drift statistics yet: monitoring has not run for this region."),
        )
    parts = [
        _p(
            "Weekly drift of each feature against the training data. Severity is the "
            "statistic over its nannyml threshold (above 1: beyond it); for region-level "
            "inputs the gap to the fleet median is compared with its reference band. "
            "Features without drift alerts (calendar, events, opening flags) are computed "
            "and shown in grey but never alert."
        ),
        _plot_html(lambda: heatmap or drift_heatmap(monitoring), "drift heatmap"),
    ]
    m = m.assign(
        week_start=_weeks(m["week_start"]),
        severity=_severity(m),
        nml_alert=_bool(m["nml_alert"]) if "nml_alert" in m.columns else False,
        ignored=_bool(m["ignored"]) if "ignored" in m.columns else False,
    )
    hits = m[m["nml_alert"] & ~m["ignored"]]
    if hits.empty:
        parts.append(_p("No watched feature crossed its nannyml threshold."))
    else:
        rows = []
        for (signal, feature), g in hits.groupby(["signal", "feature"], sort=True):
            rows.append(
                [
                    _esc(feature),
                    _esc(signal),
                    _int(len(g)),
                    _num(g["severity"].max()),
                    _weeks_list(g["week_start"]),
                ]
            )
        parts.append("<h3>Features beyond their threshold</h3>")
        parts.append(
            _table(["feature", "signal", "n weeks", "max severity", "weeks"], rows, (2, 3))
        )
        parts.append(
            _p("A threshold crossing becomes an alert only under the rules in the Alerts section.")
        )
    return _section("drift", "Drift per feature over time", "\n".join(parts))


_DQ_LABELS = {
    "missing_values": "missing values",
    "unseen_values": "unseen values",
    "out_of_range": "out of range",
}


def _quality_section(monitoring: pd.DataFrame | None) -> str:
    m = _usable(monitoring, ("signal", "feature", "week_start", "value"))
    if m is not None:
        m = m[m["signal"] == "data_quality"]
    if m is None or m.empty:
        return _section(
            "quality", "Data quality", _p("No data-quality statistics yet for this region.")
        )
    m = m.assign(
        week_start=_weeks(m["week_start"]),
        method=m["method"] if "method" in m.columns else "",
        nml_alert=_bool(m["nml_alert"]) if "nml_alert" in m.columns else False,
        ignored=_bool(m["ignored"]) if "ignored" in m.columns else False,
    )
    hits = m[m["nml_alert"]]
    if hits.empty:
        body = _p(
            f"No findings: missing values, unseen values and value ranges stayed within "
            f"their thresholds in all {m['week_start'].nunique()} weeks."
        )
        return _section("quality", "Data quality", body)
    rows = []
    for (method, feature), g in hits.groupby(["method", "feature"], sort=True):
        rows.append(
            [
                _esc(_DQ_LABELS.get(str(method), method)),
                _esc(feature) + (NO_QUALITY_ALERTS if g["ignored"].any() else ""),
                _int(len(g)),
                _num(_numeric(g, "value").max(), 3),
                _weeks_list(g["week_start"]),
            ]
        )
    body = _p(
        "Weeks where nannyml flagged a value count beyond its threshold. Features marked "
        "'no data-quality alerts' are missing or unseen by construction (lags and rolling "
        "means at the start of a series, calendar values of a new year) and never alert "
        "here; their drift is still watched unless the drift section says otherwise."
    ) + _table(["finding", "feature", "n weeks", "max value", "weeks"], rows, (2, 3))
    return _section("quality", "Data quality", body)


def _attribution_section(
    monitoring: pd.DataFrame | None,
    importance: dict[str, float] | None,
    recent_importance: dict[str, float] | None,
    plots: PlotCache | None = None,
) -> str:
    parts = []
    if not _clean(importance) and not _clean(recent_importance):
        parts.append(_p("No feature attribution was saved with the model."))
    else:
        text = "Mean |Shapley| per feature as a share of the total, top 15"
        text += (
            ": saved with the model next to recent weeks; labels show the rank saved -> recent."
            if _clean(recent_importance)
            else " (saved with the model; no recent ranking computed yet)."
        )
        parts.append(_p(text))
        parts.append(
            _plot_html(
                lambda: attribution_plot(importance, recent_importance),
                "attribution",
                plots,
                "attribution",
                (importance, recent_importance),
            )
        )
    m = _usable(monitoring, ("signal", "week_start", "value"))
    if m is not None:
        # a week without a ranking (too few rows to explain) has nothing to show
        m = m[(m["signal"] == "attribution_drift") & m["value"].notna()]
    if m is None or m.empty:
        parts.append(_p("No weekly NDCG yet."))
    else:
        m = m.assign(week_start=_weeks(m["week_start"])).sort_values("week_start", ascending=False)
        rows = []
        for _, r in m.head(MAX_TABLE_ROWS).iterrows():
            value, threshold = r.get("value"), r.get("lower")
            below = (
                not _missing(value) and not _missing(threshold) and float(value) < float(threshold)
            )
            rows.append(
                [
                    _date(r["week_start"]),
                    _int(r.get("rows")),
                    _num(value, 3),
                    _num(threshold, 3),
                    '<span class="finding">below</span>' if below else "",
                ]
            )
        parts.append("<h3>NDCG of the weekly ranking against the saved one</h3>")
        parts.append(_p("1.0: the same ranking; it falls as important features lose rank."))
        parts.append(_table(["week", "rows", "NDCG", "threshold", ""], rows, (1, 2, 3)))
    return _section("attribution", "Attribution ranking", "\n".join(parts))


# -- document ---------------------------------------------------------------------------


def render_region_report(
    *,
    region: str,
    region_name: str,
    generated_at: str,
    model: dict[str, Any],
    forecasts: pd.DataFrame,
    ground_truth: pd.DataFrame,
    realized_weekly: pd.DataFrame,
    realized_by_origin: pd.DataFrame,
    monitoring: pd.DataFrame,
    alerts: pd.DataFrame,
    importance: dict[str, float],
    recent_importance: dict[str, float] | None,
    stored_drift_heatmap: str | None = None,
    plots: PlotCache | None = None,
) -> str:
    """One self-contained HTML document for a region, so a planner or an on-call engineer
    sees in one page whether the forecasts are still trustworthy and why an alert fired.
    Renders whatever is available: an empty input gives an explanatory sentence.
    ``stored_drift_heatmap``: the heatmap of ``monitoring`` drawn before (base64 SVG).
    ``plots``: where plots drawn for an earlier report of the same inputs are kept."""
    model = model if isinstance(model, dict) else {}
    monitoring = _for_region(monitoring, region)
    sections = [
        _header(region, region_name, generated_at, model),
        _alerts_section(_for_region(alerts, region)),
        _forecast_section(_for_region(forecasts, region), ground_truth, plots),
        _metrics_section(
            _for_region(realized_weekly, region),
            _for_region(realized_by_origin, region),
            model,
            plots,
        ),
        _estimated_section(monitoring, model, plots),
        _drift_section(monitoring, stored_drift_heatmap),
        _quality_section(monitoring),
        _attribution_section(monitoring, importance, recent_importance, plots),
    ]
    title = f"Monitoring report: {_region_label(region_name, region)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def region_report_html(
    ws: Workspace,
    ds: DatasetSpec,
    registry: ModelRegistry,
    mv: ModelVersion,
    *,
    drift_table: pd.DataFrame,
    alerts: pd.DataFrame | None,
    region_name: str,
    generated_at: str,
    plots: PlotCache | None = None,
    meta: dict | None = None,
    warehouse: duckdb.DuckDBPyConnection | None = None,
) -> str:
    """The report of ``mv``'s region from what the workspace holds: its forecasts and their
    actuals, realized metrics, ``drift_table`` (its drift report's rows of ``mv``, as read
    back) and ``alerts`` (the fleet's, None before a fleet comparison). Plots come from the
    region's stored plots where their inputs did not change, and new ones are stored
    (``storage.plot_store``): the drift_report asset draws them after a region's refresh,
    in that region's run, and ``monitoring_alerts`` then finds them. ``plots``: the
    region's store (default: a new one); ``meta``: ``mv``'s metadata where the caller
    loaded it already (default: read from the registry); ``warehouse``: a connection with
    the workspace views where the caller writes many regions' reports (default: one
    opened for the ground truth)."""
    from mlops_assets import monitoring, realized
    from mlops_assets.storage.plot_store import RegionPlotStore

    region = mv.region
    forecasts = realized.read_forecasts(ws, region)
    record = mv.record
    if meta is None:
        meta = registry.load_meta(mv)
    return render_region_report(
        region=region,
        region_name=region_name,
        generated_at=generated_at,
        model={
            "label": mv.label,
            "status": mv.status,
            "version": mv.version,
            "trained_at": mv.created_at,
            "train_date_min": record.get("train_date_min"),
            "train_date_max": record.get("train_date_max"),
            "metrics": record.get("metrics"),
            "baseline_metrics": record.get("baseline_metrics"),
        },
        forecasts=forecasts,
        ground_truth=realized.forecast_ground_truth(ws, ds, region, forecasts, warehouse),
        realized_weekly=realized.read_weekly_realized(ws, region),
        realized_by_origin=realized.read_realized_performance(ws, region),
        monitoring=drift_table,
        alerts=alerts if alerts is not None else pd.DataFrame(),
        importance=meta.get("importance") or {},
        recent_importance=None,
        # the drift_report asset drew this table's heatmap: reused, not drawn again
        stored_drift_heatmap=monitoring.stored_drift_heatmap(ws, region, drift_table, draw=False)
        if len(drift_table)
        else None,
        plots=plots if plots is not None else RegionPlotStore(ws, region),
    )


def draw_region_report_plots(
    ws: Workspace,
    ds: DatasetSpec,
    registry: ModelRegistry,
    mv: ModelVersion,
    meta: dict | None = None,
) -> dict[str, str]:
    """Draw and store the plots of ``mv``'s region's report from its drift report as
    ``monitoring_alerts`` reads it back (the drift_report asset calls this after a
    region's refresh, in that region's run); the plots by name (base64 PNG). ``meta``:
    ``mv``'s metadata where the caller loaded it already."""
    from mlops_assets import monitoring
    from mlops_assets.storage.plot_store import RegionPlotStore

    plots = RegionPlotStore(ws, mv.region)
    table = monitoring.read_drift_report(ws, mv.region)
    region_report_html(
        ws,
        ds,
        registry,
        mv,
        drift_table=table[table["model_version"] == mv.version],
        alerts=None,
        region_name=mv.region,
        generated_at="",
        plots=plots,
        meta=meta,
    )
    return plots.given
