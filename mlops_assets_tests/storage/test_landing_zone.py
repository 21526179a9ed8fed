"""The landing zone and the quarantine: the same contract below a local folder and on S3
(moto's server on 127.0.0.1), and on S3 a file is ingested, quarantined, listed and
requeued with nothing below the workspace folder."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mlops_assets.storage.landing_zone import LandingFile, LandingZone
from mlops_assets.workspace import Workspace

DATA = b"store_id,region\nS1,Nord\n"
SAME_SIZE = DATA.replace(b"Nord", b"Sued")


def leftover_downloads() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob("mlops-landing-*"))


@pytest.fixture
def own_tempdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of this test's own for the system's temporary files: another
    test process's downloads (pytest-xdist runs two) never show in ``leftover_downloads``."""
    folder = tmp_path_factory.mktemp("system_tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def rewrite_within_one_second(
    zone: LandingZone, between: Callable[[], object] = lambda: None
) -> tuple[LandingFile, LandingFile]:
    """Drop ``DATA``, call ``between``, then overwrite it with ``SAME_SIZE``, all within one
    second (tried again when a second began in between); the listings after each write."""
    for _ in range(5):
        time.sleep(1 - time.time() % 1)  # at the start of a second
        zone.put("stores", "stores.csv", DATA)
        [before] = zone.files("stores")
        between()
        zone.put("stores", "stores.csv", SAME_SIZE)
        [after] = zone.files("stores")
        if after.mtime_ns == before.mtime_ns:
            return before, after
    pytest.fail("no two writes within one second in 5 tries")


def test_listing_skips_hidden_and_temporary_names(zone: LandingZone) -> None:
    assert zone.files("stores") == []  # no folder yet
    for name in (
        "stores.csv",
        ".stores.csv",
        "stores.csv.part",
        "stores.csv.TMP",
        ".incoming/stores.csv",
        "2024/q1.csv",
    ):
        assert zone.put("stores", name, DATA) == f"landing/stores/{name}"
    zone.put("sales", "sales.csv", DATA + b"S2,Ost\n")
    listed = zone.files("stores")
    assert [(f.source, f.relpath, f.size) for f in listed] == [
        ("stores", "landing/stores/2024/q1.csv", len(DATA)),
        ("stores", "landing/stores/stores.csv", len(DATA)),
    ]
    assert all(f.mtime_ns > 0 for f in listed)
    if not zone.is_local:  # whole seconds, the same on every listing
        assert all(f.mtime_ns % 1_000_000_000 == 0 for f in listed)
    assert all(bool(f.etag) != zone.is_local for f in listed)  # S3 gives an ETag
    assert zone.files("stores") == listed
    assert [f.relpath for f in zone.files("sales")] == ["landing/sales/sales.csv"]


def test_a_rewritten_file_is_listed_with_its_new_size(zone: LandingZone) -> None:
    zone.put("stores", "stores.csv", DATA)
    zone.put("stores", "stores.csv", DATA + b"S2,Ost\n")
    [lf] = zone.files("stores")
    assert lf.size == len(DATA) + len(b"S2,Ost\n")


def test_a_same_size_rewrite_within_one_second_changes_the_listing_on_s3(s3_env: str) -> None:
    """S3 keeps whole-second mtimes: the ETag tells the two contents apart, and stays the
    same from listing to listing while the object does."""
    zone = LandingZone(s3_env)
    before, after = rewrite_within_one_second(zone)
    assert (after.relpath, after.size, after.mtime_ns) == (
        before.relpath,
        before.size,
        before.mtime_ns,
    )
    assert after.etag and before.etag and after.etag != before.etag
    assert zone.files("stores") == [after] == zone.files("stores")


def test_the_sensor_sees_a_same_size_rewrite_within_one_second_on_s3(
    tmp_path: Path, s3_env: str, sample_spec, hashed: list[str]
) -> None:
    """``plan_landing`` hashes the rewritten file again and requests its new content; a
    file that did not change is neither hashed nor requested again."""
    from mlops_assets import landing

    ws = Workspace(tmp_path / "ws", storage_root=s3_env)

    def tick(cursor: dict | None, now: float) -> landing.LandingPlan:
        plan = landing.plan_landing(ws, sample_spec, cursor, now=now)
        plan.cursor = json.loads(json.dumps(plan.cursor))  # as Dagster stores it
        return plan

    tick(None, now=0.0)  # the state database is created before the clock matters
    plans: list[landing.LandingPlan] = []
    rewrite_within_one_second(ws.landing_zone, lambda: plans.append(tick(None, now=1.0)))
    rel = "landing/stores/stores.csv"
    assert plans[-1].files == {"stores": [(rel, hashlib.sha256(DATA).hexdigest())]}
    hashed.clear()
    changed = tick(plans[-1].cursor, now=2.0)
    assert changed.files == {"stores": [(rel, hashlib.sha256(SAME_SIZE).hexdigest())]}
    assert hashed == [rel]
    hashed.clear()
    quiet = tick(changed.cursor, now=3.0)
    assert hashed == [] and quiet.files == {} and quiet.in_flight == 1


def test_files_are_hashed_and_copied_to_this_machine(zone: LandingZone, own_tempdir: Path) -> None:
    rel = zone.put("stores", "stores.csv", DATA)
    assert zone.sha256("stores", rel) == hashlib.sha256(DATA).hexdigest()
    with zone.open("stores", rel) as fh:
        assert fh.read() == DATA
    before = leftover_downloads()
    with zone.local_copy("stores", rel) as path:
        assert path.name == "stores.csv" and path.read_bytes() == DATA
        if zone.is_local:  # the file itself
            assert path == zone.local_dir("landing") / "stores" / "stores.csv"
        else:  # a download in the system's temp folder
            assert path.is_relative_to(tempfile.gettempdir())
    assert path.exists() == zone.is_local  # a download is removed afterwards
    assert leftover_downloads() == before


def test_a_local_file_can_be_dropped(zone: LandingZone, tmp_path: Path) -> None:
    src = tmp_path / "weather.csv"
    src.write_bytes(DATA)
    rel = zone.put("weather", "weather.csv", src)
    assert [f.relpath for f in zone.files("weather")] == [rel] == ["landing/weather/weather.csv"]
    assert zone.sha256("weather", rel) == hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize(
    "relpath",
    [
        "landing/stores/stores.csv",  # another source's folder
        "landing/sales/../stores/stores.csv",
        "landing/sales/../../outside.csv",
        "../landing/sales/x.csv",
        "/etc/passwd",
        "landing/sales",
        "landing/sales/",
        "quarantine/sales/x.csv",
        "landing/sales/x\x00.csv",
    ],
)
def test_paths_outside_the_source_folder_are_refused(zone: LandingZone, relpath: str) -> None:
    zone.put("stores", "stores.csv", DATA)
    with pytest.raises(ValueError, match="not inside"):
        zone.check("sales", relpath)
    with pytest.raises(ValueError, match="not inside"):
        zone.sha256("sales", relpath)
    with pytest.raises(ValueError, match="not inside"), zone.local_copy("sales", relpath):
        pass


@pytest.mark.parametrize("name", ["../stores/evil.csv", "/abs.csv", "a//b.csv", ".."])
def test_drops_outside_the_source_folder_are_refused(zone: LandingZone, name: str) -> None:
    with pytest.raises(ValueError):
        zone.put("sales", name, DATA)
    with pytest.raises(ValueError):
        zone.put("../sales", "x.csv", DATA)
    assert zone.files("sales") == [] and zone.files("stores") == []


def test_a_rejected_file_is_copied_to_the_quarantine_with_its_reason(
    zone: LandingZone, tmp_path: Path
) -> None:
    assert zone.reason_files() == []
    src = tmp_path / "bad name;rm -rf.csv"
    src.write_bytes(DATA)
    sha = hashlib.sha256(DATA).hexdigest()
    copy = zone.quarantine_copy("sales", sha, src)
    assert copy == f"quarantine/sales/{sha[:16]}__bad_name_rm_-rf.csv"
    reason = {"sha256": sha, "reason": "unparseable", "quarantined_copy": copy}
    assert zone.write_reason(copy, reason) == copy + ".reason.json"
    assert zone.reason_files() == [copy + ".reason.json"]
    assert json.loads(zone.read_text(copy + ".reason.json")) == reason
    assert zone.read_text(copy).encode() == DATA
    assert src.read_bytes() == DATA  # a copy: the original stays
    with pytest.raises(ValueError):
        zone.read_text("landing/sales/x.csv")
    with pytest.raises(ValueError):
        zone.write_reason("landing/sales/x.csv", reason)


def test_the_workspace_keeps_its_landing_zone_below_the_storage_root(
    tmp_path: Path, s3_env: str
) -> None:
    local = Workspace(tmp_path / "ws")
    assert local.landing_zone.url == str(local.root)
    assert local.landing == local.root / "landing"
    assert local.quarantine_dir("sales") == local.root / "quarantine" / "sales"
    on_disk = Workspace(tmp_path / "ws", storage_root=str(tmp_path / "shared"))
    assert on_disk.landing_dir("sales") == tmp_path / "shared" / "landing" / "sales"
    shared = Workspace(tmp_path / "ws", storage_root=s3_env)
    assert shared.landing_zone.url == s3_env
    with pytest.raises(ValueError, match="not on this machine"):
        shared.landing_dir("sales")


def test_files_on_s3_are_ingested_quarantined_and_requeued(
    tmp_path: Path, s3_env: str, sample_dir: Path, sample_spec, own_tempdir: Path
) -> None:
    """``scan_landing``, ``plan_landing``, ``ingest_file``, ``quarantined``, ``requeue`` and
    ``landing_status`` with the landing zone on S3: reasons name the landing file, never
    the temporary download, and nothing is written below the workspace folder but the
    state database."""
    from mlops_assets.landing import (
        drop_dataset,
        ingest_file,
        landing_status,
        plan_landing,
        quarantined,
        requeue,
        scan_landing,
    )

    ws = Workspace(tmp_path / "ws", storage_root=s3_env)
    dropped = drop_dataset(sample_spec, sample_dir, ws)
    assert dropped and all(r.startswith("landing/") for r in dropped)
    ragged = (sample_dir / "sales" / "sales_2023.csv").read_text().splitlines()
    ragged[9000] += ",oops"
    bad = ws.landing_zone.put("sales", "ragged.csv", ("\n".join(ragged) + "\n").encode())
    scanned = scan_landing(ws, sample_spec)
    assert sorted(f.relpath for f in scanned) == sorted([*dropped, bad])
    assert scanned[0].source == "stores" and all(isinstance(f, LandingFile) for f in scanned)
    plan = plan_landing(ws, sample_spec, None, now=0.0)
    assert sum(len(v) for v in plan.files.values()) == len(scanned)

    before = leftover_downloads()
    outcomes = {
        lf.relpath: ingest_file(ws, sample_spec, lf.source, lf.relpath, run_id="r1")
        for lf in scanned
    }
    assert leftover_downloads() == before
    assert {r: o.status for r, o in outcomes.items()} == {
        **{r: "ingested" for r in dropped},
        bad: "quarantined",
    }
    record = outcomes[bad].record
    assert record["file"] == bad and record["reason"] == "unparseable"
    assert record["message"].startswith("could not read ragged.csv: line 9001 has 7 fields")
    assert "mlops-landing-" not in json.dumps(record)  # the download's temporary name
    assert f"{s3_env}/{bad}" in record["details"]["engine_error"]
    copy = record["quarantined_copy"]
    assert copy.startswith("quarantine/sales/") and copy.endswith("__ragged.csv")
    assert ws.landing_zone.read_text(copy) == "\n".join(ragged) + "\n"
    assert [r["sha256"] for r in quarantined(ws)] == [outcomes[bad].sha256]
    assert ws.data.keys("raw/sales") and ws.data.keys("raw/stores")
    assert sorted(p.name for p in ws.root.iterdir()) == ["state"]

    quiet = plan_landing(ws, sample_spec, plan.cursor, now=1.0)
    assert quiet.files == {} and quiet.skipped_known == len(scanned)
    status = {f["path"]: f["state"] for f in landing_status(ws, sample_spec)}
    assert status == {**{r: "ingested" for r in dropped}, bad: "quarantined"}
    requeue(ws, outcomes[bad].sha256)
    again = plan_landing(ws, sample_spec, quiet.cursor, now=2.0)
    assert again.files == {"sales": [(bad, outcomes[bad].sha256)]}
