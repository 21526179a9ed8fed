"""The model registry and the notification feed on PostgreSQL (the prod state database):
several processes opening a workspace for the first time at once, concurrent approvals
from several processes leave exactly one approved version, registrations get distinct
numbers, the database itself refuses a second approved row, and processes notifying at
once lose no notification and post a failure kind once. Needs Debian's PostgreSQL
(``make e2e-prod``)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from mlops_assets.deployment.local_services import PostgresServer
from mlops_assets.model_store import LocalModelStore
from mlops_assets.notifications import FailureGroups, Notification, Notifier
from mlops_assets.registry import APPROVED, ARCHIVED, PENDING, ModelRegistry
from mlops_assets_tests.deployment.services import require_services

pytestmark = pytest.mark.e2e_prod
MODEL = "tree\nversion=v4\n"


def _registry(url: str, models: str) -> ModelRegistry:
    return ModelRegistry(url, LocalModelStore(Path(models)))


def _register(reg: ModelRegistry, status: str = PENDING, run_id: str = "run") -> int:
    return reg.register(
        "Nord", model_text=MODEL, model_meta={}, record={"run_id": run_id}, status=status,
        reasons=[], actor="trainer",
    ).version  # fmt: skip


def _approve(url: str, models: str, version: int, barrier) -> None:
    reg = _registry(url, models)
    barrier.wait(timeout=60)
    reg.approve("Nord", version, actor=f"worker-{version}", reason="concurrent approval")


def _register_in_process(url: str, models: str, index: int, barrier, queue) -> None:
    reg = _registry(url, models)
    barrier.wait(timeout=60)
    queue.put((index, _register(reg, run_id=f"run-{index}")))


def _open_workspace(url: str, root: str, barrier) -> None:
    from mlops_assets.storage.manifest import Manifest
    from mlops_assets.workspace import Workspace

    ws = Workspace(Path(root), database_url=url)
    barrier.wait(timeout=60)
    Manifest.for_workspace(ws)
    ModelRegistry.for_workspace(ws)
    Notifier.for_workspace(ws)


def _run_all(ctx, target, args_list) -> None:
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_approvals_and_registrations_on_postgresql(tmp_path: Path) -> None:
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from mlops_assets.storage.registry_tables import VERSIONS

    require_services()
    postgres = PostgresServer()
    try:
        postgres.start()
        url, models = postgres.url("mlops", "postgresql+psycopg2"), str(tmp_path / "models")
        ctx = multiprocessing.get_context("spawn")  # a fresh engine in every process
        # the first open of a workspace, by several processes at once: one imports the
        # older files (none here) and marks it, the others wait and find the mark
        barrier = ctx.Barrier(6)
        _run_all(ctx, _open_workspace, [(url, str(tmp_path / "ws"), barrier)] * 6)

        reg = _registry(url, models)
        _register(reg, APPROVED)
        for _ in range(8):
            _register(reg)

        barrier = ctx.Barrier(8)
        _run_all(ctx, _approve, [(url, models, v, barrier) for v in range(2, 10)])

        states = {mv.version: mv.status for mv in reg.versions("Nord")}
        assert list(states.values()).count(APPROVED) == 1
        assert list(states.values()).count(ARCHIVED) == 8
        events = reg.history("Nord")
        approvals = [e for e in events if e["action"] == "approve"]
        assert sorted(e["version"] for e in approvals) == list(range(2, 10))
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert reg.latest_approved("Nord").version == approvals[-1]["version"]

        barrier, queue = ctx.Barrier(6), ctx.Queue()
        _run_all(ctx, _register_in_process, [(url, models, i, barrier, queue) for i in range(6)])
        got = dict(queue.get(timeout=10) for _ in range(6))
        assert sorted(got.values()) == list(range(10, 16))
        assert reg.verify() == []

        pending = next(mv.version for mv in reg.versions("Nord") if mv.status == PENDING)
        with pytest.raises(IntegrityError), reg.engine.begin() as con:
            con.execute(
                update(VERSIONS)
                .where(VERSIONS.c.region == "Nord", VERSIONS.c.version == pending)
                .values(status=APPROVED)
            )
        reg.engine.dispose()
    finally:
        postgres.stop()


def _notify(url: str, name: str, barrier, queue) -> None:
    notifier = Notifier(url)
    barrier.wait(timeout=60)
    for i in range(10):
        notifier.send(Notification("check_failure", f"{name} {i}", name))
    queue.put(FailureGroups(url).record("train_job|-|Run worker (pid #) died", now=100.0))


def test_concurrent_notifications_on_postgresql(tmp_path: Path) -> None:
    require_services()
    postgres = PostgresServer()
    try:
        postgres.start()
        url = postgres.url("mlops", "postgresql+psycopg2")
        ctx = multiprocessing.get_context("spawn")
        names = [f"R{n}" for n in range(6)]
        barrier, queue = ctx.Barrier(6), ctx.Queue()
        _run_all(ctx, _notify, [(url, name, barrier, queue) for name in names])
        decisions = sorted(queue.get(timeout=10) for _ in names)
        assert decisions == [(False, n) for n in range(1, 6)] + [(True, 0)]
        records = Notifier(url).read()
        assert len(records) == 60 and len({r["id"] for r in records}) == 60
        for name in names:  # each process's records in the order it wrote them
            assert [r["message"] for r in records if r["region"] == name] == [
                f"{name} {i}" for i in range(10)
            ]
    finally:
        postgres.stop()
