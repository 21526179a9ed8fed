"""Plots for asset metadata and reports: inline SVG where the UI must draw it in place
(no plotting library needed), PNG through matplotlib for the richer report figures.

matplotlib is imported only by the functions that draw with it: importing it costs
0.7-1.2 s on this machine, paid again by every run process that would load it.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def png_base64(fig: Figure) -> str:
    """The figure as base64 PNG. Figures lay themselves out (``tight_layout``) before they
    come here: ``bbox_inches="tight"`` would draw each one twice to crop its margins, a
    quarter to a third of a drift_report's two figures (0.70-0.92 s against 0.91-1.31 s
    for a 10M-preset region)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def use_agg_backend() -> None:
    """Draw without a display (call before importing matplotlib.pyplot)."""
    import matplotlib

    matplotlib.use("Agg")


def image_format(b64: str) -> str:
    """``png`` or ``svg``: the format of a base64 image, read from its first bytes (the
    drift heatmap is SVG, the other plots PNG), so one str carries either to its page."""
    head = base64.b64decode(b64[:16] + "=" * (-len(b64[:16]) % 4))
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith((b"<svg", b"<?xml")):
        return "svg"
    raise ValueError(f"not a base64 PNG or SVG image: it starts with {head[:8]!r}")


def data_uri(b64: str) -> str:
    """A base64 PNG or SVG as a ``data:`` URI, its media type read from the image."""
    mime = "image/svg+xml" if image_format(b64) == "svg" else "image/png"
    return f"data:{mime};base64,{b64}"


def markdown_image(b64: str, alt: str) -> str:
    """A base64 PNG or SVG embedded in markdown (the Dagster UI renders it in asset
    metadata)."""
    return f"![{alt}]({data_uri(b64)})"


def holdout_series_sparklines(holdout: pd.DataFrame, *, n_series: int = 3) -> str:
    """Holdout actual vs model vs historical average of the highest-volume series, one
    daily SVG line chart each (markdown; longer than the UI's inline limit, so it opens
    on click)."""
    if "eligible" in holdout.columns:
        holdout = holdout[holdout["eligible"].astype(bool)]
    volume = holdout.groupby(["store", "item"])["actual"].sum().nlargest(n_series)
    parts = []
    for store, item in volume.index:
        series = holdout[(holdout["store"] == store) & (holdout["item"] == item)]
        totals = series.groupby("date")[[c for c, _, _ in _LINES]].sum().sort_index()
        parts.append(
            f"**store {store} / item {item}**\n\n"
            + _sparkline_markdown(totals, 60, alt=f"holdout: store {store} item {item}")
        )
    return "\n\n".join(parts) + "\n\n" + _CAPTION if parts else "no holdout rows"


# the Dagster UI draws markdown metadata in place only below this length (longer values hide
# behind "[Show Markdown]"), so the holdout plot that must be seen at a glance fits in it
INLINE_MARKDOWN_CHARS = 1000
_LINES = (  # column, stroke, dash: actual black, model blue, historical average grey dashed
    ("hist_avg", "grey", "3"),
    ("actual", "black", None),
    ("model", "%231f77b4", None),
)
_CAPTION = "actual (black), model (blue), historical average (grey, dashed)"


def holdout_sparkline(holdout: pd.DataFrame, *, height: int = 60) -> str:
    """The region's daily total over the holdout as a small inline SVG in markdown: actual
    (black), model (blue) and historical average (grey, dashed). Shorter than
    ``INLINE_MARKDOWN_CHARS`` so the UI shows it on the materialization itself; days are
    merged into longer steps until it fits."""
    if "eligible" in holdout.columns:  # the scored rows (open days), as the metrics are
        holdout = holdout[holdout["eligible"].astype(bool)]
    totals = holdout.groupby("date")[[c for c, _, _ in _LINES]].sum().sort_index()
    for step in range(1, len(totals) + 1):
        t = totals.groupby(pd.RangeIndex(len(totals)) // step).sum()
        md = _sparkline_markdown(t, height, alt="holdout: daily total") + " " + _CAPTION
        if len(md) <= INLINE_MARKDOWN_CHARS:
            return md
    return "holdout too long to draw inline"


def _sparkline_markdown(totals: pd.DataFrame, height: int, *, alt: str) -> str:
    lo, hi = float(totals.min().min()), float(totals.max().max())
    span = (hi - lo) or 1.0
    dx = 7
    width = dx * max(len(totals) - 1, 1)
    paths = []
    for column, stroke, dash in _LINES:
        ys = [round((hi - v) / span * height) for v in totals[column]]
        d = f"M0,{ys[0]}" + "".join(f"l{dx},{b - a}" for a, b in zip(ys, ys[1:], strict=False))
        dashed = f"%20stroke-dasharray='{dash}'" if dash else ""
        paths.append(f"%3Cpath%20d='{d}'%20stroke='{stroke}'{dashed}%20fill='none'/%3E")
    shown_width = 460  # fits the metadata table's value column
    shown_height = round(shown_width * (height + 4) / (width + 4))
    svg = (
        "%3Csvg%20xmlns='http://www.w3.org/2000/svg'%20preserveAspectRatio='none'%20"
        f"viewBox='-2%20-2%20{width + 4}%20{height + 4}'%20width='{shown_width}'%20"
        f"height='{max(shown_height, 80)}'%3E{''.join(paths)}%3C/svg%3E"
    )
    return f"![{alt}](data:image/svg+xml,{svg})"


def markdown_table(frame: pd.DataFrame, *, floatfmt: str = "{:.2f}") -> str:
    """A small DataFrame as a markdown table (renders inline in asset metadata)."""
    if frame.empty:
        return "no rows"
    cols = list(frame.columns)

    def cell(v: object) -> str:
        return floatfmt.format(v) if isinstance(v, float) else str(v)

    rows = [
        "| " + " | ".join(cells) + " |" for cells in ([str(c) for c in cols], ["---"] * len(cols))
    ]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join(rows)
