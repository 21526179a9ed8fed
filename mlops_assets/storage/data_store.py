"""The workspace's data tables (Parquet files) below a local folder or an fsspec URL, so
that a step on one worker host reads what a step on another wrote.

``storage_root`` (``MLOPS_STORAGE_ROOT``) names the shared root, as for the model artifacts
(``storage.object_store``); without it the tables stay below the workspace folder. Files
are named by relative keys (``features/<region>.parquet``) checked by ``check_key`` (safe
folder names, then a table file name), so a name from data never reaches a path or a SQL
string unchecked.

Locally a table is written to a temporary name and renamed into place (readers see the
old file or the new one). On object storage an object is written whole or not at all,
so the same holds without a rename. A table written by a query goes to a file on this
machine first (``staged``: checked there, then renamed into place or uploaded whole).
DuckDB reads remote tables through the fsspec filesystem registered on its connection
(``attach``): DuckDB's own httpfs extension would be downloaded at run time, which an
offline host cannot do.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.naming import is_safe_key
from mlops_assets.storage.storage_root import StorageRoot

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

# a table's file name: a safe stem, dots allowed inside (``2026-01-05.forecast``)
_TABLE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.(parquet|json|html|png|svg)")


def check_key(key: str, *, folder: bool = False) -> str:
    """Return ``key`` if it names a file (or with ``folder``, a folder) below the store:
    folders that are safe keys, then a table file name; raise ``ValueError`` otherwise."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"data key must be a non-empty string, got {key!r}")
    segments = key.split("/")
    folders, name = (segments, None) if folder else (segments[:-1], segments[-1])
    # a leading "_" marks the platform's own folders (``_fleet``): no region key has one
    if any(not is_safe_key(f.removeprefix("_")) for f in folders):
        raise ValueError(
            f"data key {key!r}: folders must be safe keys (letters, digits, '_', '-'), "
            "relative to the store"
        )
    if name is not None and not _TABLE_FILE.fullmatch(name):
        raise ValueError(f"data key {key!r}: {name!r} is not a table file name like x.parquet")
    return key


@dataclass(frozen=True)
class StoredTable:
    """One table of a store: where a writer that knows no workspace puts its output."""

    store: DataStore
    key: str

    def write_query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> str:
        """``COPY (sql) TO`` this table (replaced whole) from ``con``; its location."""
        self.store.attach(con)
        return self.store.copy_query(con, sql, params, self.key)


class DataStore(StorageRoot):
    """Parquet tables below ``root`` (a folder, or a URL such as ``s3://bucket/prefix``)."""

    def location(self, key: str) -> str:
        """What readers open (pandas, DuckDB on an ``attach``-ed connection): a local path
        or the object's URL."""
        key = check_key(key)
        if self.local_root is not None:
            return str(self.local_root / key)
        return f"{self.url}/{key}"

    def local_path(self, key: str) -> Path:
        """The file of ``key`` on this machine; only for a local store."""
        if self.local_root is None:
            raise ValueError(f"{self!r} is not on this machine: read {key!r} by its location")
        return self.local_root / check_key(key)

    def local_dir(self, folder: str) -> Path:
        """The folder ``folder`` on this machine; only for a local store."""
        if self.local_root is None:
            raise ValueError(f"{self!r} is not on this machine: list {folder!r} by its keys")
        return self.local_root / check_key(folder, folder=True)

    def modified_ns(self, key: str) -> int:
        """When the file was last written, in nanoseconds since the epoch (object stores
        keep whole seconds)."""
        if self.local_root is not None:
            return self.local_path(key).stat().st_mtime_ns
        assert self.fs is not None
        self.fs.invalidate_cache(self._remote(key))
        return int(self.fs.modified(self._remote(key)).timestamp() * 1e9)

    def _remote(self, key: str) -> str:
        return f"{self._root_path}/{check_key(key)}"

    def exists(self, key: str) -> bool:
        if self.local_root is not None:
            return (self.local_root / check_key(key)).is_file()
        assert self.fs is not None
        path = self._remote(key)
        self.fs.invalidate_cache(path)  # another host may have written it since
        return bool(self.fs.isfile(path))

    def keys(self, folder: str, suffix: str = ".parquet") -> list[str]:
        """The keys of the files directly in ``folder`` ending in ``suffix``, sorted; never a
        temporary file of an unfinished local write."""
        from mlops_assets.workspace import is_temp_name

        folder = check_key(folder, folder=True)
        if self.local_root is not None:
            directory = self.local_root / folder
            names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
        else:
            assert self.fs is not None
            base = f"{self._root_path}/{folder}"
            self.fs.invalidate_cache(base)
            try:
                entries = self.fs.ls(base, detail=True)
            except FileNotFoundError:
                entries = []
            names = [
                e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "file"
            ]
        return sorted(f"{folder}/{n}" for n in names if n.endswith(suffix) and not is_temp_name(n))

    def all_keys(self, folder: str) -> list[str]:
        """Every table below ``folder``, at any depth, sorted (what ``check_key`` accepts:
        never a temporary file of an unfinished write)."""
        folder = check_key(folder, folder=True)
        if self.local_root is not None:
            base = self.local_root / folder
            found = [p.relative_to(self.local_root).as_posix() for p in base.rglob("*")]
        else:
            assert self.fs is not None
            self.fs.invalidate_cache(f"{self._root_path}/{folder}")
            try:
                paths = self.fs.find(f"{self._root_path}/{folder}")
            except FileNotFoundError:
                paths = []
            found = [p.removeprefix(self._root_path + "/") for p in paths]
        out = []
        for key in found:
            with contextlib.suppress(ValueError):  # folders, temporaries, strangers
                out.append(check_key(key))
        return sorted(out)

    def read_parquet(self, key: str, **kwargs: Any) -> pd.DataFrame:
        """The table ``key``; ``FileNotFoundError`` when there is none (one round trip:
        no separate existence check)."""
        import pandas as pd

        try:
            if self.local_root is not None:
                frame = pd.read_parquet(self.local_path(key), **kwargs)
            else:
                assert self.fs is not None
                path = self._remote(key)
                self.fs.invalidate_cache(path)  # another host may have written it since
                with self.fs.open(path, "rb") as fh:
                    frame = pd.read_parquet(fh, **kwargs)
        except FileNotFoundError:
            raise FileNotFoundError(f"no table {key!r} in {self!r}") from None
        release_arrow_memory()
        return frame

    @contextlib.contextmanager
    def parquet_version(self, key: str) -> Iterator[Callable[..., pd.DataFrame]]:
        """One version of the table ``key`` for several reads: yields ``read(**kwargs)``
        (``columns``, ``filters``, as ``read_parquet`` takes them), and a writer that
        replaces the table between two reads is not seen by the second. Locally the reads
        share one open file (a rename replaces the name, not the open file); remotely the
        object is fetched once. ``FileNotFoundError`` when there is none."""
        import io

        import pandas as pd

        try:
            if self.local_root is not None:
                handle: Any = open(self.local_path(key), "rb")  # noqa: SIM115 (closed below)
            else:
                assert self.fs is not None
                path = self._remote(key)
                self.fs.invalidate_cache(path)  # another host may have written it since
                handle = io.BytesIO(self.fs.cat_file(path))
        except FileNotFoundError:
            raise FileNotFoundError(f"no table {key!r} in {self!r}") from None

        def read(**kwargs: Any) -> pd.DataFrame:
            handle.seek(0)
            frame = pd.read_parquet(handle, **kwargs)
            release_arrow_memory()
            return frame

        with handle:
            yield read

    def read_parquet_or(self, key: str, default: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        """The table ``key``, or ``default`` before anything wrote it."""
        try:
            return self.read_parquet(key, **kwargs)
        except FileNotFoundError:
            return default

    def read_bytes(self, key: str) -> bytes:
        if self.local_root is not None:
            return self.local_path(key).read_bytes()
        assert self.fs is not None
        try:
            return self.fs.cat_file(self._remote(key))
        except FileNotFoundError:
            raise FileNotFoundError(f"no file {key!r} in {self!r}") from None

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` as the file ``key`` (replacing it whole; an HTML report); its
        location."""
        if self.local_root is not None:
            from mlops_assets.workspace import atomic_write_bytes

            atomic_write_bytes(self.local_path(key), data)
        else:
            assert self.fs is not None
            self.fs.pipe_file(self._remote(key), data)
            self.fs.invalidate_cache(self._remote(key))
        return self.location(key)

    def size(self, key: str) -> int | None:
        """The file's size in bytes; None when there is none."""
        if self.local_root is not None:
            path = self.local_path(key)
            return path.stat().st_size if path.is_file() else None
        assert self.fs is not None
        self.fs.invalidate_cache(self._remote(key))
        try:
            return int(self.fs.size(self._remote(key)))
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> bool:
        """Remove the file ``key``; whether there was one (another process may have
        removed it first)."""
        if self.local_root is not None:
            try:
                self.local_path(key).unlink()
            except FileNotFoundError:
                return False
            return True
        assert self.fs is not None
        try:
            self.fs.rm_file(self._remote(key))
        except FileNotFoundError:
            return False
        finally:
            self.fs.invalidate_cache(self._remote(key))
        return True

    def write_frame(self, frame: pd.DataFrame, key: str) -> str:
        """Write ``frame`` as the table ``key`` (replacing it whole); its location."""
        if self.local_root is not None:
            from mlops_assets.workspace import atomic_parquet

            atomic_parquet(frame, self.local_path(key))
        else:
            import io

            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            self.write_bytes(key, buffer.getvalue())
        return self.location(key)

    def copy_query(
        self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], key: str
    ) -> str:
        """``COPY (sql) TO`` the table ``key`` (replacing it whole) from any connection; its
        location."""
        from mlops_assets.workspace import copy_to_parquet

        with self.staged(key) as path:
            copy_to_parquet(con, sql, params, path)
        return self.location(key)

    @contextlib.contextmanager
    def staged(self, key: str) -> Iterator[Path]:
        """A file on this machine to write the table ``key`` into and read back (checks, a
        summary) before it replaces the table when the block ends: renamed into place
        locally, uploaded whole to an object store (one request, where every query of the
        table there would read it again over the network). Nothing is replaced when the
        block raises."""
        if self.local_root is not None:
            from mlops_assets.workspace import atomic_replace

            with atomic_replace(self.local_path(key)) as tmp:
                yield tmp
            return
        import tempfile

        assert self.fs is not None
        remote = self._remote(key)
        with tempfile.TemporaryDirectory(prefix="mlops-staged-") as folder:
            tmp = Path(folder) / Path(key).name
            yield tmp
            self.fs.put_file(str(tmp), remote)
            self.fs.invalidate_cache(remote)

    def attach(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """Let ``con`` read and write this store's locations; a no-op for a local store."""
        if self.fs is not None:
            # never fetch an extension (httpfs would be downloaded for s3://)
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            protocol = self.fs.protocol
            name = protocol if isinstance(protocol, str) else protocol[0]
            if name not in con.list_filesystems():  # a connection registers a name once
                con.register_filesystem(self.fs)
        return con


DATA_FOLDERS = ("raw", "features", "forecasts", "monitoring")


def release_arrow_memory() -> None:
    """Give the memory Arrow freed back to the system. Arrow's allocator (mimalloc) keeps
    what a Parquet read used for decoding and converting; memory allocated later (NumPy,
    LightGBM) never reuses it. A 2-million-row feature table (0.59 GB in pandas) left the
    process 1.21 GB larger after its read, 0.63 GB after this."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def copy_tables(source: DataStore, target: DataStore) -> dict[str, int]:
    """Copy every data table of ``source`` to ``target`` (moving a workspace's data below a
    new storage root); a table already there with the same size is left alone, nothing is
    deleted. Returns the tables copied and skipped."""
    copied = skipped = 0
    for folder in DATA_FOLDERS:
        for key in source.all_keys(folder):
            if target.size(key) == source.size(key):  # no read of what is already there
                skipped += 1
                continue
            data = source.read_bytes(key)
            target.write_bytes(key, data)
            if target.size(key) != len(data):
                raise OSError(f"{key}: {target!r} holds a different size after the copy")
            copied += 1
    return {"copied": copied, "skipped": skipped}
