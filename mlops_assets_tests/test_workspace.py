"""Atomic writes: a killed writer's temporary file is swept, a live writer's never."""

import os
import subprocess
import sys
import time
from pathlib import Path

from mlops_assets import workspace
from mlops_assets.workspace import (
    STALE_TEMP_SECONDS,
    atomic_write_bytes,
    is_temp_name,
    sweep_stale_temps,
    temp_path_for,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_names_carry_their_writer_and_are_recognised(tmp_path: Path) -> None:
    tmp = temp_path_for(tmp_path / "r.parquet")
    assert is_temp_name(tmp.name)
    assert tmp.name.startswith(".r.parquet.")
    assert tmp.name.endswith(f".{workspace._HOST}-{os.getpid()}.partial.tmp")


def test_a_dead_writers_temp_is_swept_a_live_writers_kept(tmp_path: Path) -> None:
    target = tmp_path / "r.parquet"
    dead = tmp_path / f".r.parquet.abc.{workspace._HOST}-{_dead_pid()}.partial.tmp"
    live = tmp_path / f".r.parquet.def.{workspace._HOST}-{os.getpid()}.partial.tmp"
    other_target = tmp_path / f".s.parquet.abc.{workspace._HOST}-{_dead_pid()}.partial.tmp"
    for p in (dead, live, other_target):
        p.write_bytes(b"half a file")
    assert sweep_stale_temps(target) == [dead]
    assert live.exists() and other_target.exists()


def test_a_writer_on_another_host_is_given_a_day(tmp_path: Path) -> None:
    target = tmp_path / "r.parquet"
    young = tmp_path / ".r.parquet.abc.otherhost-1.partial.tmp"
    old = tmp_path / ".r.parquet.def.otherhost-2.partial.tmp"
    for p in (young, old):
        p.write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - STALE_TEMP_SECONDS - 60, now - STALE_TEMP_SECONDS - 60))
    assert sweep_stale_temps(target, now=now) == [old]
    assert young.exists()


def test_the_next_write_of_a_file_sweeps_what_a_killed_write_left(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    leftover = tmp_path / f".manifest.json.x1.{workspace._HOST}-{_dead_pid()}.partial.tmp"
    leftover.write_bytes(b"{")
    atomic_write_bytes(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_a_leftover_another_process_left_after_our_last_write_is_swept_by_the_next(
    tmp_path: Path,
) -> None:
    atomic_write_bytes(tmp_path / "a.json", b"1")
    time.sleep(0.01)  # a later folder mtime than our write, as a real writer's would be
    leftover = tmp_path / f".b.json.x1.{workspace._HOST}-{_dead_pid()}.partial.tmp"
    leftover.write_bytes(b"{")
    atomic_write_bytes(tmp_path / "a.json", b"2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_writes_into_a_folder_only_this_process_touched_do_not_list_it_again(
    tmp_path: Path, monkeypatch
) -> None:
    listed = []
    real_sweep = workspace._sweep
    monkeypatch.setattr(
        workspace, "_sweep", lambda folder, *a: listed.append(folder) or real_sweep(folder, *a)
    )
    for i in range(5):
        atomic_write_bytes(tmp_path / f"{i}.json", b"{}")
    assert listed == [tmp_path]  # the first write only
