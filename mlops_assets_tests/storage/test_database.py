"""The state database's connections: processes that open a new workspace's database at
the same moment all get a connection (SQLite refuses the switch to WAL at once, without
waiting, while another process has the file open)."""

from __future__ import annotations

import multiprocessing

from mlops_assets.storage.database import engine_for, reading


def _open_and_write(url: str, barrier, results) -> None:
    from sqlalchemy import text

    barrier.wait()
    try:
        engine = engine_for(url)
        with engine.begin() as con:
            con.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
            con.execute(text("INSERT INTO t VALUES (1)"))
        results.put("ok")
    except Exception as exc:  # reported to the test, which names it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_database_at_once_all_connect(tmp_path):
    from sqlalchemy import text

    ctx = multiprocessing.get_context("fork")
    processes = 6
    for attempt in range(16):  # the race is narrow: several fresh databases
        url = f"sqlite:///{tmp_path}/{attempt}/state.sqlite"
        barrier, results = ctx.Barrier(processes), ctx.Queue()
        procs = [
            ctx.Process(target=_open_and_write, args=(url, barrier, results))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        outcomes = [results.get(timeout=5) for _ in procs]
        assert outcomes == ["ok"] * processes
        with reading(engine_for(url)) as con:
            assert con.execute(text("SELECT count(*) FROM t")).scalar() == processes
            assert con.execute(text("PRAGMA journal_mode")).scalar() == "wal"
