"""Data drift (``monitoring.data_drift``): the weather's gap to the other regions, and
nannyml's univariate drift without its reference-period result."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from mlops_assets import monitoring
from mlops_assets.monitoring import (
    data_drift,
    dle_features,
    fleet_gap_frame,
    monitored_columns,
    refresh,
)
from mlops_assets.training import week_start
from mlops_assets_tests.monitoring.fleet_support import (
    DRIFT_KEY,
    MON,
    SPEC,
)


def test_a_region_alone_in_its_fleet_has_no_gap_to_drift_from():
    """One region: it would be the fleet's median, a gap of 0 every day, and nannyml's
    thresholds would close on 0 and alert on every week (a permanent data-drift alert for
    a single-region deployment); it has no gap instead, and the input is left out. A
    second region's weather gives the gap a spread, and a shift in it is still found."""
    days = pd.date_range("2024-01-01", periods=210)
    rng = np.random.default_rng(0)
    alone = pd.DataFrame({"date": days, "region_key": "Nord", "temperature_c": 10.0})
    alone["temperature_c"] += rng.normal(0, 3, len(days))
    gap = fleet_gap_frame(alone, "Nord", ["temperature_c"])
    assert len(gap) == len(days) and gap["temperature_c"].isna().all()
    reference, analysis = gap.iloc[:150], gap.iloc[150:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = monitoring.fleet_gap_drift(reference, analysis, ["temperature_c"], MON)
    assert table.empty

    other = alone.assign(region_key="Sud", temperature_c=12.0 + rng.normal(0, 3, len(days)))
    shifted = other.assign(temperature_c=other["temperature_c"].where(days < days[180], 40.0))
    for weather, alerting in ((other, False), (shifted, True)):
        gap = fleet_gap_frame(pd.concat([alone, weather]), "Sud", ["temperature_c"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = monitoring.fleet_gap_drift(
                gap.iloc[:150], gap.iloc[150:], ["temperature_c"], MON
            )
        assert len(table) and table["nml_alert"].any() == alerting, table


def test_days_only_one_region_reports_have_no_gap_to_the_fleet():
    """Nord's weather history starts 60 days before Sud's: on those days Nord would be
    its own median. They have no gap (not 0, which would narrow the reference's spread);
    the days both report have the gap to their median."""
    days = pd.date_range("2024-01-01", periods=210)
    rng = np.random.default_rng(1)
    nord = pd.DataFrame(
        {"date": days, "region_key": "Nord", "temperature_c": 10.0 + rng.normal(0, 3, 210)}
    )
    sud = nord.iloc[60:].assign(region_key="Sud", temperature_c=14.0 + rng.normal(0, 3, 150))
    gap = fleet_gap_frame(pd.concat([nord, sud]), "Nord", ["temperature_c"])
    assert gap["temperature_c"].iloc[:60].isna().all()
    both = nord["temperature_c"].iloc[60:].to_numpy()
    median = (both + sud["temperature_c"].to_numpy()) / 2
    np.testing.assert_allclose(gap["temperature_c"].iloc[60:], both - median)
    # the gap's spread is that of the days with a fleet: no alert without a shift
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = monitoring.fleet_gap_drift(gap.iloc[:150], gap.iloc[150:], ["temperature_c"], MON)
    assert len(table) and not table["nml_alert"].any(), table


def test_univariate_drift_without_nannymls_reference_result_is_nannymls_table(fleets, monkeypatch):
    # feature_drift's calculator skips the reference-period result nannyml's fit computes
    # (every reference week scored a second time, only for its plots): thresholds, values
    # and alerts must be those of nannyml's own calculator, a drifted input found by both
    fleet = fleets.stationary(0)
    model = fleet.models[DRIFT_KEY]
    inputs = fleet.inputs[DRIFT_KEY]
    cols = monitored_columns(model.meta, SPEC)
    analysis = inputs.analysis.copy()
    shifted = next(
        c
        for c in cols.alerting_numeric
        if c not in cols.region_level
        and pd.api.types.is_float_dtype(analysis[c])
        and inputs.reference[c].nunique() > 20
    )
    weeks = week_start(analysis["date"])
    late = (weeks >= sorted(weeks.unique())[-3]).to_numpy()
    spread = inputs.reference[shifted].std()
    analysis.loc[late, shifted] = analysis.loc[late, shifted] + 3 * spread

    def drift() -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return monitoring.feature_drift(inputs.reference, analysis, cols, MON)

    ours = drift()
    assert week_start(inputs.reference["date"]).nunique() > 20  # many weeks to skip
    nml = monitoring.import_nannyml()
    monkeypatch.setattr(
        data_drift, "_univariate_drift_class", lambda: nml.UnivariateDriftCalculator
    )
    pd.testing.assert_frame_equal(ours, drift())
    found = ours[ours["nml_alert"] & (ours["feature"] == shifted)]
    assert set(found["week_start"]) == set(weeks[late])
    assert not ours.loc[ours["feature"] == shifted, "nml_alert"].iloc[0]  # calm before


def refresh_drift(
    fleets, signal: Callable[..., pd.DataFrame]
) -> tuple[Callable[..., pd.DataFrame], pd.DataFrame]:
    """``signal(reference, analysis, columns, previous)`` of the stationary fleet's drift
    region, quietly, as ``drift(reference, previous)`` (a refresh's inputs: only
    ``previous`` and the reference rows vary), and that region's reference."""
    fleet = fleets.stationary(0)
    inputs = fleet.inputs[DRIFT_KEY]
    cols = monitored_columns(fleet.models[DRIFT_KEY].meta, SPEC)

    def drift(reference: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return signal(reference, inputs.analysis, cols, previous)

    return drift, inputs.reference


def without_first_week(reference: pd.DataFrame) -> pd.DataFrame:
    weeks = week_start(reference["date"])
    return reference[weeks > weeks.min()]


def other_weeks(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as a table of the same reference rows but other weeks' rows would be: only
    its thresholds can be taken, every week is computed."""
    return table.assign(chunk_hash=refresh.reference_part(table["chunk_hash"]))


def test_a_refresh_of_the_same_reference_takes_the_univariate_thresholds_from_its_last_table(
    fleets,
):
    """Each method's fit scores every reference week only to set its thresholds. A refresh
    of the same model with the same reference rows takes them from the region's last
    table (``previous``) instead, for the weeks it scores: the same table. A table of other
    reference rows, or one without every feature's thresholds, is not taken from."""
    drift, reference = refresh_drift(
        fleets,
        lambda ref, analysis, cols, prev: monitoring.feature_drift(ref, analysis, cols, MON, prev),
    )

    first = drift(reference, None)
    assert first["upper"].notna().all() and first["lower"].isna().all()  # upper bounds only
    pd.testing.assert_frame_equal(drift(reference, other_weeks(first)), first)

    # the thresholds are read from the table: a table that says otherwise is believed
    feature = first["feature"].iloc[0]
    doctored = other_weeks(
        first.assign(upper=first["upper"].where(first["feature"] != feature, 1e9))
    )
    taken = drift(reference, doctored)
    assert (taken.loc[taken["feature"] == feature, "upper"] == 1e9).all()
    pd.testing.assert_frame_equal(
        taken[taken["feature"] != feature], first[first["feature"] != feature]
    )
    # other reference rows (its first week gone), or a feature missing: computed again
    assert 1e9 not in set(drift(without_first_week(reference), doctored)["upper"])
    partial = doctored[doctored["feature"] != first["feature"].iloc[-1]]
    pd.testing.assert_frame_equal(drift(reference, partial), first)


def test_a_refresh_of_the_same_reference_takes_the_reconstruction_threshold_from_its_last_table(
    fleets,
):
    """The PCA reconstruction drift's fit scores every reference week only for its
    threshold: a refresh with the same reference rows takes it from the last table, the
    same table; other reference rows compute it again."""
    drift, reference = refresh_drift(fleets, monitoring.multivariate_drift)

    first = drift(reference, None)
    assert len(first) and first["upper"].notna().all()
    pd.testing.assert_frame_equal(drift(reference, other_weeks(first)), first)
    doctored = other_weeks(first.assign(upper=0.0))  # every week above it: alerts everywhere
    taken = drift(reference, doctored)
    assert (taken["upper"] == 0.0).all() and taken["nml_alert"].all()
    assert not (drift(without_first_week(reference), doctored)["upper"] == 0.0).any()


@pytest.mark.parametrize(
    "signal",
    [
        "feature_drift",
        "multivariate_drift",
        "data_quality",
        "fleet_gap_drift",
        "estimated_performance",
    ],
)
def test_a_refresh_takes_the_unchanged_weeks_from_its_last_table_and_computes_the_others(
    fleets, signal
):
    """nannyml scores (and DLE estimates) each week on its own against what its fit learnt
    from the reference, so a refresh of the same model takes a week's rows from the last
    table when neither the reference nor that week's rows changed, and computes the other
    weeks: the table a first pass would write, for less work."""
    fleet = fleets.stationary(0)
    inputs = fleet.inputs[DRIFT_KEY]
    meta = fleet.models[DRIFT_KEY].meta
    cols = monitored_columns(meta, SPEC)
    reference = inputs.reference

    def compute(analysis: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if signal == "feature_drift":
                return monitoring.feature_drift(reference, analysis, cols, MON, previous)
            if signal == "multivariate_drift":
                return monitoring.multivariate_drift(reference, analysis, cols, previous)
            if signal == "data_quality":
                return monitoring.data_quality(reference, analysis, cols, previous)
            if signal == "fleet_gap_drift":
                return monitoring.fleet_gap_drift(
                    inputs.reference_gap, analysis, cols.region_level, MON, previous
                )
            return monitoring.estimated_performance(
                inputs.holdout, analysis, dle_features(meta, MON), None, MON.dle_params, previous
            )

    # what a week's rows hold: the gap frame for the fleet gap, else the model's inputs
    analysis = inputs.analysis_gap if signal == "fleet_gap_drift" else inputs.analysis
    first = compute(analysis, None)
    weeks = sorted(first["week_start"].unique())
    assert len(weeks) > 3 and first["chunk_hash"].str.contains(refresh.WEEK_SEPARATOR).all()
    # new rows in the last week (a watched input, the gap or the forecast moves), and the
    # last table says something else of the first week than its rows would give
    changed = analysis.copy()
    if signal == "fleet_gap_drift":
        column = "temperature_c"
    elif signal == "estimated_performance":
        column = "y_pred"
    else:
        column = next(
            c
            for c in cols.alerting_numeric
            if c not in cols.region_level and pd.api.types.is_float_dtype(changed[c])
        )
    last = (week_start(changed["date"]) == weeks[-1]).to_numpy()
    changed.loc[last, column] = changed.loc[last, column] + 3 * changed[column].std()
    expected = compute(changed, None)
    doctored = first.assign(value=first["value"].where(first["week_start"] != weeks[0], 123.0))
    # rows of another (feature, method) of the signal, without a week digest (as
    # estimate_support's share outside the training range), do not stop a week's reuse
    other = first.assign(feature="another", method="range", chunk_hash=np.nan)
    doctored = pd.concat([doctored, other], ignore_index=True)

    refreshed = compute(changed, doctored)
    assert monitoring.reused_drift_weeks(refreshed, doctored) == len(weeks) - 1
    # nor are rows without a week digest counted as taken
    assert monitoring.reused_drift_weeks(pd.concat([refreshed, other]), doctored) == (
        len(weeks) - 1
    )
    taken = refreshed["week_start"] == weeks[0]
    assert (refreshed.loc[taken, "value"] == 123.0).all()  # read, not computed
    pd.testing.assert_frame_equal(refreshed[~taken], expected[~taken])
    assert not refreshed.loc[refreshed["week_start"] == weeks[-1], "value"].equals(
        first.loc[first["week_start"] == weeks[-1], "value"]
    )
    # a week the last table holds only some rows of is computed
    incomplete = doctored.drop(index=doctored.index[doctored["week_start"] == weeks[0]][:1])
    pd.testing.assert_frame_equal(compute(changed, incomplete), expected)
    # other reference rows: every week is computed
    pd.testing.assert_frame_equal(
        compute(changed, doctored.assign(chunk_hash="reference:other" + refresh.WEEK_SEPARATOR)),
        expected,
    )


def test_a_refresh_under_other_fleet_gap_or_error_model_settings_computes_every_week(fleets):
    """The fleet gap's threshold width, the DLE error model's parameters and, for an error
    model learning from the backtest, the holdout its estimates are scaled to are part of
    what a week was computed with: a refresh under others takes no week."""
    fleet = fleets.stationary(0)
    inputs = fleet.inputs[DRIFT_KEY]
    meta = fleet.models[DRIFT_KEY].meta
    cols = monitored_columns(meta, SPEC)
    other_settings = MON.model_copy(
        update={
            "fleet_gap_std": MON.fleet_gap_std * 2,
            "dle_params": {**MON.dle_params, "n_estimators": 50},
        }
    )
    moved_holdout = inputs.holdout.assign(y_pred=inputs.holdout["y_pred"] * 1.2)

    def gap(s, previous):
        return monitoring.fleet_gap_drift(
            inputs.reference_gap, inputs.analysis_gap, cols.region_level, s, previous
        )

    def dle(s, previous):
        features = dle_features(meta, s)
        return monitoring.estimated_performance(
            inputs.holdout, inputs.analysis, features, None, s.dle_params, previous
        )

    def dle_from_backtest(s, previous):
        holdout = inputs.holdout if s is MON else moved_holdout
        assert len(inputs.backtest) >= monitoring.MIN_DLE_ROWS
        features = dle_features(meta, MON)
        return monitoring.estimated_performance(
            holdout, inputs.analysis, features, inputs.backtest, MON.dle_params, previous
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for compute in (gap, dle, dle_from_backtest):
            first = compute(MON, None)
            weeks = first["week_start"].nunique()
            again = compute(MON, first)
            pd.testing.assert_frame_equal(again, first)
            assert monitoring.reused_drift_weeks(again, first) == weeks > 3
            other = compute(other_settings, first)
            assert monitoring.reused_drift_weeks(other, first) == 0
            pd.testing.assert_frame_equal(other, compute(other_settings, None))
            assert not other["value"].equals(first["value"]) or not other["upper"].equals(
                first["upper"]
            )
