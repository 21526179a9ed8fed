"""Fault injection with a real kill: a process registering a model version is SIGKILLed at
a deterministic point of the registration. Afterwards no half version is visible, the
sweep (of ``verify`` or of the next registration) leaves no temporary or orphan file, and
the next version number continues cleanly. Slow-ish (a process per case): ``make e2e``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.model_store import LocalModelStore
from mlops_assets.registry import APPROVED, PENDING, ModelRegistry
from mlops_assets.workspace import is_temp_name

REPO = Path(__file__).resolve().parents[2]
MODEL = "tree\nversion=v4\n"

# Registers Nord's next version (approved, with a monitoring reference), killing itself
# with SIGKILL at the point named by argv[2]; nothing in it runs after the kill.
VICTIM = """
import io, os, signal, sys
from pathlib import Path

import pandas as pd

from mlops_assets import registry
from mlops_assets.model_store import LocalModelStore

root, point = Path(sys.argv[1]), sys.argv[2]


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


if point == "mid_write":  # the first artifact's bytes sit in its temp file, not renamed
    os.replace = die
elif point == "after_first_artifact":
    put = LocalModelStore.put

    def put_then_die(self, key, data):
        put(self, key, data)
        die()

    LocalModelStore.put = put_then_die
elif point == "before_commit":  # every artifact is written, no row is
    registry.ModelRegistry._commit = die
else:
    raise SystemExit(f"unknown point {point}")
reg = registry.ModelRegistry(f"sqlite:///{root / 'state.sqlite'}", LocalModelStore(root / "models"))
reg.register(
    "Nord",
    model_text="tree\\nkilled\\n",
    model_meta={"killed": True},
    record={"source": "recalibration"},
    status="approved",
    reasons=[],
    actor="doomed",
    reference=(lambda buffer: pd.DataFrame({"target": [1.0]}).to_parquet(buffer) or buffer)(
        io.BytesIO()
    ).getvalue(),
)
raise SystemExit(3)  # reached only if the kill did not happen
"""

# what each kill leaves behind (the random part of a temp name shown as *)
LEFT_BEHIND = {
    "mid_write": ["models/Nord/0003/.model.txt.*.partial.tmp"],
    "after_first_artifact": ["models/Nord/0003/model.txt"],
    "before_commit": [
        "models/Nord/0003/model.json",
        "models/Nord/0003/model.txt",
        "models/Nord/0003/reference.parquet",
    ],
}
V3_FILES = ["models/Nord/0003/model.json", "models/Nord/0003/model.txt"]


def _files(root: Path) -> set[str]:
    return {
        # the random part and the writer (host-pid) of a temp name shown as *
        re.sub(
            r"\.[a-z0-9_]{8}\.[^.]+\.partial\.tmp$",
            ".*.partial.tmp",
            p.relative_to(root).as_posix(),
        )
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("state.sqlite")  # the database's own files
    }


def _register(reg: ModelRegistry, status: str) -> None:
    reg.register(
        "Nord",
        model_text=MODEL,
        model_meta={"features": []},
        record={"source": "recalibration"},
        status=status,
        reasons=[],
        actor="trainer",
    )


@pytest.mark.e2e
@pytest.mark.parametrize("then", ["register", "verify"])
@pytest.mark.parametrize("point", list(LEFT_BEHIND))
def test_a_registration_killed_midway_leaves_no_half_version_and_numbers_continue(
    tmp_path: Path, point: str, then: str
) -> None:
    reg = ModelRegistry(
        f"sqlite:///{tmp_path / 'state.sqlite'}", LocalModelStore(tmp_path / "models")
    )
    _register(reg, APPROVED)
    _register(reg, PENDING)
    before = _files(tmp_path)

    victim = subprocess.run(
        [sys.executable, "-c", VICTIM, str(tmp_path), point],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert victim.returncode == -signal.SIGKILL, victim.stderr
    assert sorted(_files(tmp_path) - before) == LEFT_BEHIND[point]
    # readers never see the killed registration: no v3, v1 still the approved model
    assert [mv.version for mv in reg.versions("Nord")] == [1, 2]
    assert reg.latest_approved("Nord").version == 1
    assert len(reg.history("Nord")) == 2

    if then == "verify":  # the sweep of verify, before anything registers again
        report = reg.check_integrity()
        assert report.ok and report.checked == {"Nord": [1, 2]}
        assert len(report.swept) == len(LEFT_BEHIND[point])
        assert _files(tmp_path) == before

    _register(reg, APPROVED)  # without a reference this time

    assert [mv.version for mv in reg.versions("Nord")] == [1, 2, 3]  # 3 is reused
    assert sorted(_files(tmp_path) - before) == V3_FILES  # nothing of the killed run
    assert not [p for p in tmp_path.rglob("*") if is_temp_name(p.name)]
    assert reg.verify() == []
    mv = reg.latest_approved("Nord")
    assert mv.version == 3 and mv.actor == "trainer"
    assert reg.load_artifacts(mv) == (MODEL, {"features": []})
    assert reg.load_reference(mv) is None  # the killed run's reference is gone
    assert [e["seq"] for e in reg.history("Nord")] == [1, 2, 3, 4]  # register v3, archive v1
