"""Tests for the feature SQL: no leakage, date-based lags and windows, idempotent writes,
region isolation, the future calendar and events.

Every test builds a real workspace from the tiny generated sample (landing files ->
``ingest_file`` -> DuckDB views -> ``write_features``) and checks the feature table
against an independent pandas computation on the landing files.

The helpers at the top (``generate_sample``, ``make_workspace``, ...) are also used by
``test_data_checks.py`` and ``test_warehouse.py``.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.conditioning import (
    EVENT_DISTANCE_CAP,
    KEY,
    FeatureSet,
    build_features,
    feature_sql,
    series_are_dense,
    write_features,
)
from mlops_assets.landing import IngestOutcome, ingest_file, scan_landing
from mlops_assets.naming import region_key
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import ColumnSpec, DatasetSpec, load_spec
from mlops_assets.storage.data_store import DataStore
from mlops_assets.warehouse import connect, has_view
from mlops_assets.workspace import Workspace

SPEC = load_spec("sample")
H = SPEC.horizon
SOURCES = ("stores", "sales", "weather", "events", "future")
TARGET_DERIVED = ("lag_", "roll_mean_", "series_", "item_mean", "open_rate_", "ly_")

# --------------------------------------------------------------------------------------
# helpers (shared with the other test modules)


def generate_sample(out_dir: Path) -> Path:
    """The tiny sample dataset (5 regions, 12 stores, 3 departments, 400 days + 42 future)."""
    generate(SampleConfig.tiny(), out_dir)
    return out_dir


def make_workspace(
    root: Path,
    sample: Path,
    *,
    sources: tuple[str, ...] = SOURCES,
    edit_sales: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    extra: dict[str, pd.DataFrame] | None = None,
) -> Workspace:
    """A fresh workspace with the sample's landing files (sales optionally edited) ingested.

    ``extra`` maps a path below ``landing/`` (e.g. ``"future/overlap.csv"``) to a frame
    written there as CSV before ingestion.
    """
    ws = Workspace(root)
    for source in sources:
        shutil.copytree(sample / source, ws.landing_dir(source))
    if edit_sales is not None:
        for path in sorted(ws.landing_dir("sales").glob("*.csv")):
            edit_sales(read_csv(path)).to_csv(path, index=False)
    for relpath, frame in (extra or {}).items():
        frame.to_csv(ws.landing / relpath, index=False)
    ingest_landing(ws)
    return ws


def ingest_landing(ws: Workspace) -> list[IngestOutcome]:
    outcomes = [ingest_file(ws, SPEC, f.source, f.relpath) for f in scan_landing(ws, SPEC)]
    rejected = [(o.relpath, o.record.get("message")) for o in outcomes if o.status != "ingested"]
    assert not rejected, rejected
    return outcomes


def read_csv(path: Path) -> pd.DataFrame:
    """A landing CSV with ids kept as text and dates as ISO strings (as written)."""
    return pd.read_csv(path, dtype={"store_id": str, "department": str, "date": str})


def landing_frame(ws: Workspace, source: str) -> pd.DataFrame:
    """Every landing CSV of ``source`` with ``date`` parsed."""
    frame = pd.concat(
        [read_csv(p) for p in sorted(ws.landing_dir(source).glob("*.csv"))], ignore_index=True
    )
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def store_regions(ws: Workspace) -> dict[str, str]:
    """store id -> region key, from the landing store master."""
    stores = read_csv(ws.landing_dir("stores") / "stores.csv")
    return {s: region_key(r) for s, r in zip(stores["store_id"], stores["region"], strict=True)}


def read_features(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.sort_values(list(KEY), ignore_index=True)


def write_to(con, spec, region: str, path: Path) -> FeatureSet:
    """``write_features`` to a file of a local data store."""
    return write_features(con, spec, region, DataStore(path.parent), path.name)


def write_region(ws: Workspace, region: str, path: Path | None = None) -> FeatureSet:
    with connect(ws, SPEC) as con:
        return write_to(con, SPEC, region, path or ws.features_path(region))


def all_features(ws: Workspace) -> tuple[pd.DataFrame, FeatureSet]:
    """Every region's features, written to the workspace and read back (one frame)."""
    frames, fs = [], None
    for region in sorted(set(store_regions(ws).values())):
        fs = write_region(ws, region)
        frames.append(read_features(ws.features_path(region)))
    return pd.concat(frames, ignore_index=True), fs


def target_derived(fs: FeatureSet) -> list[str]:
    return [c for c in fs.numeric if c.startswith(TARGET_DERIVED)]


def y_open(sales: pd.DataFrame) -> pd.Series:
    """The modelling target in pandas: clipped at 0 on open days, missing on closed days,
    indexed by (store, item, date)."""
    y = sales["units"].clip(lower=0).where(sales["open"] == 1)
    index = pd.MultiIndex.from_arrays(
        [sales["store_id"], sales["department"], sales["date"]], names=KEY
    )
    return pd.Series(y.to_numpy(), index=index).sort_index()


def same(a: pd.Series, b: pd.Series) -> pd.Series:
    """Elementwise equality where two NULLs are equal."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return (a == b) | (a.isna() & b.isna())


# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def base(tmp_path_factory, sample) -> tuple[Workspace, pd.DataFrame, FeatureSet]:
    ws = make_workspace(tmp_path_factory.mktemp("base"), sample)
    features, fs = all_features(ws)
    return ws, features, fs


# a 21-day hole in one series: the store was closed and sent no rows at all
GAP_STORE, GAP_ITEM = "S0002", "D01"
GAP = (pd.Timestamp("2023-06-01"), pd.Timestamp("2023-06-21"))


def _drop_gap(frame: pd.DataFrame) -> pd.DataFrame:
    day = pd.to_datetime(frame["date"])
    hole = (frame["store_id"] == GAP_STORE) & (frame["department"] == GAP_ITEM) & day.between(*GAP)
    return frame[~hole]


@pytest.fixture(scope="module")
def gapped(tmp_path_factory, sample) -> tuple[Workspace, pd.DataFrame, pd.DataFrame]:
    ws = make_workspace(tmp_path_factory.mktemp("gapped"), sample, edit_sales=_drop_gap)
    features, _ = all_features(ws)
    return ws, features, landing_frame(ws, "sales")


# --------------------------------------------------------------------------------------
# leakage


def _scramble_after(origin: pd.Timestamp) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Change every actual after ``origin``: units x10 + 3 (zeros change too) and the
    observed open flag flipped (open_rate_* is derived from it)."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        after = pd.to_datetime(frame["date"]) > origin
        frame.loc[after, "units"] = frame.loc[after, "units"] * 10 + 3
        frame.loc[after, "open"] = 1 - frame.loc[after, "open"]
        return frame

    return edit


# an early origin so that even lag_364 reaches past it within the data, and a late one
@pytest.mark.parametrize("origin", [pd.Timestamp("2023-03-01"), pd.Timestamp("2023-11-15")])
def test_target_features_never_see_actuals_after_the_forecast_origin(
    tmp_path, sample, base, origin
):
    _, before, fs = base
    ws = make_workspace(tmp_path / "ws", sample, edit_sales=_scramble_after(origin))
    after, _ = all_features(ws)
    derived = target_derived(fs)
    assert {"lag_42", "lag_364", "roll_mean_7", "series_mean", "item_mean", "open_rate_28"} <= set(
        derived
    )
    assert after[list(KEY)].equals(before[list(KEY)])

    # a model forecasting from `origin` scores rows up to origin + horizon: their
    # target-derived inputs must not move when the actuals after the origin do
    scored = before["date"] <= origin + pd.Timedelta(days=H)
    assert scored.sum() > 1000
    for col in derived:
        ok = same(before.loc[scored, col], after.loc[scored, col])
        assert ok.all(), (
            f"{col} leaks actuals after {origin.date()}: "
            f"{before.loc[scored].loc[~ok.to_numpy(), list(KEY)].head(3).to_dict('records')}"
        )

    # converse: once a feature's window reaches past the origin it does change, so the
    # check above can fail
    for col in derived:
        # the nearest actual each feature reads, in days back
        reach = {"ly_week_mean": 361, "ly_season_ratio": 361, "ly_level": 364 + H}.get(col)
        if reach is None:
            reach = int(col.split("_")[1]) if col.startswith("lag_") else H
        exposed = before["date"] - pd.Timedelta(days=reach) > origin
        if reach > 300 and exposed.sum() <= 100:
            continue  # the late origin: a year back never reaches past it within the data
        assert exposed.sum() > 100, col
        changed = ~same(before.loc[exposed, col], after.loc[exposed, col])
        assert changed.mean() > 0.5, f"{col} changed on only {changed.mean():.0%} of rows"


# --------------------------------------------------------------------------------------
# lags and rolling windows are by date


def _features_with(ws: Workspace, region: str, *, dense: bool) -> pd.DataFrame:
    with connect(ws, SPEC) as con:
        sql, _ = feature_sql(con, SPEC, dense=dense)
        frame = con.execute(sql, {"region": region}).df()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.sort_values(list(KEY), ignore_index=True)


def test_row_windows_on_dense_series_give_exactly_the_date_windows_values(base, gapped):
    """Windows counted in rows are only used where they equal the windows by date: every
    series of the region has a row every day (history, future and pad)."""
    ws, _, _ = base
    regions = sorted(set(store_regions(ws).values()))
    with connect(ws, SPEC) as con:
        assert all(series_are_dense(con, SPEC, r) for r in regions)
    for region in regions[:2]:
        by_rows = _features_with(ws, region, dense=True)
        by_dates = _features_with(ws, region, dense=False)
        pd.testing.assert_frame_equal(by_rows, by_dates)
    # a region with a hole in one series is not dense, and by rows would be wrong there
    gws, _, _ = gapped
    region = store_regions(gws)[GAP_STORE]
    with connect(gws, SPEC) as con:
        assert not series_are_dense(con, SPEC, region)
    by_rows = _features_with(gws, region, dense=True)
    by_dates = _features_with(gws, region, dense=False)
    series = (by_dates["store"] == GAP_STORE) & (by_dates["item"] == GAP_ITEM)
    assert not by_rows.loc[series, "lag_42"].equals(by_dates.loc[series, "lag_42"])


def test_lags_are_taken_by_date_not_by_row_offset(gapped):
    _, features, sales = gapped
    y = y_open(sales)
    in_gap = (sales["store_id"] == GAP_STORE) & (sales["department"] == GAP_ITEM)
    assert not (in_gap & sales["date"].between(*GAP)).any()
    key = list(KEY)
    for lag in SPEC.target_lags:
        source = pd.MultiIndex.from_arrays(
            [features["store"], features["item"], features["date"] - pd.Timedelta(days=lag)]
        )
        expected = y.reindex(source).to_numpy()
        ok = same(features[f"lag_{lag}"], pd.Series(expected))
        assert ok.all(), features.loc[~ok.to_numpy(), [*key, f"lag_{lag}"]].head()

    series = features[(features["store"] == GAP_STORE) & (features["item"] == GAP_ITEM)]
    series = series.set_index("date")
    # no rows are invented for the missing days
    assert not series.index.to_series().between(*GAP).any()
    # 42 days after a missing day the lag is NULL, not the value of a neighbouring row
    shadow = series.index.to_series().between(*(g + pd.Timedelta(days=H) for g in GAP))
    assert shadow.sum() == 21 and series.loc[shadow, "lag_42"].isna().all()
    d = GAP[1] + pd.Timedelta(days=H + 1)  # lag_42 = the first day after the gap
    assert series.loc[d, "lag_42"] == y[(GAP_STORE, GAP_ITEM, GAP[1] + pd.Timedelta(days=1))]
    # sanity: a row-offset lag would have given different values after the gap
    by_row = y.loc[(GAP_STORE, GAP_ITEM)].shift(H).reindex(series.index)
    assert not same(by_row, series["lag_42"]).all()


@pytest.mark.parametrize("window", [7, 28])
def test_rolling_mean_is_the_mean_of_open_day_targets_ending_a_horizon_back(gapped, window):
    _, features, sales = gapped
    y = y_open(sales)
    rng = np.random.default_rng(7)
    picks = set(rng.choice(len(features), 40, replace=False).tolist())
    day = pd.Timedelta(days=1)

    def rows_whose_window_holds(store: str, item: str, d: pd.Timestamp) -> list[int]:
        hit = features.index[
            (features["store"] == store)
            & (features["item"] == item)
            & (features["date"] == d + H * day)
        ]
        return hit.tolist()

    # windows that cover the gap, a return (negative units) and the first days of a series
    picks |= set(rows_whose_window_holds(GAP_STORE, GAP_ITEM, GAP[0] + 3 * day))
    returns = sales[(sales["units"] < 0) & (sales["open"] == 1)].head(3)
    assert len(returns), "the sample should hold returns"
    for r in returns.itertuples():
        picks |= set(rows_whose_window_holds(r.store_id, r.department, r.date + day))
    picks |= set(features.index[features["date"] == pd.Timestamp("2023-01-01") + 45 * day])

    col = f"roll_mean_{window}"
    for i in sorted(picks):
        row = features.loc[i]
        lo, hi = row["date"] - (H + window - 1) * day, row["date"] - H * day
        vals = y.loc[(row["store"], row["item"])]
        vals = vals[(vals.index >= lo) & (vals.index <= hi)].dropna()
        expected = vals.mean() if len(vals) else np.nan
        got = row[col]
        assert (np.isnan(expected) and pd.isna(got)) or got == pytest.approx(expected), (
            f"{col} at {row['store']}/{row['item']}/{row['date'].date()}: {got} != {expected}"
        )


def _expanding_mean_by_date(
    features: pd.DataFrame, history: pd.DataFrame, by: list[str], back: int, span: int | None
) -> pd.Series:
    """For each feature row, the mean of ``history.y`` over the rows of the same ``by``
    group dated from ``back + span - 1`` (None: the start) to ``back`` days before it."""
    hist = history.dropna(subset=["y"]).sort_values("date")
    hist = hist.assign(
        cum_sum=hist.groupby(by)["y"].cumsum(), cum_n=hist.groupby(by).cumcount() + 1
    )

    def cum_at(days_back: int) -> pd.DataFrame:
        rows = (
            features[by + ["date"]]
            .reset_index()
            .assign(date=features["date"].to_numpy() - pd.Timedelta(days=days_back))
        )
        got = pd.merge_asof(
            rows.sort_values("date"), hist[by + ["date", "cum_sum", "cum_n"]], on="date", by=by
        )
        return got.set_index("index").sort_index()[["cum_sum", "cum_n"]].fillna(0)

    upto = cum_at(back)
    if span is not None:
        upto = upto - cum_at(back + span)
    return (upto["cum_sum"] / upto["cum_n"].where(upto["cum_n"] > 0)).rename(None)


def test_means_over_part_of_a_series_and_the_items_mean_are_the_pandas_values(gapped):
    """series_dow_mean(_91), series_promo_mean, series_dow_promo_mean and item_mean (over
    the region's stores) against pandas, on a region with a gap (windows by date) and
    on dense regions (windows by rows)."""
    ws, features, sales = gapped
    regions = store_regions(ws)
    history = sales.assign(
        y=sales["units"].clip(lower=0).where(sales["open"] == 1),
        dow=sales["date"].dt.dayofweek + 1,
        region=sales["store_id"].map(regions),
        store=sales["store_id"],
        item=sales["department"],
    )
    history = history.astype({"dow": "int64", "promo": "int64"})
    features = features.assign(region=features["store"].map(regions)).astype(
        {"dow": "int64", "promo": "int64"}
    )
    expected = {
        "series_dow_mean": (["store", "item", "dow"], None),
        "series_dow_mean_91": (["store", "item", "dow"], 91),
        "series_promo_mean": (["store", "item", "promo"], None),
        "series_dow_promo_mean": (["store", "item", "dow", "promo"], None),
        "item_mean": (["region", "item"], None),
    }
    for col, (by, span) in expected.items():
        want = _expanding_mean_by_date(features, history, by, H, span)
        np.testing.assert_allclose(features[col], want, rtol=1e-6, err_msg=col)
        assert features[col].notna().mean() > 0.5, col  # not a comparison of NULLs


def test_run_day_and_days_left_count_the_rows_of_each_flags_run(gapped):
    """open_run_day / promo_run_day: the row's place in its run of equal flag values
    (1 = the first day); *_run_left: the rows after it in the same run."""
    _, features, _ = gapped
    frame = features.sort_values(list(KEY), ignore_index=True)
    for flag in ("open", "promo"):
        series = [frame["store"], frame["item"]]
        new_run = frame[flag].ne(frame.groupby(series)[flag].shift())
        run = new_run.groupby(series).cumsum()
        rows_of_run = frame.groupby([*series, run])[flag]
        run_day = rows_of_run.cumcount() + 1
        run_left = rows_of_run.transform("size") - run_day
        np.testing.assert_array_equal(frame[f"{flag}_run_day"], run_day, err_msg=flag)
        # a run still going on at a series' last row goes on into the projected calendar
        ended = run.ne(run.groupby(series).transform("last"))
        assert ended.mean() > 0.9
        np.testing.assert_array_equal(
            frame.loc[ended, f"{flag}_run_left"], run_left[ended], err_msg=flag
        )
        assert (frame[f"{flag}_run_day"] > 1).any() and (
            frame.loc[ended, f"{flag}_run_left"] > 0
        ).any()


# --------------------------------------------------------------------------------------
# writing


def test_writing_a_region_twice_gives_the_same_table_and_leaves_no_temp_files(base, tmp_path):
    ws, features, _ = base
    out = tmp_path / "features" / "Sud.parquet"
    fs1 = write_region(ws, "Sud", out)
    first = read_features(out)
    inode = out.stat().st_ino
    fs2 = write_region(ws, "Sud", out)
    second = read_features(out)
    assert fs1 == fs2
    pd.testing.assert_frame_equal(first, second)
    expected = features[features["region_key"] == "Sud"].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, expected)
    assert out.stat().st_ino != inode, "the file is replaced by a rename, not rewritten"
    assert [p.name for p in out.parent.iterdir()] == ["Sud.parquet"]


def test_concurrent_writers_of_one_region_do_not_collide(base, tmp_path):
    """Two runs of the same region partition (a sensor run and a backfill) may overlap."""
    ws, features, _ = base
    out = tmp_path / "features" / "Nord.parquet"
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with connect(ws, SPEC) as con:
                for _ in range(3):
                    write_to(con, SPEC, "Nord", out)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    pd.testing.assert_frame_equal(
        read_features(out), features[features["region_key"] == "Nord"].reset_index(drop=True)
    )
    assert [p.name for p in out.parent.iterdir()] == ["Nord.parquet"]


def test_a_failed_write_keeps_the_previous_table(base, tmp_path):
    ws0, _, _ = base
    shutil.copytree(ws0.root, tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    write_region(ws, "Ost")
    before = ws.features_path("Ost").read_bytes()
    with connect(ws, SPEC) as con:
        raw = sorted(ws.raw_dir("sales").glob("*.parquet"))
        for path in raw:  # damage the ingested sales after the views were defined
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2] + b"\0" * 4096 + data[len(data) // 2 :])
        with pytest.raises(duckdb.Error):
            write_to(con, SPEC, "Ost", ws.features_path("Ost"))
    assert ws.features_path("Ost").read_bytes() == before
    assert sorted(p.name for p in ws.features_path("Ost").parent.iterdir()) == sorted(
        f"{r}.parquet" for r in set(store_regions(ws).values())
    )


def test_build_features_relation_matches_the_written_file(base):
    ws, features, _ = base
    with connect(ws, SPEC) as con:
        frame = build_features(con, SPEC, "West").df()
    frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[ns]")
    expected = features[features["region_key"] == "West"].reset_index(drop=True)
    # the same values; nullable integer columns may come back as Int64 or float64
    pd.testing.assert_frame_equal(
        frame.sort_values(list(KEY), ignore_index=True), expected, check_dtype=False
    )


# --------------------------------------------------------------------------------------
# regions, the future calendar, events


def test_each_region_holds_exactly_its_own_stores_sales_and_future(base):
    ws, features, _ = base
    regions = store_regions(ws)
    sales = landing_frame(ws, "sales")
    future = landing_frame(ws, "future")
    for name, group in features.groupby("region_key"):
        stores = {s for s, r in regions.items() if r == name}
        assert set(group["store"]) == stores, name
        hist = group[~group["is_future"]]
        fut = group[group["is_future"]]
        assert len(hist) == sales["store_id"].isin(stores).sum()
        assert len(fut) == future["store_id"].isin(stores).sum()
    assert set(features["region_key"]) == set(regions.values())
    assert not features.duplicated(list(KEY)).any()


def test_future_rows_have_no_target_and_come_after_the_last_sale(base):
    ws, features, _ = base
    last_sale = landing_frame(ws, "sales")["date"].max()
    fut = features[features["is_future"]]
    hist = features[~features["is_future"]]
    assert len(fut) and fut["target"].isna().all()
    assert (fut["date"] > last_sale).all()
    assert hist["target"].notna().all() and (hist["date"] <= last_sale).all()
    # the known calendar flows into the future rows' inputs
    future = landing_frame(ws, "future").rename(columns={"store_id": "store", "department": "item"})
    merged = fut.merge(future, on=list(KEY), suffixes=("", "_file"))
    assert len(merged) == len(fut)
    assert (merged["promo"] == merged["promo_file"]).all()
    assert (merged["open"] == merged["open_file"]).all()


def test_a_future_row_for_a_key_with_sales_is_not_duplicated(tmp_path, sample):
    """A late calendar file may repeat days that have actuals: the actual row wins."""
    sales = pd.concat([read_csv(p) for p in sorted((sample / "sales").glob("*.csv"))])
    last_week = sorted(sales["date"].unique())[-7:]
    overlap = sales[(sales["store_id"] == "S0002") & sales["date"].isin(last_week)].copy()
    overlap["promo"] = 1 - overlap["promo"]  # tells which source a row came from
    overlap = overlap[["date", "store_id", "department", "open", "promo"]]
    ws = make_workspace(tmp_path / "ws", sample, extra={"future/overlap.csv": overlap})
    write_region(ws, "Nord")
    features = read_features(ws.features_path("Nord"))
    assert not features.duplicated(list(KEY)).any()
    assert len(features) == 2 * 3 * (400 + 42)  # 2 stores x 3 items x (history + future)
    rows = features.merge(
        overlap.rename(columns={"store_id": "store", "department": "item"}).assign(
            date=lambda f: pd.to_datetime(f["date"])
        ),
        on=list(KEY),
        suffixes=("", "_late"),
    )
    assert len(rows) == len(overlap) == 21
    assert not rows["is_future"].any() and rows["target"].notna().all()
    assert (rows["promo"] != rows["promo_late"]).all()


def _projected_calendar(flags: pd.DataFrame, last: pd.Timestamp, days: int) -> pd.DataFrame:
    """Independent pandas projection of a 0/1 calendar past ``last``: each day the most
    common value at the same weekday in the last three weeks up to ``last``."""
    rows = []
    for (store, item), g in flags.groupby(["store", "item"]):
        by_date = g.set_index("date")["open"]
        for k in range(1, days + 1):
            day = last + pd.Timedelta(days=k)
            refs = [day - pd.Timedelta(days=7 * m) for m in range(1, 5)]
            values = [by_date[d] for d in refs if d <= last and d in by_date.index][:3]
            rows.append((store, item, day, int(sum(values) * 2 > len(values))))
    return pd.DataFrame(rows, columns=["store", "item", "date", "open"])


def test_look_ahead_features_read_a_projected_calendar_past_the_last_known_day(
    tmp_path, sample, base
):
    """Without a future calendar the known calendar ends with the history: the last days'
    next-day, days-left-in-run and week-around features read the weekly pattern projected
    past it (not an end of the data that looks like a closure), and equal the features
    computed with the real calendar wherever that followed the pattern."""
    _, full, _ = base
    lookahead = 2 * SPEC.season_length  # days projected past the last known day
    last = pd.Timestamp("2024-01-19")  # a Friday; the Sunday closure comes after the end

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[pd.to_datetime(frame["date"]) <= last]

    ws = make_workspace(
        tmp_path / "ws", sample, sources=("stores", "sales", "weather", "events"), edit_sales=cut
    )
    features, _ = all_features(ws)
    # the pad rows are never output: exactly the history rows up to the cut
    assert features["date"].max() == last and not features["is_future"].any()
    assert features[list(KEY)].equals(
        full.loc[full["date"] <= last, list(KEY)].reset_index(drop=True)
    )
    end = features[features["date"] == last]
    assert end["open_next"].notna().all() and end["promo_next"].notna().all()

    hist = full[~full["is_future"]]
    projected = _projected_calendar(
        hist.loc[hist["date"] <= last, ["store", "item", "date", "open"]], last, lookahead
    )
    actual = hist[
        hist["date"].between(last + pd.Timedelta(days=1), last + pd.Timedelta(days=lookahead))
    ]
    check = projected.merge(actual[[*KEY, "open"]], on=list(KEY), suffixes=("", "_real"))
    assert len(check) == len(projected)
    as_projected = check.groupby(["store", "item"])[["open", "open_real"]].apply(
        lambda g: (g["open"] == g["open_real"]).all()
    )
    assert as_projected.mean() > 0.5  # most series keep their weekly closing day
    keep = as_projected[as_projected].index
    window = last - pd.Timedelta(days=lookahead)
    rows = features.set_index(["store", "item"]).loc[keep].reset_index()
    rows = rows[rows["date"] > window]
    ref = rows[list(KEY)].merge(full, on=list(KEY), how="left")
    assert len(rows) > 100
    # a run that outlasts the projection (a store open every day) is cut at its end
    pad_end = last + pd.Timedelta(days=lookahead)
    ends_inside = rows["date"] + pd.to_timedelta(rows["open_run_left"], unit="D") < pad_end
    assert ends_inside.mean() > 0.5
    for col, where in (("open_next", None), ("open_week", None), ("open_run_left", ends_inside)):
        ok = same(rows[col], ref[col])
        if where is not None:
            ok = ok | ~where.to_numpy()
        assert ok.all(), f"{col}: {rows.loc[~ok.to_numpy(), [*KEY, col]].head(3)}"
    # the last known Friday: open on Saturday, the run ends before Sunday's closure
    sunday_closed = end[end["open"] == 1]
    assert (sunday_closed["open_next"] == 1).mean() > 0.5
    assert (sunday_closed["open_run_left"] >= 1).mean() > 0.5


# a holiday-type calendar column on the sales rows: "-" = none, one store's own dates
HOLIDAYS = {"2023-05-18": "a", "2023-05-29": "b", "2023-06-01": "a", "2023-12-25": "c"}


def _holiday_spec() -> DatasetSpec:
    """The sample spec with a categorical ``holiday`` sales column whose none level is
    "-" (as rossmann's StateHoliday with "0")."""
    raw = SPEC.model_dump()
    raw["sources"]["sales"]["columns"]["holiday"] = ColumnSpec(
        source="holiday", allowed=("-", "a", "b", "c"), none_level="-"
    ).model_dump()
    return DatasetSpec.model_validate(raw)


@pytest.mark.parametrize("known_in_advance", [True, False])
def test_weather_is_joined_by_region_and_date_and_lagged_when_not_known_ahead(
    base, tmp_path, known_in_advance
):
    """The weather a row sees: its region's on the row's date (a weather forecast), or,
    for a source marked ``known_in_advance: false`` (observations only), the weather of
    ``horizon`` days earlier, so no forecast row reads a value that is not known yet."""
    ws, features, _ = base
    weather = landing_frame(ws, "weather")
    weather["region"] = weather["region"].map(region_key)
    spec = SPEC
    if not known_in_advance:
        source = SPEC.source("weather").model_copy(update={"known_in_advance": False})
        name = SPEC.source_name("weather")
        spec = SPEC.model_copy(update={"sources": {**SPEC.sources, name: source}})
    region = sorted(set(store_regions(ws).values()))[0]
    path = tmp_path / "features.parquet"
    with connect(ws, spec) as con:
        write_to(con, spec, region, path)
    frame = read_features(path)
    shift = pd.Timedelta(days=0 if known_in_advance else H)
    seen = frame[["date", "temperature_c", "precipitation_mm"]].assign(
        weather_date=frame["date"] - shift
    )
    expected = seen[["weather_date"]].merge(
        weather[weather["region"] == region].rename(columns={"date": "weather_date"}),
        on="weather_date",
        how="left",
    )
    assert len(expected) == len(seen)
    for col in ("temperature_c", "precipitation_mm"):  # stored as float32 model inputs
        assert same(seen[col], expected[col].astype("float32")).all(), col
    # the weather files start with the sales: the first ``shift`` days have none that far
    # back, every later row has its weather
    early = seen["date"] < seen["date"].min() + shift
    assert seen.loc[early, "temperature_c"].isna().all()
    assert seen.loc[~early, "temperature_c"].notna().all()


def test_days_since_and_until_a_holiday_read_the_calendar_capped(tmp_path, sample):
    spec = _holiday_spec()
    store = "S0001"
    with pytest.raises(ValueError, match="none_level"):
        ColumnSpec(source="x", allowed=("a", "b"), none_level="0")

    def mark(frame: pd.DataFrame) -> pd.DataFrame:
        own = frame["store_id"] == store
        frame["holiday"] = np.where(own, frame["date"].map(HOLIDAYS).fillna("-"), "-")
        return frame

    ws = Workspace(tmp_path / "ws")
    for source in ("stores", "sales"):
        shutil.copytree(sample / source, ws.landing_dir(source))
    for path in sorted(ws.landing_dir("sales").glob("*.csv")):
        mark(read_csv(path)).to_csv(path, index=False)
    for f in scan_landing(ws, spec):
        assert ingest_file(ws, spec, f.source, f.relpath).status == "ingested"
    region = store_regions(ws)[store]
    with connect(ws, spec) as con:
        fs = write_to(con, spec, region, ws.features_path(region))
    assert {"holiday_days_since", "holiday_days_until"} <= set(fs.numeric)
    features = read_features(ws.features_path(region))

    # independent pandas computation: distance in days to the nearest other holiday
    days = pd.to_datetime(sorted(HOLIDAYS))
    cap = EVENT_DISTANCE_CAP
    for _, row in features.sample(400, random_state=0).iterrows():
        holidays = days if row["store"] == store else days[:0]
        before = [(row["date"] - d).days for d in holidays if d < row["date"]]
        after = [(d - row["date"]).days for d in holidays if d > row["date"]]
        assert row["holiday_days_since"] == min([*before, cap]), row[list(KEY)]
        assert row["holiday_days_until"] == min([*after, cap]), row[list(KEY)]
    # around the holidays of the one store (05-18, 05-29, 06-01, 12-25)
    own = features[features["store"] == store].set_index(["item", "date"]).sort_index()
    item = own.index.get_level_values("item")[0]
    series = own.loc[item]
    day = pd.Timedelta(days=1)
    assert series.loc[pd.Timestamp("2023-05-28"), "holiday_days_until"] == 1
    assert series.loc[pd.Timestamp("2023-05-29"), "holiday_days_until"] == 3  # -> 06-01
    assert series.loc[pd.Timestamp("2023-05-29"), "holiday_days_since"] == 11  # <- 05-18
    assert series.loc[pd.Timestamp("2023-06-02"), "holiday_days_since"] == 1
    assert series.loc[pd.Timestamp("2023-12-25") - 20 * day, "holiday_days_until"] == cap
    after_christmas = series.loc[pd.Timestamp("2023-12-26") :, "holiday_days_since"]
    assert after_christmas.head(cap + 3).tolist() == [*range(1, cap), cap, cap, cap, cap]


def test_national_events_reach_every_region_and_regional_ones_only_theirs(base):
    ws, features, _ = base
    events = landing_frame(ws, "events")
    events["region_key"] = events["region"].fillna("").map(lambda r: region_key(r) if r else "")
    national = events[events["region_key"] == ""]
    assert len(national) and (events["region_key"] != "").any()
    day = pd.Timedelta(days=1)
    for name, group in features.groupby("region_key"):
        mine = events[events["region_key"].isin(["", name])].groupby("date").size()
        for col, shift in (("event_today", 0), ("event_tomorrow", 1), ("event_yesterday", -1)):
            expected = mine.reindex(group["date"] + shift * day).fillna(0).to_numpy()
            assert (group[col].to_numpy() == expected).all(), (name, col)
    on = features.set_index(["region_key", "date"])["event_today"].groupby(level=[0, 1]).first()
    unity = pd.Timestamp("2023-10-03")  # national holiday
    assert (on.xs(unity, level="date") == 1).all()
    corpus = pd.Timestamp("2023-06-08")  # Fronleichnam: Rhein, Main / Süd / West only
    assert on[("Sud", corpus)] == 1 and on[("Rhein_Main", corpus)] == 1
    assert on[("Nord", corpus)] == 0 and on[("Ost", corpus)] == 0


def test_features_view_reads_every_written_region(base):
    ws, features, _ = base
    with connect(ws, SPEC) as con:
        assert not has_view(con, "features")  # only where asked for: it reads every table
    with connect(ws, SPEC, features=True) as con:
        n = con.execute("SELECT count(*) FROM features").fetchall()[0][0]
        regions = {r[0] for r in con.execute("SELECT DISTINCT region_key FROM features").fetchall()}
    assert n == len(features)
    assert regions == set(store_regions(ws).values())
