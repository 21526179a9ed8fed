"""The model store keeps text artifacts below its root, atomically, and nothing else."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from mlops_assets.model_store import LocalModelStore, ModelStore, check_key


@pytest.fixture
def store(tmp_path: Path) -> LocalModelStore:
    return LocalModelStore(tmp_path / "models")


def test_put_get_exists_uri_round_trip(store: LocalModelStore) -> None:
    key = "Nord/0001/model.txt"
    assert not store.exists(key)
    uri = store.put(key, b"tree\nversion=v4\n")
    assert uri == store.uri(key)
    assert uri.startswith("file://")
    assert uri.endswith("/models/Nord/0001/model.txt")
    assert store.exists(key)
    assert store.get(key) == b"tree\nversion=v4\n"
    assert (store.root / "Nord" / "0001" / "model.txt").read_bytes() == b"tree\nversion=v4\n"


def test_put_replaces_whole_file_and_leaves_no_temp_files(store: LocalModelStore) -> None:
    store.put("Nord/0001/model.json", json.dumps({"a": 1}).encode())
    store.put("Nord/0001/model.json", json.dumps({"a": 2}).encode())
    assert json.loads(store.get("Nord/0001/model.json")) == {"a": 2}
    assert [p.name for p in (store.root / "Nord" / "0001").iterdir()] == ["model.json"]


def test_delete_and_size(store: LocalModelStore) -> None:
    store.put("Nord/0001/model.txt", b"tree\n")
    store.put("Nord/0001/model.json", b"{}")
    assert store.size("Nord/0001/model.txt") == 5
    assert store.delete("Nord/0001/model.txt") is True
    assert not store.exists("Nord/0001/model.txt")
    assert store.size("Nord/0001/model.txt") == 0
    assert store.delete("Nord/0001/model.txt") is False  # nothing left: not an error
    assert (store.root / "Nord" / "0001").is_dir()  # model.json is still there
    assert store.delete("Nord/0001/model.json") is True
    assert not (store.root / "Nord" / "0001").exists()  # the empty version folder goes
    with pytest.raises(ValueError, match="keys cannot leave the store"):
        store.delete("Nord/../../outside.txt")


def test_get_missing_key_raises_file_not_found(store: LocalModelStore) -> None:
    with pytest.raises(FileNotFoundError, match="Nord/0009/model.txt"):
        store.get("Nord/0009/model.txt")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("../x", "leave the store"),
        ("Nord/../../etc/passwd", "leave the store"),
        ("./x", "leave the store"),
        ("/etc/passwd", "absolute"),
        ("Nord//model.txt", "empty segment"),
        ("Nord/", "empty segment"),
        ("", "non-empty"),
        ("Nord\\0001\\model.txt", "backslash"),
        ("Nord/.hidden", "neither a safe key"),
        ("Nord/0001/model.pkl", "neither a safe key"),
        ("Nord/0001/model.txt.pkl", "neither a safe key"),
        ("Rhein, Main/model.txt", "neither a safe key"),
        ("Nord/0001/model.txt\n", "neither a safe key"),
    ],
)
def test_unsafe_keys_are_refused_before_touching_disk(
    store: LocalModelStore, key: str, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        store.put(key, b"text")
    with pytest.raises(ValueError, match=why):
        store.exists(key)
    assert not store.root.exists()


def test_safe_keys_accepted() -> None:
    for key in ("Nord/0001/model.txt", "Rhein_Main/0012/model.json", "Sud-2/x", "model.txt"):
        assert check_key(key) == key


def test_pickles_and_binary_data_are_refused(store: LocalModelStore) -> None:
    with pytest.raises(ValueError, match="pickle"):
        store.put("Nord/0001/model.txt", pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        store.put("Nord/0001/model.txt", b"tree\xff\xfe")
    with pytest.raises(TypeError):
        store.put("Nord/0001/model.txt", "a str, not bytes")  # type: ignore[arg-type]
    assert not store.exists("Nord/0001/model.txt")


def test_parquet_artifacts_are_stored_and_anything_else_under_their_name_refused(
    store: LocalModelStore,
) -> None:
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame({"target": [1.0, 2.5]}).to_parquet(buffer)
    table = buffer.getvalue()
    store.put("Nord/0001/reference.parquet", table)
    assert store.get("Nord/0001/reference.parquet") == table
    for bad in (pickle.dumps({"weights": [1, 2, 3]}), b"date,target\n", table[:-1], b"PAR1"):
        with pytest.raises(ValueError, match="is not a Parquet file"):
            store.put("Nord/0002/reference.parquet", bad)
    assert not store.exists("Nord/0002/reference.parquet")


def test_symlinked_folder_cannot_carry_writes_outside_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalModelStore(tmp_path / "models")
    store.root.mkdir()
    (store.root / "Nord").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        store.put("Nord/model.txt", b"tree")
    assert list(outside.iterdir()) == []


def test_model_store_is_an_interface() -> None:
    with pytest.raises(TypeError):
        ModelStore()  # type: ignore[abstract]
    assert issubclass(LocalModelStore, ModelStore)


def test_a_put_writes_under_a_recognisable_temp_name_first(
    store: LocalModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a writer killed before its rename leaves is a name ``is_temp_name`` knows."""
    import os

    from mlops_assets import workspace

    renamed = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        renamed.append((Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(workspace.os, "replace", replace)
    store.put("Nord/0001/model.txt", b"tree\n")
    [(temp, final)] = renamed
    assert final == "model.txt" and temp.startswith(".model.txt.")
    assert workspace.is_temp_name(temp) and temp.endswith(workspace.TEMP_SUFFIX)
    for name in ("model.txt", ".lock", "events.jsonl", ".partial.tmp", "stores.csv.tmp"):
        assert not workspace.is_temp_name(name), name


def test_keys_lists_stored_artifacts_and_sweep_temp_removes_only_leftovers(
    store: LocalModelStore,
) -> None:
    from mlops_assets.workspace import temp_path_for

    store.put("Nord/0001/model.txt", b"tree\n")
    store.put("Nord/0001/model.json", b"{}")
    store.put("Nord/0002/model.txt", b"tree\n")
    store.put("Sud/0001/model.txt", b"tree\n")
    beside = temp_path_for(store.root / "Nord" / "0001" / "model.txt")
    alone = temp_path_for(store.root / "Nord" / "0003" / "model.txt")  # in a folder of its own
    (store.root / "Nord" / "notes.bin").write_bytes(b"\x00")  # no key: not listed, kept

    assert store.keys("Nord") == [
        "Nord/0001/model.json",
        "Nord/0001/model.txt",
        "Nord/0002/model.txt",
    ]
    assert store.keys("Nord/0002") == ["Nord/0002/model.txt"]
    assert store.keys("Ost") == []

    assert sorted(store.sweep_temp("Nord")) == sorted([str(beside), str(alone)])
    assert not beside.exists() and not alone.exists()
    assert not alone.parent.exists()  # the folder only the leftover was in
    assert (store.root / "Nord" / "notes.bin").exists()
    assert store.keys("Nord") == [
        "Nord/0001/model.json",
        "Nord/0001/model.txt",
        "Nord/0002/model.txt",
    ]
    assert store.sweep_temp("Nord") == []
    with pytest.raises(ValueError, match="keys cannot leave the store"):
        store.keys("..")


def test_keys_and_sweep_do_not_follow_a_symlink_out_of_the_store(tmp_path: Path) -> None:
    from mlops_assets.workspace import temp_path_for

    outside = tmp_path / "outside"
    (outside / "0001").mkdir(parents=True)
    (outside / "0001" / "model.txt").write_text("tree\n")
    temp = temp_path_for(outside / "0001" / "model.txt")
    store = LocalModelStore(tmp_path / "models")
    store.root.mkdir()
    (store.root / "Nord").symlink_to(outside, target_is_directory=True)
    assert store.keys("Nord") == [] and store.sweep_temp("Nord") == []
    assert temp.exists()
