"""The workspace's state database: SQLite in a local workspace, any SQLAlchemy URL
(PostgreSQL in production) by configuration.

Why a database and not files: records that many runs write at once (one per ingested
file, tens of thousands of them) become rows written in one transaction each, read back
with one query instead of one file open per record.

SQLite is opened in WAL mode (readers never wait for the writer) with a busy timeout,
and every transaction that may write starts with ``BEGIN IMMEDIATE``: two processes that
both read and then write queue at the start instead of failing with "database is locked"
when one of them tries to upgrade its read lock. Pure reads (``reading``) start a
deferred transaction and never wait.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData
    from sqlalchemy.engine import Engine

BUSY_TIMEOUT_MS = 60_000
READ_ONLY = "mlops_read_only"  # execution option of reading()
_ENGINES: dict[tuple[int, str], Engine] = {}
_LOCK = threading.Lock()
# what this process knows holds in an engine's database for good (tables created, a
# one-time import done), so it is checked once per engine, not on every use
_SETTLED: dict[int, set[str]] = {}


def is_settled(engine: Engine, fact: str) -> bool:
    return fact in _SETTLED.get(id(engine), ())


def settle(engine: Engine, fact: str) -> None:
    _SETTLED.setdefault(id(engine), set()).add(fact)


def ensure_tables(engine: Engine, metadata: MetaData) -> None:
    """Create ``metadata``'s missing tables, once per engine, metadata and process."""
    fact = "tables:" + ",".join(sorted(metadata.tables))
    if not is_settled(engine, fact):
        with engine.begin() as con:
            # processes starting at once on a new database: one creates, the others wait
            # and find the tables (create_all's own check-then-create races on PostgreSQL)
            serialize(con, "mlops_assets.create_tables")
            metadata.create_all(con)
        settle(engine, fact)


def serialize(con: Connection, name: str) -> None:
    """Make transactions that call this with the same ``name`` run one after another (a
    one-time import that two processes start at once): SQLite's ``BEGIN IMMEDIATE``
    already does; on PostgreSQL a transaction-level advisory lock, released at commit."""
    if con.dialect.name == "postgresql":
        from sqlalchemy import text

        con.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(name)})


def run_once(
    engine: Engine, marker: str, work: Callable[[Connection], dict[str, Any]]
) -> dict[str, Any] | None:
    """Run ``work`` in one transaction unless ``marker`` is recorded (in ``state_meta``), and
    record it with what ``work`` returned in the same transaction; None when it ran before,
    in this process or any other. For one-time imports of an older workspace's files: a
    second process starting at once waits, then finds the marker. The marker is never
    removed, so later opens skip even the check (a write-locking transaction otherwise)."""
    import json

    from sqlalchemy import insert, select

    from mlops_assets.storage.manifest import STATE

    if is_settled(engine, marker):
        return None
    ensure_tables(engine, STATE.metadata)
    with engine.begin() as con:
        serialize(con, marker)
        if con.execute(select(STATE.c.value).where(STATE.c.key == marker)).first():
            result = None
        else:
            result = work(con)
            con.execute(insert(STATE).values(key=marker, value=json.dumps(result)))
    settle(engine, marker)
    return result


def advisory_key(name: str) -> int:
    """PostgreSQL's advisory lock number for ``name`` (a signed 64-bit integer)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite its transaction is deferred, so it reads a
    snapshot while a writer holds the write lock instead of queueing behind it (a
    registration writing megabytes of model text, an ingest recording its files)."""
    with engine.connect() as con:
        yield con.execution_options(**{READ_ONLY: True})


def engine_for(url: str) -> Engine:
    """One engine per URL and process (an engine must not cross a fork)."""
    key = (os.getpid(), url)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _create_engine(url)
    return engine


def dispose_engine(url: str) -> None:
    """Close this process's engine of ``url`` (its pooled connections) and forget it."""
    with _LOCK:
        engine = _ENGINES.pop((os.getpid(), url), None)
    if engine is not None:
        engine.dispose()
        _SETTLED.pop(id(engine), None)


def _create_engine(url: str) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        # let SQLAlchemy's begin event below emit BEGIN itself (pysqlite's own BEGIN is
        # deferred, and a deferred reader that later writes can fail instead of waiting)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        # a reader (read_only) takes a snapshot and never waits for a writer (WAL)
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so: the mode is kept in the file). Switching
    needs the database to itself, and SQLite answers "database is locked" at once, without
    waiting out the busy timeout, when other processes open a new database at the same
    moment: retry until the timeout, so a process opening a fresh workspace never fails
    (or, for the notification feed, drops a record) over it."""
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
