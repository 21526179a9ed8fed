"""A landing zone's files and quarantine copied to another root (``mlops-assets
migrate-data``), so that nothing ingested, pending or quarantined stays only in the old
zone. Files keep their relpaths: manifest records, quarantine records and the landing
sensor's cursor name files by relpath, so they hold in the new zone too."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from mlops_assets.naming import is_safe_key, require_safe_key
from mlops_assets.storage.landing_zone import LANDING, QUARANTINE, LandingZone

# what ``quarantine_copy`` names a copy (``<sha[:16]>__<safe name>``) and ``write_reason``
# its record (``+ .reason.json``)
QUARANTINE_NAME = re.compile(r"[0-9a-f]{16}__[A-Za-z0-9_-][A-Za-z0-9._-]*")


def copy_landing_zone(source: LandingZone, target: LandingZone) -> dict[str, dict[str, int]]:
    """Copy every landing file (what ``files`` lists) and every quarantine file (copies
    and reason records) of ``source`` to the same relpaths in ``target``. A file already
    there with the same size is left alone; nothing is deleted; each copy is written whole
    and its size checked afterwards. A local target keeps each landing file's mtime, so
    the landing sensor's cursor stays valid there (on an object store the sensor hashes
    each file once more and finds it in the manifest). Returns the files copied and
    skipped, per ``landing`` and ``quarantine``."""
    counts = {top: {"copied": 0, "skipped": 0} for top in (LANDING, QUARANTINE)}
    found: list[tuple[str, int, int | None]] = [
        (lf.relpath, lf.size, lf.mtime_ns)
        for name in source_folders(source, LANDING)
        for lf in source.files(name)
    ]
    found += [
        (relpath, size, None)
        for name in source_folders(source, QUARANTINE)
        for relpath, size in quarantine_files(source, name)
    ]
    for relpath, size, mtime_ns in found:
        count = counts[relpath.split("/", 1)[0]]
        if stored_size(target, relpath) == size:  # no read of what is already there
            count["skipped"] += 1
            continue
        with _stored_copy(source, relpath) as path:
            copied = path.stat()
            _put_stored(target, relpath, path)
        if stored_size(target, relpath) != copied.st_size:
            raise OSError(f"{relpath}: {target!r} holds a different size after the copy")
        if mtime_ns is not None and target.local_root is not None:  # a landing file
            mtime_ns = copied.st_mtime_ns if source.is_local else mtime_ns
            os.utime(target.local_root / relpath, ns=(mtime_ns, mtime_ns))
        count["copied"] += 1
    return counts


def source_folders(zone: LandingZone, top: str = LANDING) -> list[str]:
    """The sources with a folder below ``landing/`` (or ``quarantine/``), sorted; only
    names that are safe keys (no other folder is ever scanned or written)."""
    if top not in (LANDING, QUARANTINE):
        raise ValueError(f"{top!r} is neither {LANDING!r} nor {QUARANTINE!r}")
    if zone.local_root is not None:
        base = zone.local_root / top
        names = [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    else:
        names = [name for name, kind, _ in _entries(zone, top) if kind == "directory"]
    return sorted(n for n in names if is_safe_key(n))


def quarantine_files(zone: LandingZone, source: str) -> list[tuple[str, int]]:
    """``(relpath, size)`` of each file in ``quarantine/<source>/`` named as
    ``quarantine_copy`` and ``write_reason`` name them (copies and reason records),
    sorted; locally never a symlink."""
    folder = f"{QUARANTINE}/{require_safe_key(source)}"
    if zone.local_root is not None:
        base = zone.local_root / folder
        paths = list(base.iterdir()) if base.is_dir() else []
        found = [(p.name, p.stat().st_size) for p in paths if p.is_file() and not p.is_symlink()]
    else:
        found = [(name, size) for name, kind, size in _entries(zone, folder) if kind == "file"]
    return sorted(
        (f"{folder}/{name}", size) for name, size in found if QUARANTINE_NAME.fullmatch(name)
    )


def stored_size(zone: LandingZone, relpath: str) -> int | None:
    """The size of a landing or quarantine file in bytes; None when there is none."""
    relpath = _check_stored(zone, relpath)
    if zone.local_root is not None:
        path = zone.local_root / relpath
        return path.stat().st_size if path.is_file() else None
    assert zone.fs is not None
    path = zone.remote_path(relpath)
    zone.fs.invalidate_cache(path)
    try:
        return int(zone.fs.size(path))
    except FileNotFoundError:
        return None


def _entries(zone: LandingZone, folder: str) -> list[tuple[str, str, int]]:
    """``(name, type, size)`` of what is directly in a remote folder (uncached)."""
    assert zone.fs is not None
    base = zone.remote_path(folder)
    zone.fs.invalidate_cache(base)
    try:
        entries = zone.fs.ls(base, detail=True)
    except FileNotFoundError:
        return []
    return [
        (e["name"].rstrip("/").rsplit("/", 1)[-1], e.get("type", ""), int(e.get("size") or 0))
        for e in entries
    ]


def _check_stored(zone: LandingZone, relpath: str) -> str:
    """``relpath`` if it names a landing file (``check``) or a quarantine file named as
    the quarantine names them; ``ValueError`` otherwise."""
    parts = relpath.split("/") if isinstance(relpath, str) else []
    if parts[:1] == [LANDING] and len(parts) >= 3:
        return zone.check(parts[1], relpath)
    if (
        len(parts) == 3
        and parts[0] == QUARANTINE
        and is_safe_key(parts[1])
        and QUARANTINE_NAME.fullmatch(parts[2])
    ):
        return relpath
    raise ValueError(f"{relpath!r} is neither a landing file nor a quarantine file")


@contextlib.contextmanager
def _stored_copy(zone: LandingZone, relpath: str) -> Iterator[Path]:
    """A landing or quarantine file as a path on this machine (``local_copy``)."""
    relpath = _check_stored(zone, relpath)
    if relpath.startswith(f"{LANDING}/"):
        with zone.local_copy(relpath.split("/")[1], relpath) as path:
            yield path
    elif zone.local_root is not None:
        yield zone.local_root / relpath
    else:
        with zone.download(relpath) as path:
            yield path


def _put_stored(zone: LandingZone, relpath: str, src: Path) -> str:
    """Copy the local file ``src`` to the landing or quarantine file ``relpath``, whole
    (as ``put`` writes); its relpath."""
    relpath = _check_stored(zone, relpath)
    _, source, name = relpath.split("/", 2)
    if relpath.startswith(f"{LANDING}/"):
        return zone.put(source, name, src)
    return zone.put_whole(relpath, src)
