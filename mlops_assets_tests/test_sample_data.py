"""Tests for the synthetic sample-data generator: determinism, realism, drift, layout.

The generator is the ground truth the pipeline and its monitoring are tested against, so
these check the properties people rely on (seasonality, promo lift, closures, drift that
stays in its region) rather than exact numbers.
"""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets import sample_data
from mlops_assets.sample_data import DriftSpec, GenerationSummary, SampleConfig, generate

DRIFT_START = date(2023, 5, 1)
DRIFT_REGION = "Süd"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _sales(root: Path) -> pd.DataFrame:
    """All sales rows (csv or parquet) with the store's region, sorted by key."""
    csvs = sorted((root / "sales").glob("sales_*.csv"))
    parts = sorted((root / "sales").glob("part-*.parquet"))
    if csvs:
        frame = pd.concat([pd.read_csv(p) for p in csvs], ignore_index=True)
    else:
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        frame["date"] = frame["date"].astype(str)
    stores = pd.read_csv(root / "stores" / "stores.csv")
    frame = frame.merge(stores[["store_id", "region"]], on="store_id", how="left")
    frame = frame.sort_values(["store_id", "department", "date"], ignore_index=True)
    frame["day"] = pd.to_datetime(frame["date"])
    return frame


def _fast_departments(sales: pd.DataFrame) -> list[str]:
    means = sales[sales["open"] == 1].groupby("department")["units"].mean()
    return sorted(means[means > 10].index)


def _without(frame: pd.DataFrame, region: str) -> pd.DataFrame:
    return frame[frame["region"] != region].reset_index(drop=True)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerationSummary, Path]:
    out = tmp_path_factory.mktemp("default")
    return generate(SampleConfig(), out), out


@pytest.fixture(scope="module")
def default_sales(default_run: tuple[GenerationSummary, Path]) -> pd.DataFrame:
    return _sales(default_run[1])


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny_base")
    generate(SampleConfig.tiny(), out)
    return out


def _tiny_with_drift(tmp: Path, kind: str, magnitude: float) -> Path:
    config = SampleConfig.tiny(drift=(DriftSpec(DRIFT_REGION, DRIFT_START, kind, magnitude),))
    generate(config, tmp)
    return tmp


# -- determinism and layout ----------------------------------------------------------------


def test_same_config_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    generate(SampleConfig.tiny(), tmp_path / "a")
    generate(SampleConfig.tiny(), tmp_path / "b")
    generate(SampleConfig.tiny(seed=1), tmp_path / "c")
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert set(a) == set(c)
    assert a["sales/sales_2023.csv"] != c["sales/sales_2023.csv"]


def test_history_does_not_depend_on_the_horizon(tmp_path: Path) -> None:
    generate(SampleConfig.tiny(horizon_days=42), tmp_path / "long")
    generate(SampleConfig.tiny(horizon_days=7), tmp_path / "short")
    long, short = _files(tmp_path / "long"), _files(tmp_path / "short")
    for name in long:
        if not name.startswith(("future/", "events/", "weather/")):
            assert long[name] == short[name], name
    # weather runs on into the horizon (the forecast); its history part is the same
    end = SampleConfig.tiny().end.isoformat()
    weather = [pd.read_csv(tmp_path / run / "weather" / "weather.csv") for run in ("long", "short")]
    history = [w[w["date"] <= end].reset_index(drop=True) for w in weather]
    pd.testing.assert_frame_equal(history[0], history[1])


def test_layout_and_summary(default_run: tuple[GenerationSummary, Path]) -> None:
    summary, out = default_run
    expected = {
        "stores/stores.csv",
        "sales/sales_2023.csv",
        "sales/sales_2024.csv",
        "sales/sales_2025.csv",
        "weather/weather.csv",
        "events/events.csv",
        "future/future.csv",
    }
    assert set(_files(out)) == expected
    assert {str(p.relative_to(out)) for p in summary.files} == expected
    config = SampleConfig()
    assert summary.n_rows_sales == config.n_stores * config.n_departments * config.days
    assert summary.start == config.start
    assert summary.end == config.start + timedelta(days=config.days - 1)
    as_dict = json.loads(json.dumps(summary.to_dict()))
    assert as_dict["end"] == summary.end.isoformat()
    assert sum(as_dict["stores_per_region"].values()) == config.n_stores


def test_regions_have_awkward_names_and_different_sizes(
    default_run: tuple[GenerationSummary, Path],
) -> None:
    summary, out = default_run
    stores = pd.read_csv(out / "stores" / "stores.csv")
    assert len(summary.regions) >= 5
    assert any(", " in r for r in summary.regions)
    assert any(not r.isascii() for r in summary.regions)
    assert stores["store_id"].is_unique
    assert set(stores["region"]) == set(summary.regions)
    counts = stores["region"].value_counts()
    assert counts.to_dict() == summary.stores_per_region
    assert counts.max() >= 2 * counts.min()
    assert set(stores["format"]) == {"large", "small"}
    assert set(stores["location"]) == {"urban", "rural"}
    large = stores[stores["format"] == "large"]["size_sqm"]
    small = stores[stores["format"] == "small"]["size_sqm"]
    assert large.min() > small.max()
    assert (pd.to_datetime(stores["opened"]) < pd.Timestamp(summary.start)).all()


def test_many_regions_get_generated_names() -> None:
    names = sample_data.region_names(7)
    assert names[:5] == ["Nord", "Süd", "Rhein, Main", "Ost", "West"]
    assert names[5:] == ["Region 06", "Region 07"]
    assert len({sample_data.region_subdivision(i) for i in range(7)}) == 7


def test_one_row_per_store_department_day(default_sales: pd.DataFrame) -> None:
    config = SampleConfig()
    assert len(default_sales) == config.n_stores * config.n_departments * config.days
    assert not default_sales.duplicated(["store_id", "department", "date"]).any()
    assert default_sales["region"].notna().all()
    assert default_sales["date"].min() == config.start.isoformat()
    assert set(default_sales["open"]) == {0, 1}
    assert set(default_sales["promo"]) == {0, 1}
    assert (default_sales["units"] == default_sales["units"].round()).all()


def test_fast_and_slow_departments(default_sales: pd.DataFrame) -> None:
    open_rows = default_sales[default_sales["open"] == 1]
    means = open_rows.groupby("department")["units"].mean()
    assert means.max() > 10 * means.min()
    fast = _fast_departments(default_sales)
    slow = sorted(set(means.index) - set(fast))
    assert fast and slow
    slow_rows = open_rows[open_rows["department"].isin(slow)]
    assert slow_rows["units"].mean() < 3
    assert (slow_rows["units"] == 0).mean() > 0.2


def test_closures_and_returns(default_sales: pd.DataFrame) -> None:
    closed = default_sales[default_sales["open"] == 0]
    assert (closed["units"] == 0).all()
    sundays = default_sales[default_sales["day"].dt.dayofweek == 6]
    assert (sundays["open"] == 0).mean() > 0.5
    # closures also happen on weekdays (holidays, random days, refurbishments)
    assert (closed["day"].dt.dayofweek != 6).any()
    negative = default_sales["units"] < 0
    assert negative.sum() > 0
    assert negative.mean() < 0.01
    assert default_sales.loc[negative, "units"].min() >= -10


def test_weekly_promo_and_yearly_seasonality(default_sales: pd.DataFrame) -> None:
    fast = default_sales[
        (default_sales["open"] == 1)
        & default_sales["department"].isin(_fast_departments(default_sales))
    ]
    by_weekday = fast.groupby(fast["day"].dt.dayofweek)["units"].mean()
    assert by_weekday[5] > 1.2 * by_weekday[1]  # Saturday > Tuesday
    by_promo = fast.groupby("promo")["units"].mean()
    assert by_promo[1] > 1.15 * by_promo[0]
    promo_share = default_sales["promo"].mean()
    assert 0.1 < promo_share < 0.3
    by_month = fast.groupby(fast["day"].dt.month)["units"].mean()
    assert (by_month[12] > by_month.drop(12)).all()


def test_weather_is_seasonal_and_precipitation_zero_inflated(
    default_run: tuple[GenerationSummary, Path],
) -> None:
    summary, out = default_run
    weather = pd.read_csv(out / "weather" / "weather.csv")
    config = SampleConfig()
    assert len(weather) == len(summary.regions) * (config.days + config.horizon_days)
    assert set(weather["region"]) == set(summary.regions)
    assert not weather.duplicated(["date", "region"]).any()
    month = pd.to_datetime(weather["date"]).dt.month
    temp = weather.groupby(month)["temperature_c"].mean()
    assert temp[7] > temp[1] + 10
    assert (weather["precipitation_mm"] >= 0).all()
    assert 0.3 < (weather["precipitation_mm"] == 0).mean() < 0.9
    assert (weather["temperature_c"] == weather["temperature_c"].round(1)).all()


def test_events_hold_national_regional_and_special_days(
    default_run: tuple[GenerationSummary, Path], default_sales: pd.DataFrame
) -> None:
    summary, out = default_run
    events = pd.read_csv(out / "events" / "events.csv", keep_default_na=False)
    national = events[events["region"] == ""]
    assert {"Neujahr", "Tag der Deutschen Einheit", "Black Friday"} <= set(national["event"])
    assert set(events.loc[events["region"] != "", "region"]) <= set(summary.regions)
    assert "Fronleichnam" in set(events.loc[events["region"] == DRIFT_REGION, "event"])
    assert "Stadtfest" in set(events["event"])
    assert not events.duplicated(["region", "date", "event"]).any()
    # stores are closed on national holidays
    closing = national[national["event"] != "Black Friday"]
    holiday = default_sales[default_sales["date"].isin(set(closing["date"]))]
    assert (holiday["open"] == 0).all()
    # Black Friday lifts fast movers above the other Fridays of November
    fast = default_sales[default_sales["department"].isin(_fast_departments(default_sales))]
    fridays = fast[(fast["day"].dt.month == 11) & (fast["day"].dt.dayofweek == 4)]
    black = fridays["date"].isin(set(national.loc[national["event"] == "Black Friday", "date"]))
    assert fridays.loc[black, "units"].mean() > 1.2 * fridays.loc[~black, "units"].mean()


def test_future_calendar_covers_the_horizon(
    default_run: tuple[GenerationSummary, Path], default_sales: pd.DataFrame
) -> None:
    summary, out = default_run
    config = SampleConfig()
    future = pd.read_csv(out / "future" / "future.csv")
    assert list(future.columns) == ["date", "store_id", "department", "open", "promo"]
    expected_dates = {
        (summary.end + timedelta(days=i)).isoformat() for i in range(1, config.horizon_days + 1)
    }
    assert set(future["date"]) == expected_dates
    assert len(future) == config.n_stores * config.n_departments * config.horizon_days
    assert not future.duplicated(["store_id", "department", "date"]).any()
    pairs = future.groupby(["store_id", "department"]).size()
    assert (pairs == config.horizon_days).all()
    assert set(pairs.index) == set(
        default_sales[["store_id", "department"]].drop_duplicates().itertuples(index=False)
    )
    sundays = pd.to_datetime(future["date"]).dt.dayofweek == 6
    assert (future.loc[sundays, "open"] == 0).mean() > 0.5
    assert (future.loc[future["date"] == "2025-01-01", "open"] == 0).all()  # Neujahr
    assert 0.05 < future["promo"].mean() < 0.4


def test_parquet_parts_hold_the_same_rows_as_csv(tmp_path: Path, tiny_base: Path) -> None:
    config = SampleConfig.tiny(file_format="parquet", batch_stores=5)
    summary = generate(config, tmp_path)
    parts = sorted((tmp_path / "sales").glob("part-*.parquet"))
    assert [p.name for p in parts] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert not list((tmp_path / "sales").glob("*.csv"))
    assert set(summary.files) >= set(parts)
    from_parquet = _sales(tmp_path)
    from_csv = _sales(tiny_base)
    pd.testing.assert_frame_equal(from_parquet, from_csv, check_dtype=True)
    for name in ("stores/stores.csv", "weather/weather.csv", "events/events.csv"):
        assert (tmp_path / name).read_bytes() == (tiny_base / name).read_bytes()
    assert (tmp_path / "future/future.csv").read_bytes() == (
        tiny_base / "future/future.csv"
    ).read_bytes()


def test_rerun_replaces_stale_sales_files(tmp_path: Path) -> None:
    generate(SampleConfig.tiny(file_format="parquet", batch_stores=3), tmp_path)
    generate(SampleConfig.tiny(), tmp_path)
    assert sorted(p.name for p in (tmp_path / "sales").iterdir()) == [
        "sales_2023.csv",
        "sales_2024.csv",
    ]


# -- drift ---------------------------------------------------------------------------------


def _assert_other_regions_identical(drifted: Path, base: Path) -> None:
    pd.testing.assert_frame_equal(
        _without(_sales(drifted), DRIFT_REGION), _without(_sales(base), DRIFT_REGION)
    )
    weather_d = pd.read_csv(drifted / "weather" / "weather.csv")
    weather_b = pd.read_csv(base / "weather" / "weather.csv")
    pd.testing.assert_frame_equal(
        _without(weather_d, DRIFT_REGION), _without(weather_b, DRIFT_REGION)
    )
    for name in ("stores/stores.csv", "events/events.csv", "future/future.csv"):
        assert (drifted / name).read_bytes() == (base / name).read_bytes()


def test_weather_shift_changes_weather_and_sales_of_one_region(
    tmp_path: Path, tiny_base: Path
) -> None:
    drifted = _tiny_with_drift(tmp_path, "weather_shift", 8.0)
    _assert_other_regions_identical(drifted, tiny_base)

    weather_d = pd.read_csv(drifted / "weather" / "weather.csv")
    weather_b = pd.read_csv(tiny_base / "weather" / "weather.csv")
    in_region = weather_b["region"] == DRIFT_REGION
    after = weather_b["date"] >= DRIFT_START.isoformat()
    diff = weather_d["temperature_c"] - weather_b["temperature_c"]
    assert np.allclose(diff[in_region & after], 8.0, atol=0.11)
    assert (diff[~(in_region & after)] == 0).all()
    assert weather_d["precipitation_mm"].equals(weather_b["precipitation_mm"])

    sales_d, sales_b = _sales(drifted), _sales(tiny_base)
    fast = sales_b["department"].isin(_fast_departments(sales_b))
    region = (sales_b["region"] == DRIFT_REGION) & fast
    before = sales_b["date"] < DRIFT_START.isoformat()
    assert sales_d[region & before].equals(sales_b[region & before])
    summer = region & sales_b["day"].dt.month.isin([6, 7, 8])
    assert sales_d.loc[summer, "units"].mean() > 1.1 * sales_b.loc[summer, "units"].mean()
    assert sales_d["open"].equals(sales_b["open"]) and sales_d["promo"].equals(sales_b["promo"])


def test_level_shift_scales_one_region_after_start(tmp_path: Path, tiny_base: Path) -> None:
    drifted = _tiny_with_drift(tmp_path, "level_shift", 0.5)
    _assert_other_regions_identical(drifted, tiny_base)
    assert (drifted / "weather/weather.csv").read_bytes() == (
        tiny_base / "weather/weather.csv"
    ).read_bytes()
    sales_d, sales_b = _sales(drifted), _sales(tiny_base)
    region = sales_b["region"] == DRIFT_REGION
    after = sales_b["date"] >= DRIFT_START.isoformat()
    assert sales_d[region & ~after].equals(sales_b[region & ~after])
    ratio = (
        sales_d.loc[region & after, "units"].mean() / sales_b.loc[region & after, "units"].mean()
    )
    assert ratio == pytest.approx(1.5, rel=0.1)


def test_promo_effect_loss_removes_the_lift_in_one_region(tmp_path: Path, tiny_base: Path) -> None:
    drifted = _tiny_with_drift(tmp_path, "promo_effect_loss", 0.0)
    _assert_other_regions_identical(drifted, tiny_base)
    sales_d, sales_b = _sales(drifted), _sales(tiny_base)
    assert sales_d["promo"].equals(sales_b["promo"])
    fast = _fast_departments(sales_b)

    def lift(sales: pd.DataFrame, rows: pd.Series) -> float:
        """Median over series of promo mean / non-promo mean (pooling mixes store sizes)."""
        rows = rows & (sales["open"] == 1) & sales["department"].isin(fast)
        means = sales[rows].groupby(["store_id", "department", "promo"])["units"].mean()
        return float((means.xs(1, level="promo") / means.xs(0, level="promo")).median())

    after = sales_b["date"] >= DRIFT_START.isoformat()
    region = sales_b["region"] == DRIFT_REGION
    base_lift = lift(sales_b, region & after)
    assert base_lift > 1.15  # the lift exists without drift
    assert lift(sales_d, region & after) < min(1.1, base_lift - 0.12)  # and is gone with it
    assert lift(sales_d, ~region & after) > 1.15  # elsewhere it stays
    promo_rows = region & after & (sales_b["promo"] == 1) & (sales_b["open"] == 1)
    assert sales_d.loc[promo_rows, "units"].sum() < 0.9 * sales_b.loc[promo_rows, "units"].sum()


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"n_regions": 0}, "n_regions"),
        ({"n_stores": 3, "n_regions": 5}, "n_stores"),
        ({"n_departments": 0}, "n_departments"),
        ({"days": 0}, "days"),
        ({"horizon_days": -1}, "horizon_days"),
        ({"file_format": "xlsx"}, "file_format"),
        ({"batch_stores": 0}, "batch_stores"),
        ({"start": "2023-01-01"}, "start"),
        ({"drift": (DriftSpec("Atlantis", DRIFT_START, "level_shift", 0.1),)}, "drift"),
    ],
)
def test_invalid_config_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SampleConfig(**overrides)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "earthquake", "magnitude": 1.0}, "kind"),
        ({"kind": "level_shift", "magnitude": -1.0}, "magnitude"),
        ({"kind": "level_shift", "magnitude": float("nan")}, "magnitude"),
    ],
)
def test_invalid_drift_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DriftSpec(region="Nord", start=DRIFT_START, **kwargs)


def test_config_is_frozen_and_drift_list_becomes_tuple() -> None:
    config = SampleConfig.tiny(drift=[DriftSpec("Nord", DRIFT_START, "level_shift", 0.1)])
    assert isinstance(config.drift, tuple)
    with pytest.raises(AttributeError):
        config.seed = 3  # type: ignore[misc]
    assert replace(config, seed=3).seed == 3


def test_module_does_not_import_dagster() -> None:
    tree = ast.parse(Path(sample_data.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "dagster" not in imported
