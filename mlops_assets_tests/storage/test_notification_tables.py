"""The notification feed, the run failure groups and the alerting state in the state
database: written by several processes at once, and imported once from the files an older
workspace kept (by ``Notifier.for_workspace`` and by ``mlops-assets migrate-state``)."""

from __future__ import annotations

import json
import multiprocessing

from mlops_assets.cli import main
from mlops_assets.notifications import REPEAT_WINDOW_S, FailureGroups, Notification, Notifier
from mlops_assets.storage.database import dispose_engine, engine_for
from mlops_assets.storage.notification_tables import alerting_keys, replace_alerting_keys
from mlops_assets.workspace import Workspace

OLD_FEED = [
    {"kind": "model_approved", "message": "Nord:v1 approved", "region": "Nord",
     "details": {"version": 1}, "at": "2026-01-01T00:00:00+00:00"},
    {"kind": "run_failure", "message": "train_job failed", "region": None,
     "details": {"run_id": "r1"}, "at": "2026-01-02T00:00:00+00:00"},
]  # fmt: skip
SIGNATURE = "train_job|-|Run worker (pid #) is not running"


def _old_workspace(root) -> Workspace:
    """The feed (with a last line cut off by a crash), the failure groups and the alerting
    state as the file-based code left them."""
    ws = Workspace(root)
    ws.root.mkdir(parents=True)
    lines = "".join(json.dumps(r) + "\n" for r in OLD_FEED) + '{"kind": "model_appr'
    ws.notifications_feed.write_text(lines)
    groups = {SIGNATURE: {"posted_at": 1000.0, "repeats": 2}}
    ws.notifications_feed.with_name("run_failure_groups.json").write_text(json.dumps(groups))
    fleet = ws.root / "monitoring" / "_fleet"
    fleet.mkdir(parents=True)
    (fleet / "alerting.json").write_text(json.dumps(["Nord|drift|v1"]))
    return ws


def test_first_open_imports_the_old_files_once_and_leaves_them(tmp_path, caplog):
    ws = _old_workspace(tmp_path / "ws")
    feed_before = ws.notifications_feed.read_bytes()
    notifier = Notifier.for_workspace(ws)
    records = notifier.read()
    assert [{k: r[k] for k in OLD_FEED[0]} for r in records] == OLD_FEED
    assert "line 3 is not a notification" in caplog.text  # the cut-off line, skipped
    engine = notifier.engine
    assert alerting_keys(engine) == {"Nord|drift|v1"}
    # the imported group still holds: a repeat within the window is counted, not posted
    groups = FailureGroups(ws.state_database_url)
    assert groups.record(SIGNATURE, now=1000.0 + 60) == (False, 3)

    # lines written to the old file later are not imported twice (nor at all)
    with ws.notifications_feed.open("a") as fh:
        fh.write("\n" + json.dumps(OLD_FEED[0]) + "\n")
    dispose_engine(ws.state_database_url)  # a new process: only the marker tells
    assert len(Notifier.for_workspace(ws).read()) == 2
    assert ws.notifications_feed.read_bytes().startswith(feed_before)  # never rewritten


def test_a_failure_recorded_before_the_import_is_kept_and_the_import_succeeds(tmp_path):
    """An upgraded workspace whose first event is a run failure of a kind the old groups
    file knows: the failure sensor records it before the notifier imports the files. The
    import keeps the newer record (it used to fail on the duplicate signature, and with it
    every later notification)."""
    ws = _old_workspace(tmp_path / "ws")
    groups = FailureGroups(ws.state_database_url)
    assert groups.record(SIGNATURE, now=5000.0) == (True, 0)

    notifier = Notifier.for_workspace(ws)

    assert [r["kind"] for r in notifier.read()] == [r["kind"] for r in OLD_FEED]
    assert groups.record(SIGNATURE, now=5000.0 + 60) == (False, 1)  # the newer post holds


def test_migrate_state_reports_the_notification_rows(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLOPS_DATABASE_URL", raising=False)
    ws = _old_workspace(tmp_path / "ws")
    assert main(["migrate-state", "--home", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "notifications +2" in out and "run_failure_groups +1" in out and "alerting +1" in out
    assert main(["migrate-state", "--home", str(ws.root)]) == 0
    assert "nothing to import" in capsys.readouterr().out


def test_notifications_command_filters_and_prints_json(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MLOPS_DATABASE_URL", raising=False)
    ws = _old_workspace(tmp_path / "ws")
    notifier = Notifier.for_workspace(ws)
    notifier.send(Notification("model_rejected", "Ost:v2 rejected", "Ost", {"version": 2}))
    assert main(["notifications", "--home", str(ws.root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "model_approved [Nord]: Nord:v1 approved",
        "run_failure: train_job failed",
        "model_rejected [Ost]: Ost:v2 rejected",
    ]
    assert main(["notifications", "--home", str(ws.root), "--region", "Ost", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["kind"] == "model_rejected" and record["details"] == {"version": 2}
    assert main(["notifications", "--home", str(ws.root), "--kind", "party"]) == 2
    assert "unknown kind 'party'" in capsys.readouterr().err


def _worker(url: str, name: str, barrier, results) -> None:
    barrier.wait()
    notifier = Notifier(url)
    for i in range(20):
        notifier.send(Notification("check_failure", f"{name} {i}", name))
    results.put(FailureGroups(url).record(SIGNATURE, now=5000.0))


def test_processes_writing_at_once_lose_nothing_and_post_a_kind_once(tmp_path):
    url = f"sqlite:///{tmp_path}/state/mlops.sqlite"
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    names = [f"R{n}" for n in range(4)]
    procs = [ctx.Process(target=_worker, args=(url, n, barrier, results)) for n in names]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    decisions = sorted(results.get(timeout=5) for _ in procs)
    assert decisions == [(False, 1), (False, 2), (False, 3), (True, 0)]
    records = Notifier(url).read()
    assert len(records) == 80 and len({r["id"] for r in records}) == 80
    for name in names:  # each process's own records in the order it wrote them
        mine = [r["message"] for r in records if r["region"] == name]
        assert mine == [f"{name} {i}" for i in range(20)]


def test_failure_groups_forget_kinds_quiet_for_two_windows(tmp_path):
    groups = FailureGroups(f"sqlite:///{tmp_path}/state/mlops.sqlite")
    assert groups.record("a", now=0.0) == (True, 0)
    assert groups.record("a", now=1.0) == (False, 1)
    assert groups.record("b", now=2 * REPEAT_WINDOW_S + 1) == (True, 0)  # forgets "a"
    assert groups.record("a", now=2 * REPEAT_WINDOW_S + 2) == (True, 0)  # no held repeats


def test_alerting_keys_are_replaced_as_a_whole(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path}/state/mlops.sqlite")
    assert alerting_keys(engine) == set()
    replace_alerting_keys(engine, {"Nord|drift|v1", "Ost|quality|v3"})
    replace_alerting_keys(engine, {"Ost|quality|v3"})
    assert alerting_keys(engine) == {"Ost|quality|v3"}
    replace_alerting_keys(engine, set())
    assert alerting_keys(engine) == set()
