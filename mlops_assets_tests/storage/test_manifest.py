"""The ingestion manifest table: concurrent writers, requeue history, and the one-time
import of a workspace that kept one JSON file per record."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from mlops_assets.landing import (
    drop_dataset,
    ingest_file,
    plan_landing,
    requeue_counts,
    scan_landing,
)
from mlops_assets.spec import DatasetSpec
from mlops_assets.storage.database import dispose_engine
from mlops_assets.storage.manifest import REQUEUE_QUERY_BATCH, Manifest
from mlops_assets.warehouse import connect, ingested_files
from mlops_assets.workspace import Workspace


def _record(sha: str, status: str = "ingested", at: str = "2026-01-01T00:00:00+00:00") -> dict:
    return {
        "sha256": sha,
        "source": "sales",
        "kind": "sales",
        "file": f"landing/sales/{sha[:8]}.csv",
        "status": status,
        "processed_at": at,
        "run_id": None,
    }


def _sha(i: int) -> str:
    return f"{i:064x}"


def _add_many(root: str, start: int, count: int, queue: multiprocessing.Queue) -> None:
    manifest = Manifest.for_workspace(Workspace(Path(root)))
    queue.put([manifest.add(_record(_sha(i)))[1] for i in range(start, start + count)])


def test_concurrent_writers_record_each_content_once(tmp_workspace: Workspace) -> None:
    """Four processes record 60 contents each, half of them the same 30: every content is
    recorded exactly once and exactly one writer is told it was first."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    starts = [0, 30, 30, 60]  # writers 2 and 3 race over the same contents
    procs = [
        ctx.Process(target=_add_many, args=(str(tmp_workspace.root), s, 60, queue)) for s in starts
    ]
    for p in procs:
        p.start()
    firsts = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    records = Manifest.for_workspace(tmp_workspace).records()
    assert sorted(r["sha256"] for r in records) == [_sha(i) for i in range(120)]
    assert sum(sum(f) for f in firsts) == 120  # 240 attempts, 120 first writers


def test_readers_do_not_wait_for_an_ingest_holding_the_database(
    tmp_workspace: Workspace,
) -> None:
    """Sensor ticks and warehouse connections read the manifest while ingest runs record
    files: they read the last committed state at once instead of queueing for the lock."""
    import sqlite3
    import threading

    manifest = Manifest.for_workspace(tmp_workspace)
    manifest.add(_record(_sha(1)))
    writer = sqlite3.connect(tmp_workspace.root / "state" / "mlops.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an ingest recording its files
    writer.execute("DELETE FROM manifest_files")
    seen: list = []
    reader = threading.Thread(
        target=lambda: seen.extend(
            [manifest.known(), manifest.ingested("sales"), manifest.get(_sha(1))]
        )
    )
    reader.start()
    reader.join(timeout=30)  # a waiting reader would block for the 60 s busy timeout
    try:
        assert not reader.is_alive()
        assert seen[0] == {_sha(1)} and len(seen[1]) == 1 and seen[2]["status"] == "ingested"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.join()


def test_requeue_moves_the_record_to_the_history(tmp_workspace: Workspace) -> None:
    manifest = Manifest.for_workspace(tmp_workspace)
    manifest.add(_record(_sha(1), "quarantined"))
    manifest.add(_record(_sha(2), "ingested"))
    assert manifest.requeue(_sha(1)) == 1
    assert manifest.get(_sha(1)) is None and _sha(1) not in manifest.known()
    manifest.add(_record(_sha(1), "quarantined"))  # quarantined again, then requeued again
    assert manifest.requeue(_sha(1)) == 2
    assert manifest.requeue_counts() == {_sha(1): 2}
    with pytest.raises(ValueError, match="was ingested, not quarantined"):
        manifest.requeue(_sha(2))
    with pytest.raises(ValueError, match="is not in the manifest"):
        manifest.requeue(_sha(3))


def test_requeue_counts_of_many_hashes_come_in_batches_of_queries(
    tmp_workspace: Workspace,
) -> None:
    manifest = Manifest.for_workspace(tmp_workspace)
    for i in (3, REQUEUE_QUERY_BATCH + 7):  # one hash in the first batch, one in the second
        manifest.add(_record(_sha(i), "quarantined"))
        manifest.requeue(_sha(i))
    shas = [_sha(i) for i in range(2 * REQUEUE_QUERY_BATCH + 1)]
    counts = requeue_counts(tmp_workspace, shas)
    assert list(counts) == shas
    assert {sha: n for sha, n in counts.items() if n} == {
        _sha(3): 1,
        _sha(REQUEUE_QUERY_BATCH + 7): 1,
    }


def _as_json_workspace(ws: Workspace) -> None:
    """Turn a workspace into what the file-based manifest wrote: ``manifest/<sha>.json``
    per record, ``manifest/requeued/<sha>.<n>.json`` per requeue, no state database."""
    manifest = Manifest.for_workspace(ws)
    ws.manifest_dir.mkdir(parents=True)
    for record in manifest.records():
        (ws.manifest_dir / f"{record['sha256']}.json").write_text(json.dumps(record))
    for sha, n in manifest.requeue_counts().items():
        (ws.manifest_dir / "requeued").mkdir(exist_ok=True)
        for i in range(1, n + 1):
            old = {**_record(sha, "quarantined"), "file": "landing/sales/early.csv"}
            (ws.manifest_dir / "requeued" / f"{sha}.{i}.json").write_text(json.dumps(old))
    dispose_engine(ws.state_database_url)
    shutil.rmtree(ws.root / "state")


def test_a_json_manifest_workspace_is_imported_once_and_nothing_is_ingested_again(
    tmp_path: Path, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = Workspace(tmp_path / "ws")
    drop_dataset(sample_spec, sample_dir, ws)
    for f in scan_landing(ws, sample_spec):
        assert ingest_file(ws, sample_spec, f.source, f.relpath).status == "ingested"
    before = {s: ingested_files(ws, s)[["sha", "ingested_at", "seq"]] for s in sample_spec.sources}
    with connect(ws, sample_spec) as con:
        sales_before = con.execute("SELECT count(*), sum(target) FROM sales").fetchone()
    quarantined = Manifest.for_workspace(ws).add(_record(_sha(7), "quarantined"))[0]
    Manifest.for_workspace(ws).requeue(_sha(7))
    _as_json_workspace(ws)
    manifest = Manifest.for_workspace(ws)
    with manifest.engine.begin() as con:
        marker = con.exec_driver_sql(
            "SELECT value FROM state_meta WHERE key = 'manifest_json_imported'"
        ).scalar_one()
    imported = json.loads(marker)
    assert imported["new"] == imported["records"] == sum(len(b) for b in before.values())
    for source, frame in before.items():
        after = ingested_files(ws, source)[["sha", "ingested_at", "seq"]]
        assert after.equals(frame), f"{source}: ingestion order changed by the import"
    with connect(ws, sample_spec) as con:
        assert con.execute("SELECT count(*), sum(target) FROM sales").fetchone() == sales_before
    assert manifest.requeue_counts() == {_sha(7): 1} and quarantined["status"] == "quarantined"
    plan = plan_landing(ws, sample_spec, None, now=0.0)
    assert plan.files == {} and plan.skipped_known == len(scan_landing(ws, sample_spec))
    # opened again: nothing imported twice, even with the JSON files still there
    assert manifest.import_json_records(ws) == 0
    assert len(manifest.records()) == sum(len(b) for b in before.values())
    assert sorted(os.listdir(ws.manifest_dir))  # the JSON records are left in place
