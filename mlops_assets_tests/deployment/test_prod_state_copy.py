"""A dev workspace's SQLite state moved to PostgreSQL (the prod state database) with
``mlops-assets migrate-state --to URL``: the registry, manifest, feed, alerting state and
tuning studies read the same there, a second run adds nothing, new rows continue after
the copied ones (the sequences moved past them), and the database itself under another
URL is refused. Needs Debian's PostgreSQL (``make e2e-prod``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlops_assets.cli import main
from mlops_assets.deployment.local_services import PostgresServer
from mlops_assets.notifications import FailureGroups, Notification, Notifier
from mlops_assets.registry import PENDING, ModelRegistry
from mlops_assets.storage.manifest import Manifest
from mlops_assets.workspace import Workspace
from mlops_assets_tests.deployment.services import require_services
from mlops_assets_tests.storage.test_state_copy import (
    SIGNATURE,
    _record,
    _register,
    copied_line,
    dev_workspace,
    observed,
)

pytestmark = pytest.mark.e2e_prod


def test_a_dev_workspace_moves_to_postgresql_once_and_carries_on_there(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MLOPS_DATABASE_URL", "MLOPS_HOME", "MLOPS_SPEC", "MLOPS_STORAGE_ROOT"):
        monkeypatch.delenv(var, raising=False)
    require_services()
    now = time.time()
    ws = dev_workspace(tmp_path / "ws", now)
    before = observed(ws)
    postgres = PostgresServer()
    try:
        postgres.start()
        url = postgres.url("mlops", "postgresql+psycopg2")
        prod = Workspace(ws.root, database_url=url)

        assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 0
        out = capsys.readouterr().out
        copied = copied_line(out)
        assert copied.startswith(f"copied to {url}: ") and "registry_versions +4" in copied
        assert "notifications +2" in copied and "tuning_studies +1" in copied
        assert "not copied" not in out
        assert observed(prod) == before
        approved = "SELECT region || ':' || count(*) FROM registry_versions "
        approved += "WHERE status = 'approved' GROUP BY region ORDER BY region"
        assert postgres.sql("mlops", approved).splitlines() == ["Nord:1", "Sued:1"]

        assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 0
        copied = copied_line(capsys.readouterr().out)
        assert not any(f"+{n}" in copied for n in range(1, 10)), copied
        assert observed(prod) == before

        # prod carries on: numbers continue after the copied rows on PostgreSQL too
        assert FailureGroups(url).record(SIGNATURE, now=now + 60) == (False, 1)
        manifest = Manifest.for_workspace(prod)
        assert manifest.add(_record(4))[1]
        assert manifest.records()[-1]["sha256"] == _record(4)["sha256"]
        notifier = Notifier.for_workspace(prod)
        notifier.send(Notification("model_approved", "Nord:v3 approved"))
        assert [r["id"] for r in notifier.read()] == [1, 2, 3]
        reg = ModelRegistry.for_workspace(prod)
        assert _register(reg, "Nord", PENDING) == 3

        # the same database under another spelling of its URL is refused
        monkeypatch.setenv("MLOPS_DATABASE_URL", url)
        other = postgres.url("mlops", "postgresql+psycopg2") + "?connect_timeout=10"
        assert main(["migrate-state", "--home", str(ws.root), "--to", other]) == 2
        assert "is the workspace's state database itself" in capsys.readouterr().err
    finally:
        postgres.stop()
