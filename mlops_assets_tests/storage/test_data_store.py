"""The data tables' store: the same contract below a local folder, on fsspec's in-memory
filesystem and on S3 (moto's server on 127.0.0.1), DuckDB reading and writing through
the registered filesystem, and the workspace keeping its feature tables below
``MLOPS_STORAGE_ROOT``."""

from __future__ import annotations

import uuid

import duckdb
import pandas as pd
import pytest

from mlops_assets.storage.data_store import DataStore
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


def test_migrate_data_copies_a_workspaces_tables_and_models_below_the_storage_root(
    tmp_path, s3_env, monkeypatch, capsys
) -> None:
    """What a dev workspace holds (ingested files, features, forecasts, monitoring tables
    and reports, registered models) is copied whole below the root, the local files stay,
    a second run copies nothing, and the registry loads the copied model."""
    from mlops_assets.cli import main
    from mlops_assets.registry import APPROVED, ModelRegistry

    monkeypatch.delenv("MLOPS_STORAGE_ROOT", raising=False)
    monkeypatch.delenv("MLOPS_DATABASE_URL", raising=False)
    local = Workspace(tmp_path / "ws")
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
    home = ["--home", str(local.root)]

    assert main(["migrate-data", *home, "--to", s3_env]) == 0
    out = capsys.readouterr().out
    assert "5 table(s) and 2 model artifact(s) copied" in out, out
    shared = Workspace(local.root, storage_root=s3_env)
    assert shared.data.all_keys("raw") + shared.data.all_keys("features") == keys[:2]
    for key in keys:
        assert shared.data.read_bytes(key) == local.data.read_bytes(key)  # and stay local
    registry = ModelRegistry.for_workspace(shared)
    assert registry.load_artifacts(registry.latest_approved("Nord"))[0] == "tree\nversion=v4\n"
    assert local.models_dir.is_dir()

    monkeypatch.setenv("MLOPS_STORAGE_ROOT", s3_env)  # again, the root from the setting
    assert main(["migrate-data", *home]) == 0
    out = capsys.readouterr().out
    assert "0 table(s) and 0 model artifact(s) copied" in out and "5 table(s) and 2" in out

    monkeypatch.delenv("MLOPS_STORAGE_ROOT")
    assert main(["migrate-data", *home]) == 2
    assert "no storage root" in capsys.readouterr().err
    assert main(["migrate-data", *home, "--to", "s3://AKIA:s3cr3t@bucket/x"]) == 2
    assert "s3cr3t" not in capsys.readouterr().err
