"""The inline holdout plot: short enough for the Dagster UI to draw in place, and true to
the data it draws."""

import re
import urllib.parse
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from mlops_assets.plots import INLINE_MARKDOWN_CHARS, holdout_sparkline


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
