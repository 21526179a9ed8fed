"""The benchmark scripts still import: they are run by hand, a session at a time, so a
rename in the package can break one unseen until someone needs its figures (the monitoring
split left ``drift_replay.py``, ``tree_cost.py`` and ``shap_sample.py`` unimportable)."""

import subprocess
import sys
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
