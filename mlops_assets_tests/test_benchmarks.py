"""The benchmark scripts still import: they are run by hand, a session at a time, so a
rename in the package can break one unseen until someone needs its figures (the monitoring
split left ``drift_replay.py``, ``tree_cost.py`` and ``shap_sample.py`` unimportable)."""

import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

_IMPORT_ALL = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""


def test_every_benchmark_script_imports():
    names = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
    assert "rossmann_e2e" in names and "drift_replay" in names
    # as the scripts run: their own folder first on the path, their imports at the top only
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *names],
        cwd=BENCHMARKS,
        env={"PYTHONPATH": str(BENCHMARKS), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "", out.stdout


_BUSY_ONE_SECOND = """
import time
end = time.process_time() + 1.0
while time.process_time() < end:
    pass
time.sleep(1.0)
"""


def test_process_sampler_charges_a_deployment_process_cpu_to_its_kind(tmp_path):
    """The benchmarks' CPU budget: a process of the deployment (its DAGSTER_HOME in the
    environment) is charged to its kind, a process of another home is not."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from deployment import ProcessSampler
    finally:
        sys.path.remove(str(BENCHMARKS))

    home = tmp_path / "home"
    sampler = ProcessSampler(home, interval=0.1).start()
    start = time.time()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _BUSY_ONE_SECOND], env={**os.environ, "DAGSTER_HOME": str(h)}
        )
        for h in (home, tmp_path / "another_home")
    ]
    for child in children:
        child.wait(timeout=60)
    sampler.stop()
    used = sampler.cpu_seconds(start, time.time())
    # the busy second, read while the process still sleeps; a Python start costs more
    assert 0.9 <= used.get("other", 0.0) <= 3.0, used
    assert set(used) >= {"harness", "machine_busy", "capacity", "idle"}
    assert used["machine_busy"] >= used["other"] + 0.9  # the other home's child ran too
    assert used["capacity"] >= 2 * (os.cpu_count() or 1) * 0.9
