"""Where tuning studies persist: optuna's RDB storage in the state database (SQLite in a
local workspace, PostgreSQL in prod), one region's studies held by one process at a time,
the journal files of older workspaces copied in (``mlops-assets migrate-state``), and the
studies of one state database copied into another (``migrate-state --to``).

Apart from ``mlops_assets.tuning`` so that the migration command loads optuna and
SQLAlchemy only, not LightGBM and pandas.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

from mlops_assets.naming import is_safe_key, require_safe_key
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

JOURNAL_SUFFIX = ".journal"  # older workspaces' studies: tuning/<region>.journal
MIGRATED_ATTR = "mlops_assets:copied_from"  # study system attr: the journal it came from


class TuningError(RuntimeError):
    """Tuning could not produce a result (e.g. no trial completed)."""


class TuningBusyError(TuningError):
    """Another process is tuning the same region right now."""


@contextmanager
def study_storage(workspace: Workspace, region: str) -> Iterator[tuple[BaseStorage, str]]:
    """The region's optuna storage, held by this process alone for the whole run, and
    where it is: optuna's RDB storage in the state database (SQLite in a local workspace,
    PostgreSQL in prod), one code path for both. Holding the region's lock, it first copies
    the region's journal studies of an older workspace (:func:`migrate_journal_studies`)."""
    url = workspace.state_database_url
    region = require_safe_key(region)
    with _region_lock(url, region):
        storage = rdb_storage(url)
        try:
            _migrate_journal(workspace, storage, workspace.study_path(region))
            yield storage, _where(url)
        finally:
            storage.engine.dispose()


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """optuna's RDB storage on the state database at ``url`` (dispose its engine after use).

    On SQLite the engine waits for the write lock as the state database's own does (busy
    timeout) and takes it when a transaction starts to write (``BEGIN IMMEDIATE`` instead
    of pysqlite's deferred ``BEGIN``), so processes tuning other regions, or recording
    files and models, make it wait instead of failing with "database is locked"; reads
    take no lock (WAL mode, set by :func:`~mlops_assets.storage.database.engine_for`).
    Creating the storage (optuna's tables and schema version, checked then created) is
    serialized between processes: several tuning runs starting on a new database at once
    would otherwise race to create the same tables."""
    from mlops_assets.storage.database import BUSY_TIMEOUT_MS, engine_for

    if _is_sqlite(url):
        with engine_for(url).connect():  # creates the folder and switches to WAL
            pass
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": "IMMEDIATE"}
        }
    else:
        kwargs = {"pool_pre_ping": True}
    # not "tuning:<x>": a region's lock (see _region_lock)
    with _named_lock(url, "tuning-storage", wait=True):
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


@dataclass
class JournalMigration:
    """What :func:`migrate_journal_studies` or :func:`copy_database_studies` did."""

    copied: int = 0  # studies copied into the RDB storage
    present: int = 0  # studies copied before
    skipped: list[str] = field(default_factory=list)  # why a journal or study was not copied


def migrate_journal_studies(workspace: Workspace) -> JournalMigration:
    """Copy the studies of an older workspace's journal files (``tuning/<region>.journal``)
    into the RDB storage of the state database with ``optuna.copy_study``: trials with
    their states, parameters, values, intermediate values and attributes. Idempotent: a
    study copied before is not copied again, and a journal unchanged since it was copied
    is not even read; the journal files stay. A region being tuned right now is skipped
    (its run copies its journal itself, holding the region's lock)."""
    journals = sorted((workspace.root / "tuning").glob(f"*{JOURNAL_SUFFIX}"))
    result = JournalMigration()
    if not journals:
        return result
    url = workspace.state_database_url
    with _quiet_storages(url) as (storage,):
        for journal in journals:
            region = journal.name.removesuffix(JOURNAL_SUFFIX)
            try:
                with _region_lock(url, require_safe_key(region)):
                    _migrate_journal(workspace, storage, journal, result)
            except (TuningBusyError, ValueError) as exc:
                result.skipped.append(f"{journal.name}: {exc}")
    return result


def copy_database_studies(source_url: str, target_url: str) -> JournalMigration:
    """Copy the studies of the state database at ``source_url`` into the one at
    ``target_url`` (a dev workspace's SQLite into prod's PostgreSQL) with
    ``optuna.copy_study``, holding each study's region lock in both, as a tuning run would.
    Idempotent: a study the target has with the same trials is left; one whose copy there
    has only the first of them (a copy cut short, or a study tuned further since) is
    copied again whole; one the target has with other trials (tuned there) is reported,
    never replaced. A region being tuned right now is skipped."""
    result = JournalMigration()
    if not _has_studies(source_url):
        return result  # never tuned: no optuna tables to create in the source
    with _quiet_storages(source_url, target_url) as (source, target):
        for name in optuna.get_all_study_names(source):
            region = _study_region(source, name)
            try:
                with _region_locks((source_url, target_url), region):
                    conflict = (
                        f"study {name!r} exists in the target with trials the source does "
                        "not have; not copied"
                    )
                    _copy_study_once(target, source, name, result, conflict, marker=None)
            except TuningBusyError as exc:
                result.skipped.append(f"study {name!r}: {exc}")
    return result


@contextmanager
def _quiet_storages(*urls: str) -> Iterator[tuple[optuna.storages.RDBStorage, ...]]:
    """RDB storages of ``urls`` (disposed afterwards) with optuna logging warnings only:
    not one line per study copied."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storages = tuple(rdb_storage(url) for url in urls)
    try:
        yield storages
    finally:
        for storage in storages:
            storage.engine.dispose()
        optuna.logging.set_verbosity(verbosity)


def _copy_study_once(
    storage: optuna.storages.RDBStorage,
    source: BaseStorage,
    name: str,
    result: JournalMigration,
    conflict: str,
    marker: tuple[str, str] | None,
) -> bool:
    """Copy study ``name`` from ``source`` into ``storage`` unless it was copied before
    (``_copied_before``; ``marker``: the system attr and value a finished copy gets, None
    for none), counting the outcome in ``result``. False when ``storage`` has a study of
    that name with other trials: ``conflict`` is reported, the study never replaced."""
    done = _copied_before(storage, source, name, marker=marker[0] if marker else None)
    if done is None:
        result.skipped.append(conflict)
        return False
    if done:
        result.present += 1
        return True
    optuna.copy_study(from_study_name=name, from_storage=source, to_storage=storage)
    if marker is not None:
        storage.set_study_system_attr(storage.get_study_id_from_name(name), *marker)
    result.copied += 1
    return True


def _has_studies(url: str) -> bool:
    from sqlalchemy import inspect

    from mlops_assets.storage.database import engine_for, reading

    with reading(engine_for(url)) as con:
        return inspect(con).has_table("studies")


def _study_region(storage: BaseStorage, name: str) -> str | None:
    """The region a study of ``tune_region`` belongs to (its context, else its name
    ``<spec>.<region>.<digest>``); None for a study of another origin (no lock then)."""
    context = storage.get_study_user_attrs(storage.get_study_id_from_name(name)).get("context")
    region = context.get("region") if isinstance(context, dict) else None
    parts = name.split(".")
    if region is None and len(parts) == 3:
        region = parts[1]
    return region if isinstance(region, str) and is_safe_key(region) else None


@contextmanager
def _region_locks(urls: tuple[str, ...], region: str | None) -> Iterator[None]:
    with ExitStack() as stack:
        for url in urls if region is not None else ():
            stack.enter_context(_region_lock(url, region))
        yield


def _migrate_journal(
    workspace: Workspace,
    storage: optuna.storages.RDBStorage,
    journal: Path,
    result: JournalMigration | None = None,
) -> None:
    """Copy one journal's studies not copied yet (the caller holds the region's lock). The
    journal's size and mtime are recorded once all its studies are in, so later runs skip
    it with one query; an older version still tuning this region (its ``.owner`` flock)
    makes the copy wait for another time (:class:`TuningBusyError`)."""
    result = result if result is not None else JournalMigration()
    if not journal.is_file():
        return
    from mlops_assets.storage.database import engine_for

    engine = engine_for(workspace.state_database_url)
    key = f"tuning.journal:{journal.name}"
    stat = journal.stat()
    seen = json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if _state_value(engine, key) == seen:
        return
    owner = journal.with_name(journal.name + ".owner")
    with owner.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise TuningBusyError(
                f"an older version is tuning with this journal (lock {owner})"
            ) from exc
        # read only: a last line cut by a crash is ignored by optuna's reader
        source = JournalStorage(JournalFileBackend(str(journal)))
        marker = (MIGRATED_ATTR, journal.name)
        complete = [
            _copy_study_once(
                storage,
                source,
                name,
                result,
                f"{journal.name}: study {name!r} exists in the state database with trials "
                "the journal does not have; not copied",
                marker,
            )
            for name in optuna.get_all_study_names(source)
        ]
    if all(complete):
        _set_state_value(engine, key, seen)


def _copied_before(
    storage: optuna.storages.RDBStorage,
    source: BaseStorage,
    name: str,
    marker: str | None,
) -> bool | None:
    """True when study ``name`` was copied before, False when it is to be copied (absent,
    or a copy cut short: ``copy_study`` adds trials one by one, and marks the study copied
    only at the end, so a cut copy has a prefix of the source's trials and is deleted),
    None when the database has a study of that name that is no such prefix. ``marker``:
    the system attr a finished copy carries (a journal's); None: a copy is finished when it
    has all the source's trials (a database's copy, whose attrs are the source's own)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    if marker is not None and marker in storage.get_study_system_attrs(study_id):
        return True
    ours = storage.get_all_trials(study_id, deepcopy=False)
    theirs = source.get_all_trials(source.get_study_id_from_name(name), deepcopy=False)
    if len(ours) > len(theirs) or any(
        (a.number, a.state, a.values, a.params) != (b.number, b.state, b.values, b.params)
        for a, b in zip(ours, theirs, strict=False)
    ):
        return None
    if marker is None and len(ours) == len(theirs):
        return True
    storage.delete_study(study_id)
    return False


def _state_value(engine: Engine, key: str) -> str | None:
    from sqlalchemy import select

    from mlops_assets.storage.database import ensure_tables, reading
    from mlops_assets.storage.manifest import STATE

    ensure_tables(engine, STATE.metadata)
    with reading(engine) as con:
        return con.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar()


def _set_state_value(engine: Engine, key: str, value: str) -> None:
    from sqlalchemy import delete, insert

    from mlops_assets.storage.manifest import STATE

    with engine.begin() as con:
        con.execute(delete(STATE).where(STATE.c.key == key))
        con.execute(insert(STATE).values(key=key, value=value))


def _is_sqlite(url: str) -> bool:
    from sqlalchemy.engine import make_url

    return make_url(url).get_backend_name() == "sqlite"


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _region_lock(url: str, region: str) -> Iterator[None]:
    """One tuning run per region at a time, for the whole run. Holding it, a RUNNING trial
    of the region's studies can only be a dead process's (:func:`_fail_dead_trials`)."""
    with _named_lock(url, f"tuning:{region}", wait=False) as lock:
        if lock is None:
            raise TuningBusyError(f"region {region!r} is being tuned by another process")
        yield


@contextmanager
def _named_lock(url: str, name: str, *, wait: bool) -> Iterator[str | None]:
    """A lock between processes that dies with its holder; yields what it is, or None when
    ``wait`` is False and another process holds it.

    PostgreSQL: a session advisory lock, dropped with the holder's connection (every host
    reaches it). SQLite: an ``flock`` on ``<database>.locks/<name>.lock`` beside the
    database file, dropped by the kernel with the holder's process. A SQLite database is
    only written by processes of one host (SQLite's own locking needs that), so a lock of
    that host is enough; SQLite has no lock of its own that outlives one transaction
    without blocking every other writer of the database."""
    if not _is_sqlite(url):
        with _advisory_lock(url, name, wait=wait) as lock:
            yield lock
        return
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        raise TuningError(f"tuning needs a database file, not {_where(url)}")
    path = Path(database).with_name(Path(database).name + ".locks") / (
        name.replace(":", ".") + ".lock"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        yield f"lock {path}"


@contextmanager
def _advisory_lock(url: str, name: str, *, wait: bool = False) -> Iterator[str | None]:
    """A PostgreSQL session advisory lock on ``mlops_assets.<name>`` (see :func:`_named_lock`)."""
    from sqlalchemy import text

    from mlops_assets.storage.database import advisory_key, engine_for

    key = advisory_key(f"mlops_assets.{name}")
    with engine_for(url).connect() as con:
        con = con.execution_options(isolation_level="AUTOCOMMIT")
        if wait:
            con.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        elif not con.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            yield None
            return
        try:
            yield f"advisory lock {key}"
        finally:
            con.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
