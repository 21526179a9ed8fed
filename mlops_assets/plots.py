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
