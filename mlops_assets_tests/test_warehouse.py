"""Tests for the DuckDB views over the workspace's Parquet files: which file wins where
files overlap, how stores, weather and events get their region key, and that a
connection stays usable for relation queries."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mlops_assets import landing
from mlops_assets.conditioning import KEY
from mlops_assets.landing import file_sha256, ingest_file
from mlops_assets.warehouse import (
    connect,
    has_view,
    ingested_files,
    region_fleet_gap,
    views_database,
)
from mlops_assets.workspace import Workspace
from mlops_assets_tests.test_conditioning import (
    SPEC,
    generate_sample,
    make_workspace,
    read_csv,
    write_region,
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def ws(tmp_path_factory, sample) -> Workspace:
    return make_workspace(tmp_path_factory.mktemp("ws"), sample)


def _sales_view(ws: Workspace) -> pd.DataFrame:
    with connect(ws, SPEC) as con:
        frame = con.execute("SELECT store, item, date, target, _sha FROM sales").df()
    frame["date"] = pd.to_datetime(frame["date"])
    return frame.set_index(list(KEY)).sort_index()


class _SameSecond(datetime):
    """Every ingestion in one wall-clock second, as when one run ingests several files."""

    @classmethod
    def now(cls, tz=None):  # noqa: ANN001, ANN206 - mirrors datetime.now
        return datetime(2024, 3, 1, 12, 0, 0, tzinfo=tz or UTC)


@pytest.mark.parametrize("order", ["fix1, fix2", "fix2, fix1"])
def test_the_most_recently_ingested_file_wins_where_sales_files_overlap(
    tmp_path, sample, monkeypatch, order
):
    """Corrections re-deliver rows; the latest delivery must win even when the files
    are ingested within the same second (one landing run picking up several files)."""
    monkeypatch.setattr(landing, "datetime", _SameSecond)
    ws = make_workspace(tmp_path / "ws", sample, sources=("stores", "sales"))
    original = _sales_view(ws)

    sales = read_csv(sample / "sales" / "sales_2023.csv")
    march = sales[
        (sales["store_id"] == "S0005") & sales["date"].between("2023-03-01", "2023-03-31")
    ]
    shas = {}
    for name, add in (("fix1", 1000.0), ("fix2", 2000.0)):
        path = ws.landing_dir("sales") / f"{name}.csv"
        march.assign(units=march["units"] + add).to_csv(path, index=False)
        shas[name] = file_sha256(path)
    first, last = (n.strip() for n in order.split(","))
    for name in (first, last):
        outcome = ingest_file(ws, SPEC, "sales", f"landing/sales/{name}.csv")
        assert outcome.status == "ingested"

    files = ingested_files(ws, "sales")
    assert files["sha"].iloc[-1] == shas[last], "ingested_files lists oldest first"
    view = _sales_view(ws)
    assert len(view) == len(original), "overlapping keys are not duplicated"
    keys = pd.MultiIndex.from_arrays(
        [march["store_id"], march["department"], pd.to_datetime(march["date"])]
    )
    bump = 1000.0 if last == "fix1" else 2000.0
    got = view.loc[keys]
    assert (got["_sha"] == shas[last]).all()
    assert (got["target"].to_numpy() == original.loc[keys, "target"].to_numpy() + bump).all()
    rest = view.index.difference(keys)
    assert (view.loc[rest, "target"] == original.loc[rest, "target"]).all()

    # and the features follow the view
    write_region(ws, "Sud")  # S0005 is in Süd
    with connect(ws, SPEC, features=True) as con:
        n = con.execute(
            "SELECT count(*) FROM features f JOIN sales s USING (store, item, date) "
            "WHERE f.target IS DISTINCT FROM s.target"
        ).fetchall()[0][0]
    assert n == 0


def test_a_store_master_update_moves_a_store_and_nothing_is_duplicated(
    tmp_path, sample, monkeypatch
):
    monkeypatch.setattr(landing, "datetime", _SameSecond)
    ws = make_workspace(tmp_path / "ws", sample, sources=("stores",))
    stores = read_csv(ws.landing_dir("stores") / "stores.csv")
    moved = stores.assign(region=stores["region"].where(stores["store_id"] != "S0002", "Ost"))
    moved.to_csv(ws.landing_dir("stores") / "stores_v2.csv", index=False)
    assert ingest_file(ws, SPEC, "stores", "landing/stores/stores_v2.csv").status == "ingested"
    with connect(ws, SPEC) as con:
        rows = con.execute("SELECT store, region, region_key FROM stores").fetchall()
        regions = dict(con.execute("SELECT region, region_key FROM regions").fetchall())
    assert len(rows) == len(stores)
    assert {s: k for s, _, k in rows}["S0002"] == "Ost"
    assert regions == {
        "Nord": "Nord",
        "Ost": "Ost",
        "Rhein, Main": "Rhein_Main",
        "Süd": "Sud",
        "West": "West",
    }


def test_events_keep_national_ones_and_map_regional_ones_to_their_key(tmp_path, sample):
    extra = pd.DataFrame(
        {
            "date": ["2023-07-01", "2023-07-01", "2023-07-02"],
            "region": ["", "Rhein, Main", "Atlantis"],  # Atlantis has no stores
            "event": ["Sommerfest", "Weinfest", "Versunken"],
        }
    )
    ws = make_workspace(
        tmp_path / "ws",
        sample,
        sources=("stores", "events"),
        extra={"events/extra.csv": extra},
    )
    with connect(ws, SPEC) as con:
        ev = con.execute("SELECT CAST(date AS VARCHAR), event, region_key FROM events").df()
    ev.columns = ["date", "event", "region_key"]
    got = {(d, e): k for d, e, k in ev.itertuples(index=False)}
    assert got[("2023-07-01", "Sommerfest")] == ""
    assert got[("2023-07-01", "Weinfest")] == "Rhein_Main"
    assert got[("2023-10-03", "Tag der Deutschen Einheit")] == ""
    assert got[("2023-01-06", "Heilige Drei Könige")] == "Sud"
    assert ("2023-07-02", "Versunken") not in got
    source = read_csv(sample / "events" / "events.csv")
    assert len(ev) == len(source) + 2


def test_weather_rows_carry_the_region_key(ws):
    with connect(ws, SPEC) as con:
        rows = con.execute(
            "SELECT region_key, count(*), count(DISTINCT date) FROM weather GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert [r[0] for r in rows] == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    assert all(n == days == 400 + 42 for _, n, days in rows)


def test_a_regions_fleet_gap_is_its_weather_minus_the_median_of_all_regions_each_day(
    tmp_path, sample, ws
):
    """Computed in DuckDB for the one region (a refresh of every region read every
    region's weather into pandas once per region); the same as the pandas reading."""
    columns = list(SPEC.source("weather").feature_columns("numeric"))
    with connect(ws, SPEC) as con:
        weather = con.execute("SELECT * FROM weather").df()
    weather["date"] = pd.to_datetime(weather["date"])
    daily = weather.groupby(["date", "region_key"])[columns].mean()
    expected = daily.xs("Ost", level="region_key") - daily.groupby(level="date").median()
    gap = region_fleet_gap(ws, SPEC, "Ost", columns)
    gap["date"] = pd.to_datetime(gap["date"])
    assert len(gap) == 400 + 42 and gap[columns].abs().sum().gt(0).all()
    pd.testing.assert_frame_equal(gap, expected.reset_index(), check_dtype=False)
    assert region_fleet_gap(ws, SPEC, "Nowhere", columns).empty
    no_weather = make_workspace(tmp_path / "ws", sample, sources=("stores", "sales"))
    assert region_fleet_gap(no_weather, SPEC, "Ost", columns) is None


def test_has_view_leaves_the_connection_usable_for_relations(ws):
    with connect(ws, SPEC) as con:
        assert has_view(con, "sales") and has_view(con, "future")
        assert not has_view(con, "features_of_nowhere")
        # the relation API refuses to run while a DB-API result is left unfinished
        assert con.sql("SELECT count(*) FROM stores").fetchall() == [(12,)]


def test_connects_share_the_views_until_newly_ingested_files_change_them(tmp_path, sample):
    """Defining the views is most of a connect's cost, so the connects of one process are
    cursors on one database while the ingested files stay the same. A newly ingested file
    gives the next connect views over it; the features view is each connection's own, so
    a feature table written between connects is seen by the next."""
    ws = make_workspace(tmp_path / "ws", sample, sources=("stores", "sales"))

    def database():
        return views_database(ws, SPEC, {n: ingested_files(ws, n) for n in SPEC.sources})

    shared = database()
    with connect(ws, SPEC) as con, connect(ws, SPEC, features=True) as other:
        assert database() is shared
        assert not has_view(con, "weather") and not has_view(other, "features")
        sales = con.execute("SELECT count(*) FROM sales").fetchall()

    write_region(ws, "Sud")
    with connect(ws, SPEC, features=True) as con, connect(ws, SPEC) as plain:
        assert has_view(con, "features") and not has_view(plain, "features")
        regions = con.execute("SELECT DISTINCT region_key FROM features").fetchall()
        assert regions == [("Sud",)]

    shutil.copytree(sample / "weather", ws.landing_dir("weather"))
    for path in sorted(ws.landing_dir("weather").glob("*.csv")):
        outcome = ingest_file(ws, SPEC, "weather", f"landing/weather/{path.name}")
        assert outcome.status == "ingested"
    assert database() is not shared
    with connect(ws, SPEC) as con:
        assert has_view(con, "weather") and con.execute("SELECT count(*) FROM weather").fetchall()
        assert con.execute("SELECT count(*) FROM sales").fetchall() == sales


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    query = "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n"
    return bool(con.execute(query, {"n": name}).fetchall()[0][0])


def test_a_connect_that_does_not_share_has_a_database_of_its_own_closed_after_it(ws):
    """A feature build connects with ``shared=False``: the same views on a database of
    its own, closed when the block ends, so its memory goes back to the system then (the
    shared database's allocator would keep it for the rest of the process); the shared
    database is neither touched nor closed."""
    with connect(ws, SPEC) as shared:
        sales = shared.execute("SELECT count(*) FROM sales").fetchall()
        shared.execute("CREATE TABLE seen_by_every_shared_connect AS SELECT 1 AS x")
    with connect(ws, SPEC, shared=False) as own:
        assert own.execute("SELECT count(*) FROM sales").fetchall() == sales
        assert not has_table(own, "seen_by_every_shared_connect")
        own.execute("CREATE TABLE mine AS SELECT 1 AS x")
    with pytest.raises(duckdb.ConnectionException):
        own.execute("SELECT 1")
    with connect(ws, SPEC) as shared:
        assert has_table(shared, "seen_by_every_shared_connect")
        assert not has_table(shared, "mine")
        assert shared.execute("SELECT count(*) FROM sales").fetchall() == sales


def test_connects_from_threads_each_get_their_own_connection(ws):
    """Sensors and threaded callers connect at once: each gets a cursor of its own on the
    shared database, and every one of them reads the same rows."""

    def count_sales(_: int) -> int:
        with connect(ws, SPEC) as con:
            return con.execute("SELECT count(*) FROM sales").fetchall()[0][0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(count_sales, range(16)))
    assert len(set(counts)) == 1 and counts[0] > 0


def test_views_exist_only_for_ingested_sources(tmp_path, sample):
    ws = make_workspace(tmp_path / "ws", sample, sources=("stores", "sales"))
    with connect(ws, SPEC) as con:
        present = {
            name: has_view(con, name)
            for name in ("stores", "regions", "sales", "future", "weather", "events", "features")
        }
    assert present == {
        "stores": True,
        "regions": True,
        "sales": True,
        "future": False,
        "weather": False,
        "events": False,
        "features": False,
    }


def test_ground_truth_is_sales_and_actuals_with_actuals_winning_and_the_latest_file_next(
    tmp_path, sample
):
    """Actuals are the same observations as sales, delivered later or separately: an
    actuals row beats a sales row of its key even when the sales file came later, the
    latest actuals file beats an earlier one, and rows past the sales become history."""
    from mlops_assets.warehouse import last_sales_date
    from mlops_assets_tests.test_conditioning import read_features, store_regions

    ws = make_workspace(tmp_path / "ws", sample, sources=("stores", "sales", "future"))
    region = store_regions(ws)["S0005"]
    future = read_csv(sample / "future" / "future.csv")
    week = future[future["date"] <= "2024-02-11"].assign(units=7.0)  # past the last sale
    sales = read_csv(sample / "sales" / "sales_2024.csv")
    fix = sales[(sales["store_id"] == "S0005") & (sales["date"] <= "2024-01-03")]

    def put(source: str, name: str, frame: pd.DataFrame) -> None:
        path = ws.landing_dir(source) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        assert ingest_file(ws, SPEC, source, f"landing/{source}/{name}").status == "ingested"

    put("actuals", "late_week.csv", pd.concat([week, fix.assign(units=1000.0)]))
    put("actuals", "correction.csv", fix.head(1).assign(units=2000.0))
    put("sales", "resend.csv", fix.assign(units=5.0))  # later, but sales never beat actuals

    with connect(ws, SPEC) as con:
        truth = con.execute("SELECT * FROM ground_truth").df()
        mine = con.execute("SELECT * FROM ground_truth_of_region($r)", {"r": region}).df()
        last = last_sales_date(con, SPEC)
        fs = write_region(ws, region)
    assert fs is not None
    truth["date"] = pd.to_datetime(truth["date"])
    assert not truth.duplicated(list(KEY)).any()
    assert len(truth) == 12 * 3 * 400 + len(week)
    got = truth.set_index(["store", "item", "date"])["target"]
    fix_keys = zip(fix["store_id"], fix["department"], pd.to_datetime(fix["date"]), strict=True)
    assert [got[k] for k in fix_keys] == [2000.0] + [1000.0] * (len(fix) - 1)
    assert set(truth.loc[truth["date"] > "2024-02-04", "_source"]) == {"actuals"}
    assert set(truth.loc[truth["date"] < "2024-01-01", "_source"]) == {"sales"}
    assert str(last) == "2024-02-11"
    # the region macro is the view restricted to the region
    expected = truth[truth["region_key"] == region].drop(columns="_ingested_at")
    mine["date"] = pd.to_datetime(mine["date"])
    cols = ["store", "item", "date", "target", "_source"]
    pd.testing.assert_frame_equal(
        mine[cols].sort_values(cols[:3], ignore_index=True),
        expected[cols].sort_values(cols[:3], ignore_index=True),
    )
    # features: the delivered week is history now, the calendar starts after it
    features = read_features(ws.features_path(region))
    hist = features[~features["is_future"]]
    assert hist["date"].max() == pd.Timestamp("2024-02-11")
    assert features.loc[features["is_future"], "date"].min() == pd.Timestamp("2024-02-12")
    late = hist[hist["date"] > "2024-02-04"]
    assert len(late) == len(week[week["store_id"].map(store_regions(ws)) == region])
    assert (late["target"] == 7.0).all()
