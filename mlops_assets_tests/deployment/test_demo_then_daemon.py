"""`make demo`, then `make dev`: the daemon finds nothing left to do, and what the UI
shows after the demo is green (every run succeeded, every check's latest result passed)."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.local_driver import PIPELINE_SENSORS
from mlops_assets_tests.deployment.daemon_support import Deployment, wait_for

pytestmark = pytest.mark.e2e


def _completed_ticks(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Per sensor, the status of its finished ticks (newest first)."""
    out = {}
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10)
        out[state.instigator_name] = [t.status.value for t in ticks if t.status.value != "STARTED"]
    return out


def _latest_check_results(instance: dg.DagsterInstance) -> dict[tuple[str, str | None], bool]:
    """The latest evaluation of every check, per partition (what the UI colours)."""
    latest = {}
    for run in reversed(list(instance.get_runs())):  # oldest first
        for entry in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ):
            evaluation = entry.dagster_event.asset_check_evaluation_data
            key = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            latest[(key, evaluation.partition)] = evaluation.passed
    return latest


def test_the_daemon_after_the_demo_launches_nothing_and_everything_is_green(
    tmp_path: Path,
) -> None:
    # dev: sensors and schedules start with the daemon, as `make dev` runs them
    dep = Deployment(tmp_path, mlops_env="dev")
    try:
        dep.cli("mlops-assets", "demo", timeout=900)
        instance = dg.DagsterInstance.from_config(str(dep.home))
        demo_runs = list(instance.get_runs())
        assert demo_runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in demo_runs), [
            (r.job_name, r.tags.get("dagster/partition"), r.status.value) for r in demo_runs
        ]
        checks = _latest_check_results(instance)
        assert checks and all(checks.values()), sorted(k for k, ok in checks.items() if not ok)

        dep.start_daemon()
        started = time.monotonic()

        def every_pipeline_sensor_ticked_twice() -> bool:
            time.sleep(2)  # reading every sensor's ticks is not free: poll gently
            assert dep.daemon is not None and dep.daemon.poll() is None, dep.daemon_log()
            ticks = _completed_ticks(instance)
            return all(len(ticks.get(name, [])) >= 2 for name in PIPELINE_SENSORS)

        wait_for("two ticks of every pipeline sensor", every_pipeline_sensor_ticked_twice, 600, dep)
        ticks = _completed_ticks(instance)
        new_runs = [r for r in instance.get_runs() if r.run_id not in {d.run_id for d in demo_runs}]
        assert new_runs == [], (
            f"the daemon launched {len(new_runs)} run(s) within "
            f"{time.monotonic() - started:.0f} s of starting after the demo: "
            f"{[(r.job_name, r.tags.get('dagster/partition')) for r in new_runs]}"
        )
        for name in PIPELINE_SENSORS:
            assert set(ticks[name]) == {"SKIPPED"}, (name, ticks[name])
        assert _latest_check_results(instance) == checks
    finally:
        dep.stop()
    assert dep.stray_processes() == []
