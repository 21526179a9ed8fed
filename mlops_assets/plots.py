"""Small PNG plots for asset metadata and reports (matplotlib, no display needed)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def png_base64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def markdown_image(b64: str, alt: str) -> str:
    """A PNG embedded in markdown (the Dagster UI renders it in asset metadata)."""
    return f"![{alt}](data:image/png;base64,{b64})"


def holdout_plot(holdout: pd.DataFrame, *, n_series: int = 3, title: str = "") -> str:
    """Holdout actual vs model vs historical average for the highest-volume series."""
    volume = holdout.groupby(["store", "item"])["actual"].sum().nlargest(n_series)
    fig, axes = plt.subplots(len(volume), 1, figsize=(8, 2.2 * max(len(volume), 1)), squeeze=False)
    for ax, (store, item) in zip(axes[:, 0], volume.index, strict=False):
        s = holdout[(holdout["store"] == store) & (holdout["item"] == item)].sort_values("date")
        ax.plot(s["date"], s["actual"], label="actual", color="black", lw=1.5)
        ax.plot(s["date"], s["model"], label="model", color="tab:blue", lw=1.2)
        ax.plot(s["date"], s["hist_avg"], label="historical avg", color="tab:gray", lw=1, ls="--")
        ax.set_title(f"store {store} / item {item}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_base64(fig)


# the Dagster UI draws markdown metadata in place only below this length (longer values hide
# behind "[Show Markdown]"), so the holdout plot that must be seen at a glance fits in it
INLINE_MARKDOWN_CHARS = 1000
_LINES = (  # column, stroke, dash: actual black, model blue, historical average grey dashed
    ("hist_avg", "grey", "3"),
    ("actual", "black", None),
    ("model", "%231f77b4", None),
)


def holdout_sparkline(holdout: pd.DataFrame, *, height: int = 60) -> str:
    """The region's daily total over the holdout as a small inline SVG in markdown: actual
    (black), model (blue) and historical average (grey, dashed). Shorter than
    ``INLINE_MARKDOWN_CHARS`` so the UI shows it on the materialization itself; days are
    merged into longer steps until it fits."""
    if "eligible" in holdout.columns:  # the scored rows (open days), as the metrics are
        holdout = holdout[holdout["eligible"].astype(bool)]
    totals = holdout.groupby("date")[[c for c, _, _ in _LINES]].sum().sort_index()
    caption = " actual (black), model (blue), historical average (grey, dashed)"
    for step in range(1, len(totals) + 1):
        t = totals.groupby(pd.RangeIndex(len(totals)) // step).sum()
        md = _sparkline_markdown(t, height) + caption
        if len(md) <= INLINE_MARKDOWN_CHARS:
            return md
    return "holdout too long to draw inline"


def _sparkline_markdown(totals: pd.DataFrame, height: int) -> str:
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
    return f"![holdout: daily total](data:image/svg+xml,{svg})"


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
