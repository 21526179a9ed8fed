"""The model registry's tables in the state database, and the one-time import of the
file-based registry that came before them.

``registry_versions``
    one row per version: status, created_at, actor, when its artifacts were pruned, and
    the immutable rest of its record as JSON (reasons, artifact URIs and checksums, the
    caller's record). A partial unique index allows one ``approved`` row per region, so
    the database itself refuses two approved versions, whatever the code does.
``registry_events``
    the audit log: one row per registration and status change (``seq`` counts per
    region), written in the same transaction as the change it records.
``registry_regions``
    one row per region, locked (``SELECT ... FOR UPDATE``) by every mutation of that
    region, so concurrent registrations and approvals of a region queue (SQLite's
    ``BEGIN IMMEDIATE`` serialises all writers anyway).

Workspaces written before these tables kept ``registry/<region>/events.jsonl`` (the log,
whose replay gave the statuses) and ``registry/<region>/versions/<NNNN>.json``; the first
process that opens the registry imports them once, in one transaction, and leaves the
files where they are (``import_registry_files``; ``mlops-assets migrate-state`` runs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.naming import is_safe_key
from mlops_assets.storage.database import ensure_tables, run_once
from mlops_assets.storage.manifest import STATE

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table
    from sqlalchemy.engine import Engine

    from mlops_assets.registry.versions import ModelVersion

FILES_IMPORTED = "registry_files_imported"
APPROVED = "approved"
ARCHIVED = "archived"


def _tables() -> tuple[Table, Table, Table]:
    from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text

    meta = MetaData()
    versions = Table(
        "registry_versions",
        meta,
        Column("region", String(200), primary_key=True),
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("status", String(20), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("pruned_at", String(40)),
        Column("body", Text, nullable=False),
    )
    Index(
        "registry_one_approved_per_region",
        versions.c.region,
        unique=True,
        sqlite_where=versions.c.status == APPROVED,
        postgresql_where=versions.c.status == APPROVED,
    )
    events = Table(
        "registry_events",
        meta,
        Column("region", String(200), primary_key=True),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("at", String(40), nullable=False),
        Column("actor", String(200), nullable=False),
        Column("action", String(20), nullable=False),
        Column("version", Integer, nullable=False),
        Column("from_status", String(20)),
        Column("to_status", String(20), nullable=False),
        Column("reason", Text, nullable=False),
    )
    regions = Table("registry_regions", meta, Column("region", String(200), primary_key=True))
    return versions, events, regions


VERSIONS, EVENTS, REGIONS = _tables()
EVENT_FIELDS = ("at", "actor", "action", "version", "from_status", "to_status", "reason")


def ensure_registry_tables(engine: Engine) -> None:
    ensure_tables(engine, STATE.metadata)
    ensure_tables(engine, VERSIONS.metadata)


def import_registry_files(engine: Engine, root: Path) -> dict[str, int]:
    """Import the file-based registry below ``root`` once; return the rows added per table
    (all 0 once imported). Safe from several processes at once: the first transaction
    imports, the others find the marker it set."""
    ensure_registry_tables(engine)
    return run_once(engine, FILES_IMPORTED, lambda con: _import_registry(con, root)) or {
        "registry_versions": 0,
        "registry_events": 0,
    }


def _import_registry(con: Connection, root: Path) -> dict[str, int]:
    from sqlalchemy import insert, select

    added = {"registry_versions": 0, "registry_events": 0}
    region_dirs = sorted(p for p in root.iterdir() if is_safe_key(p.name)) if root.is_dir() else []
    for region_dir in region_dirs:
        log = region_dir / "events.jsonl"
        if not log.is_file():
            continue
        region = region_dir.name
        if con.execute(select(VERSIONS.c.version).where(VERSIONS.c.region == region)).first():
            continue  # registered in the database already: nothing of its files is newer
        events = parse_log(log.read_bytes(), log)
        statuses, pruned = log_replay(events), log_pruned_at(events)
        for seq, event in enumerate(events, start=1):
            con.execute(insert(EVENTS).values(region=region, seq=seq, **_event_row(event)))
        added["registry_events"] += len(events)
        registered = {int(e["version"]): e for e in events if e.get("action") == "register"}
        # the archived versions first: the index never sees two approved rows
        for version in sorted(statuses, key=lambda v: statuses[v] == APPROVED):
            record = _version_file(region_dir, version)
            first = registered.get(version, {})
            con.execute(
                insert(VERSIONS).values(
                    region=region,
                    version=version,
                    status=statuses[version],
                    created_at=record.get("created_at", first.get("at", "")),
                    actor=record.get("actor", first.get("actor", "")),
                    pruned_at=pruned.get(version),
                    body=json.dumps(
                        {k: record[k] for k in BODY_FIELDS if k in record}, sort_keys=True
                    ),
                )
            )
            added["registry_versions"] += 1
    return added


BODY_FIELDS = ("reasons", "artifacts", "checksums", "record")


def _version_file(region_dir: Path, version: int) -> dict[str, Any]:
    """The old per-version record; empty if it is missing (the version is imported all the
    same, and ``verify`` reports its record as missing)."""
    path = region_dir / "versions" / f"{version:04d}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    row = {name: event.get(name) for name in EVENT_FIELDS}
    row["version"] = int(row["version"])
    row["reason"] = row["reason"] or ""
    return row


def parse_log(raw: bytes, path: Path) -> list[dict[str, Any]]:
    """Complete lines of an old ``events.jsonl``; a last line without a newline was cut
    by a crash and never committed."""
    from mlops_assets.registry.versions import RegistryError

    events = []
    for number, line in enumerate(raw.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path} line {number} is not valid JSON: {exc}") from exc
    return events


def log_replay(events: list[dict[str, Any]]) -> dict[int, str]:
    """Version -> status after an old log's events; approving one archives the other."""
    statuses: dict[int, str] = {}
    for event in events:
        version, to_status = int(event["version"]), event["to_status"]
        if to_status == APPROVED:
            for other, status in statuses.items():
                if status == APPROVED and other != version:
                    statuses[other] = ARCHIVED
        statuses[version] = to_status
    return statuses


def log_pruned_at(events: list[dict[str, Any]]) -> dict[int, str]:
    """Version -> when its artifacts were pruned, from an old log's ``prune`` lines."""
    return {int(e["version"]): e["at"] for e in events if e.get("action") == "prune"}


# -------------------------------------------------------------------- reads


def select_versions(con: Connection, region: str, *where: Any) -> list[ModelVersion]:
    from sqlalchemy import select

    V = VERSIONS
    rows = con.execute(
        select(V).where(V.c.region == region, *where).order_by(V.c.version)
    ).mappings()
    return [model_version(row) for row in rows]


def model_version(row: Any) -> ModelVersion:
    """A ``registry_versions`` row as a ModelVersion (its JSON body holds the record)."""
    from mlops_assets.registry.versions import ModelVersion

    columns = {k: row[k] for k in ("region", "version", "status", "created_at", "actor")}
    return ModelVersion.from_dict({**json.loads(row["body"]), **columns})


def select_version(con: Connection, region: str, version: int) -> ModelVersion:
    """One version; ``RegistryError`` naming the versions there are if it does not exist."""
    from mlops_assets.registry.versions import require_exists

    V = VERSIONS
    found = select_versions(con, region, V.c.version == version)
    if not found:
        require_exists(region, version, select_statuses(con, region))
    return found[0]


def select_statuses(con: Connection, region: str) -> dict[int, str]:
    from sqlalchemy import select

    V = VERSIONS
    rows = con.execute(select(V.c.version, V.c.status).where(V.c.region == region))
    return {int(v): s for v, s in rows}


def select_pruned(con: Connection, region: str) -> dict[int, str]:
    from sqlalchemy import select

    V = VERSIONS
    rows = con.execute(
        select(V.c.version, V.c.pruned_at).where(V.c.region == region, V.c.pruned_at.is_not(None))
    )
    return {int(v): at for v, at in rows}


def insert_ignore(con: Connection, table: Any, values: dict[str, Any]) -> Any:
    """INSERT that does nothing when the row exists (SQLite and PostgreSQL)."""
    if con.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**values).on_conflict_do_nothing()
