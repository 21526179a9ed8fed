"""The inline holdout plot: short enough for the Dagster UI to draw in place, and true to
the data it draws; images reach a page with the media type of what they are."""

import base64
import re
import subprocess
import sys
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from mlops_assets.plots import (
    INLINE_MARKDOWN_CHARS,
    holdout_series_sparklines,
    holdout_sparkline,
    markdown_image,
)


def _holdout(days: int, series: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    dates = pd.date_range("2024-01-01", periods=days)
    frame = pd.DataFrame(
        [(f"S{s}", "A", d) for s in range(series) for d in dates], columns=["store", "item", "date"]
    )
    frame["actual"] = rng.gamma(5, 40, len(frame)) * 1000
    frame["model"] = frame["actual"] * rng.normal(1, 0.1, len(frame))
    frame["hist_avg"] = 200_000.0
    frame["eligible"] = frame["date"].dt.dayofweek != 6  # Sundays closed, not scored
    return frame


def _svg(markdown: str) -> ET.Element:
    uri = re.fullmatch(r"!\[[^\]]*\]\(data:image/svg\+xml,([^)]*)\).*", markdown).group(1)
    return ET.fromstring(urllib.parse.unquote(uri))


@pytest.mark.parametrize("days", [7, 42, 120, 400])
def test_the_holdout_sparkline_fits_the_ui_inline_limit_and_draws_three_lines(days: int) -> None:
    markdown = holdout_sparkline(_holdout(days))
    assert len(markdown) <= INLINE_MARKDOWN_CHARS
    svg = _svg(markdown)
    paths = svg.findall("{http://www.w3.org/2000/svg}path")
    assert [p.get("stroke") for p in paths] == ["grey", "black", "#1f77b4"]
    assert "actual (black), model (blue)" in markdown


def test_the_sparkline_draws_the_scored_daily_totals() -> None:
    holdout = _holdout(14)
    svg = _svg(holdout_sparkline(holdout, height=60))
    actual = svg.findall("{http://www.w3.org/2000/svg}path")[1].get("d")
    steps = [int(m) for m in re.findall(r"l7,(-?\d+)", actual)]
    y0 = int(re.match(r"M0,(\d+)", actual).group(1))
    ys = np.cumsum([y0, *steps])
    scored = holdout[holdout["eligible"]].groupby("date")[["actual", "model", "hist_avg"]].sum()
    lo, hi = scored.min().min(), scored.max().max()
    expected = np.round((hi - scored["actual"]) / (hi - lo) * 60).astype(int)
    assert ys.tolist() == expected.tolist()  # one point a day, Sundays' rows left out


def test_the_series_plots_draw_the_highest_volume_series_day_by_day() -> None:
    days = pd.date_range("2024-01-01", periods=30, freq="D")
    rows = [
        {"store": s, "item": i, "date": d, "actual": v, "model": v, "hist_avg": v, "eligible": 1}
        for s, i, v in ((1, 1, 10.0), (1, 2, 50.0), (2, 1, 30.0), (3, 1, 1.0))
        for d in days
    ]
    md = holdout_series_sparklines(pd.DataFrame(rows), n_series=3)
    titles = [line for line in md.splitlines() if line.startswith("**store")]
    assert titles == ["**store 1 / item 2**", "**store 2 / item 1**", "**store 1 / item 1**"]
    # one point per day: 29 segments of each of the three lines in each chart
    assert md.count("l7,") == 3 * 3 * 29


def test_tables_and_inline_plots_do_not_load_matplotlib() -> None:
    """Forecast and model runs use these; matplotlib alone costs them 0.7-1.2 s."""
    code = (
        "import sys, pandas as pd; from mlops_assets import plots; "
        "plots.markdown_table(pd.DataFrame({'a': [1.0]})); "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_image_is_embedded_with_the_media_type_of_its_bytes() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n...").decode()
    svg = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg"/>').decode()
    assert markdown_image(png, "p") == f"![p](data:image/png;base64,{png})"
    assert markdown_image(svg, "s") == f"![s](data:image/svg+xml;base64,{svg})"
    with pytest.raises(ValueError, match="not a base64 PNG or SVG"):
        markdown_image(base64.b64encode(b"GIF89a...").decode(), "g")
