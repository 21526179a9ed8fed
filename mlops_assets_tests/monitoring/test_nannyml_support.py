"""nannyml as monitoring uses it (``monitoring.nannyml_support``): the weekly chunker cuts
exactly nannyml's own chunks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from mlops_assets import monitoring
from mlops_assets.monitoring.nannyml_support import week_chunker


def test_the_week_chunker_splits_exactly_like_nannyml():
    """Monitoring's chunker skips nannyml's re-parsing of a datetime column (a cost, not
    a change): the same weekly chunks, bounds and rows as nannyml's own, and string dates
    still go through nannyml's parsing."""
    from nannyml import PeriodBasedChunker

    from mlops_assets.monitoring import WEEK_OFFSET

    rng = np.random.default_rng(3)
    dates = pd.date_range("2025-12-24", "2026-03-08", freq="D")  # partial weeks at both ends
    frame = pd.DataFrame(
        {"date": rng.permutation(np.repeat(dates, 3)), "x": rng.normal(size=3 * len(dates))}
    )
    for data in (frame, frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"))):
        ours = week_chunker().split(data)
        theirs = PeriodBasedChunker(timestamp_column_name="date", offset=WEEK_OFFSET).split(data)
        assert [c.key for c in ours] == [c.key for c in theirs] and len(ours) == 11
        for a, b in zip(ours, theirs, strict=True):
            assert (a.start_datetime, a.end_datetime) == (b.start_datetime, b.end_datetime)
            assert (a.start_index, a.end_index) == (b.start_index, b.end_index)
            pd.testing.assert_frame_equal(a.data, b.data)


def test_week_chunks_are_nannyml_s_own_weekly_chunks():
    """The fast week chunker cuts the same chunks as nannyml's PeriodBasedChunker: keys,
    bounds, indices and rows, also for unsorted rows and rows without a date."""
    nml = monitoring.import_nannyml()
    rng = np.random.default_rng(0)
    n = 5_000
    frame = pd.DataFrame(
        {
            "date": pd.Timestamp("2014-01-01") + pd.to_timedelta(rng.integers(0, 400, n), "D"),
            "x": rng.normal(size=n),
        }
    )
    frame.loc[rng.choice(n, 20, replace=False), "date"] = pd.NaT
    nannyml_chunker = nml.PeriodBasedChunker(
        timestamp_column_name="date", offset=monitoring.WEEK_OFFSET
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "too few chunks" for the empty frame
        for rows in (frame, frame.sort_values("date"), frame.iloc[:0]):
            ours = week_chunker().split(rows)
            theirs = nannyml_chunker.split(rows)
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                assert (a.key, a.start_datetime, a.end_datetime) == (
                    b.key,
                    b.start_datetime,
                    b.end_datetime,
                )
                assert (a.start_index, a.end_index) == (b.start_index, b.end_index)
                pd.testing.assert_frame_equal(a.data, b.data)
    assert len(ours) == 0 and len(week_chunker().split(frame)) == 58
