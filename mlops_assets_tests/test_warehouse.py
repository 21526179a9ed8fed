"""Tests for the DuckDB views over the workspace's Parquet files: which file wins where
files overlap, how stores, weather and events get their region key, and that a
connection stays usable for relation queries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets import landing
from mlops_assets.conditioning import KEY
from mlops_assets.landing import file_sha256, ingest_file
from mlops_assets.warehouse import connect, has_view, ingested_files
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
    with connect(ws, SPEC) as con:
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


def test_has_view_leaves_the_connection_usable_for_relations(ws):
    with connect(ws, SPEC) as con:
        assert has_view(con, "sales") and has_view(con, "future")
        assert not has_view(con, "features_of_nowhere")
        # the relation API refuses to run while a DB-API result is left unfinished
        assert con.sql("SELECT count(*) FROM stores").fetchall() == [(12,)]


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
