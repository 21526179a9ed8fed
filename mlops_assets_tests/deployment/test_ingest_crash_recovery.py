"""Kill the daemon and a running ingest with SIGKILL mid-batch, restart: every landing file
is ingested exactly once, with no person stepping in and no run left STARTED."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets_tests.deployment.daemon_support import Deployment, manifest_records, wait_for

pytestmark = pytest.mark.e2e

N_SALES_FILES = 12


def _landing_batch(tmp: Path, landing: Path) -> list[Path]:
    """A store master and 12 sales files of distinct stores (about 12k rows each), written
    into the landing zone under temporary names and renamed, as a data engineer's copy."""
    src = tmp / "generated"
    generate(SampleConfig(n_regions=4, n_stores=48, n_departments=4, days=730), src)
    sales = pd.concat(pd.read_csv(p) for p in sorted((src / "sales").glob("*.csv")))
    stores = sorted(sales["store_id"].unique())
    dropped = []
    (landing / "stores").mkdir(parents=True)
    (landing / "sales").mkdir(parents=True)
    for path in (src / "stores").iterdir():
        (landing / "stores" / path.name).write_bytes(path.read_bytes())
        dropped.append(landing / "stores" / path.name)
    for i in range(N_SALES_FILES):
        part = sales[sales["store_id"].isin(stores[i::N_SALES_FILES])]
        tmp_name = landing / "sales" / f".part-{i:02d}.csv.part"
        part.to_csv(tmp_name, index=False)
        target = landing / "sales" / f"sales-part-{i:02d}.csv"
        tmp_name.rename(target)
        dropped.append(target)
    return dropped


def _runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs())


def test_daemon_and_ingest_killed_mid_batch_recover_without_a_person(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    try:
        files = _landing_batch(tmp_path, dep.ws_root / "landing")
        n_files = len(files)
        dep.start_sensor("landing_sensor")
        dep.start_daemon()

        def sales_ingested() -> list[dict]:
            return [r for r in manifest_records(dep.ws_root) if r["source"] == "sales"]

        waited = wait_for("2 sales files ingested", lambda: len(sales_ingested()) >= 2, 300, dep)
        dep.kill_daemon()
        killed_at = time.monotonic()
        before = {r["sha256"]: r for r in manifest_records(dep.ws_root)}
        assert 2 <= len([r for r in before.values() if r["source"] == "sales"]) < N_SALES_FILES
        assert dep.stray_processes() == [], "the run worker outlived its process group"

        instance = dg.DagsterInstance.from_config(str(dep.home))
        stuck = [r for r in _runs(instance) if r.status == dg.DagsterRunStatus.STARTED]
        assert len(stuck) == 1, [(r.run_id, r.status) for r in _runs(instance)]
        killed_run = stuck[0]
        # what a person would see: the rest is pending, held by the dead run
        status = json.loads(dep.cli("mlops-assets", "landing", "status", "--json"))["files"]
        pending = [f for f in status if f["state"] == "pending"]
        assert len(pending) == n_files - len(before)
        assert all(f"ingest run {killed_run.run_id[:8]}" in f["reason"] for f in pending)

        dep.start_daemon()

        def all_done() -> bool:
            records = manifest_records(dep.ws_root)
            busy = [r for r in _runs(instance) if not r.is_finished]
            return len(records) == n_files and not busy

        recovered = wait_for("every file ingested, no run in flight", all_done, 360, dep)
        print(
            f"\nfirst 2 sales files ingested {waited:.1f} s after the daemon started; "
            f"killed with {len(before)} of {n_files} files in the manifest; recovered "
            f"{recovered:.1f} s after the restart ({time.monotonic() - killed_at:.1f} s "
            "after the kill)"
        )

        records = manifest_records(dep.ws_root)
        assert {r["status"] for r in records} == {"ingested"}
        status = json.loads(dep.cli("mlops-assets", "landing", "status", "--json"))["files"]
        assert [f["state"] for f in status] == ["ingested"] * n_files
        assert len({r["sha256"] for r in records}) == n_files
        # the files ingested before the kill were not ingested again
        for sha, record in before.items():
            now = next(r for r in records if r["sha256"] == sha)
            assert now["run_id"] == record["run_id"] == killed_run.run_id
            assert now["processed_at"] == record["processed_at"]
        # every row exactly once: raw sales hold the landing files' rows, no more, no less
        raw = sorted((dep.ws_root / "raw" / "sales").glob("*.parquet"))
        assert len(raw) == N_SALES_FILES
        landed = sum(len(pd.read_csv(f)) for f in files if f.parent.name == "sales")
        with duckdb.connect() as con:
            stored = con.execute(
                "SELECT count(*) FROM read_parquet($f)", {"f": [str(p) for p in raw]}
            ).fetchone()[0]
        assert stored == landed

        # run monitoring marked the dead run failed; a new attempt ingested the rest
        runs = {r.run_id: r for r in _runs(instance)}
        assert runs[killed_run.run_id].status == dg.DagsterRunStatus.FAILURE
        assert all(r.is_finished for r in runs.values())
        later = [r for r in runs.values() if r.run_id != killed_run.run_id]
        assert any(r.status == dg.DagsterRunStatus.SUCCESS for r in later)
        logs = instance.all_logs(killed_run.run_id)
        assert any("run worker process" in (e.message or "") for e in logs)
    finally:
        dep.stop()
    assert dep.stray_processes() == []
