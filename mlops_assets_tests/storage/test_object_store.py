"""Model artifacts below an fsspec URL: the model store's contract on fsspec's in-memory
filesystem and on S3 (moto's server on 127.0.0.1, the protocol a real bucket speaks), and
the registry keeping a region's artifacts there when ``MLOPS_STORAGE_ROOT`` says so."""

from __future__ import annotations

import pickle
import uuid

import pytest

from mlops_assets.model_store import LocalModelStore
from mlops_assets.registry import APPROVED, ModelRegistry
from mlops_assets.settings import SettingsError, load_settings
from mlops_assets.storage.object_store import FsspecModelStore, model_store_for
from mlops_assets.workspace import Workspace


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> FsspecModelStore:
    if request.param == "memory":
        return FsspecModelStore(f"memory://{uuid.uuid4().hex}/models")
    return FsspecModelStore(request.getfixturevalue("s3_env") + "/models")


def test_put_get_exists_size_delete(store: FsspecModelStore) -> None:
    key = "Nord/0001/model.txt"
    assert not store.exists(key) and store.size(key) == 0
    uri = store.put(key, b"tree\nversion=v4\n")
    assert uri == store.uri(key) and uri.endswith("/models/Nord/0001/model.txt")
    assert uri.split("://")[0] in ("memory", "s3")
    assert store.exists(key) and store.get(key) == b"tree\nversion=v4\n"
    store.put(key, b"tree\nversion=v5\n")  # replaced whole
    assert store.get(key) == b"tree\nversion=v5\n" and store.size(key) == 16
    assert store.delete(key) is True and not store.exists(key)
    assert store.delete(key) is False
    with pytest.raises(FileNotFoundError, match="Nord/0001/model.txt"):
        store.get(key)


def test_keys_folders_and_nothing_to_sweep(store: FsspecModelStore) -> None:
    for key in ("Nord/0001/model.txt", "Nord/0001/model.json", "Nord/0002/model.txt"):
        store.put(key, b"{}")
    store.put("Sud/0001/model.txt", b"tree\n")
    store.fs.pipe_file(f"{store.root}/Nord/notes.bin", b"\x00")  # a stranger: no key
    assert store.keys("Nord") == [
        "Nord/0001/model.json",
        "Nord/0001/model.txt",
        "Nord/0002/model.txt",
    ]
    assert store.keys("Nord/0002") == ["Nord/0002/model.txt"] and store.keys("Ost") == []
    assert store.folders() == ["Nord", "Sud"]
    assert store.sweep_temp("Nord") == []


def test_unsafe_keys_and_pickles_are_refused(store: FsspecModelStore) -> None:
    for key in ("../x", "Nord/../../etc/passwd", "/etc/passwd", "Nord/0001/model.pkl"):
        with pytest.raises(ValueError):
            store.put(key, b"text")
    with pytest.raises(ValueError, match="pickle"):
        store.put("Nord/0001/model.txt", pickle.dumps({"weights": [1, 2]}))
    assert store.folders() == []


def test_the_registry_keeps_artifacts_below_the_storage_root_on_s3(tmp_path, s3_env) -> None:
    """Registration, approval, loading and verification with the artifacts in S3: a second
    host (another Workspace object on the same database and root) loads what the first
    registered, and nothing is written to the local models folder."""
    ws = Workspace(tmp_path / "ws", storage_root=s3_env)
    registry = ModelRegistry.for_workspace(ws)
    assert isinstance(registry.store, FsspecModelStore)
    mv = registry.register(
        "Nord", model_text="tree\nversion=v4\n", model_meta={"features": ["x"]},
        record={"run_id": "r1"}, status=APPROVED, reasons=[], actor="trainer",
    )  # fmt: skip
    assert mv.artifacts["model.txt"].startswith(f"{s3_env}/models/Nord/0001/")
    other_host = ModelRegistry.for_workspace(Workspace(tmp_path / "ws", storage_root=s3_env))
    text, meta = other_host.load_artifacts(other_host.latest_approved("Nord"))
    assert text == "tree\nversion=v4\n" and meta == {"features": ["x"]}
    assert other_host.verify() == []
    assert not ws.models_dir.exists()


def test_a_local_storage_root_keeps_the_local_store(tmp_path) -> None:
    store = model_store_for(Workspace(tmp_path / "ws", storage_root=str(tmp_path / "shared")))
    assert isinstance(store, LocalModelStore) and store.root == tmp_path / "shared" / "models"
    default = model_store_for(Workspace(tmp_path / "ws"))
    assert isinstance(default, LocalModelStore) and default.root == tmp_path / "ws" / "models"


def test_storage_root_setting_refuses_credentials_in_the_url() -> None:
    settings = load_settings({"MLOPS_STORAGE_ROOT": "s3://bucket/prefix"})
    assert settings.workspace().storage_root == "s3://bucket/prefix"
    with pytest.raises(SettingsError, match="credentials") as exc:
        load_settings({"MLOPS_STORAGE_ROOT": "s3://AKIA:s3cr3t@bucket/prefix"})
    assert "s3cr3t" not in str(exc.value)
