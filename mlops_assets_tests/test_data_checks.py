"""Tests for the quality gates on a region's feature table.

A real feature file (one region of the tiny sample) passes every check; copies corrupted
on purpose, one defect each, fail exactly the check that guards against that defect.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from mlops_assets.conditioning import FeatureSet
from mlops_assets.data_checks import FEATURE_CHECKS, CheckOutcome, check_features
from mlops_assets.spec import Thresholds
from mlops_assets.warehouse import sql_literals
from mlops_assets_tests.test_conditioning import (
    SPEC,
    generate_sample,
    make_workspace,
    write_region,
)

REGION = "Sud"
LAST = date(2024, 2, 4)  # last sales date of SampleConfig.tiny()
ERRORS = [n for n, (sev, _) in FEATURE_CHECKS.items() if sev == "ERROR"]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FeatureSet, int]:
    sample = generate_sample(tmp_path_factory.mktemp("sample"))
    ws = make_workspace(tmp_path_factory.mktemp("ws"), sample)
    fs = write_region(ws, REGION)
    path = ws.features_path(REGION)
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0]
    return path, fs, rows


def run(
    path: Path,
    fs: FeatureSet,
    *,
    previous_rows: int | None = None,
    dataset_last_date: date | None = LAST,
) -> dict[str, CheckOutcome]:
    outcomes = check_features(
        path, SPEC, fs, previous_rows=previous_rows, dataset_last_date=dataset_last_date
    )
    return {o.name: o for o in outcomes}


def corrupt(good_path: Path, out: Path, select: str) -> Path:
    """Write ``select`` (over the good file as ``f``) to ``out`` as Parquet."""
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW f AS SELECT * FROM read_parquet({sql_literals([good_path])})")
        con.execute(f"COPY ({select}) TO $o (FORMAT parquet)", {"o": str(out)})
    return out


def failed(outcomes: dict[str, CheckOutcome]) -> set[str]:
    return {n for n, o in outcomes.items() if not o.passed}


def test_every_check_passes_on_good_features(good):
    path, fs, rows = good
    outcomes = run(path, fs, previous_rows=rows)
    assert list(outcomes) == list(FEATURE_CHECKS)
    assert failed(outcomes) == set(), {n: o.message for n, o in outcomes.items()}
    for name, outcome in outcomes.items():
        assert outcome.severity == FEATURE_CHECKS[name][0]
    # lags are NULL at the start of every series and on closed days, yet that is allowed
    lag_nulls = duckdb.sql(
        f"SELECT avg((lag_364 IS NULL)::INT) FROM read_parquet('{path}') WHERE NOT is_future"
    ).fetchall()[0][0]
    assert lag_nulls > SPEC.thresholds.max_null_rate


@pytest.mark.parametrize(
    ("defect", "select", "check"),
    [
        ("a duplicated row", "SELECT * FROM f UNION ALL (SELECT * FROM f LIMIT 1)",
         "features_unique_keys"),
        ("a dropped feature column", "SELECT * EXCLUDE (promo) FROM f", "features_schema"),
        ("a text calendar column", "SELECT * REPLACE (CAST(dow AS VARCHAR) AS dow) FROM f",
         "features_schema"),
        ("20% of promo NULL",
         "SELECT * REPLACE (CASE WHEN day_of_year % 5 = 0 THEN NULL ELSE promo END AS promo) "
         "FROM f", "features_null_rates"),
        ("a history row without target",
         "SELECT * REPLACE (CASE WHEN date = DATE '2023-06-01' AND store = 'S0005' "
         "AND item = 'D01' THEN NULL ELSE target END AS target) FROM f", "features_null_rates"),
        ("a negative lag",
         "SELECT * REPLACE (CASE WHEN date = DATE '2023-06-01' THEN -1.0 ELSE lag_42 END "
         "AS lag_42) FROM f", "features_value_ranges"),
        ("an infinite rolling mean",
         "SELECT * REPLACE (CASE WHEN date = DATE '2023-06-01' THEN 'inf'::DOUBLE "
         "ELSE roll_mean_7 END AS roll_mean_7) FROM f", "features_value_ranges"),
        ("a target above the spec's max",
         "SELECT * REPLACE (CASE WHEN date = DATE '2023-06-01' AND NOT is_future "
         "THEN 2e6 ELSE target END AS target) FROM f", "features_value_ranges"),
        ("a day of week of 0",
         "SELECT * REPLACE (CASE WHEN date = DATE '2023-06-01' THEN 0 ELSE dow END AS dow) "
         "FROM f", "features_value_ranges"),
    ],
)  # fmt: skip
def test_an_error_check_fails_on_its_defect_and_only_there(good, tmp_path, defect, select, check):
    path, fs, rows = good
    bad = corrupt(path, tmp_path / "bad.parquet", select)
    outcomes = run(bad, fs, previous_rows=rows)
    assert failed(outcomes) == {check}, (defect, {n: o.message for n, o in outcomes.items()})
    assert outcomes[check].severity == "ERROR"


def test_schema_check_names_the_missing_column(good, tmp_path):
    path, fs, rows = good
    bad = corrupt(path, tmp_path / "bad.parquet", "SELECT * EXCLUDE (lag_42) FROM f")
    outcome = run(bad, fs, previous_rows=rows)["features_schema"]
    assert not outcome.passed and outcome.metadata["missing"] == ["lag_42"]


def test_null_rate_threshold_is_a_limit_not_a_trigger(good, tmp_path):
    """Nulls below the threshold pass: the gate is on the rate, not on any null."""
    path, fs, rows = good
    rate = SPEC.thresholds.max_null_rate  # 5 %: NULL on ~3 % of days passes
    bad = corrupt(
        path,
        tmp_path / "bad.parquet",
        "SELECT * REPLACE (CASE WHEN day_of_year % 30 = 0 THEN NULL ELSE promo END AS promo) "
        "FROM f",
    )
    outcome = run(bad, fs, previous_rows=rows)["features_null_rates"]
    assert outcome.passed, outcome.message
    assert outcome.metadata["max_null_rate"] == rate


@pytest.mark.parametrize(
    ("previous", "passes"),
    [(None, True), (1, True), ("same", True), ("double", True), ("triple", False)],
)
def test_row_count_change_fails_when_rows_collapse(good, previous, passes):
    path, fs, rows = good
    prev = {"same": rows, "double": 2 * rows, "triple": 3 * rows}.get(previous, previous)
    outcome = run(path, fs, previous_rows=prev)["features_row_count_change"]
    assert outcome.passed is passes, outcome.message
    assert outcome.severity == "ERROR"


@pytest.mark.parametrize(
    ("days_behind", "passes"),
    [(0, True), (Thresholds().freshness_days, True), (Thresholds().freshness_days + 1, False),
     (60, False)],
)  # fmt: skip
def test_freshness_warns_when_a_region_lags_the_dataset(good, days_behind, passes):
    path, fs, rows = good
    outcomes = run(path, fs, previous_rows=rows, dataset_last_date=LAST + timedelta(days_behind))
    fresh = outcomes["features_freshness"]
    assert fresh.passed is passes, fresh.message
    assert fresh.severity == "WARN"
    assert fresh.metadata["days_behind"] == days_behind
    # a stale region is a warning only: every blocking check still passes
    assert not failed(outcomes) & set(ERRORS)


@pytest.mark.parametrize(
    ("history_days", "passes"),
    [(30, False), (Thresholds().min_history_days - 1, False),
     (Thresholds().min_history_days, True)],
)  # fmt: skip
def test_history_length_warns_on_a_short_history(good, tmp_path, history_days, passes):
    path, fs, _ = good
    first = LAST - timedelta(days=history_days - 1)
    short = corrupt(
        path, tmp_path / "short.parquet", f"SELECT * FROM f WHERE date >= DATE '{first}'"
    )
    outcomes = run(short, fs)
    hist = outcomes["features_history_length"]
    assert hist.passed is passes, hist.message
    assert hist.severity == "WARN"
    assert hist.metadata["history_days"] == history_days
    assert not failed(outcomes) & set(ERRORS), {n: o.message for n, o in outcomes.items()}
