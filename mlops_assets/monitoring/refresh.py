"""What a monitoring refresh of the same model takes from the region's last drift table
instead of computing it again.

Every univariate drift, fleet gap, PCA reconstruction, data-quality and DLE estimate row
carries in ``chunk_hash`` what it was computed from: ``<reference digest>;week:<week
digest>``, the reference rows (dates and the signal's columns, the settings it is fitted
with, nannyml's version and ours: ``reference_digest``) and its week's analysis rows. A
refresh then

- takes a week's rows whole when both are unchanged (``split_weeks`` / ``merge_weeks``):
  nannyml scores each weekly chunk on its own against what its fit learnt from the
  reference, so the same reference and the same week give the same rows;
- takes the thresholds when only the reference is unchanged (``known_thresholds``;
  univariate and PCA drift): a fit scores every reference week only to set them, and the
  new weeks are scored.

Nothing is taken from a table of another model (``store.model_drift_report``), and a week
whose rows in the last table do not cover every (feature, method) the signal writes now is
computed again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlops_assets.monitoring.nannyml_support import import_nannyml
from mlops_assets.monitoring.table import TABLE_COLUMNS
from mlops_assets.training import week_start

WEEK_SEPARATOR = ";week:"
# the signals whose unchanged weeks a refresh takes from the last table (attribution
# drift keeps its own digests: ``attribution.reused_attribution_weeks``)
REUSED_SIGNALS = (
    "feature_drift",
    "multivariate_drift",
    "data_quality",
    "fleet_gap_drift",
    "estimated_performance",
)
# the drift table's dtypes, as its signals write them (a table read back from Parquet is
# cast to them before its rows join freshly computed ones)
TABLE_DTYPES = {
    "signal": object,
    "feature": object,
    "method": object,
    "week_start": "datetime64[ns]",
    "rows": "int64",
    "value": "float64",
    "lower": "float64",
    "upper": "float64",
    "nml_alert": bool,
    "ignored": bool,
    "realized": "float64",
    "chunk_hash": object,
}

Thresholds = dict[tuple[str, str], tuple[float | None, float | None]]


def reference_digest(
    reference: pd.DataFrame, names: list[str], settings: dict[str, Any] | None = None
) -> str:
    """What a signal's fit learns from: the reference rows (dates and ``names``, which are
    named in it too), the ``settings`` it is fitted with beyond the code's own (e.g. a
    threshold's width, the error model's parameters), and the code that computes it:
    nannyml's version and ours (another release recomputes every week once)."""
    from mlops_assets.version import code_version

    nml = import_nannyml()
    rows = pd.util.hash_pandas_object(reference[["date", *names]], index=False).sum()
    columns = hashlib.sha256("\0".join(names).encode()).hexdigest()[:16]
    code = f"nannyml-{nml.__version__}:mlops_assets-{code_version()}"
    digest = f"reference:{rows}:{len(reference)}:{columns}:{code}"
    if settings is not None:
        text = json.dumps(settings, sort_keys=True, default=str)
        digest += f":settings:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return digest


def reference_part(chunk_hash: pd.Series) -> pd.Series:
    """The reference digest of each ``chunk_hash`` (all of it where it has no week)."""
    return chunk_hash.astype(str).str.split(WEEK_SEPARATOR, n=1, regex=False).str[0]


def known_thresholds(
    previous: pd.DataFrame | None, digest: str, signal: str = "feature_drift"
) -> Thresholds:
    """(feature, method) -> (lower, upper) of the ``signal`` rows of ``previous`` computed
    from the reference ``digest`` describes (NaN: no threshold, as nannyml's None reads
    back from a table)."""
    if previous is None or previous.empty or "chunk_hash" not in previous.columns:
        return {}
    rows = previous[previous["signal"] == signal]
    rows = rows[(reference_part(rows["chunk_hash"]) == digest).to_numpy()]
    rows = rows.drop_duplicates(["feature", "method"])

    def threshold(value: Any) -> float | None:
        return None if pd.isna(value) else float(value)

    return {
        (feature, method): (threshold(lower), threshold(upper))
        for feature, method, lower, upper in rows[
            ["feature", "method", "lower", "upper"]
        ].itertuples(index=False)
    }


@dataclass(frozen=True)
class WeekSplit:
    """One signal's analysis weeks on a refresh: the last table's rows of the unchanged
    weeks (``reused``), the analysis rows of the others (``to_compute``) and the
    ``chunk_hash`` of every analysis week (indexed by its Monday)."""

    reused: pd.DataFrame
    to_compute: pd.DataFrame
    chunk_hashes: pd.Series


def split_weeks(
    analysis: pd.DataFrame,
    names: list[str],
    reference: str,
    previous: pd.DataFrame | None,
    signal: str,
    written: list[tuple[str, str]],
) -> WeekSplit:
    """The weeks of ``analysis`` whose ``signal`` rows ``previous`` holds for the same
    reference digest (``reference``) and the same rows (dates and ``names``), with a row
    for each (feature, method) in ``written``; the other weeks are to compute. Rows
    without a week digest (``estimate_support``'s, under ``estimated_performance``) are
    never taken."""
    weeks = week_start(analysis["date"]).to_numpy()
    hashed = pd.util.hash_pandas_object(analysis[["date", *names]], index=False).groupby(weeks)
    digests = hashed.sum().astype(str) + ":" + hashed.size().astype(str)
    chunk_hashes = reference + WEEK_SEPARATOR + digests
    reused = pd.DataFrame(columns=TABLE_COLUMNS)
    if previous is not None and len(previous) and "chunk_hash" in previous.columns:
        old = as_table_dtypes(previous.loc[previous["signal"] == signal, TABLE_COLUMNS])
        old = old[(old["week_start"].map(chunk_hashes) == old["chunk_hash"]).to_numpy()]
        wanted = set(written)
        taken = [
            week
            for week, rows in old.groupby("week_start")
            if len(rows) == len(wanted)
            and set(zip(rows["feature"], rows["method"], strict=True)) == wanted
        ]
        reused = old[old["week_start"].isin(taken).to_numpy()]
    to_compute = analysis[~pd.Series(weeks).isin(reused["week_start"]).to_numpy()]
    return WeekSplit(reused, to_compute, chunk_hashes)


def merge_weeks(
    split: WeekSplit, computed: pd.DataFrame, written: list[tuple[str, str]]
) -> pd.DataFrame:
    """The signal's table: the weeks ``computed`` (rows of ``split.to_compute``, given
    their ``chunk_hash``) and those ``split`` reused, ordered as ``written`` lists the
    (feature, method) pairs, then by week."""
    if len(computed):
        computed = computed.assign(chunk_hash=computed["week_start"].map(split.chunk_hashes))
    parts = [as_table_dtypes(p[TABLE_COLUMNS]) for p in (computed, split.reused) if len(p)]
    if not parts:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    order = {pair: i for i, pair in enumerate(written)}
    rank = [order[pair] for pair in zip(table["feature"], table["method"], strict=True)]
    table = table.assign(_rank=rank).sort_values(["_rank", "week_start"], kind="stable")
    return table.drop(columns="_rank").reset_index(drop=True)


def as_table_dtypes(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype({c: t for c, t in TABLE_DTYPES.items() if c in table.columns})


def reused_drift_thresholds(table: pd.DataFrame, previous: pd.DataFrame | None) -> int:
    """How many of ``table``'s drift thresholds (univariate per feature, the PCA
    reconstruction's) ``previous`` holds for the same reference rows: taken from it
    instead of scoring the reference weeks (a signal's, when it held all of them)."""
    if previous is None or previous.empty or "chunk_hash" not in previous.columns:
        return 0
    reused = 0
    for signal in ("feature_drift", "multivariate_drift"):
        mine = _thresholds_of(table, signal)
        if len(mine) and len(mine.merge(_thresholds_of(previous, signal))) == len(mine):
            reused += len(mine)
    return reused


def _thresholds_of(table: pd.DataFrame, signal: str) -> pd.DataFrame:
    rows = table[table["signal"] == signal]
    keys = rows[["feature", "method"]].assign(reference=reference_part(rows["chunk_hash"]))
    return keys.drop_duplicates()


def reused_drift_weeks(table: pd.DataFrame, previous: pd.DataFrame | None) -> int:
    """How many (signal, week) chunks of the ``REUSED_SIGNALS`` in ``table`` had the same
    reference and week rows in ``previous``: taken from it rather than computed."""
    if previous is None or previous.empty or "chunk_hash" not in previous.columns:
        return 0
    keys = ["signal", "week_start", "chunk_hash"]

    def chunks(rows: pd.DataFrame) -> pd.DataFrame:
        # rows without a week digest (``estimate_support``'s) are computed every time
        weekly = rows["chunk_hash"].astype(str).str.contains(WEEK_SEPARATOR, regex=False)
        rows = rows.loc[rows["signal"].isin(REUSED_SIGNALS) & weekly, keys].drop_duplicates()
        return rows.assign(week_start=pd.to_datetime(rows["week_start"]))

    return len(chunks(table).merge(chunks(previous), on=keys))
