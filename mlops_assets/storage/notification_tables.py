"""The notification feed and the alerting state in the state database, and the one-time
import of the files that held them before.

``notifications``
    the feed: one row per notification (``id`` orders them), details as JSON. Runs on any
    worker append to it in one short transaction each.
``run_failure_groups``
    per failure signature, when it was last posted and how many failures of that kind were
    recorded since without a post (``record_failure``: one transaction, so two sensors
    ticking at once cannot both post the same kind).
``alerting``
    which region x check x model version is alerting now (the monitoring job notifies when
    a key appears, not every week while it stays).

Workspaces from before kept ``notifications.jsonl``, ``run_failure_groups.json`` beside it
and ``monitoring/_fleet/alerting.json``; the first process that opens the feed imports
them once and leaves the files where they are (``import_notification_files``;
``mlops-assets migrate-state`` runs it).
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.storage.database import ensure_tables, reading, run_once, serialize
from mlops_assets.storage.manifest import STATE

if TYPE_CHECKING:
    from sqlalchemy import Connection, Table
    from sqlalchemy.engine import Engine

FILES_IMPORTED = "notification_files_imported"
_log = logging.getLogger(__name__)


def _tables() -> tuple[Table, Table, Table]:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    meta = MetaData()
    notifications = Table(
        "notifications",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", String(40), nullable=False),
        Column("kind", String(40), nullable=False, index=True),
        Column("region", String(200), index=True),
        Column("message", Text, nullable=False),
        Column("details", Text, nullable=False),
    )
    groups = Table(
        "run_failure_groups",
        meta,
        Column("signature", String(2000), primary_key=True),
        Column("posted_at", Float, nullable=False),
        Column("repeats", Integer, nullable=False),
    )
    alerting = Table("alerting", meta, Column("key", String(500), primary_key=True))
    return notifications, groups, alerting


NOTIFICATIONS, FAILURE_GROUPS, ALERTING = _tables()


def ensure_notification_tables(engine: Engine) -> None:
    ensure_tables(engine, STATE.metadata)
    ensure_tables(engine, NOTIFICATIONS.metadata)


def append_notification(engine: Engine, record: dict[str, Any]) -> None:
    """Add one notification (``kind``, ``message``, ``region``, ``details``, ``at``);
    ``details`` must be JSON-serialisable (the Notifier makes sure it is)."""
    from sqlalchemy import insert

    ensure_notification_tables(engine)
    with engine.begin() as con:
        con.execute(insert(NOTIFICATIONS).values(**_row(record)))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": str(record.get("at") or ""),
        "kind": str(record["kind"]),
        "region": record.get("region"),
        "message": str(record.get("message") or ""),
        "details": json.dumps(record.get("details") or {}, sort_keys=True, default=str),
    }


def read_notifications(
    engine: Engine, *, after_id: int = 0, kind: str | None = None, region: str | None = None
) -> list[dict[str, Any]]:
    """The feed in the order it was written, each record with its ``id``; only those after
    ``after_id`` (what a reader has seen) and of ``kind`` / ``region`` when given."""
    from sqlalchemy import select

    ensure_notification_tables(engine)
    query = select(NOTIFICATIONS).where(NOTIFICATIONS.c.id > after_id)
    if kind is not None:
        query = query.where(NOTIFICATIONS.c.kind == kind)
    if region is not None:
        query = query.where(NOTIFICATIONS.c.region == region)
    with reading(engine) as con:
        rows = con.execute(query.order_by(NOTIFICATIONS.c.id)).mappings().all()
    return [{**row, "details": json.loads(row["details"])} for row in rows]


def record_failure(engine: Engine, signature: str, now: float, window_s: float) -> tuple[bool, int]:
    """(post this failure?, failures of this kind recorded without a post since the last
    post). A post goes out for a new kind, or once ``window_s`` has passed since the last
    post of it. Kinds quiet for two windows are forgotten, so the table stays small."""
    from sqlalchemy import delete, insert, select, update

    ensure_notification_tables(engine)
    table = FAILURE_GROUPS
    with engine.begin() as con:
        serialize(con, "mlops_assets.run_failure_groups")  # one decision at a time
        group = con.execute(select(table).where(table.c.signature == signature)).first()
        if group is not None and now - group.posted_at < window_s:
            held = group.repeats + 1
            con.execute(update(table).where(table.c.signature == signature).values(repeats=held))
            post = False
        else:
            held = group.repeats if group is not None else 0
            if group is None:
                con.execute(insert(table).values(signature=signature, posted_at=now, repeats=0))
            else:
                con.execute(
                    update(table)
                    .where(table.c.signature == signature)
                    .values(posted_at=now, repeats=0)
                )
            post = True
        con.execute(delete(table).where(table.c.posted_at <= now - 2 * window_s))
    return post, held


def alerting_keys(engine: Engine) -> set[str]:
    """What was alerting at the last monitoring run."""
    from sqlalchemy import select

    ensure_notification_tables(engine)
    with reading(engine) as con:
        return set(con.execute(select(ALERTING.c.key)).scalars())


def replace_alerting_keys(engine: Engine, keys: set[str]) -> None:
    """Record what is alerting now (replaces the previous set in one transaction)."""
    from sqlalchemy import delete, insert

    ensure_notification_tables(engine)
    with engine.begin() as con:
        serialize(con, "mlops_assets.alerting")
        con.execute(delete(ALERTING))
        if keys:
            con.execute(insert(ALERTING), [{"key": k} for k in sorted(keys)])


def import_notification_files(
    engine: Engine, feed: Path, failure_groups: Path, alerting: Path
) -> dict[str, int]:
    """Import the file-based feed, failure groups and alerting state once; return the rows
    added per table (all 0 once imported). A line of the feed that is not a JSON object
    (a write cut off by a crash) is skipped and logged. Safe from several processes at
    once: the first transaction imports, the others find the marker it set."""
    ensure_notification_tables(engine)
    work = partial(_import_files, feed=feed, failure_groups=failure_groups, alerting=alerting)
    return run_once(engine, FILES_IMPORTED, work) or {
        "notifications": 0,
        "run_failure_groups": 0,
        "alerting": 0,
    }


def _import_files(con: Connection, feed: Path, failure_groups: Path, alerting: Path) -> dict:
    from sqlalchemy import insert, select

    rows = []
    lines = feed.read_text(errors="replace").splitlines() if feed.is_file() else []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or "kind" not in record:
            if line.strip():
                _log.warning("%s line %d is not a notification; not imported", feed, number)
            continue
        rows.append(_row(record))
    if rows:
        con.execute(insert(NOTIFICATIONS), rows)
    groups = _json_file(failure_groups, dict)
    # a failure recorded in the database before the import (the failure sensor records
    # before it sends, which imports) is newer than the file's: it stays
    recorded = set(con.execute(select(FAILURE_GROUPS.c.signature)).scalars())
    groups = {k: v for k, v in groups.items() if k not in recorded}
    for signature, group in sorted(groups.items()):
        con.execute(
            insert(FAILURE_GROUPS).values(
                signature=signature,
                posted_at=float(group["posted_at"]),
                repeats=int(group.get("repeats", 0)),
            )
        )
    keys = sorted(set(_json_file(alerting, list)))
    if keys:
        con.execute(insert(ALERTING), [{"key": k} for k in keys])
    return {"notifications": len(rows), "run_failure_groups": len(groups), "alerting": len(keys)}


def _json_file(path: Path, kind: type) -> Any:
    """The JSON content of ``path`` if it is a ``kind``; empty otherwise (missing or
    unreadable state only means a repeat notification, never a failed import)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return kind()
    return value if isinstance(value, kind) else kind()
