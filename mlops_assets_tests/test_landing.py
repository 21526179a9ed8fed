"""The landing zone: each distinct file content is ingested once, bad files are quarantined
with a reason, landing files are never touched, and the sensor's plan survives restarts."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_assets import landing
from mlops_assets.landing import (
    ALL_REGIONS,
    affected_regions,
    file_sha256,
    ingest_file,
    plan_landing,
    quarantined,
)
from mlops_assets.naming import region_key
from mlops_assets.spec import DatasetSpec
from mlops_assets.storage.landing_hashes import LandingHashes
from mlops_assets.storage.manifest import Manifest
from mlops_assets.workspace import Workspace

SOURCES = ("stores", "sales", "weather", "events", "future")


# -- helpers -------------------------------------------------------------------------------


def put(ws: Workspace, source: str, name: str, content: bytes | str) -> str:
    """Write a landing file; return its path relative to the workspace root."""
    path = ws.landing_dir(source) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path.relative_to(ws.root))


def drop(ws: Workspace, source: str, src: Path, name: str | None = None) -> str:
    return put(ws, source, name or src.name, src.read_bytes())


def drop_sample(ws: Workspace, sample_dir: Path) -> list[str]:
    return [drop(ws, s, p) for s in SOURCES for p in sorted((sample_dir / s).iterdir())]


def csv_text(rows: list[dict[str, str]]) -> str:
    lines = [",".join(rows[0])]
    for row in rows:
        lines.append(",".join(f'"{v}"' if "," in v else v for v in row.values()))
    return "\n".join(lines) + "\n"


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def outside_landing(ws: Workspace) -> dict[str, object]:
    """Every file the pipeline wrote (bytes and mtime), i.e. everything but landing/, and
    every manifest record (the state database's files change when it is only read)."""
    state = ws.root / "state"
    files = {
        str(p.relative_to(ws.root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(ws.root.rglob("*"))
        if p.is_file() and ws.landing not in p.parents and state not in p.parents
    }
    return {**files, "manifest records": Manifest.for_workspace(ws).records()}


def tick(
    ws: Workspace, spec: DatasetSpec, cursor: dict | None, now: float, **kwargs: Any
) -> tuple[landing.LandingPlan, dict]:
    """One sensor tick: the cursor goes through JSON, as Dagster stores it."""
    plan = plan_landing(ws, spec, cursor, now=now, **kwargs)
    return plan, json.loads(json.dumps(plan.cursor))


def planned(plan: landing.LandingPlan) -> list[str]:
    return [rel for files in plan.files.values() for rel, _ in files]


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the files hashed through ``landing.file_sha256`` (cleared by the test)."""
    calls: list[str] = []
    real = landing.file_sha256

    def counting(path: Path) -> str:
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(landing, "file_sha256", counting)
    return calls


@pytest.fixture
def ws_with_stores(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> Workspace:
    rel = drop(tmp_workspace, "stores", sample_dir / "stores" / "stores.csv")
    assert ingest_file(tmp_workspace, sample_spec, "stores", rel).status == "ingested"
    return tmp_workspace


@pytest.fixture
def store_regions(sample_dir: Path) -> dict[str, str]:
    return {r["store_id"]: r["region"] for r in read_csv_rows(sample_dir / "stores/stores.csv")}


# -- ingest_file ---------------------------------------------------------------------------


def test_good_file_is_ingested_to_raw_parquet_with_a_manifest(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = tmp_workspace
    rel = drop(ws, "stores", sample_dir / "stores" / "stores.csv")
    before = (ws.root / rel).read_bytes()
    outcome = ingest_file(ws, sample_spec, "stores", rel, run_id="run-1")
    sha = hashlib.sha256(before).hexdigest()
    assert (outcome.status, outcome.sha256, outcome.new) == ("ingested", sha, True)
    raw = pd.read_parquet(ws.raw_path("stores", sha))
    assert len(raw) == 12
    assert {"store", "region", "format", "size_sqm"} <= set(raw.columns)
    record = landing.read_manifest(ws, sha)
    assert record == outcome.record
    assert record["status"] == "ingested"
    assert record["sha256"] == sha
    assert record["file"] == rel
    assert (record["source"], record["kind"], record["rows"]) == ("stores", "stores", 12)
    assert record["run_id"] == "run-1"
    assert (ws.root / rel).read_bytes() == before
    assert not (ws.root / "quarantine").exists()


def test_same_content_again_or_renamed_is_already_ingested_and_writes_nothing(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = ws_with_stores
    written = outside_landing(ws)
    rels = [
        "landing/stores/stores.csv",
        drop(ws, "stores", sample_dir / "stores/stores.csv", "stores (copy).csv"),
        drop(ws, "stores", sample_dir / "stores/stores.csv", "2024/master.csv"),
    ]
    for rel in rels:
        outcome = ingest_file(ws, sample_spec, "stores", rel)
        assert outcome.status == "already_ingested"
        assert not outcome.new
        assert outcome.record["file"] == "landing/stores/stores.csv"
    assert outside_landing(ws) == written


def test_a_batch_quarantines_its_bad_files_and_ingests_the_rest_alike(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    """Files of one ingest run share a DuckDB database: a file rejected halfway through
    its validation leaves nothing behind that changes how the next file is judged."""
    ws = ws_with_stores
    rows = read_csv_rows(sample_dir / "sales/sales_2023.csv")[:40]
    bad = [dict(r) for r in rows[:20]]
    bad[3]["promo"] = "2"  # rejected after the file's temp tables exist
    unknown = [dict(r) for r in rows[20:30]]
    unknown[0]["store_id"] = "S9999"
    rels = [
        put(ws, "sales", "a_good.csv", csv_text(rows[:20])),
        put(ws, "sales", "b_bad.csv", csv_text(bad)),
        put(ws, "sales", "c_good.csv", csv_text(rows[20:40])),
        put(ws, "sales", "d_unknown_store.csv", csv_text(unknown)),
        put(ws, "sales", "e_good.csv", csv_text(rows[30:40])),
    ]
    outcomes = landing.ingest_files(ws, sample_spec, "sales", rels)
    assert [o.status for o in outcomes] == [
        "ingested",
        "quarantined",
        "ingested",
        "quarantined",
        "ingested",
    ]
    assert [o.record.get("reason") for o in outcomes[1::2]] == ["out_of_range", "unknown_store"]
    # each file judged as it would be alone
    for rel, outcome in zip(rels, outcomes, strict=True):
        alone = Workspace(ws.root.parent / f"alone-{Path(rel).stem}")
        shutil.copytree(ws.landing_dir("stores"), alone.landing_dir("stores"))
        ingest_file(alone, sample_spec, "stores", "landing/stores/stores.csv")
        copy = put(alone, "sales", Path(rel).name, (ws.root / rel).read_bytes())
        single = ingest_file(alone, sample_spec, "sales", copy)
        assert single.status == outcome.status
        assert single.record.get("rows") == outcome.record.get("rows")
        assert single.record.get("message") == outcome.record.get("message")


def test_bad_file_is_quarantined_with_a_reason_and_left_in_landing(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = ws_with_stores
    rows = read_csv_rows(sample_dir / "sales/sales_2023.csv")[:20]
    bad_rows = [dict(r) for r in rows]
    bad_rows[5]["promo"] = "2"
    bad_rel = put(ws, "sales", "x'; DROP TABLE y; --.csv", csv_text(bad_rows))
    good_rel = put(ws, "sales", "good.csv", csv_text(rows))
    bad_bytes = (ws.root / bad_rel).read_bytes()
    sha = hashlib.sha256(bad_bytes).hexdigest()

    outcome = ingest_file(ws, sample_spec, "sales", bad_rel)
    assert outcome.status == "quarantined"
    # the landing file is left exactly as it was
    assert (ws.root / bad_rel).read_bytes() == bad_bytes
    # a copy and a machine-readable reason sit in quarantine/<source>/
    qdir = ws.root / "quarantine" / "sales"
    copies = [p for p in qdir.iterdir() if not p.name.endswith(".reason.json")]
    reasons = list(qdir.glob("*.reason.json"))
    assert len(copies) == 1 and len(reasons) == 1
    assert copies[0].read_bytes() == bad_bytes
    assert not set(copies[0].name) & set("'\"; /\\")
    reason = json.loads(reasons[0].read_text())
    assert reason["reason"] == "out_of_range"
    assert "'promo'" in reason["message"] and "row 6" in reason["message"]
    assert reason["sha256"] == sha
    assert reason["file"] == bad_rel
    assert (ws.root / reason["quarantined_copy"]).read_bytes() == bad_bytes
    # the manifest remembers it, nothing reached raw/
    assert landing.read_manifest(ws, sha)["status"] == "quarantined"
    assert not ws.raw_path("sales", sha).exists()
    assert [r["sha256"] for r in quarantined(ws)] == [sha]

    # other files still ingest
    assert ingest_file(ws, sample_spec, "sales", good_rel).status == "ingested"
    # the bad content again is not re-validated or copied again
    written = outside_landing(ws)
    again = put(ws, "sales", "retry.csv", bad_bytes)
    assert ingest_file(ws, sample_spec, "sales", again).status == "already_quarantined"
    assert outside_landing(ws) == written


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff\xfe garbage \x00", b"date,store_id\n"],
    ids=["zero-bytes", "binary", "wrong-header"],
)
def test_unreadable_files_are_quarantined_not_raised(
    ws_with_stores: Workspace, sample_spec: DatasetSpec, content: bytes
) -> None:
    rel = put(ws_with_stores, "sales", "broken.csv", content)
    outcome = ingest_file(ws_with_stores, sample_spec, "sales", rel)
    assert outcome.status == "quarantined"
    assert outcome.record["reason"] in ("empty", "unparseable", "missing_columns")
    assert (ws_with_stores.root / rel).read_bytes() == content


def test_sales_before_any_store_master_is_quarantined_as_unknown_store(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    rel = drop(tmp_workspace, "sales", sample_dir / "sales/sales_2023.csv")
    outcome = ingest_file(tmp_workspace, sample_spec, "sales", rel)
    assert outcome.status == "quarantined"
    assert outcome.record["reason"] == "unknown_store"


def test_actuals_files_follow_the_landing_rules_bad_quarantined_good_ingested_once(
    ws_with_stores: Workspace,
    sample_dir: Path,
    sample_spec: DatasetSpec,
    store_regions: dict[str, str],
) -> None:
    """Ground truth dropped into landing/actuals/ is planned after sales, validated like
    sales (a bad file is quarantined with a reason), and a copy is never ingested twice."""
    ws = ws_with_stores
    rows = [
        {**r, "units": "12.0"}
        for r in read_csv_rows(sample_dir / "future/future.csv")[:6]
        if r["store_id"] == "S0001"
    ]
    good = [{k: r[k] for k in ("date", "store_id", "department", "units", "open", "promo")}
            for r in rows]  # fmt: skip
    bad = [dict(r) for r in good]
    bad[2]["store_id"] = "S9999"
    put(ws, "actuals", "bad.csv", csv_text(bad))
    put(ws, "actuals", "good.csv", csv_text(good))
    plan, _ = tick(ws, sample_spec, None, now=0.0)
    assert [rel for rel, _ in plan.files["actuals"]] == [
        "landing/actuals/bad.csv",
        "landing/actuals/good.csv",
    ]

    outcomes = {rel: ingest_file(ws, sample_spec, "actuals", rel) for rel in planned(plan)}

    bad_out = outcomes["landing/actuals/bad.csv"]
    assert bad_out.status == "quarantined" and bad_out.record["reason"] == "unknown_store"
    assert bad_out.record["kind"] == "actuals"
    assert (ws.root / bad_out.record["quarantined_copy"]).is_file()
    good_out = outcomes["landing/actuals/good.csv"]
    assert good_out.status == "ingested" and good_out.record["rows"] == len(good)
    assert ws.raw_path("actuals", good_out.sha256).is_file()
    regions = affected_regions(ws, sample_spec, "actuals", [good_out.sha256])
    assert regions == [region_key(store_regions["S0001"])]
    again = put(ws, "actuals", "good_copy.csv", csv_text(good))
    assert ingest_file(ws, sample_spec, "actuals", again).status == "already_ingested"
    assert planned(tick(ws, sample_spec, None, now=1.0)[0]) == []


def test_files_outside_the_source_landing_folder_are_refused(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec, tmp_path: Path
) -> None:
    ws = ws_with_stores
    outside = tmp_path / "outside.csv"
    shutil.copyfile(sample_dir / "sales/sales_2023.csv", outside)
    ws.landing_dir("sales").mkdir(parents=True)
    (ws.landing_dir("sales") / "link.csv").symlink_to(outside)
    for rel in (
        "landing/stores/stores.csv",  # another source's folder
        "landing/sales/../../../outside.csv",
        str(outside),
        "landing/sales/link.csv",  # a symlink pointing out of the landing zone
    ):
        with pytest.raises(ValueError, match="not inside"):
            ingest_file(ws, sample_spec, "sales", rel)
    assert len(Manifest.for_workspace(ws).records()) == 1  # only the store master's


# -- plan_landing --------------------------------------------------------------------------


def test_new_files_are_planned_with_the_store_master_first(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = tmp_workspace
    rels = drop_sample(ws, sample_dir)
    plan, _ = tick(ws, sample_spec, None, now=1000.0)
    assert sorted(planned(plan)) == sorted(rels)
    order = list(plan.files)
    assert order[0] == "stores"
    assert order.index("sales") > order.index("stores")
    assert order.index("future") > order.index("sales")
    for files in plan.files.values():
        for rel, sha in files:
            assert sha == file_sha256(ws.root / rel)
    assert plan.shas == sorted(sha for files in plan.files.values() for _, sha in files)


def test_unchanged_files_are_not_hashed_again(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec, hash_calls: list[str]
) -> None:
    ws = tmp_workspace
    rels = drop_sample(ws, sample_dir)
    _, cursor = tick(ws, sample_spec, None, now=1000.0)
    assert len(hash_calls) == len(rels)
    hash_calls.clear()
    _, cursor = tick(ws, sample_spec, cursor, now=1001.0)
    _, cursor = tick(ws, sample_spec, cursor, now=1002.0)
    assert hash_calls == []
    # a file that changes is hashed again (and only that one)
    path = ws.landing_dir("events") / "events.csv"
    path.write_bytes(path.read_bytes() + b"2024-12-24,,Heiligabend\n")
    plan, _ = tick(ws, sample_spec, cursor, now=1003.0)
    assert hash_calls == ["events.csv"]
    assert planned(plan) == ["landing/events/events.csv"]


def test_pending_files_are_requested_again_only_after_the_retry_delay(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = tmp_workspace
    rel = drop(ws, "stores", sample_dir / "stores/stores.csv")
    first, cursor = tick(ws, sample_spec, None, now=1000.0, retry_after_seconds=900)
    assert planned(first) == [rel]
    within, cursor = tick(ws, sample_spec, cursor, now=1899.0, retry_after_seconds=900)
    assert within.files == {}
    assert within.in_flight == 1
    after, cursor = tick(ws, sample_spec, cursor, now=1901.0, retry_after_seconds=900)
    assert after.files == first.files
    # requested again: the clock restarts
    again, _ = tick(ws, sample_spec, cursor, now=1950.0, retry_after_seconds=900)
    assert again.files == {}


def test_ingested_files_are_never_planned_again_even_with_a_lost_cursor(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = tmp_workspace
    rels = drop_sample(ws, sample_dir)
    plan, cursor = tick(ws, sample_spec, None, now=1000.0)
    for source, files in plan.files.items():
        for rel, _ in files:
            assert ingest_file(ws, sample_spec, source, rel).status == "ingested"
    for lost in (None, {}, cursor):  # daemon restart, reset cursor, normal tick
        for now in (1001.0, 1_000_000.0):  # within and long after the retry delay
            again, new_cursor = tick(ws, sample_spec, lost, now=now)
            assert again.files == {}
            assert again.skipped_known == len(rels)
            assert new_cursor["pending"] == {}


def test_quarantined_files_are_never_planned_again(
    tmp_workspace: Workspace, sample_spec: DatasetSpec
) -> None:
    ws = tmp_workspace
    rel = put(ws, "weather", "bad.csv", b"not,a,weather,file\n1,2,3,4\n")
    plan, _ = tick(ws, sample_spec, None, now=0.0)
    assert planned(plan) == [rel]
    assert ingest_file(ws, sample_spec, "weather", rel).status == "quarantined"
    plan, _ = tick(ws, sample_spec, None, now=10_000.0)
    assert plan.files == {}


def test_hidden_partial_and_symlinked_files_are_ignored(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec, tmp_path: Path
) -> None:
    ws = tmp_workspace
    data = (sample_dir / "stores/stores.csv").read_bytes()
    put(ws, "stores", ".stores.csv", data)
    put(ws, "stores", "stores.csv.part", data)
    put(ws, "stores", "stores.csv.tmp", data)
    put(ws, "stores", ".incoming/stores.csv", data)
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(data)
    (ws.landing_dir("stores") / "linked.csv").symlink_to(outside)
    (ws.landing_dir("stores") / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    plan, _ = tick(ws, sample_spec, None, now=0.0)
    assert plan.files == {}
    # once renamed into place, the same file is seen
    os.replace(ws.landing_dir("stores") / "stores.csv.part", ws.landing_dir("stores") / "s.csv")
    plan, _ = tick(ws, sample_spec, None, now=1.0)
    assert planned(plan) == ["landing/stores/s.csv"]


@pytest.mark.parametrize("retry_after", [900.0, 0.0])
def test_identical_copies_in_one_tick_are_planned_once(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec, retry_after: float
) -> None:
    ws = tmp_workspace
    src = sample_dir / "weather/weather.csv"
    a = drop(ws, "weather", src, "a.csv")
    b = drop(ws, "weather", src, "sub/b.csv")
    plan, cursor = tick(ws, sample_spec, None, now=0.0, retry_after_seconds=retry_after)
    assert len(planned(plan)) == 1
    assert planned(plan)[0] in (a, b)
    assert plan.skipped_known == 1
    if retry_after:
        plan, _ = tick(ws, sample_spec, cursor, now=1.0, retry_after_seconds=retry_after)
        assert plan.files == {}


def test_hash_budget_defers_large_files_to_the_next_tick(
    tmp_workspace: Workspace, sample_spec: DatasetSpec, hash_calls: list[str]
) -> None:
    ws = tmp_workspace
    for name, fill in (("a.csv", "a"), ("b.csv", "b"), ("c.csv", "c")):
        put(ws, "weather", name, fill * 1000)
    put(ws, "weather", "d.csv", "d" * 5000)  # larger than the whole budget
    seen: list[str] = []
    cursor: dict | None = None
    deferred = []
    for now in range(10):
        plan, cursor = tick(ws, sample_spec, cursor, now=float(now), hash_budget_bytes=1500)
        seen += [Path(rel).name for rel in planned(plan)]
        deferred.append(plan.deferred)
        if not plan.deferred:
            break
    assert deferred[0] == 3  # a.csv fits, b, c and d wait
    assert deferred[-1] == 0
    # every file is planned exactly once, even one larger than the budget, and hashed once
    assert sorted(seen) == ["a.csv", "b.csv", "c.csv", "d.csv"]
    assert sorted(hash_calls) == ["a.csv", "b.csv", "c.csv", "d.csv"]


def test_the_hash_cache_forgets_files_that_left_the_landing_zone(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = tmp_workspace
    rel = drop(ws, "stores", sample_dir / "stores/stores.csv")
    _, cursor = tick(ws, sample_spec, None, now=0.0)
    assert LandingHashes.for_workspace(ws).load()[rel][2] == file_sha256(ws.root / rel)
    (ws.root / rel).unlink()
    tick(ws, sample_spec, cursor, now=1.0)
    assert LandingHashes.for_workspace(ws).load() == {}


def test_the_cursor_keeps_nothing_per_file_once_the_files_are_ingested(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec, hash_calls: list[str]
) -> None:
    """Dagster stores the cursor with every tick it keeps (skipped ticks for 7 days): it
    must not grow with the landing zone. The hashes live in the state database instead,
    so a later tick, even one with a lost cursor, reads no file again."""
    ws = tmp_workspace
    rels = drop_sample(ws, sample_dir)
    plan, cursor = tick(ws, sample_spec, None, now=1000.0)
    assert sorted(cursor["pending"]) == plan.shas  # in flight: one entry per content
    for source, files in plan.files.items():
        for rel, _ in files:
            assert ingest_file(ws, sample_spec, source, rel).status == "ingested"
    hash_calls.clear()
    for previous in (cursor, None):
        again, quiet = tick(ws, sample_spec, previous, now=1001.0)
        assert quiet == {"pending": {}}
        assert again.skipped_known == len(rels)
    assert hash_calls == []


def test_an_older_cursors_hashes_are_taken_over_without_reading_the_files_again(
    tmp_workspace: Workspace, sample_dir: Path, sample_spec: DatasetSpec, hash_calls: list[str]
) -> None:
    ws = tmp_workspace
    rels = drop_sample(ws, sample_dir)
    _, cursor = tick(ws, sample_spec, None, now=1000.0)
    entries = LandingHashes.for_workspace(ws).load()
    older = {**cursor, "seen": {rel: entry[:3] for rel, entry in entries.items()}}  # no ETag
    LandingHashes.for_workspace(ws).update({}, entries)  # a workspace before the table
    assert LandingHashes.for_workspace(ws).load() == {}
    hash_calls.clear()
    plan, new_cursor = tick(ws, sample_spec, older, now=1001.0)
    assert hash_calls == []
    assert plan.files == {} and plan.in_flight == len(rels)
    assert "seen" not in new_cursor
    assert LandingHashes.for_workspace(ws).load() == entries


# -- affected_regions ----------------------------------------------------------------------


def _ingest(ws: Workspace, spec: DatasetSpec, source: str, name: str, text: str) -> str:
    outcome = ingest_file(ws, spec, source, put(ws, source, name, text))
    assert outcome.status == "ingested", outcome.record.get("message")
    return outcome.sha256


def test_store_master_affects_every_region(
    ws_with_stores: Workspace, sample_spec: DatasetSpec
) -> None:
    shas = [p.stem for p in ws_with_stores.raw_dir("stores").glob("*.parquet")]
    assert affected_regions(ws_with_stores, sample_spec, "stores", shas) == [ALL_REGIONS]


def test_sales_affect_the_regions_of_their_stores(
    ws_with_stores: Workspace,
    sample_dir: Path,
    sample_spec: DatasetSpec,
    store_regions: dict[str, str],
) -> None:
    wanted = {"Rhein, Main", "Süd"}
    stores = {s for s, r in store_regions.items() if r in wanted}
    rows = [
        r
        for r in read_csv_rows(sample_dir / "sales/sales_2023.csv")[:5000]
        if r["store_id"] in stores
    ]
    assert {store_regions[r["store_id"]] for r in rows} == wanted
    sha = _ingest(ws_with_stores, sample_spec, "sales", "some.csv", csv_text(rows))
    assert affected_regions(ws_with_stores, sample_spec, "sales", [sha]) == ["Rhein_Main", "Sud"]


def test_weather_affects_its_own_regions(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    rows = [
        r
        for r in read_csv_rows(sample_dir / "weather/weather.csv")
        if r["region"] in ("Rhein, Main", "Süd") and r["date"] < "2023-02-01"
    ]
    sha = _ingest(ws_with_stores, sample_spec, "weather", "w.csv", csv_text(rows))
    assert affected_regions(ws_with_stores, sample_spec, "weather", [sha]) == ["Rhein_Main", "Sud"]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("2023-01-01", "", "Neujahr")], [ALL_REGIONS]),
        ([("2023-01-06", "Süd", "Heilige Drei Könige"), ("2023-01-01", "", "Neujahr")], ["*"]),
        ([("2023-01-06", "Süd", "Heilige Drei Könige")], ["Sud"]),
        ([("2023-06-10", "Rhein, Main", "Stadtfest"), ("2023-06-17", "Nord", "Stadtfest")],
         ["Nord", "Rhein_Main"]),
    ],
    ids=["national", "national-and-regional", "regional", "two-regions"],
)  # fmt: skip
def test_events_affect_their_region_or_all_when_national(
    ws_with_stores: Workspace,
    sample_spec: DatasetSpec,
    rows: list[tuple[str, str, str]],
    expected: list[str],
) -> None:
    text = csv_text([{"date": d, "region": r, "event": e} for d, r, e in rows])
    sha = _ingest(ws_with_stores, sample_spec, "events", "e.csv", text)
    assert affected_regions(ws_with_stores, sample_spec, "events", [sha]) == expected


def test_nothing_ingested_affects_nothing(
    ws_with_stores: Workspace, sample_spec: DatasetSpec
) -> None:
    assert affected_regions(ws_with_stores, sample_spec, "sales", []) == []
    rel = put(ws_with_stores, "weather", "bad.csv", "date,region\n")
    outcome = ingest_file(ws_with_stores, sample_spec, "weather", rel)
    assert outcome.status == "quarantined"
    assert affected_regions(ws_with_stores, sample_spec, "weather", [outcome.sha256]) == []


# -- landing_status ------------------------------------------------------------------------


def test_landing_status_lists_every_file_with_its_hash_state_and_reason(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = ws_with_stores
    good = drop(ws, "sales", sample_dir / "sales/sales_2023.csv")
    header = "date,store_id,department,units,open,promo\n"
    bad = put(ws, "sales", "broken.csv", header + "x,S1,D1,1,1,0\n")
    waiting = drop(ws, "weather", sample_dir / "weather/weather.csv")
    for rel in (good, bad):
        ingest_file(ws, sample_spec, "sales", rel)
    put(ws, "sales", ".hidden.csv", "partial")  # not a landing file (yet)

    status = {f["path"]: f for f in landing.landing_status(ws, sample_spec)}
    assert set(status) == {"landing/stores/stores.csv", good, bad, waiting}
    assert status[good]["state"] == "ingested" and status[good]["reason"] is None
    assert status[good]["sha256"] == file_sha256(ws.root / good)
    assert status[bad]["state"] == "quarantined"
    assert status[bad]["reason"].startswith("bad_dates:")
    assert status[waiting]["state"] == "pending" and status[waiting]["source"] == "weather"
    assert "landing sensor" in status[waiting]["reason"]

    # an explanation from the orchestrator replaces the generic one
    explained = landing.landing_status(
        ws, sample_spec, lambda paths: {p: f"run abc for {len(paths)}" for p in paths}
    )
    assert {f["reason"] for f in explained if f["state"] == "pending"} == {"run abc for 1"}


# -- reasons people read ----------------------------------------------------------------------


def test_malformed_csv_reason_is_one_line_without_paths_and_the_file_keeps_the_details(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec
) -> None:
    ws = ws_with_stores
    lines = (sample_dir / "sales" / "sales_2023.csv").read_text().splitlines()
    lines[9000] += ",oops"
    rel = put(ws, "sales", "2024/ragged.csv", "\n".join(lines) + "\n")
    outcome = ingest_file(ws, sample_spec, "sales", rel)
    assert outcome.status == "quarantined"
    line = landing.reason_line(outcome.record)
    assert line.startswith("unparseable: could not read ragged.csv: line 9001 has 7 fields")
    assert "\n" not in line and str(ws.root) not in line and "/tmp" not in line
    [record] = quarantined(ws)
    assert landing.reason_line(record) == line
    reason_file = ws.root / (record["quarantined_copy"] + ".reason.json")
    details = json.loads(reason_file.read_text())["details"]
    assert str(ws.root / rel) in details["engine_error"] and "\n" in details["engine_error"]


def test_reason_line_of_an_old_record_drops_paths_and_newlines() -> None:
    record = {
        "reason": "unparseable",
        "message": "could not read x.csv: Invalid Input Error: CSV Error on Line: 3\n"
        "  file = /srv/mlops/landing/sales/x.csv\n  delimiter = ,",
    }
    line = landing.reason_line(record)
    assert line == (
        "unparseable: could not read x.csv: Invalid Input Error: CSV Error on Line: 3 "
        "file = <path> delimiter = ,"
    )


@pytest.mark.parametrize("mode", ["warn", "quarantine"])
def test_unknown_columns_are_recorded_or_quarantined_as_the_spec_says(
    ws_with_stores: Workspace, sample_dir: Path, sample_spec: DatasetSpec, mode: str
) -> None:
    ws = ws_with_stores
    sources = dict(sample_spec.sources)
    sources["sales"] = sources["sales"].with_overrides(unknown_columns=mode)
    spec = sample_spec.model_copy(update={"sources": sources})
    rows = [{**r, "colour": "red"} for r in read_csv_rows(sample_dir / "sales/sales_2023.csv")[:20]]
    outcome = ingest_file(ws, spec, "sales", put(ws, "sales", "extra.csv", csv_text(rows)))
    manifest = landing.read_manifest(ws, outcome.sha256)
    if mode == "warn":
        assert outcome.status == "ingested"
        assert manifest["unknown_columns"] == ["colour"] == manifest["ignored_columns"]
    else:
        assert outcome.status == "quarantined" and manifest["reason"] == "unknown_columns"
        assert landing.reason_line(manifest).startswith(
            "unknown_columns: 1 column(s) the spec does not know: ['colour']"
        )
