"""The SVG heatmap: each finite cell coloured and numbered, missing cells grey and blank,
outlines where asked, data labels escaped into well-formed XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib
import numpy as np

from mlops_assets.charts.heatmap import CELL_H, CELL_W, MISSING_FILL, HeatmapPanel, heatmap_svg

NS = "{http://www.w3.org/2000/svg}"


def _draw(rows: list[str], values: list[list[float]], outlined=None, colormap="YlOrRd"):
    svg = heatmap_svg(
        [HeatmapPanel("watched", rows, np.array(values, float), colormap, outlined)],
        ["2024-01-01", "2024-01-08"],
        vmin=0.0,
        vmax=2.0,
        dark_above=1.4,
        caption="week",
    )
    return ET.fromstring(svg)


def _hex(colormap: str, share: float) -> str:
    return matplotlib.colors.to_hex(matplotlib.colormaps[colormap](share))


def test_cells_carry_their_number_and_colour_and_missing_ones_stay_blank() -> None:
    root = _draw(["a", "b"], [[0.5, np.nan], [1.8, 9.0]], np.array([[False, False], [True, False]]))
    numbers = {t.text: t for t in root.iter(f"{NS}text") if t.text and "." in t.text}
    assert set(numbers) == {"0.5", "1.8", "9.0"}  # NaN: no number
    assert numbers["1.8"].get("fill") == "white" and numbers["0.5"].get("fill") is None
    cells = [r for r in root.iter(f"{NS}rect") if r.get("width") == str(CELL_W)]
    assert len(cells) == 4
    fills = [c.get("fill") for c in cells]  # row by row
    assert fills[0] == _hex("YlOrRd", 0.25) and fills[1] == MISSING_FILL
    assert fills[3] == _hex("YlOrRd", 1.0)  # beyond vmax: the end colour
    (frame,) = [r for r in root.iter(f"{NS}rect") if r.get("class") == "outlined"]
    # the outline sits on row 2, column 1 (inset by a pixel)
    assert float(frame.get("x")) == float(cells[2].get("x")) + 1
    assert float(frame.get("y")) == float(cells[2].get("y")) + 1
    assert float(cells[2].get("y")) - float(cells[0].get("y")) == CELL_H


def test_labels_from_data_are_escaped_into_well_formed_svg() -> None:
    hostile = '<script>alert("x")</script> & \x01'
    root = _draw([hostile], [[0.1, 0.2]])  # parses: escaped, control character replaced
    labels = [t.text for t in root.iter(f"{NS}text")]
    assert '<script>alert("x")</script> & \ufffd' in labels
    assert not list(root.iter(f"{NS}script"))


def test_panels_stack_with_their_own_colour_scale() -> None:
    svg = heatmap_svg(
        [
            HeatmapPanel("watched", ["a"], np.array([[2.0]]), "YlOrRd"),
            HeatmapPanel("never alert", ["b", "c"], np.array([[2.0], [0.0]]), "Greys"),
        ],
        ["2024-01-01"],
        vmin=0.0,
        vmax=2.0,
        dark_above=1.4,
        caption="week",
    )
    root = ET.fromstring(svg)
    fills = [r.get("fill") for r in root.iter(f"{NS}rect") if r.get("width") == str(CELL_W)]
    assert fills == [_hex("YlOrRd", 1.0), _hex("Greys", 1.0), _hex("Greys", 0.0)]
    assert len(list(root.iter(f"{NS}linearGradient"))) == 2
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert texts.index("watched") < texts.index("a") < texts.index("never alert") < texts.index("b")
    assert texts.count("2024-01-01") == 1  # columns labelled once, under the last panel
