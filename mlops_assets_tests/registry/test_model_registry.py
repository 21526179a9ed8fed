"""Model registry: approval state machine, one approved version per region, audit log,
safe concurrent use, text-only artifacts."""

from __future__ import annotations

import json
import multiprocessing
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_assets.model_store import LocalModelStore
from mlops_assets.naming import UnsafeNameError
from mlops_assets.registry import (
    APPROVED,
    ARCHIVED,
    PENDING,
    REJECTED,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    artifact_key,
    decide_status,
)
from mlops_assets.workspace import Workspace
from mlops_assets_tests.registry.support import edit_record

FAKE_MODEL = "tree\nversion=v4\nnum_class=1\n"
RECORD = {
    "source": "tuning",
    "run_id": "run-1",
    "data_version": "sha-abc",
    "train_start": "2024-01-01",
    "train_end": "2024-06-30",
    "code_version": "3a4ce90",
    "params": {"num_leaves": 31, "learning_rate": 0.05},
    "features": ["lag_7", "promo"],
    "metrics": {"wape": 0.12},
    "baseline_metrics": {"wape": 0.2},
}


def _registry(root: Path) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{root / 'state.sqlite'}", LocalModelStore(root / "models"))


@pytest.fixture
def reg(tmp_path: Path) -> ModelRegistry:
    return _registry(tmp_path)


def _register(
    reg: ModelRegistry, status: str = PENDING, region: str = "Nord", **record
) -> ModelVersion:
    return reg.register(
        region,
        model_text=FAKE_MODEL,
        model_meta={"features": ["lag_7", "promo"]},
        record={**RECORD, **record},
        status=status,
        reasons=["gate passed: wape 0.12 < 0.2"],
        actor="trainer",
    )


def _statuses(reg: ModelRegistry, region: str = "Nord") -> dict[int, str]:
    return {mv.version: mv.status for mv in reg.versions(region)}


# ------------------------------------------------------------------ registration


def test_register_numbers_versions_and_stores_the_record(reg: ModelRegistry) -> None:
    v1 = _register(reg)
    v2 = _register(reg, run_id="run-2")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.label == "Nord:v2"
    assert v2.status == PENDING
    assert v2.record["run_id"] == "run-2"
    assert v2.record["params"] == {"num_leaves": 31, "learning_rate": 0.05}
    assert datetime.fromisoformat(v2.created_at).utcoffset().total_seconds() == 0

    # read back by another registry on the same database
    stored = ModelRegistry(reg.engine.url.render_as_string(), reg.store).get("Nord", 2)
    assert stored == v2
    assert stored.actor == "trainer"
    assert stored.reasons == ["gate passed: wape 0.12 < 0.2"]
    assert stored.record["metrics"] == {"wape": 0.12}
    assert set(stored.artifacts) == {"model.txt", "model.json"}
    assert stored.artifacts["model.txt"].endswith("/models/Nord/0002/model.txt")
    assert reg.store.exists("Nord/0002/model.txt")
    assert ModelVersion.from_dict(v2.to_dict()) == v2


def test_registering_as_approved_archives_the_approved_version(reg: ModelRegistry) -> None:
    _register(reg, APPROVED)
    _register(reg, REJECTED)
    _register(reg, APPROVED)
    assert _statuses(reg) == {1: ARCHIVED, 2: REJECTED, 3: APPROVED}
    assert reg.latest_approved("Nord").version == 3


@pytest.mark.parametrize("status", [ARCHIVED, "approve", ""])
def test_register_refuses_other_statuses(reg: ModelRegistry, status: str) -> None:
    with pytest.raises(ValueError, match="cannot be registered"):
        _register(reg, status)
    assert reg.versions("Nord") == []


def test_register_refuses_unknown_source(reg: ModelRegistry) -> None:
    with pytest.raises(ValueError, match="source"):
        _register(reg, source="manual")


# ------------------------------------------------------------------ state machine


def test_approve_archives_previous_and_rollback_restores_it(reg: ModelRegistry) -> None:
    _register(reg)
    _register(reg)
    assert reg.latest_approved("Nord") is None

    assert reg.approve("Nord", 1, actor="alice", reason="reviewed").status == APPROVED
    assert reg.latest_approved("Nord").version == 1

    assert reg.approve("Nord", 2, actor="bob", reason="better wape").status == APPROVED
    assert _statuses(reg) == {1: ARCHIVED, 2: APPROVED}
    assert reg.latest_approved("Nord").version == 2

    back = reg.rollback("Nord", 1, actor="carol", reason="v2 overforecasts promos")
    assert back.status == APPROVED
    assert _statuses(reg) == {1: APPROVED, 2: ARCHIVED}
    assert reg.latest_approved("Nord").label == "Nord:v1"


def test_latest_approved_ignores_newer_pending_and_rejected(reg: ModelRegistry) -> None:
    _register(reg, APPROVED)
    _register(reg, REJECTED)
    _register(reg, PENDING)
    assert reg.latest_approved("Nord").version == 1
    reg.reject("Nord", 3, actor="alice", reason="unstable")
    assert reg.latest_approved("Nord").version == 1
    assert _statuses(reg) == {1: APPROVED, 2: REJECTED, 3: REJECTED}


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        (REJECTED, "approve", "Nord:v2 is rejected; a rejected version cannot be approved"),
        (REJECTED, "rollback", "register a new version"),
        (REJECTED, "reject", "Nord:v2 is rejected; only a pending_approval"),
        (APPROVED, "approve", "Nord:v2 is already the approved version"),
        (APPROVED, "rollback", "Nord:v2 is already the approved version"),
        (APPROVED, "reject", "Nord:v2 is approved; only a pending_approval"),
        (ARCHIVED, "approve", "Nord:v2 is archived; use rollback"),
        (ARCHIVED, "reject", "Nord:v2 is archived; only a pending_approval"),
        (PENDING, "rollback", "Nord:v2 is pending_approval and was never approved"),
    ],
)
def test_invalid_transitions_raise_and_change_nothing(
    reg: ModelRegistry, status: str, action: str, message: str
) -> None:
    _register(reg, APPROVED)  # v1
    _register(reg, PENDING)  # v2, then brought into `status`
    if status == REJECTED:
        reg.reject("Nord", 2, actor="a", reason="r")
    elif status in (APPROVED, ARCHIVED):
        reg.approve("Nord", 2, actor="a", reason="r")
        if status == ARCHIVED:
            reg.rollback("Nord", 1, actor="a", reason="r")
    before_states, before_log = _statuses(reg), reg.history("Nord")
    assert before_states[2] == status

    with pytest.raises(RegistryError, match=message):
        getattr(reg, action)("Nord", 2, actor="mallory", reason="try")
    assert _statuses(reg) == before_states
    assert reg.history("Nord") == before_log


def test_unknown_version_and_bad_arguments(reg: ModelRegistry) -> None:
    _register(reg)
    with pytest.raises(RegistryError, match="Nord:v9 does not exist; Nord has versions 1..1"):
        reg.approve("Nord", 9, actor="a", reason="r")
    with pytest.raises(RegistryError, match="Sud:v1 does not exist; Sud has no versions"):
        reg.get("Sud", 1)
    for bad in (0, -1, True, "1", 1.0):
        with pytest.raises(ValueError, match="positive integer"):
            reg.get("Nord", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reason"):
        reg.approve("Nord", 1, actor="alice", reason="  ")
    with pytest.raises(ValueError, match="actor"):
        reg.approve("Nord", 1, actor="", reason="ok")
    assert _statuses(reg) == {1: PENDING}


@pytest.mark.parametrize("region", ["../Nord", "Nord/x", "Rhein, Main", "", ".lock", "Nord\n"])
def test_unsafe_region_keys_are_refused(reg: ModelRegistry, region: str) -> None:
    with pytest.raises(UnsafeNameError):
        _register(reg, region=region)
    with pytest.raises(UnsafeNameError):
        reg.versions(region)
    with pytest.raises(UnsafeNameError):
        reg.latest_approved(region)
    assert reg.regions() == []
    assert not reg.store.root.exists()


def test_history_records_every_change(reg: ModelRegistry) -> None:
    _register(reg, APPROVED)
    _register(reg)
    _register(reg)
    reg.approve("Nord", 2, actor="alice", reason="looks good")
    reg.reject("Nord", 3, actor="bob", reason="worse on Sundays")
    reg.rollback("Nord", 1, actor="carol", reason="incident 42")

    got = [
        (e["action"], e["version"], e["from_status"], e["to_status"], e["actor"], e["reason"])
        for e in reg.history("Nord")
    ]
    gate = "gate passed: wape 0.12 < 0.2"
    assert got == [
        ("register", 1, None, APPROVED, "trainer", gate),
        ("register", 2, None, PENDING, "trainer", gate),
        ("register", 3, None, PENDING, "trainer", gate),
        ("approve", 2, PENDING, APPROVED, "alice", "looks good"),
        ("archive", 1, APPROVED, ARCHIVED, "alice", "superseded by Nord:v2"),
        ("reject", 3, PENDING, REJECTED, "bob", "worse on Sundays"),
        ("rollback", 1, ARCHIVED, APPROVED, "carol", "incident 42"),
        ("archive", 2, APPROVED, ARCHIVED, "carol", "superseded by Nord:v1"),
    ]
    events = reg.history("Nord")
    assert [e["seq"] for e in events] == list(range(1, 9))
    for e in events:
        assert datetime.fromisoformat(e["at"]).tzinfo is not None
        assert datetime.fromisoformat(e["at"]) <= datetime.now(UTC)
        assert e["region"] == "Nord"


def test_random_operations_never_leave_two_approved(reg: ModelRegistry) -> None:
    rng = random.Random(7)
    for _ in range(60):
        if rng.random() < 0.3:
            _register(reg, rng.choice([PENDING, APPROVED, REJECTED]))
            continue
        versions = reg.versions("Nord")
        if not versions:
            continue
        mv = rng.choice(versions)
        action = rng.choice(["approve", "reject", "rollback"])
        allowed = (action, mv.status) in {
            ("approve", PENDING),
            ("reject", PENDING),
            ("rollback", ARCHIVED),
        }
        if allowed:
            getattr(reg, action)("Nord", mv.version, actor="fuzz", reason="fuzz")
        else:
            with pytest.raises(RegistryError, match=f"Nord:v{mv.version} is "):
                getattr(reg, action)("Nord", mv.version, actor="fuzz", reason="fuzz")
        states = _statuses(reg)
        assert list(states.values()).count(APPROVED) <= 1
        approved = [v for v, s in states.items() if s == APPROVED]
        latest = reg.latest_approved("Nord")
        assert (latest.version if latest else None) == (approved[0] if approved else None)


def test_regions_and_empty_region(tmp_path: Path) -> None:
    reg = ModelRegistry.for_workspace(Workspace(tmp_path / "ws"))
    assert reg.regions() == []
    assert reg.versions("Nord") == []
    assert reg.latest_approved("Nord") is None
    assert reg.history("Nord") == []
    _register(reg, region="Sud")
    _register(reg, region="Nord")
    assert reg.regions() == ["Nord", "Sud"]
    assert reg.engine.url.database == str(tmp_path / "ws" / "state" / "mlops.sqlite")
    assert (tmp_path / "ws" / "models" / "Sud" / "0001" / "model.txt").is_file()


# ------------------------------------------------------------------ crash safety


def test_the_database_refuses_a_second_approved_version_of_a_region(reg: ModelRegistry) -> None:
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from mlops_assets.storage.registry_tables import VERSIONS

    _register(reg, APPROVED)
    _register(reg)
    _register(reg, APPROVED, region="Sud")
    with pytest.raises(IntegrityError), reg.engine.begin() as con:
        con.execute(
            update(VERSIONS)
            .where(VERSIONS.c.region == "Nord", VERSIONS.c.version == 2)
            .values(status=APPROVED)
        )
    assert _statuses(reg) == {1: APPROVED, 2: PENDING}


def test_readers_do_not_wait_for_a_writer_holding_the_database(tmp_path: Path) -> None:
    """A registration holds SQLite's write lock while it writes its artifacts; sensors and
    forecasts reading the registry meanwhile read the last committed state at once."""
    import sqlite3
    import threading

    reg = _registry(tmp_path)
    _register(reg, APPROVED)
    writer = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # what a registration in progress holds
    writer.execute("UPDATE registry_versions SET actor = 'in progress'")
    seen: list = []
    reader = threading.Thread(
        target=lambda: seen.extend([reg.latest_approved("Nord"), reg.history("Nord")])
    )
    reader.start()
    reader.join(timeout=30)  # a waiting reader would block for the 60 s busy timeout
    try:
        assert not reader.is_alive()
        assert seen[0].version == 1 and seen[0].actor == "trainer"  # the committed state
        assert len(seen[1]) == 1
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.join()


def test_a_registration_that_fails_midway_commits_nothing_and_its_number_is_reused(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(reg, APPROVED)
    put = reg.store.put

    def put_then_fail(key: str, data: bytes) -> str:
        if key.endswith("model.json"):
            raise OSError("disk full")
        return put(key, data)

    monkeypatch.setattr(reg.store, "put", put_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _register(reg, APPROVED)
    assert _statuses(reg) == {1: APPROVED} and len(reg.history("Nord")) == 1
    assert reg.store.exists("Nord/0002/model.txt")  # written before the failure

    monkeypatch.undo()
    mv = _register(reg, APPROVED)
    assert mv.version == 2 and reg.load_artifacts(mv)[0] == FAKE_MODEL
    assert _statuses(reg) == {1: ARCHIVED, 2: APPROVED}
    assert [e["seq"] for e in reg.history("Nord")] == [1, 2, 3]


# ------------------------------------------------------------------ concurrency


def _approve_in_process(root: str, version: int, barrier) -> None:
    reg = _registry(Path(root))
    barrier.wait(timeout=60)
    reg.approve("Nord", version, actor=f"worker-{version}", reason="concurrent approval")


def _register_in_process(root: str, index: int, barrier, queue) -> None:
    reg = _registry(Path(root))
    barrier.wait(timeout=60)
    mv = _register(reg, run_id=f"run-{index}")
    queue.put((index, mv.version))


def _context():
    """fork where there is one (no re-import per child: fast), spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _join(processes: list) -> None:
    for p in processes:
        p.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_concurrent_approvals_leave_exactly_one_approved(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    _register(reg, APPROVED)  # v1 serves while v2..v9 get approved at once
    for _ in range(8):
        _register(reg)
    ctx = _context()
    barrier = ctx.Barrier(8)
    procs = [
        ctx.Process(target=_approve_in_process, args=(str(tmp_path), v, barrier))
        for v in range(2, 10)
    ]
    for p in procs:
        p.start()
    # lock-free readers see one approved version at every moment
    reads = 0
    while any(p.is_alive() for p in procs) or reads == 0:
        states = _statuses(reg)
        assert list(states.values()).count(APPROVED) == 1, states
        assert reg.latest_approved("Nord") is not None
        reads += 1
    _join(procs)

    states = _statuses(reg)
    assert list(states.values()).count(APPROVED) == 1
    assert list(states.values()).count(ARCHIVED) == 8

    events = reg.history("Nord")
    approvals = [e for e in events if e["action"] == "approve"]
    assert sorted(e["version"] for e in approvals) == list(range(2, 10))
    assert len([e for e in events if e["action"] == "archive"]) == 8
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # the last approval is the one that stayed approved
    assert reg.latest_approved("Nord").version == approvals[-1]["version"]


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    ctx = _context()
    barrier, queue = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_register_in_process, args=(str(tmp_path), i, barrier, queue))
        for i in range(8)
    ]
    for p in procs:
        p.start()
    _join(procs)
    got = dict(queue.get(timeout=10) for _ in range(8))
    assert sorted(got.values()) == list(range(1, 9))
    reg = _registry(tmp_path)
    versions = reg.versions("Nord")
    assert [mv.version for mv in versions] == list(range(1, 9))
    # each version holds the record of the process that got its number
    assert {mv.record["run_id"]: mv.version for mv in versions} == {
        f"run-{i}": v for i, v in got.items()
    }
    assert len(reg.history("Nord")) == 8


# ------------------------------------------------------------------ artifacts


def test_lightgbm_model_round_trips_as_text(reg: ModelRegistry) -> None:
    lgb = pytest.importorskip("lightgbm")
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = x[:, 0] * 3 + x[:, 1] - x[:, 2] ** 2 + rng.normal(scale=0.1, size=200)
    params = {"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=10)
    meta = {"features": ["f0", "f1", "f2", "f3"], "params": params, "best_iteration": 10}

    mv = reg.register(
        "Nord",
        model_text=booster.model_to_string(),
        model_meta=meta,
        record=RECORD,
        status=APPROVED,
        reasons=[],
        actor="trainer",
    )
    text, loaded_meta = reg.load_artifacts(reg.latest_approved("Nord"))
    assert text.startswith("tree")
    assert loaded_meta == meta
    loaded = lgb.Booster(model_str=text)
    assert np.array_equal(loaded.predict(x), booster.predict(x))

    # text only: nothing below the store or the registry is a pickle
    model_file = reg.store.root / "Nord" / "0001" / "model.txt"
    assert model_file.read_bytes().startswith(b"tree")
    assert json.loads((reg.store.root / "Nord" / "0001" / "model.json").read_text()) == meta
    for path in reg.store.root.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert not raw.startswith(b"\x80"), path
            raw.decode("utf-8")
    assert mv.artifacts["model.txt"] == model_file.as_uri()


def test_tampered_artifact_is_refused(reg: ModelRegistry) -> None:
    mv = _register(reg, APPROVED)
    assert reg.load_artifacts(mv) == (FAKE_MODEL, {"features": ["lag_7", "promo"]})
    (reg.store.root / "Nord" / "0001" / "model.txt").write_text("tree\nswapped\n")
    with pytest.raises(RegistryError, match="Nord:v1: artifact model.txt does not match"):
        reg.load_artifacts(mv)
    assert reg.load_meta(mv) == {"features": ["lag_7", "promo"]}  # reads no model text
    (reg.store.root / "Nord" / "0001" / "model.json").write_text('{"features": []}')
    with pytest.raises(RegistryError, match="Nord:v1: artifact model.json does not match"):
        reg.load_meta(mv)


def _reference_frame():
    """Reference rows as training keeps them: text keys that look like numbers ("0001",
    a holiday "0"), integers, floats with gaps and long decimals, a flag, dates."""
    import pandas as pd

    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"]),
            "store": ["0001", "12", "0001"],
            "item": ["all", "all", "all"],
            "state_holiday": ["0", "a", None],
            "promo": [0, 1, 1],
            "lag_7": [1234.5678901234567, float("nan"), 1 / 3],
            "target": [5263.0, 0.1 + 0.2, 7.0],
            "is_future": [False, False, False],
        }
    )


def _register_with_reference(reg: ModelRegistry, reference: bytes | None) -> ModelVersion:
    return reg.register(
        "Nord",
        model_text=FAKE_MODEL,
        model_meta={
            "features": ["promo", "lag_7", "store", "item", "state_holiday"],
            "categorical": ["store", "item", "state_holiday"],
        },
        record=RECORD,
        status=APPROVED,
        reasons=[],
        actor="trainer",
        reference=reference,
    )


def test_reference_rows_are_stored_with_the_model_and_come_back_equal(reg: ModelRegistry):
    import pandas as pd

    from mlops_assets.training import reference_parquet

    frame = _reference_frame()
    mv = _register_with_reference(reg, reference_parquet(frame))
    path = reg.store.root / "Nord" / "0001" / "reference.parquet"
    assert mv.artifacts["reference.parquet"] == path.as_uri()
    assert set(mv.checksums) == {"model.txt", "model.json", "reference.parquet"}
    assert list(pd.read_parquet(path).columns) == list(frame.columns)
    assert artifact_key("Nord", 1, "reference.parquet") == "Nord/0001/reference.parquet"
    with pytest.raises(ValueError, match="unknown artifact"):
        artifact_key("Nord", 1, "reference.pkl")
    loaded = reg.load_reference(reg.latest_approved("Nord"))
    # values exactly, text as Arrow-backed strings (as the feature table is read)
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True, check_dtype=False)
    assert str(loaded["store"].dtype) == "str"
    assert loaded["store"].tolist() == ["0001", "12", "0001"]
    assert loaded["state_holiday"].isna().tolist() == [False, False, True]
    assert reg.load_artifacts(mv)[0] == FAKE_MODEL  # model and meta load as before


def test_a_reference_saved_as_csv_by_an_older_version_is_still_read(reg: ModelRegistry):
    """Versions registered before the reference was Parquet hold ``reference.csv``: read
    with the metadata's categorical columns as text (a store "0001", a holiday "0")."""
    import hashlib

    import pandas as pd

    from mlops_assets.training import reference_csv, reference_parquet

    frame = _reference_frame()
    mv = _register_with_reference(reg, reference_parquet(frame))
    _artifact(reg, 1, "reference.parquet").unlink()
    text = reference_csv(frame).encode()
    csv_path = _artifact(reg, 1, "reference.csv")
    csv_path.write_bytes(text)

    def as_older_version(body: dict) -> None:
        del body["artifacts"]["reference.parquet"], body["checksums"]["reference.parquet"]
        body["artifacts"]["reference.csv"] = csv_path.as_uri()
        body["checksums"]["reference.csv"] = hashlib.sha256(text).hexdigest()

    edit_record(reg, "Nord", mv.version, as_older_version)
    older = reg.latest_approved("Nord")
    loaded = reg.load_reference(older)
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert loaded["state_holiday"].tolist() == ["0", "a", None]  # None as Parquet has it
    assert _problems(reg) == []
    csv_path.write_bytes(text.replace(b"5263.0", b"9999.0"))
    with pytest.raises(RegistryError, match="Nord:v1: artifact reference.csv does not match"):
        reg.load_reference(older)


def test_a_tampered_reference_is_refused(reg: ModelRegistry) -> None:
    from mlops_assets.training import reference_parquet

    mv = _register_with_reference(reg, reference_parquet(_reference_frame()))
    path = reg.store.root / "Nord" / "0001" / "reference.parquet"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(RegistryError, match="Nord:v1: artifact reference.parquet does not match"):
        reg.load_reference(mv)


def test_a_version_registered_without_a_reference_has_none(reg: ModelRegistry) -> None:
    mv = _register_with_reference(reg, None)
    assert not {"reference.parquet", "reference.csv"} & {*mv.artifacts, *mv.checksums}
    assert not (reg.store.root / "Nord" / "0001" / "reference.parquet").exists()
    assert reg.load_reference(mv) is None
    with pytest.raises(ValueError, match="reference of Nord must be non-empty Parquet bytes"):
        _register_with_reference(reg, b"")


def test_the_fleet_gap_is_stored_with_the_model_and_checked(reg: ModelRegistry) -> None:
    """The weather's gap to the fleet over the training window (``fleet_gap.csv``): comes
    back equal, refused when altered, None for a version registered without it."""
    import pandas as pd

    from mlops_assets.training import reference_csv

    gap = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01", "2024-01-02"]),
            "temperature_c": [0.1 + 0.2, -1.5],  # 0.30000000000000004 round-trips
            "precipitation_mm": [0.0, 2.25],
        }
    )
    without = _register_with_reference(reg, None)
    assert reg.load_fleet_gap(without) is None
    mv = reg.register(
        "Nord",
        model_text=FAKE_MODEL,
        model_meta={"features": ["temperature_c"], "categorical": []},
        record=RECORD,
        status=APPROVED,
        reasons=[],
        actor="trainer",
        fleet_gap_csv=reference_csv(gap),
    )
    assert set(mv.checksums) == {"model.txt", "model.json", "fleet_gap.csv"}
    pd.testing.assert_frame_equal(reg.load_fleet_gap(mv), gap, check_exact=True)
    path = reg.store.root / "Nord" / "0002" / "fleet_gap.csv"
    path.write_text(path.read_text().replace("-1.5", "-9.5"))
    with pytest.raises(RegistryError, match="Nord:v2: artifact fleet_gap.csv does not match"):
        reg.load_fleet_gap(mv)


# ------------------------------------------------------------------ policy


@pytest.mark.parametrize(
    ("gate_passed", "source", "auto", "expected"),
    [
        (True, "recalibration", True, APPROVED),
        (True, "recalibration", False, PENDING),
        (True, "tuning", True, PENDING),
        (True, "tuning", False, PENDING),
        (False, "recalibration", True, REJECTED),
        (False, "recalibration", False, REJECTED),
        (False, "tuning", True, REJECTED),
        (False, "tuning", False, REJECTED),
    ],
)
def test_decide_status_policy(gate_passed: bool, source: str, auto: bool, expected: str) -> None:
    assert decide_status(gate_passed, source, auto_approve_recalibration=auto) == expected


def test_decide_status_refuses_unknown_input() -> None:
    with pytest.raises(ValueError, match="unknown model source"):
        decide_status(True, "manual")
    with pytest.raises(TypeError, match="gate_passed"):
        decide_status("yes", "tuning")  # type: ignore[arg-type]


# ------------------------------------------------------------------ retention


def _weekly_history(reg: ModelRegistry) -> None:
    """v1..v6 approved in turn (v1..v5 archived), v7 and v8 rejected, v9 pending."""
    for _ in range(6):
        _register(reg, APPROVED, source="recalibration")
    _register(reg, REJECTED)
    _register(reg, REJECTED)
    _register(reg, PENDING)


def _stored(reg: ModelRegistry, version: int) -> list[str]:
    folder = reg.store.root / "Nord" / f"{version:04d}"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_prune_deletes_old_archived_and_rejected_artifacts_and_keeps_the_rest(
    reg: ModelRegistry,
) -> None:
    _weekly_history(reg)
    _register(reg, APPROVED, source="recalibration")  # v10 approved: v6 archived too
    # v10 approved, v9 pending, archived v1..v6, rejected v7 v8
    versions_before = reg.versions("Nord")
    size = reg.artifact_bytes(reg.get("Nord", 1))
    assert size > 0

    pruned = reg.prune("Nord", keep_archived=2, keep_rejected=1, actor="ops")

    assert [p.version.version for p in pruned] == [1, 2, 3, 4, 7]
    assert all(p.freed_bytes == size for p in pruned)
    for v in (1, 2, 3, 4, 7):
        assert _stored(reg, v) == []
    for v in (5, 6, 8, 9, 10):  # newest archived, newest rejected, pending, approved
        assert _stored(reg, v) == ["model.json", "model.txt"]
        reg.load_artifacts(reg.get("Nord", v))
    # records and statuses unchanged; each prune is in the audit log
    assert reg.versions("Nord") == versions_before
    assert sorted(reg.pruned("Nord")) == [1, 2, 3, 4, 7]
    lines = [e for e in reg.history("Nord") if e["action"] == "prune"]
    assert [(e["version"], e["from_status"], e["to_status"], e["actor"]) for e in lines] == [
        (1, ARCHIVED, ARCHIVED, "ops"),
        (2, ARCHIVED, ARCHIVED, "ops"),
        (3, ARCHIVED, ARCHIVED, "ops"),
        (4, ARCHIVED, ARCHIVED, "ops"),
        (7, REJECTED, REJECTED, "ops"),
    ]
    # a second prune with the same settings has nothing to do and logs nothing
    events = reg.history("Nord")
    assert reg.prune("Nord", keep_archived=2, keep_rejected=1, actor="ops") == []
    assert reg.history("Nord") == events


def test_a_pruned_version_cannot_be_loaded_or_rolled_back_to(reg: ModelRegistry) -> None:
    _weekly_history(reg)
    reg.prune("Nord", keep_archived=1, keep_rejected=0, actor="ops")
    events = reg.history("Nord")

    with pytest.raises(RegistryError, match=r"Nord:v2's artifacts were pruned at .* retrain"):
        reg.rollback("Nord", 2, actor="alice", reason="v6 misbehaves")
    with pytest.raises(RegistryError, match=r"Nord:v2: its artifacts were pruned at"):
        reg.load_artifacts(reg.get("Nord", 2))
    assert reg.history("Nord") == events
    assert reg.latest_approved("Nord").version == 6
    # the kept archived version is still a rollback target
    assert reg.rollback("Nord", 5, actor="alice", reason="v6 misbehaves").status == APPROVED


def test_prune_never_touches_the_approved_or_pending_versions(reg: ModelRegistry) -> None:
    _weekly_history(reg)
    pruned = reg.prune("Nord", keep_archived=0, keep_rejected=0, actor="ops")
    assert [p.version.version for p in pruned] == [1, 2, 3, 4, 5, 7, 8]
    assert reg.load_artifacts(reg.latest_approved("Nord"))[0] == FAKE_MODEL
    assert reg.load_artifacts(reg.get("Nord", 9))[0] == FAKE_MODEL


def test_prune_dry_run_reports_and_changes_nothing(reg: ModelRegistry) -> None:
    _weekly_history(reg)
    events = reg.history("Nord")
    pruned = reg.prune("Nord", keep_archived=3, keep_rejected=2, actor="ops", dry_run=True)
    assert [p.version.version for p in pruned] == [1, 2]
    assert reg.history("Nord") == events
    assert _stored(reg, 1) == ["model.json", "model.txt"]


def test_a_prune_cut_off_after_its_commit_finishes_on_the_next_run(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _weekly_history(reg)

    def crash(key: str) -> bool:
        raise OSError("disk went away")

    monkeypatch.setattr(reg.store, "delete", crash)
    with pytest.raises(OSError):
        reg.prune("Nord", keep_archived=4, keep_rejected=2, actor="ops")
    monkeypatch.undo()
    assert sorted(reg.pruned("Nord")) == [1]  # committed, files still there
    assert _stored(reg, 1) == ["model.json", "model.txt"]

    assert reg.prune("Nord", keep_archived=4, keep_rejected=2, actor="ops") == []
    assert _stored(reg, 1) == []


@pytest.mark.parametrize(
    "keep", [{"keep_archived": -1, "keep_rejected": 0}, {"keep_archived": 1, "keep_rejected": True}]
)
def test_prune_refuses_bad_counts(reg: ModelRegistry, keep: dict) -> None:
    _weekly_history(reg)
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        reg.prune("Nord", actor="ops", **keep)
    assert reg.pruned("Nord") == {}


# ------------------------------------------------------------------ integrity


def _strip_checksum(reg: ModelRegistry, version: int, name: str, region: str = "Nord") -> None:
    """Make a version's record look like one from before checksums were recorded."""
    edit_record(reg, region, version, lambda body: body["checksums"].pop(name))


def _artifact(reg: ModelRegistry, version: int, name: str, region: str = "Nord") -> Path:
    return reg.store.root / region / f"{version:04d}" / name


def _problems(reg: ModelRegistry, region: str | None = None) -> list[tuple]:
    return [(p.label, p.artifact, p.kind) for p in reg.verify(region)]


def test_registration_records_a_checksum_for_every_artifact(reg: ModelRegistry) -> None:
    import hashlib

    from mlops_assets.training import reference_parquet

    mv = reg.register(
        "Nord",
        model_text=FAKE_MODEL,
        model_meta={"features": []},
        record=RECORD,
        status=APPROVED,
        reasons=[],
        actor="trainer",
        reference=reference_parquet(_reference_frame()),
        fleet_gap_csv="date,temperature_c\n2024-01-01,0.5\n",
    )
    names = {"model.txt", "model.json", "reference.parquet", "fleet_gap.csv"}
    assert set(mv.artifacts) == set(mv.checksums) == names
    for name in names:
        raw = _artifact(reg, 1, name).read_bytes()
        assert mv.checksums[name] == hashlib.sha256(raw).hexdigest(), name


@pytest.mark.parametrize("name", ["model.txt", "model.json"])
def test_an_artifact_without_a_recorded_checksum_is_refused_not_trusted(
    reg: ModelRegistry, name: str
) -> None:
    _register(reg, APPROVED)
    _strip_checksum(reg, 1, name)
    mv = reg.latest_approved("Nord")  # the record itself still lists and explains
    assert mv.version == 1 and name not in mv.checksums
    with pytest.raises(RegistryError) as info:
        reg.load_artifacts(mv)
    message = str(info.value)
    assert message.startswith(f"Nord:v1: artifact {name} has no recorded checksum")
    assert "not trusted" in message and "mlops-assets registry verify" in message


def test_an_optional_artifact_without_a_checksum_is_refused(reg: ModelRegistry) -> None:
    from mlops_assets.training import reference_parquet

    mv = _register_with_reference(reg, reference_parquet(_reference_frame()))
    assert reg.load_reference(mv) is not None
    _strip_checksum(reg, 1, "reference.parquet")
    with pytest.raises(RegistryError, match="Nord:v1: artifact reference.parquet has no recorded"):
        reg.load_reference(reg.get("Nord", 1))


def test_verify_finds_nothing_wrong_in_a_healthy_registry_and_skips_pruned_versions(
    reg: ModelRegistry,
) -> None:
    _weekly_history(reg)
    _register(reg, region="Sud")
    reg.prune("Nord", keep_archived=2, keep_rejected=1, actor="ops")  # v1..v3, v7 pruned
    report = reg.check_integrity()
    assert report.ok and report.problems == [] and reg.verify() == []
    assert report.checked == {"Nord": [4, 5, 6, 8, 9], "Sud": [1]}
    assert report.pruned == {"Nord": [1, 2, 3, 7], "Sud": []}
    assert report.swept == []


def test_verify_reports_every_version_whose_artifacts_do_not_match(reg: ModelRegistry) -> None:
    for _ in range(4):
        _register(reg, APPROVED, source="recalibration")
    _register(reg, region="Sud")
    _artifact(reg, 1, "model.txt").write_text("tree\nswapped\n")  # altered
    _artifact(reg, 2, "model.json").unlink()  # lost
    _strip_checksum(reg, 3, "model.json")  # an old record
    _artifact(reg, 1, "model.txt", region="Sud").write_text("tree\n")
    # v4 and the log are untouched

    assert _problems(reg) == [
        ("Nord:v1", "model.txt", "checksum_mismatch"),
        ("Nord:v2", "model.json", "missing_artifact"),
        ("Nord:v3", "model.json", "missing_checksum"),
        ("Sud:v1", "model.txt", "checksum_mismatch"),
    ]
    assert _problems(reg, "Sud") == [("Sud:v1", "model.txt", "checksum_mismatch")]
    mismatch = reg.verify("Sud")[0]
    assert str(mismatch).startswith("Sud:v1 model.txt: checksum_mismatch: sha256 recorded ")
    assert mismatch.to_dict()["label"] == "Sud:v1"
    # the version still serves nothing it cannot vouch for
    with pytest.raises(RegistryError, match="Nord:v3: artifact model.json has no recorded"):
        reg.load_artifacts(reg.get("Nord", 3))


def test_verify_reports_a_lost_record(reg: ModelRegistry) -> None:
    _register(reg)
    _register(reg)
    _register(reg, region="Sud")
    edit_record(reg, "Nord", 2, lambda body: body.clear())  # imported without its record file
    problems = reg.verify()
    assert [(p.label, p.artifact, p.kind) for p in problems] == [
        ("Nord:v2", None, "missing_record"),
    ]
    assert str(problems[0]).startswith("Nord:v2 record: missing_record: ")


def _leave_killed_registration(reg: ModelRegistry, version: int) -> list[Path]:
    """What registrations killed at different points leave, by hand: an orphan version's
    artifacts, unfinished writes (temp files) of artifacts."""
    from mlops_assets.workspace import temp_path_for

    orphan = _artifact(reg, version, "model.txt")
    orphan.parent.mkdir(parents=True)
    orphan.write_text("tree\nkilled\n")
    _artifact(reg, version, "reference.parquet").write_text("date\n")
    temps = [
        temp_path_for(_artifact(reg, version, "model.json")),
        temp_path_for(_artifact(reg, version + 1, "model.txt")),  # a folder of its own
        temp_path_for(_artifact(reg, 1, "model.txt")),  # beside a committed artifact
    ]
    for temp in temps:
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text("half")
    return [orphan, _artifact(reg, version, "reference.parquet"), *temps]


def _files(*roots: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for root in roots for p in root.rglob("*") if p.is_file()
    )


def test_the_next_registration_sweeps_leftovers_and_reuses_the_uncommitted_number(
    reg: ModelRegistry,
) -> None:
    _register(reg, APPROVED)
    _register(reg)
    clean = _files(reg.store.root)
    leftovers = _leave_killed_registration(reg, 3)
    assert all(p.exists() for p in leftovers)
    assert _statuses(reg) == {1: APPROVED, 2: PENDING}  # nothing half-registered shows

    mv = _register(reg)

    assert mv.version == 3  # nothing ever committed 3: the number is reused
    rewritten = {_artifact(reg, 3, "model.txt")}
    assert not any(p.exists() for p in leftovers if p not in rewritten)
    assert not (reg.store.root / "Nord" / "0004").exists()
    # exactly the new version's files were added: no killed reference.parquet under v3
    added = sorted(set(_files(reg.store.root)) - set(clean))
    assert added == ["Nord/0003/model.json", "Nord/0003/model.txt"]
    assert reg.load_artifacts(mv)[0] == FAKE_MODEL
    assert reg.verify() == []


def test_verify_and_sweep_remove_leftovers_and_say_where_they_were(reg: ModelRegistry) -> None:
    _register(reg, APPROVED)
    _register(reg)
    leftovers = _leave_killed_registration(reg, 3)

    report = reg.check_integrity()

    assert report.ok and report.checked == {"Nord": [1, 2]}
    assert sorted(report.swept) == sorted(
        p.as_uri() if p.is_relative_to(reg.store.root) and ".partial" not in p.name else str(p)
        for p in leftovers
    )
    assert not any(p.exists() for p in leftovers)
    assert reg.sweep("Nord") == [] and reg.check_integrity().swept == []
    assert _register(reg).version == 3


def test_a_first_registration_killed_leaves_nothing_verify_does_not_sweep(
    reg: ModelRegistry,
) -> None:
    """Killed before any version of the region was committed: no rows, still swept."""
    _register(reg, region="Sud")
    orphan = _artifact(reg, 1, "model.txt")
    orphan.parent.mkdir(parents=True)
    orphan.write_text("tree\n")
    assert reg.regions() == ["Sud"]
    report = reg.check_integrity()
    assert report.swept == [orphan.as_uri()] and report.checked == {"Sud": [1]}
    assert not orphan.exists()
