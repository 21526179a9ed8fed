"""Where everything lives on disk: one root folder per environment.

Layout (all below ``root``)::

    landing/<source>/...           files dropped by data engineers (never modified or deleted)
    quarantine/<source>/<sha>__<name>        copy of a rejected file
    quarantine/<source>/<sha>__<name>.reason.json   why it was rejected (machine-readable)
    state/mlops.sqlite             the state database (ingestion manifest, model registry,
                                   notification feed, alerting state, tuning studies), unless
                                   ``database_url`` names another (see ``storage``)
    state/mlops.sqlite.locks/      ``flock`` files: one tuning run per region (SQLite only)
    manifest/<sha>.json            per-file manifest records of older workspaces (imported
                                   into the state database once, then unused)
    raw/<source>/<sha>.parquet     a validated file, normalised to canonical columns
    features/<region_key>.parquet  the conditioned feature table of one region
    forecasts/<region_key>/<origin>.forecast.parquet   one file per forecast origin
    monitoring/<region_key>/       realized performance, drift tables, HTML report
    monitoring/_fleet/             cross-region alerts
    tuning/<region_key>.journal    a region's optuna studies in older workspaces (copied
                                   into the state database once, then unused)
    registry/, models/             model registry state and artifacts

The data tables (raw, features, forecasts, monitoring) are in the data store ``ws.data``,
the landing zone and the quarantine in ``ws.landing_zone`` and the model artifacts in the
model store: below ``storage_root`` when one is set (every worker host reads the same),
else below ``root`` as above.

Every writer writes whole files under names derived from content hashes or sanitised
partition keys, then renames them into place, so runs for different regions (or on
different machines sharing the folder) never contend for a lock and a re-run replaces
its own output.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.naming import require_safe_key

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from mlops_assets.storage.data_store import DataStore
    from mlops_assets.storage.landing_zone import LandingZone

_HEX = frozenset("0123456789abcdef")
# the data store's folders (``ws.data``)
RAW_FOLDER = "raw"
FEATURES_FOLDER = "features"
FORECASTS_FOLDER = "forecasts"
MONITORING_FOLDER = "monitoring"
FLEET_FOLDER = "_fleet"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _no_features(region_key: str) -> FileNotFoundError:
    return FileNotFoundError(f"no features for region {region_key!r}: materialize `features` first")


def read_like_features(read: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``read()``, a Parquet read, as the feature table is read (``Workspace.read_features``):
    text as Arrow-backed strings, column labels as every other frame has them (a read with
    ``future.infer_string`` labels them with Arrow strings)."""
    import pandas as pd

    with pd.option_context("future.infer_string", True):
        frame = read()
    frame.columns = frame.columns.astype(object)
    return frame


@dataclass(frozen=True)
class Workspace:
    """Paths below one root folder. Creating the object touches nothing on disk."""

    root: Path
    database_url: str | None = None  # the state database; None: SQLite below the root
    # shared storage for what every worker host reads (the model artifacts, see
    # ``storage.object_store``; raw, features, forecasts and monitoring tables,
    # ``storage.data_store``); None: below the root
    storage_root: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @property
    def landing_zone(self) -> LandingZone:
        """Where landing files are dropped and rejected ones quarantined: below
        ``storage_root`` when one is set (the ingest step may run on another host than the
        sensor that saw the file), else below the workspace folder."""
        from mlops_assets.storage.landing_zone import LandingZone

        return LandingZone(self.storage_root or self.root)

    @property
    def landing(self) -> Path:
        """The landing folder on this machine (a local landing zone only)."""
        return self.landing_zone.local_dir("landing")

    def landing_dir(self, source: str) -> Path:
        """A source's landing folder on this machine (a local landing zone only)."""
        return self.landing / require_safe_key(source)

    def quarantine_dir(self, source: str) -> Path:
        """A source's quarantine folder on this machine (a local landing zone only)."""
        return self.landing_zone.local_dir("quarantine") / require_safe_key(source)

    @property
    def state_database_url(self) -> str:
        """SQLAlchemy URL of the state database (see ``mlops_assets.storage``)."""
        return self.database_url or f"sqlite:///{self.root / 'state' / 'mlops.sqlite'}"

    @property
    def manifest_dir(self) -> Path:
        """Where older workspaces kept one JSON manifest record per file (imported into
        the state database the first time it is opened)."""
        return self.root / "manifest"

    def raw_folder(self, source: str) -> str:
        """The data store's folder of a source's ingested files: ``raw/<source>``."""
        return f"{RAW_FOLDER}/{require_safe_key(source)}"

    def raw_key(self, source: str, sha256: str) -> str:
        """An ingested file in the data store: ``raw/<source>/<sha256>.parquet``."""
        return f"{self.raw_folder(source)}/{_check_sha(sha256)}.parquet"

    def raw_dir(self, source: str) -> Path:
        """A source's ingested files on this machine (a local data store only)."""
        return self.data.local_dir(self.raw_folder(source))

    def raw_path(self, source: str, sha256: str) -> Path:
        """An ingested file on this machine (a local data store only)."""
        return self.data.local_path(self.raw_key(source, sha256))

    @property
    def data(self) -> DataStore:
        """Where the data tables live (raw, features, forecasts, monitoring): below
        ``storage_root`` when one is set (shared by every worker host), else below the
        workspace folder."""
        from mlops_assets.storage.data_store import DataStore

        return DataStore(self.storage_root or self.root)

    def features_key(self, region_key: str) -> str:
        """The data store's key of a region's feature table: ``features/<region>.parquet``."""
        return f"{FEATURES_FOLDER}/{require_safe_key(region_key)}.parquet"

    def read_features(self, region_key: str, **read_kwargs: Any) -> pd.DataFrame:
        """A region's feature table, its text columns (region, store, item, categoricals) as
        Arrow-backed strings: a Python ``str`` per cell was about half of a feature table's
        memory, an Arrow string takes a few bytes. They compare, group and join like
        ``str``; a missing value reads as NaN, not None (monitoring gives the saved
        reference these dtypes: ``training.like_dtypes``). ``FileNotFoundError`` before the
        ``features`` asset wrote it (one round trip: no separate existence check).
        ``read_kwargs`` (``columns``, ``filters``) go to ``pandas.read_parquet``: a step that
        needs a few columns or rows of a large table reads only those into pandas."""
        key = self.features_key(region_key)
        try:
            return read_like_features(lambda: self.data.read_parquet(key, **read_kwargs))
        except FileNotFoundError:
            raise _no_features(region_key) from None

    @contextlib.contextmanager
    def features_version(self, region_key: str) -> Iterator[Callable[..., pd.DataFrame]]:
        """One version of a region's feature table for several reads: yields
        ``read(**read_kwargs)``, which reads as ``read_features`` does, and a ``features``
        run that replaces the table between two reads is not seen by the second (a step
        that reads the keys first and then some rows pairs them from one table). Remotely
        the table is fetched whole once: for one read, ``read_features`` reads less."""

        key = self.features_key(region_key)
        with contextlib.ExitStack() as stack:
            try:  # only the opening: the caller's own errors pass through unchanged
                table = stack.enter_context(self.data.parquet_version(key))
            except FileNotFoundError:
                raise _no_features(region_key) from None

            def read(**read_kwargs: Any) -> pd.DataFrame:
                return read_like_features(lambda: table(**read_kwargs))

            yield read

    def features_path(self, region_key: str) -> Path:
        """A region's feature table on this machine (a local data store only)."""
        return self.data.local_path(self.features_key(region_key))

    def forecasts_folder(self, region_key: str) -> str:
        """The data store's folder of a region's forecasts: ``forecasts/<region>``."""
        return f"{FORECASTS_FOLDER}/{require_safe_key(region_key)}"

    def forecast_key(self, region_key: str, origin: str, kind: str = "forecast") -> str:
        """``forecasts/<region>/<origin>.<kind>.parquet`` in the data store; one file per
        origin is kept."""
        if not _DATE.fullmatch(origin) or kind not in ("forecast", "explanations"):
            raise ValueError(f"bad forecast file request: {origin!r} {kind!r}")
        return f"{self.forecasts_folder(region_key)}/{origin}.{kind}.parquet"

    def forecast_path(self, region_key: str, origin: str, kind: str = "forecast") -> Path:
        """A forecast file on this machine (a local data store only)."""
        return self.data.local_path(self.forecast_key(region_key, origin, kind))

    def monitoring_folder(self, region_key: str) -> str:
        """A region's monitoring folder in the data store: ``monitoring/<region>``."""
        return f"{MONITORING_FOLDER}/{require_safe_key(region_key)}"

    def monitoring_key(self, region_key: str, name: str) -> str:
        """A region's monitoring output in the data store: ``monitoring/<region>/<name>``
        (realized performance, drift tables, the HTML report)."""
        return f"{self.monitoring_folder(region_key)}/{name}"

    def fleet_monitoring_key(self, name: str) -> str:
        """Cross-region monitoring output (alerts over every region) in the data store:
        ``monitoring/_fleet/<name>`` (no region key starts with ``_``)."""
        return f"{MONITORING_FOLDER}/{FLEET_FOLDER}/{name}"

    def study_path(self, region_key: str) -> Path:
        """Where older workspaces kept a region's optuna studies (a journal file),
        ``tuning/<region>.journal``: copied into the state database by ``migrate-state``
        or the region's next tuning run, never written since
        (``storage.tuning_studies.study_storage``)."""
        return self.root / "tuning" / f"{require_safe_key(region_key)}.journal"

    @property
    def notifications_feed(self) -> Path:
        """Where workspaces from before the state database kept the notification feed
        (imported once, then unused; ``mlops_assets.storage.notification_tables``)."""
        return self.root / "notifications.jsonl"

    @property
    def registry_dir(self) -> Path:
        """Where workspaces from before the state database kept the model registry
        (``<region_key>/events.jsonl`` and ``versions/<NNNN>.json``); imported once into
        the state database (``mlops_assets.storage.registry_tables``)."""
        return self.root / "registry"

    @property
    def models_dir(self) -> Path:
        """Model artifacts of the local model store: ``models/<region_key>/<NNNN>/model.txt``
        and ``model.json`` (see ``mlops_assets.model_store``)."""
        return self.root / "models"


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


# Unfinished atomic writes are named ``.<name>.<random>.<host>-<pid>.partial.tmp``: hidden,
# never a valid store key or a ``*.parquet`` / ``*.json`` a reader globs, and recognisable,
# so whatever a killed writer leaves behind can be found and swept (``is_temp_name``); the
# writer's host and pid say whether it can still be writing (``sweep_stale_temps``).
TEMP_SUFFIX = ".partial.tmp"
# a temp file of a writer this host cannot check (another host) is stale after a day
STALE_TEMP_SECONDS = 24 * 3600.0
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname()) or "host"


def is_temp_name(name: str) -> bool:
    """Whether a file name is an atomic write's temporary file (left behind if the writer
    was killed between creating it and renaming it into place)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and len(name) > len(TEMP_SUFFIX) + 1


def _mkstemp(path: Path) -> tuple[int, str]:
    """An open temporary file next to ``path``, named so ``is_temp_name`` recognises it;
    the stale leftovers of killed writers in its folder are swept first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_folder_if_touched(path.parent)
    return tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".{_HOST}-{os.getpid()}{TEMP_SUFFIX}"
    )


def sweep_stale_temps(path: Path, *, now: float | None = None) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left beside it.

    A temp file is stale when its writer (host and pid in its name) is a process of this
    host that no longer exists, or when it is older than ``STALE_TEMP_SECONDS`` (a writer
    on another host, or a name without a writer). A live writer's file is never touched.
    """
    return _sweep(path.parent, f".{glob.escape(path.name)}.*{TEMP_SUFFIX}", now)


# folder -> its mtime right after this process last renamed a file into it: while it is
# unchanged no other process has created (or left) anything there, so there is nothing to
# sweep. Sweeping on every write listed the whole folder each time (8.3 ms of an 8.6 ms
# write in a folder of 10,000 files: quadratic over an ingest of many files).
_QUIET_FOLDERS: dict[str, int] = {}


def sweep_folder_if_touched(folder: Path) -> list[Path]:
    """Remove every stale temp file in ``folder`` (see ``sweep_stale_temps``) unless the
    folder is as this process's last write left it."""
    key = os.fspath(folder)
    try:
        mtime = os.stat(key).st_mtime_ns
    except FileNotFoundError:
        return []
    if _QUIET_FOLDERS.get(key) == mtime:
        return []
    return _sweep(folder, f".*{TEMP_SUFFIX}", None)


def _replace(tmp: str | Path, path: Path) -> None:
    """``os.replace`` that remembers the folder's state after it (``sweep_folder_if_touched``)."""
    os.replace(tmp, path)
    with contextlib.suppress(FileNotFoundError):
        _QUIET_FOLDERS[os.fspath(path.parent)] = os.stat(path.parent).st_mtime_ns


def _sweep(directory: Path, pattern: str, now: float | None) -> list[Path]:
    now = time.time() if now is None else now
    removed = []
    for tmp in directory.glob(pattern):
        writer = tmp.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        host, _, pid = writer.rpartition("-")
        try:
            if host == _HOST and pid.isdigit():
                stale = not _process_exists(int(pid))
            else:
                stale = now - tmp.stat().st_mtime > STALE_TEMP_SECONDS
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue  # its writer renamed it into place, or another sweep removed it
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never half."""
    fd, tmp = _mkstemp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def temp_path_for(path: Path) -> Path:
    """A sibling temporary path to write into before ``os.replace(tmp, path)``."""
    fd, tmp = _mkstemp(path)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_replace(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; it replaces ``path`` when the block ends
    (readers see the old file or the new one, and two writers never share a temp) and is
    removed when the block raises."""
    tmp = temp_path_for(path)
    try:
        yield tmp
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as Parquet under ``path``, replacing any previous file atomically."""
    with atomic_replace(path) as tmp:
        frame.to_parquet(tmp, index=False)


def copy_to_parquet(con: duckdb.DuckDBPyConnection, sql: str, params: dict, path: Path) -> None:
    """``COPY (sql) TO path`` as Parquet (``params``: the query's parameters)."""
    con.execute(f"COPY ({sql}) TO $p (FORMAT parquet)", {**params, "p": str(path)})


def atomic_copy_to_parquet(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict, path: Path
) -> None:
    """``COPY (sql) TO path`` through a temporary name of its own, then rename."""
    with atomic_replace(path) as tmp:
        copy_to_parquet(con, sql, params, tmp)
