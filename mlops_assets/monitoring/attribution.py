"""Attribution drift: whether the features that drive the model's forecasts changed,
as the NDCG of each week's mean |Shapley| ranking against the same weeks a year
earlier (or the ranking saved with the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_assets.monitoring.table import TABLE_COLUMNS
from mlops_assets.spec import MonitoringSettings
from mlops_assets.training import as_datetime, shap_contributions

if TYPE_CHECKING:
    import lightgbm as lgb


def attribution_ndcg(reference: dict[str, float], current: dict[str, float]) -> float:
    """NDCG of the current ranking of mean |Shapley| values, graded by the reference
    importances (1.0: the same ranking; it falls as important features lose rank)."""
    from sklearn.metrics import ndcg_score

    names = [n for n in reference if n in current]
    if len(names) < 2:
        return float("nan")
    truth = np.array([[max(reference[n], 0.0) for n in names]])
    score = np.array([[current[n] for n in names]])
    if not truth.any():
        return float("nan")
    return float(ndcg_score(truth, score))


SAME_SEASON_DAYS = 364  # 52 weeks: the same weekdays a year earlier


def same_season_rows(reference: pd.DataFrame, week: pd.Timestamp) -> pd.DataFrame:
    """Training rows of the three weeks centred on ``week`` a year earlier, in key order
    (whichever frame they come from, the same rows are then sampled)."""
    centre = pd.Timestamp(week) - pd.Timedelta(days=SAME_SEASON_DAYS)
    dates = as_datetime(reference["date"])
    rows = reference[
        (dates >= centre - pd.Timedelta(days=7)) & (dates < centre + pd.Timedelta(days=14))
    ]
    keys = [c for c in ("date", "store", "item") if c in rows.columns]
    return rows.sort_values(keys, kind="stable") if keys else rows


def _sampled(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame.sample(rows, random_state=0) if len(frame) > rows else frame


def _mean_abs_shap_of_each(
    booster: lgb.Booster, meta: dict[str, Any], frames: list[pd.DataFrame]
) -> list[dict]:
    """Each frame's mean |Shapley| per feature, from one TreeSHAP call over all their rows:
    a row's values do not depend on the others, and LightGBM's setup of a call (~30 ms for
    a rossmann-100 model) is paid once instead of twice a week."""
    if not frames:
        return []
    features = list(meta["features"])
    rows = pd.concat([f[features] for f in frames], ignore_index=True)
    contrib = shap_contributions(booster, meta, rows).drop(columns="expected_value").abs()
    bounds = np.cumsum([0, *(len(f) for f in frames)])
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    return [contrib.iloc[a:b].mean().to_dict() for a, b in pairs]


def attribution_drift(
    booster: lgb.Booster,
    meta: dict[str, Any],
    analysis: pd.DataFrame,
    s: MonitoringSettings,
    previous: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Weekly NDCG of the Shapley ranking on sampled rows against a reference ranking.

    The reference is the same season a year earlier in the training rows ``reference``
    (method ``ndcg_mean_abs_shap_same_season``; at least ``min_chunk_rows`` of them), else
    the ranking saved with the model (``ndcg_mean_abs_shap``): a season's own drivers
    (holiday weeks rank the calendar first) are then no alert. Exact TreeSHAP is the
    expensive part of monitoring, so a week whose sampled rows (both sides) are unchanged
    since ``previous`` (an earlier table of the same model) is not recomputed."""
    saved = meta.get("importance") or {}
    features = list(meta["features"])
    known: dict[tuple, float] = {}
    if previous is not None and len(previous):
        old = previous[previous["signal"] == "attribution_drift"]
        known = {
            (pd.Timestamp(w), h): v
            for w, h, v in zip(old["week_start"], old["chunk_hash"], old["value"], strict=True)
        }
    weeks = []  # (week, its rows, its sample, the same season's sample, digest, known value)
    for week, chunk in analysis.groupby("week_start", sort=True):
        sample = _sampled(chunk, s.attribution_sample_rows)
        season = pd.DataFrame()
        if reference is not None and s.attribution_reference == "same_season":
            season = same_season_rows(reference, week)
            season = _sampled(season, s.attribution_sample_rows)
            if len(season) < s.min_chunk_rows:
                season = pd.DataFrame()
        hashed = [sample] if season.empty else [sample, season]
        digest = "-".join(
            str(pd.util.hash_pandas_object(f[features], index=False).sum()) for f in hashed
        )
        value = known.get((pd.Timestamp(week), digest))
        weeks.append((week, len(chunk), sample, season, digest, value))
    # the weeks not taken from ``previous``: their samples' Shapley values in one call
    frames = [
        f
        for _, _, sample, season, _, value in weeks
        if value is None
        for f in ([sample] if season.empty else [season, sample])
    ]
    means = iter(_mean_abs_shap_of_each(booster, meta, frames))
    rows = []
    for week, n_rows, _, season, digest, value in weeks:
        if value is None:
            basis = saved if season.empty else next(means)
            value = attribution_ndcg(basis, next(means))
        rows.append(
            {
                "signal": "attribution_drift",
                "feature": "ndcg",
                "method": "ndcg_mean_abs_shap" + ("" if season.empty else "_same_season"),
                "week_start": week,
                "rows": n_rows,
                "value": value,
                "lower": s.ndcg_threshold,
                "upper": np.nan,
                "nml_alert": False,
                "ignored": False,
                "realized": np.nan,
                "chunk_hash": digest,
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def reused_attribution_weeks(table: pd.DataFrame, previous: pd.DataFrame | None) -> int:
    """Weeks of ``table`` whose Shapley ranking ``attribution_drift`` took from
    ``previous`` (the same week and sampled rows) instead of computing it."""
    if previous is None or previous.empty:
        return 0
    keys = ["week_start", "chunk_hash"]
    mine = table.loc[table["signal"] == "attribution_drift", keys]
    old = previous.loc[previous["signal"] == "attribution_drift", keys].drop_duplicates()
    old = old.assign(week_start=pd.to_datetime(old["week_start"]))
    mine = mine.assign(week_start=pd.to_datetime(mine["week_start"]))
    return len(mine.merge(old, on=keys))
