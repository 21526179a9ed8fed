"""Where model artifacts live: a small key -> bytes store behind one interface.

Keys are ``/``-separated relative paths such as ``Nord/0003/model.txt``. Every segment is
either a safe key (:func:`mlops_assets.naming.is_safe_key`: ``Nord``, ``0003``) or a simple
file name made of a safe key and one text extension (``model.txt``, ``model.json``; also
``jsonl``, ``csv``, ``yaml``, ``yml``, ``md``) or ``parquet``. Anything
else (``..``, absolute paths, empty segments, backslashes, hidden names) is refused with a
``ValueError`` before any file is touched, so a key can never point outside the store.

Artifacts are text (LightGBM models in their text format, JSON) or Parquet tables (the
monitoring reference): data formats whose readers run no code from the file. They are
never pickled, because loading a pickle runs code chosen by whoever wrote the file.
``put`` refuses bytes that are not UTF-8 text, or under a ``.parquet`` key not a Parquet
file (its magic number at both ends), which also refuses every binary pickle.

:class:`LocalModelStore` keeps files below a local folder, written atomically (temp file +
``os.replace``), so a reader sees the previous artifact or the new one, never half a file.
A writer killed in between leaves a hidden ``*.partial.tmp`` file
(:func:`mlops_assets.workspace.is_temp_name`); :meth:`ModelStore.sweep_temp` removes them
(the registry calls it under its lock, when no write of that region can be in flight).
Object storage (S3/GCS/any ``fsspec`` URL) is ``storage.object_store.FsspecModelStore``
behind the same interface; nothing outside these modules knows where the bytes are kept.
"""

from __future__ import annotations

import contextlib
import os
import re
from abc import ABC, abstractmethod
from pathlib import Path

from mlops_assets.naming import is_safe_key
from mlops_assets.workspace import atomic_write_bytes, is_temp_name

# a safe key plus one text or Parquet extension: "model.txt", "reference.parquet" (never
# ".pkl")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(txt|json|jsonl|csv|yaml|yml|md|parquet)")
_PARQUET_MAGIC = b"PAR1"


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid store key; raise ``ValueError`` saying why otherwise."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"store key must be a non-empty string, got {key!r}")
    if "\\" in key:
        raise ValueError(f"store key {key!r} holds a backslash; use '/' between segments")
    if key.startswith("/"):
        raise ValueError(f"store key {key!r} is absolute; keys are relative to the store")
    for segment in key.split("/"):
        if not segment:
            raise ValueError(f"store key {key!r} has an empty segment")
        if segment in (".", ".."):
            raise ValueError(f"store key {key!r} holds {segment!r}; keys cannot leave the store")
        if not (is_safe_key(segment) or _FILE_NAME.fullmatch(segment)):
            raise ValueError(
                f"store key {key!r}: segment {segment!r} is neither a safe key "
                "(letters, digits, '_', '-') nor a simple text or Parquet file name like "
                "'model.txt', 'model.json' or 'reference.parquet'"
            )
    return key


def check_artifact(key: str, data: bytes) -> bytes:
    """Refuse anything that is not UTF-8 text, or under a ``.parquet`` key not a Parquet
    file (pickles in particular)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"artifact {key!r} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if key.endswith(".parquet"):
        if len(data) < 8 or not (data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC)):
            raise ValueError(f"artifact {key!r} is not a Parquet file")
        return data
    if data[:1] == b"\x80":
        raise ValueError(f"artifact {key!r} looks like a pickle; only text/JSON is stored")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"artifact {key!r} is not UTF-8 text; only text/JSON artifacts are stored"
        ) from exc
    return data


class ModelStore(ABC):
    """Key -> bytes storage for model artifacts (text, JSON, Parquet)."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (replacing it atomically); return its URI."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; ``FileNotFoundError`` if there are none."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove what is stored under ``key``; whether there was something."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Bytes stored under ``key``, 0 if there are none."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where ``key`` is (or would be) stored, as a URI (``file://``, later ``s3://``)."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Every key stored below the folder ``prefix`` (``Nord``), sorted: how the
        registry finds artifacts no committed version owns."""

    @abstractmethod
    def folders(self) -> list[str]:
        """The top-level folders (regions) in the store, sorted: where the registry looks
        for artifacts of a region that never got a committed version."""

    @abstractmethod
    def sweep_temp(self, prefix: str) -> list[str]:
        """Remove what interrupted ``put`` calls left below ``prefix`` and return where
        it was. Only safe while no ``put`` below ``prefix`` is running; a store whose
        writes are atomic by themselves (object storage) has nothing to sweep."""


class LocalModelStore(ModelStore):
    """Artifacts as files below ``root`` (created on the first ``put``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalModelStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        data = check_artifact(key, data)
        path.parent.mkdir(parents=True, exist_ok=True)
        # a symlinked folder below root must not carry the write elsewhere
        if not path.parent.resolve().is_relative_to(self.root):
            raise ValueError(f"store key {key!r} resolves outside {self.root}")
        atomic_write_bytes(path, data)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"no artifact {key!r} in {self!r}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):  # the version's folder, once it is empty
            path.parent.rmdir()
        return True

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return 0

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _walk(self, prefix: str) -> list[Path]:
        """Files below the folder ``prefix``, not following symlinks out of the store."""
        base = self._path(prefix)
        if not base.is_dir() or not base.resolve().is_relative_to(self.root):
            return []
        return sorted(Path(folder) / name for folder, _, names in os.walk(base) for name in names)

    def keys(self, prefix: str) -> list[str]:
        out = []
        for path in self._walk(prefix):
            key = path.relative_to(self.root).as_posix()
            with contextlib.suppress(ValueError):  # temp files and strangers are no keys
                out.append(check_key(key))
        return out

    def folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.is_symlink())

    def sweep_temp(self, prefix: str) -> list[str]:
        swept = []
        for path in self._walk(prefix):
            if is_temp_name(path.name):
                path.unlink(missing_ok=True)
                swept.append(str(path))
                with contextlib.suppress(OSError):  # a folder only the leftover was in
                    path.parent.rmdir()
        return swept
