"""``copy_landing_zone`` (``mlops-assets migrate-data``): a zone's landing files and
quarantine copied to another root, local folder or S3."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mlops_assets.storage.landing_zone import LandingZone
from mlops_assets.storage.landing_zone_copy import (
    copy_landing_zone,
    quarantine_files,
    source_folders,
    stored_size,
)
from mlops_assets_tests.storage.test_landing_zone import DATA, SAME_SIZE


def test_a_zone_is_copied_with_the_names_the_landing_zone_accepts(
    zone: LandingZone, tmp_path: Path
) -> None:
    """``copy_landing_zone`` (``migrate-data``) copies what the landing zone lists and what
    the quarantine wrote, under the same relpaths; hidden, temporary and symlinked files,
    unsafe folders and strangers in the quarantine stay behind. A file already there with
    the same size is skipped, one of another size replaced; nothing is deleted."""
    old = LandingZone(tmp_path / "old")
    landed = [old.put("sales", "a.csv", DATA), old.put("sales", "2024/b.csv", SAME_SIZE)]
    old.put("sales", ".hidden.csv", DATA)
    old.put("sales", "c.csv.part", DATA)
    (tmp_path / "outside.csv").write_bytes(DATA)
    (old.local_dir("landing") / "sales" / "link.csv").symlink_to(tmp_path / "outside.csv")
    unsafe = old.local_dir("landing") / "bad name"
    unsafe.mkdir()
    (unsafe / "x.csv").write_bytes(DATA)
    sha = hashlib.sha256(DATA).hexdigest()
    src = tmp_path / "bad.csv"
    src.write_bytes(DATA)
    copy = old.quarantine_copy("sales", sha, src)
    quarantine = [copy, old.write_reason(copy, {"sha256": sha, "quarantined_copy": copy})]
    strangers = old.local_dir("quarantine") / "sales"
    (strangers / "notes.txt").write_text("mine")
    (strangers / "sub").mkdir()
    (strangers / "sub" / copy.rsplit("/", 1)[1]).write_bytes(DATA)

    assert copy_landing_zone(old, zone) == {
        "landing": {"copied": 2, "skipped": 0},
        "quarantine": {"copied": 2, "skipped": 0},
    }
    assert [f.relpath for f in zone.files("sales")] == sorted(landed)
    assert source_folders(zone) == ["sales"] and source_folders(zone, "quarantine") == ["sales"]
    assert quarantine_files(zone, "sales") == [(q, stored_size(old, q)) for q in sorted(quarantine)]
    assert zone.reason_files() == [quarantine[1]]
    assert zone.read_text(copy) == DATA.decode()
    for relpath in landed:
        assert zone.sha256("sales", relpath) == old.sha256("sales", relpath)
    if zone.is_local:  # the sensor's cursor stays valid: same size and mtime
        assert [(f.size, f.mtime_ns) for f in zone.files("sales")] == [
            (f.size, f.mtime_ns) for f in old.files("sales")
        ]
    for relpath in ("landing/sales/.hidden.csv", "landing/sales/c.csv.part"):
        assert stored_size(zone, relpath) is None
    for relpath in ("landing/bad name/x.csv", "quarantine/sales/notes.txt", "../x.csv"):
        with pytest.raises(ValueError):
            stored_size(zone, relpath)

    zone.put("sales", "a.csv", DATA + b"S2,Ost\n")  # not what the old zone has
    assert copy_landing_zone(old, zone) == {
        "landing": {"copied": 1, "skipped": 1},
        "quarantine": {"copied": 0, "skipped": 2},
    }
    assert zone.sha256("sales", landed[0]) == sha
    assert sorted(f.relpath for f in old.files("sales")) == sorted(landed)  # all still there
