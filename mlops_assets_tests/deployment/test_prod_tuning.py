"""Tuning studies on PostgreSQL (the prod state database): optuna's RDB storage in that
database (as on dev's SQLite), no file below the workspace, continued by the next run, one
tuning run per region at a time (a session advisory lock), and a trial left RUNNING by a
dead process failed on resume. Needs Debian's PostgreSQL (``make e2e-prod``)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from mlops_assets.deployment.local_services import PostgresServer
from mlops_assets.storage.tuning_studies import TuningBusyError, _region_lock
from mlops_assets.workspace import Workspace
from mlops_assets_tests.deployment.services import require_services
from mlops_assets_tests.test_tuning import QUICK, REGION, tune
from mlops_assets_tests.test_tuning import data as data  # noqa: F401  (fixtures)
from mlops_assets_tests.test_tuning import source as source  # noqa: F401

pytestmark = pytest.mark.e2e_prod


def test_a_study_on_postgresql_continues_refuses_a_second_run_and_fails_dead_trials(
    data,  # noqa: F811
    tmp_path: Path,
) -> None:
    require_services()
    postgres = PostgresServer()
    try:
        postgres.start()
        url = postgres.url("mlops", "postgresql+psycopg2")
        ws = Workspace(tmp_path / "ws", database_url=url)

        first = tune(data, ws)
        assert first.storage_path == url  # no password in it to hide here
        assert (first.n_trials, first.n_complete) == (4, 4)
        assert not ws.study_path(REGION).exists()  # no journal file below the workspace
        assert not (tmp_path / "ws" / "state").exists()  # nor a lock file

        with _region_lock(url, REGION), pytest.raises(TuningBusyError, match="another"):
            tune(data, ws)

        # a process that died mid-trial left it RUNNING
        storage = optuna.storages.RDBStorage(url)
        study_id = storage.get_study_id_from_name(first.study_name)
        storage.create_new_trial(study_id)
        storage.engine.dispose()

        second = tune(data, ws, QUICK.model_copy(update={"n_trials": 2}))
        assert second.study_name == first.study_name
        assert second.stale_trials_failed == 1
        assert (second.n_trials, second.new_trials, second.n_failed) == (7, 2, 1)
        assert second.n_complete == 6
    finally:
        postgres.stop()
