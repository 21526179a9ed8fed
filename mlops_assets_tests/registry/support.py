"""Test helpers for the registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mlops_assets.registry import APPROVED, ModelRegistry


def register_approved_placeholder(registry: ModelRegistry, region: str) -> None:
    """A version of ``region`` with placeholder artifacts, approved (the previous one is
    archived): for code that needs an approved model to exist, not to predict."""
    registry.register(
        region,
        model_text="tree\n",
        model_meta={},
        record={"source": "recalibration"},
        status=APPROVED,
        reasons=[],
        actor="test",
    )


def edit_record(
    registry: ModelRegistry, region: str, version: int, edit: Callable[[dict[str, Any]], Any]
) -> None:
    """Change a version's stored record in place (``edit(body)``; body holds ``reasons``,
    ``artifacts``, ``checksums`` and ``record``), as older code or damage left it."""
    from sqlalchemy import select, update

    from mlops_assets.storage.registry_tables import VERSIONS

    where = (VERSIONS.c.region == region, VERSIONS.c.version == version)
    with registry.engine.begin() as con:
        body = json.loads(con.execute(select(VERSIONS.c.body).where(*where)).scalar_one())
        edit(body)
        con.execute(update(VERSIONS).where(*where).values(body=json.dumps(body)))
