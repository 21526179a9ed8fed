"""The registry's import from the files an older workspace kept (``events.jsonl`` and
``versions/<NNNN>.json`` per region) into the state database, by the ``migrate-state``
command and by the first ``ModelRegistry.for_workspace``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlops_assets.cli import main
from mlops_assets.model_store import LocalModelStore
from mlops_assets.registry import APPROVED, ARCHIVED, PENDING, REJECTED, ModelRegistry
from mlops_assets.storage.database import dispose_engine
from mlops_assets.workspace import Workspace

MODEL = "tree\nversion=v4\n"


def _event(seq: int, at: str, action: str, version: int, before, after, reason: str) -> dict:
    return {
        "seq": seq, "at": at, "actor": "trainer" if action == "register" else "alice",
        "action": action, "region": "Nord", "version": version,
        "from_status": before, "to_status": after, "reason": reason,
    }  # fmt: skip


def _old_workspace(root: Path) -> tuple[Workspace, list[dict]]:
    """Nord's registry as the file-based code left it: v1 approved then archived by v2's
    approval, v3 rejected and pruned, an unfinished last log line from a crash."""
    ws = Workspace(root)
    store = LocalModelStore(ws.models_dir)
    region_dir = ws.registry_dir / "Nord"
    (region_dir / "versions").mkdir(parents=True)
    for version in (1, 2, 3):
        blobs = {"model.txt": MODEL.encode(), "model.json": json.dumps({"v": version}).encode()}
        artifacts = {n: store.put(f"Nord/{version:04d}/{n}", b) for n, b in blobs.items()}
        record = {
            "region": "Nord", "version": version, "status": "stale copy",
            "created_at": f"2026-01-0{version}T00:00:00+00:00", "actor": "trainer",
            "reasons": [f"gate passed {version}"], "artifacts": artifacts,
            "checksums": {n: hashlib.sha256(b).hexdigest() for n, b in blobs.items()},
            "record": {"source": "recalibration", "run_id": f"run-{version}"},
        }  # fmt: skip
        (region_dir / "versions" / f"{version:04d}.json").write_text(json.dumps(record))
    for name in ("model.txt", "model.json"):  # v3's artifacts were pruned
        store.delete(f"Nord/0003/{name}")
    events = [
        _event(1, "2026-01-01T00:00:00+00:00", "register", 1, None, APPROVED, "gate passed 1"),
        _event(2, "2026-01-02T00:00:00+00:00", "register", 2, None, PENDING, "gate passed 2"),
        _event(3, "2026-01-03T00:00:00+00:00", "register", 3, None, REJECTED, "gate failed"),
        _event(4, "2026-01-04T00:00:00+00:00", "approve", 2, PENDING, APPROVED, "reviewed"),
        _event(5, "2026-01-04T00:00:00+00:00", "archive", 1, APPROVED, ARCHIVED, "superseded"),
        _event(6, "2026-01-05T00:00:00+00:00", "prune", 3, REJECTED, REJECTED, "retention"),
    ]
    log = "".join(json.dumps(e) + "\n" for e in events) + '{"action": "approve", "vers'
    (region_dir / "events.jsonl").write_text(log)
    return ws, events


def test_migrate_state_imports_the_file_registry_once_and_it_behaves_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws, events = _old_workspace(tmp_path / "ws")
    log_before = (ws.registry_dir / "Nord" / "events.jsonl").read_bytes()

    assert main(["migrate-state", "--home", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "manifest_files +0, registry_versions +3, registry_events +6" in out

    reg = ModelRegistry.for_workspace(ws)
    assert {mv.version: mv.status for mv in reg.versions("Nord")} == {
        1: ARCHIVED, 2: APPROVED, 3: REJECTED,
    }  # fmt: skip
    assert reg.history("Nord") == events  # the unfinished line was never committed
    assert reg.pruned("Nord") == {3: "2026-01-05T00:00:00+00:00"}
    v2 = reg.latest_approved("Nord")
    assert v2.record["run_id"] == "run-2" and v2.reasons == ["gate passed 2"]
    assert reg.load_artifacts(v2) == (MODEL, {"v": 2})  # checksums carried over
    assert reg.verify() == []
    # the files stay where they were
    assert (ws.registry_dir / "Nord" / "events.jsonl").read_bytes() == log_before

    assert main(["migrate-state", "--home", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "registry_versions +0, registry_events +0" in out and "nothing to import" in out

    # a new process (new engine) sees the same, and the registry carries on from v3
    dispose_engine(ws.state_database_url)
    reg = ModelRegistry.for_workspace(ws)
    mv = reg.register(
        "Nord", model_text=MODEL, model_meta={}, record={}, status=PENDING, reasons=[],
        actor="trainer",
    )  # fmt: skip
    assert mv.version == 4
    reg.approve("Nord", 4, actor="bob", reason="better")
    assert [(e["seq"], e["action"], e["version"]) for e in reg.history("Nord")[-3:]] == [
        (7, "register", 4), (8, "approve", 4), (9, "archive", 2),
    ]  # fmt: skip


def test_the_first_open_of_an_old_workspace_imports_it_without_the_command(
    tmp_path: Path,
) -> None:
    ws, _ = _old_workspace(tmp_path / "ws")
    reg = ModelRegistry.for_workspace(ws)
    assert reg.latest_approved("Nord").version == 2
    assert len(reg.history("Nord")) == 6


def test_an_unreadable_old_log_is_refused_with_its_path_and_line(tmp_path: Path) -> None:
    from mlops_assets.registry import RegistryError

    ws, _ = _old_workspace(tmp_path / "ws")
    (ws.registry_dir / "Nord" / "events.jsonl").write_text('{"seq": 1}\nnot json\n')
    with pytest.raises(RegistryError, match=r"events.jsonl line 2 is not valid JSON"):
        ModelRegistry.for_workspace(ws)
