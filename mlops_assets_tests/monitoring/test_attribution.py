"""Attribution drift (``monitoring.attribution``): the NDCG of a week's Shapley ranking, and
the weekly table on a generated fleet (weeks reused, the same season a year earlier)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mlops_assets import monitoring
from mlops_assets.monitoring import (
    attribution,
    attribution_ndcg,
)
from mlops_assets.spec import MonitoringSettings
from mlops_assets.training import week_start
from mlops_assets_tests.monitoring.fleet_support import (
    DRIFT_KEY,
    MON,
)

SETTINGS = MonitoringSettings()


# --------------------------------------------------------------------------------------
# attribution NDCG

# a skewed importance vector, as mean |Shapley| values usually are
SKEWED = {
    "lag_7": 100.0,
    "promo": 50.0,
    "dow": 10.0,
    "temperature_c": 5.0,
    "event_today": 2.0,
    "size_sqm": 1.0,
    "precipitation_mm": 0.5,
    "location": 0.2,
}


def _swap(d: dict[str, float], a: str, b: str) -> dict[str, float]:
    out = dict(d)
    out[a], out[b] = d[b], d[a]
    return out


def test_ndcg_of_an_identical_ranking_is_one():
    assert attribution_ndcg(SKEWED, SKEWED) == pytest.approx(1.0)
    # only the order matters, not the scale of the current values
    assert attribution_ndcg(SKEWED, {k: v / 7 + 0.01 for k, v in SKEWED.items()}) == (
        pytest.approx(1.0)
    )


def test_ndcg_alerts_when_the_top_two_features_swap_but_not_on_a_tail_swap():
    top = attribution_ndcg(SKEWED, _swap(SKEWED, "lag_7", "promo"))
    tail = attribution_ndcg(SKEWED, _swap(SKEWED, "precipitation_mm", "location"))
    assert top < SETTINGS.ndcg_threshold == 0.90, top
    assert tail > 0.99, tail
    assert tail < 1.0  # the tail swap is seen, just weighted lightly


def test_ndcg_ignores_features_missing_from_the_current_ranking():
    current = {k: v for k, v in SKEWED.items() if k != "lag_7"}
    current["not_in_reference"] = 1e6  # and features the reference does not know
    reference_without = {k: v for k, v in SKEWED.items() if k != "lag_7"}
    assert attribution_ndcg(SKEWED, current) == pytest.approx(1.0)
    reordered = _swap(current, "promo", "dow")
    assert attribution_ndcg(SKEWED, reordered) == pytest.approx(
        attribution_ndcg(reference_without, reordered)
    )
    assert attribution_ndcg(SKEWED, reordered) < 0.95


def test_ndcg_is_nan_without_a_usable_reference():
    assert math.isnan(attribution_ndcg(dict.fromkeys(SKEWED, 0.0), SKEWED))
    assert math.isnan(attribution_ndcg({}, SKEWED))
    assert math.isnan(attribution_ndcg(SKEWED, {"lag_7": 1.0}))  # one common feature


def test_attribution_drift_reuses_weeks_whose_sampled_rows_did_not_change(fleets, monkeypatch):
    fleet = fleets.stationary(0)
    model = fleet.models[DRIFT_KEY]
    analysis = fleet.inputs[DRIFT_KEY].analysis
    analysis = analysis.assign(week_start=week_start(analysis["date"]))
    calls: list[int] = []
    real = attribution.shap_contributions

    def spy(booster, meta, frame):
        calls.append(len(frame))
        return real(booster, meta, frame)

    monkeypatch.setattr(attribution, "shap_contributions", spy)
    weeks = analysis["week_start"].nunique()
    first = monitoring.attribution_drift(model.booster, model.meta, analysis, MON)
    assert weeks == len(first) == 16
    # one TreeSHAP call for every week's sampled rows
    per_week = analysis.groupby("week_start").size().clip(upper=MON.attribution_sample_rows)
    assert calls == [per_week.sum()]
    assert first["value"].between(0, 1).all()
    # the same values as one call per week
    batched = attribution._mean_abs_shap_of_each
    monkeypatch.setattr(
        attribution,
        "_mean_abs_shap_of_each",
        lambda booster, meta, frames: [
            real(booster, meta, f).drop(columns="expected_value").abs().mean().to_dict()
            for f in frames
        ],
    )
    pd.testing.assert_frame_equal(
        monitoring.attribution_drift(model.booster, model.meta, analysis, MON), first
    )
    monkeypatch.setattr(attribution, "_mean_abs_shap_of_each", batched)

    calls.clear()
    again = monitoring.attribution_drift(model.booster, model.meta, analysis, MON, first)
    assert calls == []
    pd.testing.assert_frame_equal(again, first)

    # new data in one week (a late correction of its promotions): only that week reruns
    changed_week = sorted(analysis["week_start"].unique())[5]
    edited = analysis.copy()
    in_week = edited["week_start"] == changed_week
    edited.loc[in_week, "promo"] = 1 - edited.loc[in_week, "promo"]
    third = monitoring.attribution_drift(model.booster, model.meta, edited, MON, first)
    assert calls == [per_week[changed_week]]
    same = third["week_start"] != changed_week
    pd.testing.assert_frame_equal(third[same], first[same])
    assert (third.loc[~same, "chunk_hash"] != first.loc[~same, "chunk_hash"]).all()


def test_attribution_drift_ranks_a_week_against_the_same_season_a_year_earlier(fleets):
    fleet = fleets.stationary(0)
    model = fleet.models[DRIFT_KEY]
    analysis = fleet.inputs[DRIFT_KEY].analysis
    analysis = analysis.assign(week_start=week_start(analysis["date"]))
    week = sorted(analysis["week_start"].unique())[8]
    this_week = analysis[analysis["week_start"] == week]
    this_week = this_week.sort_values(["date", "store", "item"], kind="stable")  # key order
    # last year's same weeks had exactly this week's drivers: no attribution drift, though
    # the ranking saved from the model's summer holdout differs
    last_year = this_week.assign(
        date=this_week["date"] - pd.Timedelta(days=monitoring.SAME_SEASON_DAYS)
    )
    same = monitoring.attribution_drift(
        model.booster, model.meta, this_week, MON, reference=last_year
    )
    assert same["method"].tolist() == ["ndcg_mean_abs_shap_same_season"]
    assert same["value"].iloc[0] == pytest.approx(1.0)
    saved = monitoring.attribution_drift(model.booster, model.meta, this_week, MON)
    assert saved["method"].tolist() == ["ndcg_mean_abs_shap"]
    assert saved["value"].iloc[0] < 0.999

    # a training window that does not reach back a year falls back to the saved ranking
    short = fleet.inputs[DRIFT_KEY].reference
    short = short[pd.to_datetime(short["date"]) > pd.Timestamp(week) - pd.Timedelta(days=300)]
    fallback = monitoring.attribution_drift(
        model.booster, model.meta, this_week, MON, reference=short
    )
    pd.testing.assert_frame_equal(fallback, saved)
    training = MON.model_copy(update={"attribution_reference": "training"})
    ignored = monitoring.attribution_drift(
        model.booster, model.meta, this_week, training, reference=last_year
    )
    pd.testing.assert_frame_equal(ignored, saved)
