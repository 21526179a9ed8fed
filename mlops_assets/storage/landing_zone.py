"""The landing zone and the quarantine below a local folder or an fsspec URL, so that the
ingest step on one worker host reads the file the sensor on another host saw.

``<root>/landing/<source>/...`` holds the files data engineers drop (only ever read),
``<root>/quarantine/<source>/<sha>__<name>`` the copy of a rejected file with its
``.reason.json``. ``root`` is the storage root (``MLOPS_STORAGE_ROOT``) when one is set,
else the workspace folder. A landing file is named by its ``relpath`` below ``root``
(``landing/<source>/<name>``), as in manifest records, sensor cursors and run configs.

Names come from users: a relpath is checked to be inside its source's landing folder
before it is opened (locally after resolving symlinks; remotely by its segments), and a
quarantine copy's name goes through ``safe_file_name``. Remote listings bypass the
filesystem's cache (another host may have written since) and give whole-second mtimes
(object stores keep no more, and a listing and a ``HEAD`` may round differently), so the
sensor's ``(size, mtime)`` comparison is stable from tick to tick; they also give each
object's ETag, which changes when the object is rewritten, so a file overwritten within
the same second with the same size is still seen as changed.

Moving a zone to another root (``mlops-assets migrate-data``) is ``landing_zone_copy``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_assets.naming import require_safe_key, safe_file_name
from mlops_assets.storage.storage_root import StorageRoot

LANDING = "landing"
QUARANTINE = "quarantine"
REASON_SUFFIX = ".reason.json"
_CHUNK = 1 << 20
_TEMP_SUFFIXES = (".tmp", ".part")


@dataclass(frozen=True)
class LandingFile:
    """A file seen in ``landing/<source>/`` (path relative to the landing zone's root).
    ``etag`` is an object store's entity tag (``""`` locally): whole-second mtimes alone
    miss a same-size rewrite within one second."""

    source: str
    relpath: str
    size: int
    mtime_ns: int
    etag: str = ""


def is_candidate(parts: tuple[str, ...]) -> bool:
    """Whether a file at ``parts`` below a source folder may be ingested: no hidden
    segment, not a ``*.tmp`` / ``*.part`` name still being written."""
    return not any(p.startswith(".") for p in parts) and not parts[-1].lower().endswith(
        _TEMP_SUFFIXES
    )


def stream_sha256(fh: Any) -> str:
    """SHA-256 of what a binary file object yields, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class LandingZone(StorageRoot):
    """``landing/`` and ``quarantine/`` below ``root`` (a folder, or a URL such as
    ``s3://bucket/prefix``)."""

    def location(self, relpath: str = LANDING) -> str:
        """Where ``relpath`` is, for people: a local path or a URL."""
        if self.local_root is not None:
            return str(self.local_root / relpath)
        return f"{self.url}/{relpath}"

    def local_dir(self, folder: str) -> Path:
        """A folder of a local zone on this machine (``landing/<source>``)."""
        if self.local_root is None:
            raise ValueError(f"{self!r} is not on this machine: use its methods for {folder!r}")
        return self.local_root / folder

    def remote_path(self, relpath: str) -> str:
        """The fsspec path of ``relpath`` (remote roots only; checked by the caller)."""
        return f"{self._root_path}/{relpath}"

    # -- landing files ---------------------------------------------------------------------

    def files(self, source: str) -> list[LandingFile]:
        """Every candidate file below ``landing/<source>/``, sorted. Hidden names, files
        in hidden folders, ``*.tmp`` / ``*.part`` (still being written) and, locally,
        symlinks (which could point outside the landing zone) are skipped."""
        folder = f"{LANDING}/{require_safe_key(source)}"
        if self.local_root is not None:
            return self._local_files(source, folder)
        assert self.fs is not None
        base = self.remote_path(folder)
        self.fs.invalidate_cache(base)  # another host may have written since
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            found = {}
        out = []
        for path, info in found.items():
            parts = tuple(path.removeprefix(base + "/").split("/"))
            if info.get("type") != "file" or not path.startswith(base + "/") or "" in parts:
                continue  # a folder marker, or a stranger
            if is_candidate(parts):
                relpath = f"{folder}/{'/'.join(parts)}"
                size = int(info.get("size") or 0)
                mtime_ns = self._mtime_ns(path, info)
                out.append((parts, LandingFile(source, relpath, size, mtime_ns, _etag(info))))
        return [lf for _, lf in sorted(out, key=lambda pair: pair[0])]

    def _local_files(self, source: str, folder: str) -> list[LandingFile]:
        """One ``scandir`` walk: each entry's type comes with the listing and a file is
        stat'ed once (with 10,000 files, pathlib's rglob, sort and three stats a file made
        the landing sensor's tick 0.30 s). Symlinks are neither listed nor followed, hidden
        folders not entered."""
        assert self.local_root is not None
        base = self.local_root / folder
        if not base.is_dir():
            return []
        found: list[tuple[tuple[str, ...], LandingFile]] = []

        def walk(directory: str, parts: tuple[str, ...]) -> None:
            with os.scandir(directory) as entries:
                for entry in entries:
                    here = (*parts, entry.name)
                    if entry.is_symlink() or entry.name.startswith("."):
                        continue  # a hidden folder's files are never candidates
                    if entry.is_dir(follow_symlinks=False):
                        walk(entry.path, here)
                    elif entry.is_file(follow_symlinks=False) and is_candidate(here):
                        st = entry.stat(follow_symlinks=False)
                        relpath = "/".join((folder, *here))
                        lf = LandingFile(source, relpath, st.st_size, st.st_mtime_ns)
                        found.append((here, lf))

        walk(str(base), ())
        return [lf for _, lf in sorted(found, key=lambda pair: pair[0])]

    def _mtime_ns(self, path: str, info: dict[str, Any]) -> int:
        """Whole seconds since the epoch, in nanoseconds: what every object store keeps."""
        assert self.fs is not None
        value = next(
            (info[k] for k in ("LastModified", "mtime", "updated", "created") if info.get(k)),
            None,
        )
        if value is None:
            value = self.fs.modified(path)
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        seconds = value.timestamp() if isinstance(value, datetime) else float(value)
        return int(seconds) * 1_000_000_000

    def check(self, source: str, relpath: str) -> str:
        """``relpath`` if it names a file inside ``landing/<source>/``; ``ValueError``
        otherwise (``..``, an absolute path, another source, locally a symlink out)."""
        if self.local_root is not None:
            self._checked_local(source, relpath)
            return relpath
        folder, refused = self._folder_and_refusal(source, relpath)
        parts = relpath.split("/")
        if parts[:2] != folder.split("/") or len(parts) < 3:
            raise refused
        if any(p in ("", ".", "..") for p in parts):
            raise refused
        return relpath

    def local_path(self, source: str, relpath: str) -> Path:
        """The checked file of a local zone on this machine (symlinks resolved)."""
        if self.local_root is None:
            self.check(source, relpath)
            raise ValueError(f"{self!r} is not on this machine: open {relpath!r} by its relpath")
        return self._checked_local(source, relpath)

    def _folder_and_refusal(self, source: str, relpath: str) -> tuple[str, ValueError]:
        folder = f"{LANDING}/{require_safe_key(source)}"
        refused = ValueError(f"{relpath!r} is not inside the {source!r} landing folder")
        if not isinstance(relpath, str) or "\x00" in relpath:
            raise refused
        return folder, refused

    def _checked_local(self, source: str, relpath: str) -> Path:
        """``relpath`` resolved (symlinks followed) if it stays inside the source's
        folder. A zone resolves each folder once: a sensor tick checks thousands of files."""
        assert self.local_root is not None
        folder, refused = self._folder_and_refusal(source, relpath)
        folders: dict[str, Path] = self.__dict__.setdefault("_resolved_folders", {})
        if folder not in folders:
            folders[folder] = (self.local_root / folder).resolve()
        path = (self.local_root / relpath).resolve()
        if folders[folder] not in path.parents:
            raise refused
        return path

    def sha256(self, source: str, relpath: str) -> str:
        """SHA-256 of a landing file's bytes, streamed."""
        with self.open(source, relpath) as fh:
            return stream_sha256(fh)

    @contextlib.contextmanager
    def open(self, source: str, relpath: str) -> Iterator[Any]:
        """A landing file open for reading in binary mode."""
        if self.local_root is not None:
            with open(self.local_path(source, relpath), "rb") as fh:
                yield fh
            return
        assert self.fs is not None
        path = self.remote_path(self.check(source, relpath))
        self.fs.invalidate_cache(path)
        with self.fs.open(path, "rb") as fh:
            yield fh

    @contextlib.contextmanager
    def local_copy(self, source: str, relpath: str) -> Iterator[Path]:
        """A landing file as a path on this machine, for readers that need one (DuckDB's
        CSV reader): the file itself locally; remotely a download under the same name in
        a temporary folder of the system's, removed afterwards (validators read the name)."""
        if self.local_root is not None:
            yield self.local_path(source, relpath)
            return
        with self.download(self.check(source, relpath)) as target:
            yield target

    @contextlib.contextmanager
    def download(self, relpath: str) -> Iterator[Path]:
        """A remote file (relpath checked by the caller) downloaded under the same name to
        a temporary folder of the system's, removed afterwards."""
        assert self.fs is not None
        path = self.remote_path(relpath)
        self.fs.invalidate_cache(path)
        with tempfile.TemporaryDirectory(prefix="mlops-landing-") as tmp:
            target = Path(tmp) / _local_name(relpath.rsplit("/", 1)[-1])
            self.fs.get_file(path, str(target))
            yield target

    def put(self, source: str, name: str, data: bytes | Path) -> str:
        """Drop ``data`` (bytes, or a local file's content) as ``landing/<source>/<name>``
        (``name`` may hold subfolders); its relpath. Locally it is written under a hidden
        ``.part`` name and renamed into place, so a scan never sees half a file; an object
        store creates the object whole."""
        if any(p in ("", ".", "..") for p in name.split("/")):
            raise ValueError(f"{name!r} is not a file name below a landing folder")
        relpath = self.check(source, f"{LANDING}/{require_safe_key(source)}/{name}")
        return self.put_whole(relpath, data)

    # -- quarantine ------------------------------------------------------------------------

    def quarantine_copy(self, source: str, sha256: str, src: Path) -> str:
        """Copy the rejected file ``src`` (on this machine: what was validated) to
        ``quarantine/<source>/<sha[:16]>__<safe name>``; the copy's relpath."""
        name = f"{sha256[:16]}__{safe_file_name(src.name)}"
        return self.put_whole(f"{QUARANTINE}/{require_safe_key(source)}/{name}", src)

    def put_whole(self, relpath: str, data: bytes | Path) -> str:
        """Write ``data`` (bytes, or a local file's content) to ``relpath`` (checked by the
        caller) whole: locally under a hidden ``.part`` name renamed into place, so a scan
        never sees half a file; on an object store as one object. ``relpath``."""
        if self.local_root is not None:
            target = self.local_root / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            if isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                tmp.write_bytes(data)
            os.replace(tmp, target)
            return relpath
        assert self.fs is not None
        remote = self.remote_path(relpath)
        if isinstance(data, Path):
            self.fs.put_file(str(data), remote)
        else:
            self.fs.pipe_file(remote, data)
        self.fs.invalidate_cache(remote)
        return relpath

    def write_reason(self, copy_relpath: str, reason: dict[str, Any]) -> str:
        """Write ``<copy>.reason.json`` beside a quarantine copy (whole or not at all);
        its relpath."""
        relpath = copy_relpath + REASON_SUFFIX
        if not relpath.startswith(f"{QUARANTINE}/") or ".." in relpath.split("/"):
            raise ValueError(f"{copy_relpath!r} is not a quarantine copy")
        if self.local_root is not None:
            from mlops_assets.workspace import atomic_write_json

            atomic_write_json(self.local_root / relpath, reason)
            return relpath
        assert self.fs is not None
        data = json.dumps(reason, indent=2, sort_keys=True, default=str).encode()
        self.fs.pipe_file(self.remote_path(relpath), data)
        self.fs.invalidate_cache(self.remote_path(relpath))
        return relpath

    def reason_files(self) -> list[str]:
        """The relpaths of every ``quarantine/**/*.reason.json``, sorted (locally also a
        folder of that name: reading it fails, as an unreadable record should)."""
        if self.local_root is not None:
            base = self.local_root / QUARANTINE
            return [
                str(p.relative_to(self.local_root)) for p in sorted(base.rglob("*" + REASON_SUFFIX))
            ]
        assert self.fs is not None
        base = self.remote_path(QUARANTINE)
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            found = []
        prefix = self._root_path + "/"
        return sorted(p.removeprefix(prefix) for p in found if p.endswith(REASON_SUFFIX))

    def read_text(self, relpath: str) -> str:
        """A quarantine file's text (UTF-8); ``OSError`` if unreadable."""
        if relpath.split("/")[0] != QUARANTINE or ".." in relpath.split("/"):
            raise ValueError(f"{relpath!r} is not in the quarantine")
        if self.local_root is not None:
            return (self.local_root / relpath).read_text(encoding="utf-8")
        assert self.fs is not None
        return self.fs.cat_file(self.remote_path(relpath)).decode("utf-8")


def _etag(info: dict[str, Any]) -> str:
    """The entity tag of a listed object (S3's ``ETag``, ``etag`` elsewhere), unquoted;
    ``""`` when the filesystem gives none."""
    return str(info.get("ETag") or info.get("etag") or "").strip('"')


def _local_name(name: str) -> str:
    """``name`` as a local file name: kept unless too long for a file system (255 bytes),
    then cut, keeping its suffix (the validator reads the type from it)."""
    if len(name.encode()) <= 255:
        return name
    suffix = PurePosixPath(name).suffix[:16]
    return name[: 60 - len(suffix)] + suffix
