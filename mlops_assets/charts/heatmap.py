"""A heatmap as SVG text: panels of labelled rows over shared columns, each cell coloured
by its value and carrying it as a number, some cells outlined.

Everything is placed by arithmetic on a fixed cell size, so drawing costs milliseconds
whatever the number of cells (matplotlib took 0.5-1 s for the drift heatmap, most of it
laying out and rasterizing the cells' numbers). Colours come from matplotlib's colormaps
(``matplotlib.colormaps``), so a panel looks as it would in a matplotlib figure.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CELL_W, CELL_H = 34, 16  # px: a cell holds a number like "1.2" at CELL_FONT
LABEL_FONT, CELL_FONT, TITLE_FONT = 11, 9, 12
CHAR_W = 0.6  # a character's width in em, generous for a sans-serif font
PAD = 8
COLORBAR_W, COLORBAR_GAP, COLORBAR_TICKS_W = 10, 10, 30
COLUMN_LABEL_H = 64  # "2024-01-01" at LABEL_FONT - 1, rotated 60 degrees
MISSING_FILL = "#eeeeee"
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class HeatmapPanel:
    """Rows that share a colour scale, under their title. ``values``: rows x columns, a
    non-finite value is a grey cell without a number. ``outlined``: rows x columns, True
    where the cell gets a black frame."""

    title: str
    rows: Sequence[str]
    values: np.ndarray
    colormap: str
    outlined: np.ndarray | None = None


def _text(value: object) -> str:
    """Text from data for SVG content or an attribute: escaped, characters XML forbids
    replaced (a feature name is data)."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)))


def _hex_colours(colormap: str, shares: np.ndarray) -> np.ndarray:
    """The colormap's colour at each share of its range (0..1) as ``#rrggbb``."""
    import matplotlib

    rgb = np.rint(matplotlib.colormaps[colormap](np.clip(shares, 0.0, 1.0))[..., :3] * 255)
    rgb = rgb.astype(int)
    return np.array([f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rgb.reshape(-1, 3)]).reshape(
        shares.shape
    )


def heatmap_svg(
    panels: Sequence[HeatmapPanel],
    columns: Sequence[str],
    *,
    vmin: float,
    vmax: float,
    dark_above: float,
    caption: str,
) -> str:
    """The panels stacked top to bottom over the same ``columns`` (labelled once, under
    the last panel), each with a colour bar from ``vmin`` to ``vmax`` (values beyond are
    drawn in the end colours). A cell's number is white above ``dark_above``."""
    label_w = max((len(str(r)) for p in panels for r in p.rows), default=0) * LABEL_FONT * CHAR_W
    grid_x = PAD + round(label_w) + 6
    grid_w = len(columns) * CELL_W
    bar_x = grid_x + grid_w + COLORBAR_GAP
    caption_w = round(len(caption) * (LABEL_FONT - 1) * CHAR_W)
    width = max(bar_x + COLORBAR_W + COLORBAR_TICKS_W + PAD, caption_w + 2 * PAD)
    out: list[str] = []
    defs: list[str] = []
    y = PAD
    for index, panel in enumerate(panels):
        values = np.asarray(panel.values, dtype=float).reshape(len(panel.rows), len(columns))
        out.append(
            f'<text x="{PAD}" y="{y + TITLE_FONT}" font-size="{TITLE_FONT}">'
            f"{_text(panel.title)}</text>"
        )
        y += TITLE_FONT + 8
        out.append(_cells(panel, values, grid_x, y, vmin, vmax, dark_above))
        height = max(len(panel.rows) * CELL_H, 3 * CELL_H)
        defs.append(_gradient(f"bar{index}", panel.colormap))
        out.append(_colour_bar(f"bar{index}", bar_x, y, height, vmin, vmax))
        y += max(len(panel.rows) * CELL_H, height) + 12
    y -= 6
    for j, column in enumerate(columns):
        x = grid_x + j * CELL_W + CELL_W / 2
        out.append(
            f'<text transform="translate({x:g},{y}) rotate(-60)" text-anchor="end" '
            f'font-size="{LABEL_FONT - 1}">{_text(column)}</text>'
        )
    y += COLUMN_LABEL_H
    out.append(f'<text x="{PAD}" y="{y}" font-size="{LABEL_FONT - 1}">{_text(caption)}</text>')
    height = y + PAD
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}">'
        f'<rect width="{width}" height="{height}" fill="white"/>'
        f"<defs>{''.join(defs)}</defs>{''.join(out)}</svg>"
    )


def _cells(
    panel: HeatmapPanel,
    values: np.ndarray,
    grid_x: int,
    top: int,
    vmin: float,
    vmax: float,
    dark_above: float,
) -> str:
    """Row labels, coloured cells with their numbers, then the outlines (drawn last, so
    no neighbouring cell covers them)."""
    finite = np.isfinite(values)
    shares = np.where(finite, (values - vmin) / ((vmax - vmin) or 1.0), 0.0)
    fills = np.where(finite, _hex_colours(panel.colormap, shares), MISSING_FILL)
    parts = []
    for i, label in enumerate(panel.rows):
        y = top + i * CELL_H
        parts.append(
            f'<text x="{grid_x - 4}" y="{y + CELL_H / 2:g}" text-anchor="end" '
            f'dominant-baseline="central" font-size="{LABEL_FONT}">{_text(label)}</text>'
        )
        for j in range(values.shape[1]):
            x = grid_x + j * CELL_W
            parts.append(
                f'<rect x="{x}" y="{y}" width="{CELL_W}" height="{CELL_H}" fill="{fills[i, j]}"/>'
            )
    numbers = [f'<g font-size="{CELL_FONT}" text-anchor="middle" dominant-baseline="central">']
    for i, j in zip(*np.nonzero(finite), strict=True):
        colour = ' fill="white"' if values[i, j] > dark_above else ""
        numbers.append(
            f'<text x="{grid_x + j * CELL_W + CELL_W / 2:g}" y="{top + i * CELL_H + CELL_H / 2:g}"'
            f"{colour}>{values[i, j]:.1f}</text>"
        )
    numbers.append("</g>")
    parts.extend(numbers)
    if panel.outlined is not None:
        outlined = np.asarray(panel.outlined, dtype=bool).reshape(values.shape)
        for i, j in zip(*np.nonzero(outlined), strict=True):
            parts.append(
                f'<rect x="{grid_x + j * CELL_W + 1}" y="{top + i * CELL_H + 1}" '
                f'width="{CELL_W - 2}" height="{CELL_H - 2}" fill="none" stroke="black" '
                'stroke-width="2" class="outlined"/>'
            )
    return "".join(parts)


def _gradient(gradient_id: str, colormap: str) -> str:
    """The colormap as a vertical gradient, its low end at the bottom."""
    shares = np.linspace(0.0, 1.0, 11)
    stops = "".join(
        f'<stop offset="{s:.1f}" stop-color="{c}"/>'
        for s, c in zip(shares, _hex_colours(colormap, shares), strict=True)
    )
    return (
        f'<linearGradient id="{gradient_id}" x1="0" y1="1" x2="0" y2="0">{stops}</linearGradient>'
    )


def _colour_bar(gradient_id: str, x: int, top: int, height: int, vmin: float, vmax: float) -> str:
    ticks = "".join(
        f'<text x="{x + COLORBAR_W + 3}" y="{top + height * (1 - k / 2):g}" '
        f'dominant-baseline="central" font-size="{CELL_FONT}">{v:g}</text>'
        for k, v in enumerate((vmin, (vmin + vmax) / 2, vmax))
    )
    return (
        f'<rect x="{x}" y="{top}" width="{COLORBAR_W}" height="{height}" '
        f'fill="url(#{gradient_id})" stroke="#999" stroke-width="0.5"/>{ticks}'
    )
