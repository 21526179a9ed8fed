"""The data tables' store: the same contract below a local folder, on fsspec's in-memory
filesystem and on S3 (moto's server on 127.0.0.1), DuckDB reading and writing through
the registered filesystem, and the workspace keeping its feature tables below
``MLOPS_STORAGE_ROOT``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from mlops_assets.landing import ingest_files
from mlops_assets.spec import DatasetSpec
from mlops_assets.storage.data_store import DATA_FOLDERS, DataStore
from mlops_assets.storage.landing_zone_copy import stored_size
from mlops_assets.workspace import Workspace

FRAME = pd.DataFrame({"store": ["s1", "s2", "s3"], "target": [1.5, 2.0, 0.0]})


@pytest.fixture(params=["local", "memory", "s3"])
def data(request: pytest.FixtureRequest, tmp_path) -> DataStore:
    if request.param == "local":
        return DataStore(tmp_path / "ws")
    if request.param == "memory":
        return DataStore(f"memory://{uuid.uuid4().hex}")
    return DataStore(request.getfixturevalue("s3_env"))


def test_tables_are_written_whole_read_back_and_listed(data: DataStore) -> None:
    key = "features/Nord.parquet"
    assert not data.exists(key) and data.keys("features") == []
    with pytest.raises(FileNotFoundError, match="features/Nord.parquet"):
        data.read_parquet(key)
    location = data.write_frame(FRAME, key)
    assert location == data.location(key) and location.endswith("/features/Nord.parquet")
    assert data.exists(key)
    pd.testing.assert_frame_equal(data.read_parquet(key), FRAME)
    data.write_frame(FRAME.head(1), key)  # replaced whole
    assert len(data.read_parquet(key)) == 1
    data.write_frame(FRAME, "features/Ost.parquet")
    data.write_frame(FRAME, "features/notes.json")  # not a .parquet table
    assert data.keys("features") == ["features/Nord.parquet", "features/Ost.parquet"]
    assert data.keys("forecasts") == []


def test_duckdb_reads_and_writes_through_the_attached_store(data: DataStore) -> None:
    data.write_frame(FRAME, "features/Nord.parquet")
    with duckdb.connect() as con:
        data.attach(con)
        data.attach(con)  # a second attach of the same connection is harmless
        data.copy_query(
            con,
            "SELECT store, target * 2 AS target FROM read_parquet($src) WHERE target > $min",
            {"src": data.location("features/Nord.parquet"), "min": 0.0},
            "features/Sud.parquet",
        )
        locations = [data.location(k) for k in data.keys("features")]
        total = con.execute(
            "SELECT count(*), sum(target) FROM read_parquet($files)", {"files": locations}
        ).fetchone()
    assert total == (5, 3.5 + 7.0)
    assert data.read_parquet("features/Sud.parquet")["target"].tolist() == [3.0, 4.0]


def test_a_staged_table_is_checked_here_and_replaces_the_table_only_when_done(
    data: DataStore, tmp_path
) -> None:
    """The features asset writes and checks a table in a file on this machine: readers see
    the old table until the block ends, a block that raises leaves it as it was, and no
    staged file is left behind."""
    key = "features/Nord.parquet"
    data.write_frame(FRAME, key)
    with data.staged(key) as staged:
        FRAME.head(1).to_parquet(staged, index=False)
        assert pd.read_parquet(staged)["store"].tolist() == ["s1"]  # read back, locally
        assert len(data.read_parquet(key)) == 3  # not published yet
    assert data.read_parquet(key)["store"].tolist() == ["s1"]
    with pytest.raises(RuntimeError, match="check failed"), data.staged(key) as failed:
        FRAME.head(2).to_parquet(failed, index=False)
        raise RuntimeError("check failed")
    assert data.read_parquet(key)["store"].tolist() == ["s1"]
    assert not staged.exists() and not failed.exists()
    assert data.keys("features") == [key]


def test_reads_of_one_table_version_do_not_see_a_replacement_between_them(
    data: DataStore,
) -> None:
    """A step that reads a table's keys and then some of its rows pairs them from one
    version, even when a writer replaces the table between the two reads."""
    key = "features/Nord.parquet"
    data.write_frame(FRAME, key)
    with data.parquet_version(key) as read:
        stores = read(columns=["store"])
        data.write_frame(FRAME.assign(target=[9.0, 9.0, 9.0]).head(2), key)  # replaced
        rows = read(filters=[("target", ">", 0.5)])
    assert stores["store"].tolist() == ["s1", "s2", "s3"]
    pd.testing.assert_frame_equal(rows, FRAME.head(2))  # the first version's rows
    assert data.read_parquet(key)["target"].tolist() == [9.0, 9.0]  # the new one after
    missing = data.parquet_version("features/Ost.parquet")
    with pytest.raises(FileNotFoundError, match="features/Ost.parquet"), missing:
        pass


def test_unsafe_keys_are_refused(data: DataStore) -> None:
    for key in ("../x.parquet", "features/../../etc/passwd", "/etc/passwd", "features/a b'.p"):
        with pytest.raises(ValueError):
            data.write_frame(FRAME, key)
        with pytest.raises(ValueError):
            data.location(key)


def test_local_writes_leave_no_temporary_file(tmp_path) -> None:
    data = DataStore(tmp_path / "ws")
    data.write_frame(FRAME, "features/Nord.parquet")
    with duckdb.connect() as con:
        data.copy_query(con, "SELECT 1 AS x", {}, "features/Ost.parquet")
    assert sorted(p.name for p in (tmp_path / "ws" / "features").iterdir()) == [
        "Nord.parquet",
        "Ost.parquet",
    ]
    assert data.local_path("features/Nord.parquet") == tmp_path / "ws" / "features" / "Nord.parquet"
    with pytest.raises(ValueError, match="not on this machine"):
        DataStore("memory://elsewhere").local_path("features/Nord.parquet")


def test_the_workspace_keeps_its_features_below_the_storage_root(tmp_path, s3_env) -> None:
    local = Workspace(tmp_path / "ws")
    assert local.data.location(local.features_key("Nord")) == str(local.features_path("Nord"))
    shared = Workspace(tmp_path / "ws", storage_root=s3_env)
    assert shared.data.location(shared.features_key("Nord")) == f"{s3_env}/features/Nord.parquet"
    with pytest.raises(ValueError):
        shared.features_key("../Nord")


BAD_SALES = b"date,store_id,department,units,open,promo\n2024-01-01,S0001,D01,abc,1,0\n"
# source -> {role of a file of ``landed``: its status once ingested}
INGESTED = {"stores": {"stores": "ingested"}, "sales": {"sales": "ingested", "bad": "quarantined"}}


def landed(ws: Workspace, spec: DatasetSpec, sample_dir: Path) -> dict[str, str]:
    """Files dropped into a workspace's landing zone: the store master and a sales file
    ingested, a bad sales file quarantined, a weather file still pending, and names the
    landing zone ignores (hidden, being written). Their relpaths by role."""
    zone = ws.landing_zone
    rels = {
        "stores": zone.put("stores", "stores.csv", sample_dir / "stores" / "stores.csv"),
        "sales": zone.put("sales", "2024/sales.csv", sample_dir / "sales" / "sales_2024.csv"),
        "bad": zone.put("sales", "broken.csv", BAD_SALES),
        "pending": zone.put("weather", "weather.csv", sample_dir / "weather" / "weather.csv"),
        "hidden": zone.put("sales", ".draft.csv", BAD_SALES),
        "partial": zone.put("sales", "next.csv.part", BAD_SALES),
    }
    for source, roles in INGESTED.items():
        outcomes = ingest_files(ws, spec, source, [rels[r] for r in roles])
        assert [o.status for o in outcomes] == list(roles.values())
    return rels


def landed_bytes(ws: Workspace, relpath: str) -> bytes:
    with ws.landing_zone.open(relpath.split("/")[1], relpath) as fh:
        return fh.read()


@pytest.mark.parametrize("root", ["local", "s3"])
def test_migrate_data_copies_a_workspaces_tables_models_and_landing_zone_below_the_root(
    root: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hashed: list[str],
    capsys: pytest.CaptureFixture[str],
    sample_dir: Path,
    sample_spec: DatasetSpec,
) -> None:
    """What a dev workspace holds (ingested files, features, forecasts, monitoring tables
    and reports, registered models, landing files, quarantine copies and reasons) is copied
    whole below the root (a folder or S3), the local files stay, a second run copies
    nothing, the registry loads the copied model, and the landing sensor and the ingest
    step running on the root find nothing new but the file still pending."""
    from mlops_assets import landing
    from mlops_assets.cli import main
    from mlops_assets.registry import APPROVED, ModelRegistry

    storage_root = (
        str(tmp_path / "shared") if root == "local" else request.getfixturevalue("s3_env")
    )
    monkeypatch.delenv("MLOPS_STORAGE_ROOT", raising=False)
    monkeypatch.delenv("MLOPS_DATABASE_URL", raising=False)
    local = Workspace(tmp_path / "ws")
    for name, value in (("MLOPS_HOME", local.root), ("MLOPS_SPEC", "sample")):
        monkeypatch.setenv(name, str(value))  # main() sets them: restored afterwards
    keys = [
        local.raw_key("sales", "ab" * 32),
        local.features_key("Nord"),
        local.forecast_key("Nord", "2026-01-05"),
        local.monitoring_key("Nord", "report.html"),
        local.fleet_monitoring_key("alerts.parquet"),
    ]
    for key in keys:
        local.data.write_frame(FRAME, key)
    (local.root / "features" / ".Nord.parquet.x.host-1.partial.tmp").write_bytes(b"half")
    ModelRegistry.for_workspace(local).register(
        "Nord", model_text="tree\nversion=v4\n", model_meta={"features": ["x"]},
        record={"run_id": "r1"}, status=APPROVED, reasons=[], actor="trainer",
    )  # fmt: skip
    rels = landed(local, sample_spec, sample_dir)  # + 2 raw tables
    cursor = json.loads(json.dumps(landing.plan_landing(local, sample_spec, None, now=0.0).cursor))
    home = ["--home", str(local.root)]

    assert main(["migrate-data", *home, "--to", storage_root]) == 0
    out = capsys.readouterr().out
    assert "7 table(s) and 2 model artifact(s) copied" in out, out
    assert "4 landing file(s) and 2 quarantine file(s) copied" in out, out
    shared = Workspace(local.root, storage_root=storage_root)
    tables = [k for folder in DATA_FOLDERS for k in local.data.all_keys(folder)]
    assert [k for folder in DATA_FOLDERS for k in shared.data.all_keys(folder)] == tables
    assert keys[0] in tables and len(tables) == len(keys) + 2
    for key in tables:
        assert shared.data.read_bytes(key) == local.data.read_bytes(key)  # and stay local
    registry = ModelRegistry.for_workspace(shared)
    assert registry.load_artifacts(registry.latest_approved("Nord"))[0] == "tree\nversion=v4\n"
    assert local.models_dir.is_dir()

    zone, old_zone = shared.landing_zone, local.landing_zone
    for role in ("stores", "sales", "bad", "pending"):
        assert landed_bytes(shared, rels[role]) == landed_bytes(local, rels[role])  # stays
    for role in ("hidden", "partial"):  # ignored by the landing zone: not copied
        assert stored_size(zone, rels[role]) is None
        assert stored_size(old_zone, rels[role]) == len(BAD_SALES)
    assert zone.reason_files() == old_zone.reason_files() != []
    assert landing.quarantined(shared) == landing.quarantined(local)
    [record] = landing.quarantined(shared)
    assert zone.read_text(record["quarantined_copy"]).encode() == BAD_SALES

    # the sensor (with the cursor it had) requests the pending file only; on a folder the
    # mtimes were kept, so it hashes nothing again; on S3 each file once
    hashed.clear()
    for now in (1.0, 2.0):
        plan = landing.plan_landing(shared, sample_spec, cursor, now=now)
        cursor = json.loads(json.dumps(plan.cursor))
        assert (plan.files, plan.skipped_known, plan.in_flight) == ({}, 3, 1)
    moved = sorted(rels[r] for r in ("stores", "sales", "bad", "pending"))
    assert sorted(hashed) == ([] if root == "local" else moved)
    later = landing.plan_landing(shared, sample_spec, cursor, now=1e6)  # the request expired
    pending_sha = landing.landing_sha256(shared, "weather", rels["pending"])
    assert later.files == {"weather": [(rels["pending"], pending_sha)]}
    for source, roles in INGESTED.items():  # the ingest step of a run requested anyway
        outcomes = landing.ingest_files(shared, sample_spec, source, [rels[r] for r in roles])
        assert [o.status for o in outcomes] == [f"already_{s}" for s in roles.values()]
    assert [k for folder in DATA_FOLDERS for k in shared.data.all_keys(folder)] == tables
    assert zone.reason_files() == old_zone.reason_files()

    monkeypatch.setenv("MLOPS_STORAGE_ROOT", storage_root)  # again, the root from the setting
    assert main(["migrate-data", *home]) == 0
    out = capsys.readouterr().out
    assert "0 table(s) and 0 model artifact(s) copied" in out and "7 table(s) and 2" in out
    assert "0 landing file(s) and 0 quarantine file(s) copied; 4 landing file(s) and 2" in out

    monkeypatch.delenv("MLOPS_STORAGE_ROOT")
    assert main(["migrate-data", *home]) == 2
    assert "no storage root" in capsys.readouterr().err
    assert main(["migrate-data", *home, "--to", "s3://AKIA:s3cr3t@bucket/x"]) == 2
    assert "s3cr3t" not in capsys.readouterr().err
