"""Data quality (``monitoring.input_quality``): fitted on the rows that carry what each check
learns, the same findings as on the whole reference."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_assets import monitoring
from mlops_assets.monitoring import (
    input_quality,
    monitored_columns,
)
from mlops_assets.training import week_start
from mlops_assets_tests.monitoring.fleet_support import (
    DRIFT_KEY,
    SPEC,
)


def test_data_quality_fitted_on_the_rows_that_carry_rates_values_and_extremes_changes_nothing(
    fleets, monkeypatch
):
    # each data-quality check is fitted on a few reference weeks or rows; its verdicts
    # must be those of a fit on the whole reference, findings included
    fleet = fleets.stationary(0)
    model = fleet.models[DRIFT_KEY]
    inputs = fleet.inputs[DRIFT_KEY]
    reference = inputs.reference.copy()
    cols = monitored_columns(model.meta, SPEC)
    # watch a categorical input too (the sample spec's are all ignored)
    cols = dataclasses.replace(cols, ignored=[c for c in cols.ignored if c != cols.categorical[0]])
    watched = [c for c in cols.alerting_numeric if c not in cols.region_level]
    assert watched and cols.alerting_categorical
    # a feed that drops out in some training weeks: missing rates from 0 to 30% a week
    column, gappy = watched[0], watched[1]
    rng = np.random.default_rng(0)
    rate = week_start(reference["date"]).map(lambda w: [0.0, 0.05, 0.3][w.toordinal() // 7 % 3])
    reference.loc[rng.uniform(size=len(reference)) < rate.to_numpy(), gappy] = np.nan
    analysis = inputs.analysis.copy()
    weeks = week_start(analysis["date"])
    late = (weeks >= sorted(weeks.unique())[-3]).to_numpy()
    analysis.loc[late, column] = reference[column].max() * 10 + 1
    analysis.loc[late, gappy] = np.nan
    category = cols.alerting_categorical[0]
    values = analysis[category].astype(object)
    values[late] = "never-seen"
    analysis[category] = values

    def quality() -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return monitoring.data_quality(reference, analysis, cols)

    condensed = quality()
    assert len(monitoring.rows_with_extremes(reference, watched)) <= 2 * len(watched)
    names = cols.alerting_numeric + cols.alerting_categorical
    kept = monitoring.weeks_with_extreme_missing_rates(reference, names)
    assert 2 <= week_start(kept["date"]).nunique() < week_start(reference["date"]).nunique() / 2
    for helper in (
        "weeks_with_extreme_missing_rates",
        "rows_with_each_value",
        "rows_with_extremes",
    ):
        monkeypatch.setattr(input_quality, helper, lambda frame, columns: frame)
    pd.testing.assert_frame_equal(condensed, quality())
    found = condensed[condensed["nml_alert"]]
    findings = set(zip(found["method"], found["feature"], strict=True))
    assert {
        ("out_of_range", column),
        ("unseen_values", category),
        ("missing_values", gappy),
    } <= findings
    # the training week missing the most sets the upper threshold
    weekly = reference[gappy].isna().groupby(week_start(reference["date"])).mean()
    rows = condensed[(condensed["method"] == "missing_values") & (condensed["feature"] == gappy)]
    assert rows["upper"].iloc[0] == pytest.approx(weekly.max()) and weekly.max() > 0.2
