"""The fleet's alert rules (``monitoring.fleet``) on hand-made tables: five regions, one watched
feature, weekly rows whose severity (value / nannyml's upper threshold) is chosen per region
and week, so each rule (stand-out from the other regions, persistence, minimum chunk size,
minimum number of control regions, ignored features, model quality against the holdout
error) is exercised in isolation; and what the fleet reads of each region."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets import monitoring
from mlops_assets.monitoring import (
    OUTSIDE_TRAINING_RANGE,
    TABLE_COLUMNS,
    MonitoredColumns,
    estimate_blind_weeks,
    fleet_alerts,
    fleet_status,
    quality_metric,
)
from mlops_assets.monitoring.fleet import _leave_one_out_median
from mlops_assets.spec import MonitoringSettings

SETTINGS = MonitoringSettings()
REGIONS = ("A", "B", "C", "D", "E")


WEEKS = pd.date_range("2024-03-04", periods=5, freq="7D")  # Mondays


# --------------------------------------------------------------------------------------
# fleet rules on hand-made tables


def _drift_table(
    severity: dict[str, list[float]],
    *,
    rows: int = 100,
    signal: str = "feature_drift",
    feature: str = "promo",
    ignored: bool = False,
    rows_of: dict[str, list[int]] | None = None,
) -> pd.DataFrame:
    """One watched feature's weekly rows per region; upper threshold 1, so the value is
    the severity and nannyml alerts above 1."""
    out = []
    for region, values in severity.items():
        for i, value in enumerate(values):
            out.append(
                {
                    "signal": signal,
                    "feature": feature,
                    "method": "jensen_shannon",
                    "week_start": WEEKS[i],
                    "rows": (rows_of or {}).get(region, [rows] * len(values))[i],
                    "value": value,
                    "lower": np.nan,
                    "upper": 1.0,
                    "nml_alert": value > 1.0,
                    "ignored": ignored,
                    "realized": np.nan,
                    "chunk_hash": None,
                    "region": region,
                }
            )
    return pd.DataFrame(out, columns=[*TABLE_COLUMNS, "region"])


NO_REALIZED = pd.DataFrame(columns=["region", "week_start", "n_rows", "mape"])


def _alerts(tables: pd.DataFrame, realized: pd.DataFrame = NO_REALIZED, **settings):
    s = SETTINGS.model_copy(update=settings)
    holdout = dict.fromkeys(REGIONS, 0.10)
    out = fleet_alerts(tables, realized, holdout, s)
    return out.set_index(["region", "signal", "week_start"]).sort_index()


def _flags(alerts: pd.DataFrame, region: str, signal: str = "data_drift") -> tuple[list, list]:
    rows = alerts.loc[(region, signal)]
    return rows["raw"].tolist(), rows["alert"].tolist()


# others drift a little above nannyml's threshold every week: the standing-out region is 3x
CALM = [1.2, 1.2, 1.2, 1.2, 1.2]


def test_a_region_standing_out_for_two_weeks_alerts_from_the_second_week():
    sev = dict.fromkeys(REGIONS, CALM) | {"A": [1.2, 3.6, 3.6, 1.2, 1.2]}
    a = _alerts(_drift_table(sev))
    raw, alert = _flags(a, "A")
    assert raw == [False, True, True, False, False]
    assert alert == [False, False, True, False, False]  # persistence: not the first week
    for region in REGIONS[1:]:
        assert _flags(a, region) == ([False] * 5, [False] * 5)
    assert a.loc[("A", "data_drift", WEEKS[2]), "detail"] == "promo"


def test_a_shift_that_hits_every_region_alike_is_not_an_alert():
    sev = dict.fromkeys(REGIONS, [1.2, 3.6, 3.6, 3.6, 1.2])  # a season, a national holiday
    a = _alerts(_drift_table(sev))
    assert not a["raw"].any() and not a["alert"].any()


def test_a_single_week_spike_is_a_raw_finding_but_no_alert():
    sev = dict.fromkeys(REGIONS, CALM) | {"A": [1.2, 1.2, 3.6, 1.2, 1.2]}
    raw, alert = _flags(_alerts(_drift_table(sev)), "A")
    assert raw == [False, False, True, False, False]
    assert not any(alert)


def test_attribution_drift_alerts_only_where_the_ranking_falls_apart_alone():
    ndcg = {r: [0.97] * 5 for r in REGIONS} | {"A": [0.97, 0.6, 0.6, 0.97, 0.97]}
    table = _drift_table(ndcg, signal="attribution_drift", feature="ndcg")
    table["nml_alert"] = False
    a = _alerts(table)
    assert _flags(a, "A", "attribution_drift") == (
        [False, True, True, False, False],
        [False, False, True, False, False],
    )
    # every region's ranking reshuffled in the same weeks (a season): no alert anywhere
    fleetwide = _drift_table(
        {r: [0.97, 0.6, 0.6, 0.6, 0.97] for r in REGIONS},
        signal="attribution_drift",
        feature="ndcg",
    )
    fleetwide["nml_alert"] = False
    assert not _alerts(fleetwide)["alert"].any()


@pytest.mark.parametrize(
    ("continuous", "categorical"),
    [
        ("jensen_shannon", "jensen_shannon"),
        ("kolmogorov_smirnov", "chi2"),
        ("hellinger", "l_infinity"),
        ("jensen_shannon", "hellinger"),
    ],
)
def test_every_drift_method_the_spec_allows_alerts_the_drifted_region_alone(
    continuous, categorical
):
    """nannyml's methods report their thresholds differently (chi2 alerts on a p-value and
    gives no threshold on its statistic): each one the spec allows must still let the
    fleet rules flag a region whose inputs drift, and only that one."""
    rng = np.random.default_rng(0)
    cols = MonitoredColumns(numeric=["x"], categorical=["c"], ignored=[], region_level=[])
    s = SETTINGS.model_copy(
        update={"continuous_method": continuous, "categorical_method": categorical}
    )
    ref_days = pd.date_range("2024-01-01", periods=364, freq="D")
    days = pd.date_range("2025-01-06", periods=35, freq="D")  # five Monday..Sunday weeks
    tables = []
    for region in REGIONS:
        reference = pd.DataFrame(
            {
                "date": np.repeat(ref_days, 4),
                "x": rng.normal(size=4 * 364),
                "c": rng.choice(["a", "b", "c"], 4 * 364),
            }
        )
        analysis = pd.DataFrame(
            {
                "date": np.repeat(days, 4),
                "x": rng.normal(size=4 * 35),
                "c": rng.choice(["a", "b", "c"], 4 * 35),
            }
        )
        if region == "A":  # from the third week: x shifts, c loses its third level
            late = analysis["date"] >= days[14]
            analysis.loc[late, "x"] += 1.5
            analysis.loc[late, "c"] = rng.choice(["a", "b"], int(late.sum()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = monitoring.feature_drift(reference, analysis, cols, s)
        tables.append(table.assign(region=region))
    alerts = fleet_alerts(pd.concat(tables, ignore_index=True), NO_REALIZED, {}, s)
    hits = alerts[alerts["alert"] & (alerts["signal"] == "data_drift")]
    assert set(hits["region"]) == {"A"}, alerts[alerts["raw"]]
    assert set(hits["week_start"]) == set(days[21::7])  # persistence: weeks 4 and 5
    details = set(", ".join(hits["detail"]).split(", "))
    assert details == {"x", "c"}, details


def test_a_fleet_gap_week_of_a_few_days_never_alerts():
    # one row a day: a 1-day stub of a week (after a Saturday training end) is no evidence
    sev = dict.fromkeys(REGIONS, [0.5] * 5) | {"A": [3.0] * 5}
    table = _drift_table(
        sev,
        signal="fleet_gap_drift",
        feature="temperature_c",
        rows_of={r: [1, 7, 7, 3, 7] for r in REGIONS},
    )
    raw, alert = _flags(_alerts(table), "A")
    assert raw == [False, True, True, False, True]
    assert alert == [False, False, True, False, False]


def test_a_fleet_gap_week_without_values_is_no_data_drift():
    # the region's weather rows of weeks 2-3 hold nulls: nannyml flags their NaN means
    sev = dict.fromkeys(REGIONS, [0.5] * 5) | {"A": [3.0, np.nan, np.nan, 3.0, 3.0]}
    table = _drift_table(sev, signal="fleet_gap_drift", feature="temperature_c")
    table.loc[table["value"].isna(), "nml_alert"] = True
    raw, alert = _flags(_alerts(table), "A")
    assert raw == [True, False, False, True, True]
    assert alert == [False, False, False, False, True]


def test_a_chunk_with_fewer_than_min_chunk_rows_never_alerts():
    n = SETTINGS.min_chunk_rows
    sev = dict.fromkeys(REGIONS, CALM) | {"A": [3.6, 3.6, 3.6, 3.6, 3.6]}
    small = {"A": [n - 1, n - 1, n, n, n - 1]}  # e.g. a week of holidays or closures
    raw, alert = _flags(_alerts(_drift_table(sev, rows_of=small)), "A")
    assert raw == [False, False, True, True, False]
    assert alert == [False, False, False, True, False]


def test_without_enough_control_regions_the_nannyml_alert_alone_decides():
    # three regions: two others, fewer than min_control_regions (3)
    assert SETTINGS.min_control_regions == 3
    sev = {"A": [1.2, 1.2, 1.2], "B": [1.2, 1.2, 1.2], "C": [0.5, 0.9, 0.9]}
    a = _alerts(_drift_table(sev))
    assert _flags(a, "A") == ([True] * 3, [False, True, True])
    assert _flags(a, "B") == ([True] * 3, [False, True, True])
    assert _flags(a, "C") == ([False] * 3, [False] * 3)  # below nannyml's threshold
    # with one more region the same severities do not stand out
    sev["D"] = [1.2, 1.2, 1.2]
    assert not _alerts(_drift_table(sev))["alert"].any()


def test_ignored_features_never_alert():
    sev = dict.fromkeys(REGIONS, CALM) | {"A": [3.6, 3.6, 3.6, 3.6, 3.6]}
    calm = _drift_table(dict.fromkeys(REGIONS, CALM), feature="promo")
    ignored = _drift_table(sev, ignored=True, feature="week_of_year")
    assert not _alerts(pd.concat([calm, ignored], ignore_index=True))["raw"].any()
    watched = _drift_table(sev, feature="week_of_year")
    a = _alerts(pd.concat([calm, watched], ignore_index=True))
    assert a.loc[("A", "data_drift"), "alert"].sum() == 4


def _realized(mape: dict[str, list[float]], n_rows: int = 100) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"region": r, "week_start": WEEKS[i], "n_rows": n_rows, "mape": m}
            for r, values in mape.items()
            for i, m in enumerate(values)
        ]
    )


EMPTY_TABLES = pd.DataFrame(columns=[*TABLE_COLUMNS, "region"])


def test_model_quality_alerts_when_one_region_triples_its_holdout_error():
    mape = dict.fromkeys(REGIONS, [0.10, 0.11, 0.09, 0.10, 0.10])
    mape["A"] = [0.10, 0.30, 0.30, 0.10, 0.10]  # 3x the holdout MAPE of 0.10
    a = _alerts(EMPTY_TABLES, _realized(mape))
    assert _flags(a, "A", "model_quality") == (
        [False, True, True, False, False],
        [False, False, True, False, False],
    )
    assert not a.drop(index="A", level="region")["raw"].any()


def test_estimated_model_quality_compares_the_dle_rmse_with_the_holdout_rmse():
    """quality_signal "estimated": nannyml's RMSE estimate (units) against each model's
    holdout RMSE, not against the gate's MAPE (a fraction: every estimate would be a
    hundredfold breach and whichever region stood out would alert at once)."""
    estimated = SETTINGS.model_copy(update={"quality_signal": "estimated"})
    assert quality_metric(estimated, "mape") == "rmse"
    assert quality_metric(SETTINGS, "mape") == "mape"  # realized: the gate's metric
    rmse = {r: [12.0, 11.0, 12.0, 12.0, 11.0] for r in REGIONS}
    rmse["A"] = [12.0, 36.0, 36.0, 12.0, 12.0]  # 3x its holdout RMSE in weeks 2-3
    rmse["B"] = [24.0] * 5  # a bigger region: twice the units, twice its holdout RMSE
    tables = _drift_table(rmse, signal="estimated_performance", feature="rmse")
    holdout_rmse = dict.fromkeys(REGIONS, 12.0) | {"B": 24.0}
    a = fleet_alerts(tables, NO_REALIZED, holdout_rmse, estimated)
    a = a.set_index(["region", "signal", "week_start"]).sort_index()
    assert _flags(a, "A", "model_quality") == (
        [False, True, True, False, False],
        [False, True, True, False, False],  # 3x: at once
    )
    assert not a.drop(index="A", level="region")["raw"].any()


def test_estimate_blind_weeks_are_the_weeks_without_actuals_mostly_outside_the_range():
    rows = []
    for region, shares in {"A": [0.0, 0.2, 0.6, 1.0], "B": [1.0, 0.0, 0.0, 0.0]}.items():
        for i, share in enumerate(shares):
            week = WEEKS[i]
            realized = 10.0 if i < 2 else np.nan  # weeks 3-4 are forecast weeks
            rows += [
                {"region": region, "signal": "estimated_performance", "feature": "rmse",
                 "week_start": week, "value": 11.0, "realized": realized},
                {"region": region, "signal": "estimated_performance",
                 "feature": OUTSIDE_TRAINING_RANGE, "week_start": week, "value": share,
                 "realized": np.nan},
            ]  # fmt: skip
    blind = estimate_blind_weeks(pd.DataFrame(rows))
    # B's week 1 had actuals (the realized error judged it); A's week 2 is mostly inside
    assert blind.to_dict("records") == [
        {"region": "A", "week_start": WEEKS[2], "share": 0.6},
        {"region": "A", "week_start": WEEKS[3], "share": 1.0},
    ]
    assert estimate_blind_weeks(pd.DataFrame()).empty


def test_model_quality_ignores_holiday_weeks_whose_error_doubles_everywhere():
    # two holiday weeks (Christmas, New Year): every region's error doubles, above
    # quality_degradation (1.5) x the holdout error, for two consecutive weeks
    holiday = [0.10, 0.20, 0.20, 0.10, 0.10]
    mape = dict.fromkeys(REGIONS, holiday)
    mape["B"] = [0.10, 0.21, 0.19, 0.10, 0.10]
    a = _alerts(EMPTY_TABLES, _realized(mape))
    assert not a["raw"].any() and not a["alert"].any()
    # the same two weeks in one region only are a breach
    alone = dict.fromkeys(REGIONS, [0.10] * 5) | {"A": holiday}
    assert _alerts(EMPTY_TABLES, _realized(alone)).loc[("A", "model_quality"), "alert"].any()


def test_fleet_status_lists_alerting_regions_and_counts_forecast_weeks_as_current():
    # actuals up to week 3 (index 2); weeks 4-5 are forecast weeks with known inputs
    sev = dict.fromkeys(REGIONS, CALM)
    sev["A"] = [3.6, 3.6, 1.2, 1.2, 1.2]  # alerted in week 2, over by the latest actuals
    sev["B"] = [1.2, 1.2, 1.2, 3.6, 3.6]  # alerts in the forecast weeks
    sev["C"] = [1.2, 1.2, 3.6, 3.6, 1.2]  # alerts in week 4, after the latest actuals
    mape = dict.fromkeys(REGIONS, [0.10, 0.10, 0.10])
    mape["D"] = [0.10, 0.40, 0.40]  # model quality breach in the latest week with actuals
    status = fleet_status(
        _drift_table(sev), _realized(mape), dict.fromkeys(REGIONS, 0.10), SETTINGS
    )
    drift = status.alerting("data_drift")
    assert drift["region"].tolist() == ["B", "C"]
    assert set(drift["signal"]) == {"data_drift"}
    assert drift.set_index("region")["week_start"].to_dict() == {"B": WEEKS[4], "C": WEEKS[3]}
    assert drift.set_index("region")["detail"].to_dict() == {"B": "promo", "C": "promo"}
    quality = status.alerting("model_quality")
    assert quality[["region", "signal"]].values.tolist() == [["D", "model_quality"]]
    both = status.alerting("data_drift", "model_quality")
    assert both["region"].tolist() == ["B", "C", "D"]
    assert status.alerting("attribution_drift").empty
    # week 2 of region A did alert: it is in the history, just not current
    assert status.alerts.set_index(["region", "signal", "week_start"]).loc[
        ("A", "data_drift", WEEKS[1]), "alert"
    ]


def _quality_table(share: dict[str, list[float]], method: str = "out_of_range") -> pd.DataFrame:
    """Share of a feature's rows outside the training range per region and week; nannyml's
    upper threshold is 0 (the reference has no out-of-range values by construction)."""
    t = _drift_table(share, signal="data_quality", feature="temperature_c")
    return t.assign(method=method, upper=0.0, nml_alert=t["value"] > 0)


def test_data_quality_findings_shared_by_the_whole_fleet_are_not_alerts():
    # every region sees 20% of its rows out of range for three weeks (a heat wave)
    everywhere = dict.fromkeys(REGIONS, [0.0, 0.2, 0.2, 0.2, 0.0])
    assert not _alerts(_quality_table(everywhere))["raw"].any()
    # one region alone with out-of-range values (a broken feed) for two weeks alerts
    alone = dict.fromkeys(REGIONS, [0.0] * 5) | {"A": [0.0, 0.0, 0.5, 0.5, 0.0]}
    a = _alerts(_quality_table(alone))
    assert _flags(a, "A", "data_quality") == (
        [False, False, True, True, False],
        [False, False, False, True, False],
    )
    assert a.loc[("A", "data_quality", WEEKS[3]), "detail"] == "temperature_c"


def test_the_fleet_reads_each_approved_regions_rows_of_its_approved_model(tmp_path: Path):
    """fleet_inputs: regions without an approved model are left out; of the others, only
    the drift report rows and realized weeks of the approved version count (a table
    still holds an older version's rows until the new one's report replaces them)."""
    from mlops_assets import realized
    from mlops_assets.registry import ModelRegistry
    from mlops_assets.workspace import Workspace
    from mlops_assets_tests.registry.support import register_approved_placeholder

    ws = Workspace(tmp_path / "ws")
    registry = ModelRegistry.for_workspace(ws)
    for _ in range(2):  # Nord:v2 approved, v1 archived
        register_approved_placeholder(registry, "Nord")
    weeks = pd.to_datetime(["2024-01-01", "2024-01-08"])
    drift = pd.DataFrame(
        {"region": "Nord", "signal": "feature_drift", "week_start": weeks, "value": [1.0, 2.0]}
    )
    ws.data.write_frame(drift.assign(model_version=[1, 2]), monitoring.drift_report_key(ws, "Nord"))
    weekly = pd.DataFrame({"week_start": weeks, "model_version": [1, 2], "mape": [0.1, 0.2]})
    realized.write_realized(ws, "Nord", pd.DataFrame({"origin": weeks}), weekly)

    fleet = monitoring.fleet_inputs(ws, registry, ["Nord", "Ost"], "mape")

    assert list(fleet.approved) == ["Nord"] and fleet.approved["Nord"].version == 2
    assert fleet.tables["Nord"]["value"].tolist() == [2.0]
    assert fleet.all_tables["value"].tolist() == [2.0]
    assert fleet.weekly[["region", "mape"]].values.tolist() == [["Nord", 0.2]]
    assert fleet.holdout_error == {"Nord": None}  # the placeholder has no metrics


def test_each_regions_control_median_is_the_median_of_the_other_regions():
    """A region's severity is compared with the median of the *other* regions in its week:
    the same as dropping the row and taking ``np.nanmedian`` of the rest (NaN where no other
    value is finite), for ties, missing and infinite severities and groups of one."""
    rng = np.random.default_rng(7)
    groups = [np.array([2.0]), np.array([np.nan, np.nan]), np.array([np.inf, 1.0, np.nan])]
    for _ in range(400):
        n = int(rng.integers(1, 10))
        values = rng.normal(size=n).round(1)  # rounded: ties
        values[rng.random(n) < 0.25] = np.nan
        values[rng.random(n) < 0.05] = np.inf
        groups.append(values)
    for values in groups:
        expected = []
        for i in range(len(values)):
            others = np.delete(values, i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected.append(np.nanmedian(others) if np.isfinite(others).any() else np.nan)
        got = _leave_one_out_median(pd.Series(values, index=range(10, 10 + len(values))))
        assert list(got.index) == list(range(10, 10 + len(values)))
        np.testing.assert_allclose(got.to_numpy(), expected, equal_nan=True, err_msg=str(values))
