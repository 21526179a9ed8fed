"""Moving a dev workspace's state database to another database (``mlops-assets
migrate-state --to URL``; prod's PostgreSQL in ``deployment/test_prod_state_copy.py``):
what the registry, manifest, feed, alerting state and tuning studies show is the same on
the target, a second run adds nothing, the target's own rows are kept, and a target that
is the source or cannot be reached is refused before any work."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mlops_assets.cli import main
from mlops_assets.model_store import LocalModelStore
from mlops_assets.notifications import FailureGroups, Notification, Notifier
from mlops_assets.registry import APPROVED, PENDING, REJECTED, ModelRegistry
from mlops_assets.storage.database import engine_for, reading
from mlops_assets.storage.manifest import Manifest
from mlops_assets.storage.notification_tables import alerting_keys, replace_alerting_keys
from mlops_assets.storage.state_copy import copy_state
from mlops_assets.storage.tuning_studies import copy_database_studies, rdb_storage
from mlops_assets.workspace import Workspace
from mlops_assets_tests.storage.test_notification_tables import OLD_FEED
from mlops_assets_tests.storage.test_notification_tables import _old_workspace as old_feed_ws

MODEL = "tree\nversion=v4\n"
SIGNATURE = "train_job|-|Run worker (pid #) is not running"
STUDY = "sample.Nord.0123456789ab"


@pytest.fixture(autouse=True)
def _no_configured_database(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MLOPS_DATABASE_URL", "MLOPS_HOME", "MLOPS_SPEC", "MLOPS_STORAGE_ROOT"):
        monkeypatch.delenv(var, raising=False)


def _record(i: int, status: str = "ingested") -> dict[str, Any]:
    sha = f"{i:064x}"
    return {
        "sha256": sha, "source": "sales", "kind": "sales", "status": status,
        "file": f"landing/sales/{sha[:8]}.csv", "processed_at": f"2026-01-0{i}T00:00:00+00:00",
        "run_id": f"run-{i}",
    }  # fmt: skip


def _register(reg: ModelRegistry, region: str, status: str) -> int:
    return reg.register(
        region, model_text=MODEL, model_meta={"region": region}, record={"run_id": "r"},
        status=status, reasons=[f"gate {status}"], actor="trainer",
    ).version  # fmt: skip


def add_trials(storage: optuna.storages.BaseStorage, name: str, n: int) -> None:
    """``n`` more trials of study ``name`` (created with a tuning run's context): each with
    parameters, intermediate values and user attrs, the second one failed."""
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
    study.set_user_attr("context", {"dataset": "sample", "region": name.split(".")[1]})
    space = {
        "learning_rate": FloatDistribution(0.01, 0.3, log=True),
        "num_leaves": IntDistribution(8, 255, log=True),
    }
    for i in range(n):
        trial = study.ask(space)
        trial.set_user_attr("params", trial.params)
        trial.report(0.5 + i, 5)
        if i == 1:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, 0.4 + i)


def dev_workspace(root: Path, now: float) -> Workspace:
    """A dev workspace used through the code, its state in its SQLite file: files ingested
    and one quarantined then requeued, versions of three regions (Nord's v2 approved over
    v1), notifications, a failure group, an alert and a study with trials."""
    ws = Workspace(root)
    manifest = Manifest.for_workspace(ws)
    for i in (1, 2):
        manifest.add(_record(i))
    manifest.add(_record(3, "quarantined"))
    manifest.requeue(_record(3)["sha256"])
    reg = ModelRegistry.for_workspace(ws)
    _register(reg, "Nord", APPROVED)
    reg.approve("Nord", _register(reg, "Nord", PENDING), actor="alice", reason="reviewed")
    _register(reg, "Ost", REJECTED)
    _register(reg, "Sued", APPROVED)
    notifier = Notifier.for_workspace(ws)
    notifier.send(Notification("model_approved", "Nord:v2 approved", "Nord", {"version": 2}))
    notifier.send(Notification("run_failure", "train_job failed", None, {"run_id": "r1"}))
    FailureGroups(ws.state_database_url).record(SIGNATURE, now=now)
    replace_alerting_keys(notifier.engine, {"Nord|drift|v2", "Ost|quality|v1"})
    storage = rdb_storage(ws.state_database_url)
    add_trials(storage, STUDY, 3)
    storage.engine.dispose()
    return ws


def observed(ws: Workspace) -> dict[str, Any]:
    """What a user of ``ws`` sees, through the code that reads it."""
    reg = ModelRegistry.for_workspace(ws)
    manifest = Manifest.for_workspace(ws)
    notifier = Notifier.for_workspace(ws)
    storage = rdb_storage(ws.state_database_url)
    try:
        studies = {
            name: [
                (t.number, t.state, t.params, t.values, t.user_attrs, t.intermediate_values)
                for t in storage.get_all_trials(storage.get_study_id_from_name(name))
            ]
            for name in optuna.get_all_study_names(storage)
        }
    finally:
        storage.engine.dispose()
    regions = reg.regions()
    return {
        "approved": {r: getattr(reg.latest_approved(r), "version", None) for r in regions},
        "versions": {
            r: [(v.version, v.status, v.reasons) for v in reg.versions(r)] for r in regions
        },
        "history": {r: reg.history(r) for r in regions},
        "verify": reg.verify(),
        "manifest": manifest.records(),
        "requeued": manifest.requeue_counts(),
        "feed": notifier.read(),
        "alerting": alerting_keys(notifier.engine),
        "studies": studies,
    }


def copied_line(out: str) -> str:
    """The copy's counts in the command's output (the legacy import's come first)."""
    return next(line for line in out.splitlines() if line.startswith("copied to "))


def approved_per_region(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from mlops_assets.storage.registry_tables import VERSIONS

    query = (
        select(VERSIONS.c.region, func.count())
        .where(VERSIONS.c.status == APPROVED)
        .group_by(VERSIONS.c.region)
    )
    with reading(engine_for(url)) as con:
        return {region: n for region, n in con.execute(query)}


def test_migrate_state_to_copies_a_dev_workspace_once_and_the_target_carries_on(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    now = time.time()
    ws = dev_workspace(tmp_path / "ws", now)
    url = f"sqlite:///{tmp_path / 'prod' / 'state.sqlite'}"
    prod = Workspace(ws.root, database_url=url)  # same files, the state in the target
    before = observed(ws)
    assert before["approved"] == {"Nord": 2, "Ost": None, "Sued": 1}
    assert len(before["studies"][STUDY]) == 3

    assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 0
    out = capsys.readouterr().out
    copied = copied_line(out)
    assert "manifest_files +2, manifest_requeued +1, state_meta +" in copied
    assert "registry_versions +4" in copied and "notifications +2" in copied
    assert "alerting +2" in copied and "tuning_studies +1" in copied
    assert "not copied" not in out
    assert observed(prod) == before
    assert approved_per_region(url) == {"Nord": 1, "Sued": 1}

    assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 0
    out = capsys.readouterr().out
    copied = copied_line(out)
    assert copied.startswith("copied to sqlite:///") and "+0" in copied
    assert not any(f"+{n}" in copied for n in range(1, 10)), copied
    assert "1 tuning study(ies)" in out.splitlines()[-1]
    assert observed(prod) == before

    # the failure group came along: a repeat within the window is held, not posted
    assert FailureGroups(url).record(SIGNATURE, now=now + 60) == (False, 1)
    # the target is the workspace's state from now on: new records follow the copied ones
    manifest = Manifest.for_workspace(prod)
    assert manifest.add(_record(4))[1]
    assert [r["sha256"] for r in manifest.records()][-1] == _record(4)["sha256"]
    reg = ModelRegistry.for_workspace(prod)
    assert _register(reg, "Nord", PENDING) == 3
    reg.approve("Nord", 3, actor="bob", reason="better")
    assert approved_per_region(url) == {"Nord": 1, "Sued": 1}
    Notifier.for_workspace(prod).send(Notification("model_approved", "Nord:v3 approved"))
    assert [r["id"] for r in Notifier.for_workspace(prod).read()] == [1, 2, 3]
    storage = rdb_storage(url)
    add_trials(storage, STUDY, 1)
    assert len(storage.get_all_trials(storage.get_study_id_from_name(STUDY))) == 4
    storage.engine.dispose()
    assert len(observed(ws)["studies"][STUDY]) == 3  # the source is left as it was


def test_the_targets_rows_are_kept_and_reported_one_approved_version_per_region(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = dev_workspace(tmp_path / "ws", time.time())
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    # the target was used before the copy: Nord's v1 approved there, and file 2 recorded
    theirs = ModelRegistry(url, LocalModelStore(tmp_path / "prod-models"))
    assert _register(theirs, "Nord", APPROVED) == 1
    Manifest(engine_for(url)).add(_record(2))

    assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 1
    out = capsys.readouterr().out
    assert "not copied: registry_versions region 'Nord': the target's v1 (approved)" in out
    assert "not copied: manifest_files (1,): the target has another row with this key" in out
    assert "not copied: manifest_files (2,): refused by the target (UNIQUE" in out
    assert "the target's rows were kept" in out
    # Nord's registry is the target's, whole: no version or event of the source's
    assert [(v.version, v.status) for v in theirs.versions("Nord")] == [(1, APPROVED)]
    assert [e["action"] for e in theirs.history("Nord")] == ["register"]
    assert theirs.latest_approved("Sued").version == 1  # the other regions are copied
    assert [v.status for v in theirs.versions("Ost")] == [REJECTED]
    assert approved_per_region(url) == {"Nord": 1, "Sued": 1}
    # a second run duplicates nothing and reports the same
    assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 1
    out = capsys.readouterr().out
    assert "registry_versions +0" in copied_line(out) and "region 'Nord'" in out
    assert len(Manifest(engine_for(url)).records()) == 1


def test_a_study_tuned_further_is_copied_again_and_one_tuned_in_the_target_is_kept(
    tmp_path: Path,
) -> None:
    ws = dev_workspace(tmp_path / "ws", time.time())
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    assert copy_state(ws.state_database_url, url).studies.copied == 1
    source = rdb_storage(ws.state_database_url)
    add_trials(source, STUDY, 2)  # tuned further in dev
    add_trials(source, "sample.Ost.0123456789ab", 1)
    target = rdb_storage(url)
    add_trials(target, "sample.Ost.0123456789ab", 2)  # tuned in the target, other trials

    again = copy_database_studies(ws.state_database_url, url)

    assert (again.copied, again.present) == (1, 0)
    assert again.skipped == [
        "study 'sample.Ost.0123456789ab' exists in the target with trials the source does "
        "not have; not copied"
    ]
    for name, n in ((STUDY, 5), ("sample.Ost.0123456789ab", 2)):
        assert len(target.get_all_trials(target.get_study_id_from_name(name))) == n
    assert copy_database_studies(ws.state_database_url, url).present == 1
    source.engine.dispose()
    target.engine.dispose()


def test_an_older_workspaces_files_are_imported_then_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The legacy import runs first, as without --to: the target gets the files' state."""
    ws = old_feed_ws(tmp_path / "ws")
    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"

    assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "notifications +2, run_failure_groups +1, alerting +1" in out.splitlines()[0]
    prod = Notifier.for_workspace(Workspace(ws.root, database_url=url))
    assert [{k: r[k] for k in OLD_FEED[0]} for r in prod.read()] == OLD_FEED
    assert alerting_keys(prod.engine) == {"Nord|drift|v1"}


def test_a_target_that_is_the_source_or_unreachable_is_refused_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ws = dev_workspace(tmp_path / "ws", time.time())
    (tmp_path / "link").symlink_to(ws.root)
    cases = {
        f"sqlite:///{tmp_path / 'link' / 'state' / 'mlops.sqlite'}": "is the workspace's state "
        "database itself",
        "postgresql+psycopg2://mlops:s3cret@127.0.0.1:1/mlops": "cannot reach the target "
        "postgresql+psycopg2://mlops:***@127.0.0.1:1/mlops",
        "state.sqlite": "--to must be a database URL",
        "nosuchdialect://x/y": "the target is not a database URL",
    }
    for url, message in cases.items():
        assert main(["migrate-state", "--home", str(ws.root), "--to", url]) == 2
        out, err = capsys.readouterr()
        assert err.startswith("error: ") and message in err, err
        assert "s3cret" not in out + err and "state database sqlite" not in out
    assert main(["migrate-state", "--home", str(tmp_path / "nowhere"), "--to", "sqlite://"]) == 2
    assert "no workspace at" in capsys.readouterr().err
