"""The landing sensor's hash cache: each landing file's size, mtime and ETag when its
SHA-256 was computed, so that a file that did not change is not read again.

It lived in the sensor's cursor until Dagster's habit showed: every sensor tick is stored
with the cursor it ended with, and skipped ticks are kept for 7 days. With 10,000 landing
files the cursor was 1.3-2.1 MB (by the paths' length), so every landing tick (a skipped
one, almost always) wrote that to the instance's tick table and sent it to the code
server and back. Here it is one row per file in the workspace's state database, written
only where a file is new, changed or gone. It is a cache: a lost table costs re-hashing,
never a second ingestion (the manifest decides what is done), and ``mlops-assets
migrate-state`` does not copy it (a copied landing zone's files have new mtimes anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from mlops_assets.storage.database import engine_for, ensure_tables, reading

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Engine

    from mlops_assets.workspace import Workspace

# a file's entry: [size, mtime_ns, sha256, etag] (etag "" for a local file)
HashEntry = list

# paths per ``IN (...)`` delete: far below SQLite's limit on bound parameters
_DELETE_BATCH = 500


def _table() -> Table:
    from sqlalchemy import BigInteger, Column, MetaData, String, Table

    return Table(
        "landing_hashes",
        MetaData(),
        Column("relpath", String(1000), primary_key=True),
        Column("size", BigInteger, nullable=False),
        Column("mtime_ns", BigInteger, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("etag", String(200), nullable=False),
    )


HASHES = _table()


class LandingHashes:
    """The hash cache of one workspace (``LandingHashes.for_workspace``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, HASHES.metadata)

    @classmethod
    def for_workspace(cls, ws: Workspace) -> LandingHashes:
        return cls(engine_for(ws.state_database_url))

    def load(self) -> dict[str, HashEntry]:
        """Every cached file: relpath -> [size, mtime_ns, sha256, etag]."""
        from sqlalchemy import select

        h = HASHES.c
        with reading(self.engine) as con:
            rows = con.execute(select(h.relpath, h.size, h.mtime_ns, h.sha256, h.etag))
            return {rel: [size, mtime, sha, etag] for rel, size, mtime, sha, etag in rows}

    def update(self, changed: Mapping[str, HashEntry], gone: Iterable[str]) -> None:
        """Store the entries of new or changed files and forget files that left, in one
        transaction (nothing is written when nothing changed). A row another process
        wrote meanwhile is overwritten: the entries describe the same files."""
        from sqlalchemy import delete

        gone = sorted(set(gone) - set(changed))
        if not changed and not gone:
            return
        with self.engine.begin() as con:
            for i in range(0, len(gone), _DELETE_BATCH):
                batch = gone[i : i + _DELETE_BATCH]
                con.execute(delete(HASHES).where(HASHES.c.relpath.in_(batch)))
            if not changed:
                return
            if con.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            statement = insert(HASHES)
            upsert = statement.on_conflict_do_update(
                index_elements=[HASHES.c.relpath],
                set_={c: statement.excluded[c] for c in ("size", "mtime_ns", "sha256", "etag")},
            )
            rows = [
                {
                    "relpath": rel,
                    "size": int(entry[0]),
                    "mtime_ns": int(entry[1]),
                    "sha256": str(entry[2]),
                    "etag": str(entry[3]) if len(entry) > 3 else "",
                }
                for rel, entry in changed.items()
            ]
            con.execute(upsert, rows)
