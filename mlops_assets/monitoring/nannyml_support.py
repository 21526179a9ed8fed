"""nannyml as monitoring uses it: imported with LightGBM's scikit-learn API in place,
quiet, chunked by Monday..Sunday weeks (a faster chunker, the same chunks), and its
result tables read into the drift table's rows."""

from __future__ import annotations

import functools
import logging
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_assets.monitoring.table import WEEK_OFFSET
from mlops_assets.training import week_start

if TYPE_CHECKING:
    from nannyml import PeriodBasedChunker
    from nannyml.base import AbstractResult


def import_nannyml() -> ModuleType:
    """nannyml, imported after making sure LightGBM has its scikit-learn API in this
    process (a training-only run may have imported it without: models.lightgbm_import)."""
    from mlops_assets.models.lightgbm_import import ensure_lightgbm_sklearn_api

    ensure_lightgbm_sklearn_api("nannyml")
    import nannyml

    return nannyml


def quiet_nannyml() -> warnings.catch_warnings[None]:
    """nannyml logs every fit at INFO and warns on small chunks: keep run logs readable."""
    logging.getLogger("nannyml").setLevel(logging.ERROR)
    return warnings.catch_warnings()


def week_chunker() -> PeriodBasedChunker:
    return _week_chunker_class()(timestamp_column_name="date", offset=WEEK_OFFSET)


@functools.cache
def _week_chunker_class() -> type[PeriodBasedChunker]:
    nml = import_nannyml()
    from nannyml.chunk import Chunk

    class WeekChunker(nml.PeriodBasedChunker):
        """nannyml's weekly chunks, the same keys, bounds and rows, without its
        ``pd.to_datetime`` of a column that holds datetimes already (see ``as_datetime``:
        every split of every calculator paid it) and, as ``split`` hands over the rows
        sorted by time, each week cut as one slice instead of a group looked up by key (a
        monitoring pass splits every reference and analysis frame once per calculator)."""

        def _split(self, data: pd.DataFrame) -> list[Chunk]:
            stamps = data[self.timestamp_column_name]
            if not pd.api.types.is_datetime64_any_dtype(stamps):
                return super()._split(data)
            periods = stamps.dt.to_period(self.offset)
            codes, weeks = pd.factorize(periods)  # -1: no timestamp (sorted last)
            dated = int((codes >= 0).sum())
            steps = np.diff(codes[:dated])
            if (codes[:dated] >= 0).all() and (steps >= 0).all():
                if not dated:
                    return []
                starts = [0, *(np.flatnonzero(steps) + 1)]
                ends = [*starts[1:], dated]
                # vectorised: a Period's own key and bounds cost 0.2 ms each
                keys, first, last = (
                    list(weeks.astype(str)),
                    list(weeks.start_time),
                    list(weeks.end_time),
                )
                return [
                    Chunk(
                        key=keys[codes[a]],
                        data=data.iloc[a:b],
                        start_datetime=first[codes[a]],
                        end_datetime=last[codes[a]],
                    )
                    for a, b in zip(starts, ends, strict=True)
                ]
            grouped = data.groupby(periods)
            return [
                Chunk(
                    key=str(k),
                    data=grouped.get_group(k),
                    start_datetime=k.start_time,
                    end_datetime=k.end_time,
                )
                for k in grouped.groups
            ]

    return WeekChunker


def result_rows(
    result_df: pd.DataFrame, chunk_cols: tuple, signal: str, key: tuple
) -> pd.DataFrame:
    """One tidy table from a nannyml ``to_df()`` block (its column layouts differ)."""
    start = result_df[(*chunk_cols, "start_date")]
    size = chunk_sizes(result_df, chunk_cols)
    block = result_df[key]
    return pd.DataFrame(
        {
            "signal": signal,
            "week_start": week_start(pd.Series(pd.to_datetime(start).to_numpy())),
            "rows": size.to_numpy(int),
            "value": block["value"].to_numpy(float),
            "lower": pd.to_numeric(block.get("lower_threshold"), errors="coerce"),
            "upper": pd.to_numeric(block.get("upper_threshold"), errors="coerce"),
            "nml_alert": block["alert"].fillna(False).to_numpy(bool),
            "realized": pd.to_numeric(block["realized"], errors="coerce")
            if "realized" in block.columns
            else np.nan,
        }
    )


def chunk_sizes(result_df: pd.DataFrame, chunk_cols: tuple = ("chunk",)) -> pd.Series:
    """Rows per chunk of a nannyml ``to_df()`` block."""
    return result_df[(*chunk_cols, "end_index")] - result_df[(*chunk_cols, "start_index")] + 1


def analysis_results(result: AbstractResult) -> pd.DataFrame:
    """A nannyml result's analysis-period rows (its reference-period rows are dropped)."""
    return result.filter(period="analysis").to_df()


def weekly_chunking() -> dict[str, Any]:
    """The arguments that chunk a nannyml calculator by Monday..Sunday weeks of ``date``."""
    return {"timestamp_column_name": "date", "chunker": week_chunker()}
