"""Copy a workspace's state database into another one: a dev workspace's SQLite file into
the prod profile's PostgreSQL (``mlops-assets migrate-state --to URL``).

Every table of the project (the ingestion manifest, the model registry, the notification
feed, failure groups and alerting state, ``state_meta``) is created in the target as the
code creates it, then copied in one transaction per table, read from one snapshot of the
source; the tuning studies are copied with ``optuna.copy_study``
(:func:`~mlops_assets.storage.tuning_studies.copy_database_studies`).

Idempotent, and never overwrites: a source row whose primary key the target has with the
same values is counted as there; one the target has with other values, or whose unique
key (a file's hash, a region's one approved version) another row of the target holds,
is left out and reported, and the target's row is kept. A second copy adds nothing. A
region's registry (its versions and their audit log) is copied whole or not at all: not
when the target holds a version of it that differs from the source's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_assets.storage.database import engine_for, ensure_tables, reading

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table
    from sqlalchemy.engine import URL, Engine

    from mlops_assets.storage.tuning_studies import JournalMigration

CHUNK = 500  # source rows compared with the target per query
BY_REGION = ("registry_versions", "registry_events")  # a region's registry: all or nothing
SHOWN_CONFLICTS = 3  # per table, in the report


class StateCopyError(RuntimeError):
    """The copy cannot start: a bad or unreachable database, or source and target are one."""


@dataclass
class TableCopy:
    """What the copy did to one table."""

    table: str
    copied: int = 0  # rows inserted into the target
    present: int = 0  # rows the target had already, with the same values
    conflicts: list[str] = field(default_factory=list)  # rows left out: their key and why


@dataclass
class StateCopy:
    """What :func:`copy_state` did."""

    target: str  # the target's URL, password hidden
    tables: list[TableCopy]
    studies: JournalMigration

    @property
    def complete(self) -> bool:
        """Whether the target now holds everything of the source."""
        return not self.studies.skipped and not any(t.conflicts for t in self.tables)

    def lines(self) -> list[str]:
        """The report: counts per table, then what was not copied and why."""
        counts = [f"{t.table} +{t.copied}" for t in self.tables]
        counts.append(f"tuning_studies +{self.studies.copied}")
        there = sum(t.present for t in self.tables)
        lines = [
            f"copied to {self.target}: " + ", ".join(counts),
            f"already there: {there} row(s), {self.studies.present} tuning study(ies)",
        ]
        for t in self.tables:
            lines += [f"not copied: {t.table} {c}" for c in t.conflicts[:SHOWN_CONFLICTS]]
            if len(t.conflicts) > SHOWN_CONFLICTS:
                more = len(t.conflicts) - SHOWN_CONFLICTS
                lines.append(f"not copied: {more} more row(s) of {t.table}")
        lines += [f"not copied: {reason}" for reason in self.studies.skipped]
        if not self.complete:
            lines.append("the target's rows were kept; resolve the rows above and run it again")
        return lines


def project_tables() -> list[Table]:
    """Every table of the project's state, in the order they are copied."""
    from mlops_assets.storage.manifest import FILES
    from mlops_assets.storage.notification_tables import NOTIFICATIONS
    from mlops_assets.storage.registry_tables import VERSIONS

    metadatas = (FILES.metadata, VERSIONS.metadata, NOTIFICATIONS.metadata)
    return [table for meta in metadatas for table in meta.sorted_tables]


def check_target(source_url: str, target_url: str) -> None:
    """Refuse a target that is not a database URL, cannot be reached, or is the source."""
    source, target = _engine(source_url, "source"), _engine(target_url, "target")
    _reach(source, "source")
    _reach(target, "target")
    if same_database(source, target):
        raise StateCopyError(
            f"the target {_where(target.url)} is the workspace's state database itself "
            "(is MLOPS_DATABASE_URL set to it? unset it to copy the workspace's SQLite file)"
        )


def copy_state(source_url: str, target_url: str) -> StateCopy:
    """Copy the state database at ``source_url`` into the one at ``target_url``."""
    from sqlalchemy import inspect

    from mlops_assets.storage.tuning_studies import copy_database_studies

    check_target(source_url, target_url)
    source, target = engine_for(source_url), engine_for(target_url)
    tables = project_tables()
    for meta in {id(t.metadata): t.metadata for t in tables}.values():
        ensure_tables(target, meta)
    copies = []
    with reading(source) as rows_of:  # one snapshot of the source for every table
        present = set(inspect(rows_of).get_table_names())
        held = _held_regions(rows_of, target) if "registry_versions" in present else {}
        for table in tables:
            if table.name not in present:  # the workspace never used it
                copies.append(TableCopy(table.name))
                continue
            copy = _copy_table(rows_of, target, table, held if table.name in BY_REGION else {})
            if table.name == "registry_versions":
                copy.conflicts += [f"region {r!r}: {why}" for r, why in held.items()]
            copies.append(copy)
    studies = copy_database_studies(source_url, target_url)
    return StateCopy(_where(target.url), copies, studies)


def same_database(source: Engine, target: Engine) -> bool:
    """Whether two engines reach one database, however their URLs are spelled."""
    a, b = source.url, target.url
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        paths = [u.database for u in (a, b)]
        if any(p in (None, "", ":memory:") for p in paths):
            return False
        if all(os.path.exists(p) for p in paths):
            return os.path.samefile(*paths)
        return os.path.realpath(paths[0]) == os.path.realpath(paths[1])
    if a.get_backend_name() == "postgresql":
        return _same_postgres(source, target)
    return (a.host, a.port, a.database) == (b.host, b.port, b.database)


def _same_postgres(source: Engine, target: Engine) -> bool:
    """Advisory locks belong to one database: a lock the source holds under a random key
    cannot be taken through the target only if both are that database (whatever the
    host names, ports or users in the URLs)."""
    import secrets

    from sqlalchemy import text

    key = secrets.randbits(63)
    with source.connect() as held, target.connect() as probe:
        held.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            free = probe.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if free:
                probe.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        finally:
            held.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    return not free


def _held_regions(rows_of: Connection, target: Engine) -> dict[str, str]:
    """Regions whose registry is not copied, and why: the target has a version of them
    with other values than the source's (registered or approved there, or changed in the
    source since an earlier copy). Merging two histories would leave an audit log telling
    of versions the region does not have, or two approved versions."""
    from sqlalchemy import select

    from mlops_assets.storage.registry_tables import VERSIONS

    query = select(VERSIONS).order_by(VERSIONS.c.region, VERSIONS.c.version)
    with reading(target) as con:
        theirs = [dict(row) for row in con.execute(query).mappings()]
    if not theirs:
        return {}
    ours = {_key(VERSIONS, dict(row)): dict(row) for row in rows_of.execute(query).mappings()}
    held: dict[str, str] = {}
    for row in theirs:
        mine = ours.get(_key(VERSIONS, row))
        if mine is not None and mine != row and row["region"] not in held:
            held[row["region"]] = (
                f"the target's v{row['version']} ({row['status']}) differs from the source's; "
                "none of the region's versions and events copied"
            )
    return held


def _copy_table(
    rows_of: Connection, target: Engine, table: Table, held: dict[str, str]
) -> TableCopy:
    """Copy the rows of ``table`` the target lacks, in one transaction of the target; rows
    of the ``held`` regions are left out (reported once per region by the caller)."""
    from sqlalchemy import select

    result = TableCopy(table.name)
    key = list(table.primary_key.columns)
    query = select(table).order_by(*key)
    with target.begin() as con:
        chunks = rows_of.execute(query, execution_options={"yield_per": CHUNK})
        for chunk in chunks.mappings().partitions():
            rows = [dict(row) for row in chunk if not held or row["region"] not in held]
            if not rows:
                continue
            theirs = _target_rows(con, table, [_key(table, row) for row in rows])
            new = []
            for row in rows:
                there = theirs.get(_key(table, row))
                if there is None:
                    new.append(row)
                elif there == row:
                    result.present += 1
                else:
                    result.conflicts.append(
                        f"{_key(table, row)}: the target has another row with this key"
                    )
            _insert(con, table, new, result)
        _advance_sequence(con, table)
    return result


def _key(table: Table, row: dict[str, Any]) -> tuple:
    return tuple(row[c.name] for c in table.primary_key.columns)


def _target_rows(con: Connection, table: Table, keys: list[tuple]) -> dict[tuple, dict]:
    from sqlalchemy import select, tuple_

    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        where = columns[0].in_([k[0] for k in keys])
    else:
        where = tuple_(*columns).in_(keys)
    rows = con.execute(select(table).where(where)).mappings()
    return {_key(table, dict(row)): dict(row) for row in rows}


def _insert(con: Connection, table: Table, rows: list[dict], result: TableCopy) -> None:
    """Insert ``rows`` at once; if the target refuses that (a unique key another of its
    rows holds, such as a region's approved version), each alone, reporting the refused."""
    from sqlalchemy import insert
    from sqlalchemy.exc import DataError, IntegrityError

    if not rows:
        return
    try:
        with con.begin_nested():
            con.execute(insert(table), rows)
        result.copied += len(rows)
        return
    except (IntegrityError, DataError):
        pass
    for row in rows:
        try:
            with con.begin_nested():
                con.execute(insert(table).values(**row))
            result.copied += 1
        except (IntegrityError, DataError) as exc:
            why = _first_line(exc.orig) if exc.orig is not None else type(exc).__name__
            result.conflicts.append(f"{_key(table, row)}: refused by the target ({why})")


def _advance_sequence(con: Connection, table: Table) -> None:
    """PostgreSQL numbers new rows (a manifest record's ``seq``, a notification's ``id``)
    from a sequence that copied rows, inserted with their numbers, do not advance: move it
    past them, never back (a number once used stays used: ``seq`` orders the records)."""
    from sqlalchemy import Integer, func, select, text

    key = list(table.primary_key.columns)
    if con.dialect.name != "postgresql" or len(key) != 1 or not isinstance(key[0].type, Integer):
        return
    sequence = con.execute(
        text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": key[0].name}
    ).scalar()
    if sequence is None:
        return
    last, called = con.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
    top = con.execute(select(func.max(key[0]))).scalar() or 0
    if top > (last if called else last - 1):
        con.execute(text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": sequence, "v": top})


def _engine(url: str, role: str) -> Engine:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url)
        return engine_for(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        # the message of a URL that does not parse may quote it, password and all
        raise StateCopyError(f"the {role} is not a database URL ({type(exc).__name__})") from None
    except ImportError as exc:  # postgresql:// means psycopg (3) to SQLAlchemy 2.1
        raise StateCopyError(
            f"the {role}'s database driver is not installed ({exc}); "
            "name one that is, e.g. postgresql+psycopg2://"
        ) from None


def _reach(engine: Engine, role: str) -> None:
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        why = _first_line(exc.orig) if exc.orig is not None else type(exc).__name__
        if engine.url.password:
            why = why.replace(str(engine.url.password), "***")
        raise StateCopyError(f"cannot reach the {role} {_where(engine.url)}: {why}") from None


def _where(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
