"""The prod profile on loopback (`make e2e-prod`): PostgreSQL holds Dagster's instance and
the state database, Redis brokers the steps, two Celery worker processes execute them, and
the model artifacts and the data tables go to S3 (moto's server;
``MLOPS_STORAGE_ROOT=s3://...``).

Sample data dropped into the landing zone is ingested by the sensors; a backfill of
region_model + forecast over every region (the UI's `launchPartitionBackfill`) runs its
steps on both workers; one worker is killed with SIGKILL in the middle of a step, and that
step is delivered again to the other worker instead of being lost.

Every "host" has its own MLOPS_HOME and DAGSTER_HOME, empty folders of its own: the
webserver with the daemon and its runs, each worker, and the command line that drops the
data. They share only PostgreSQL, Redis and the S3 storage root, so a step that read a file
only another host wrote would fail; none of those folders holds a file at the end."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.deployment.local_services import (
    PostgresServer,
    RedisServer,
    S3Server,
    prod_environment,
)
from mlops_assets.registry import APPROVED, ModelRegistry
from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import load_spec
from mlops_assets.workspace import Workspace
from mlops_assets_tests.deployment.daemon_support import BIN, REPO_ROOT, Deployment
from mlops_assets_tests.deployment.services import (
    kill_worker,
    require_services,
    start_worker,
    use_prod_instance,
)
from mlops_assets_tests.deployment.test_ui import _backfill
from mlops_assets_tests.deployment.ui_support import DagsterUI

pytestmark = pytest.mark.e2e_prod

WORKERS = ("w1", "w2")
# a killed worker's step is delivered again after this many seconds: above a sample
# region's step (~10-20 s here), so a step that is still running is never delivered twice
VISIBILITY_TIMEOUT_S = 45
EXECUTING = "in celery worker"


def _executions(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[str, str, str]]:
    """(run id, step key, worker name) of every step a worker took, in order."""
    found = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            if EXECUTING not in (entry.message or ""):
                continue
            worker = event.engine_event_data.metadata["Celery worker"].value
            found.append((run_id, event.step_key, str(worker).split("@")[0]))
    return found


def _succeeded_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    return {
        e.dagster_event.step_key
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
    }


def _host_env(dep: Deployment, tmp_path: Path, host: str) -> dict[str, str]:
    """Another host's variables: the deployment's (the same PostgreSQL, Redis and S3), with
    its own empty MLOPS_HOME and its own DAGSTER_HOME holding the prod instance file."""
    base = tmp_path / "hosts" / host
    home = base / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "deploy" / "prod" / "dagster.yaml", home / "dagster.yaml")
    return {**dep.env, "MLOPS_HOME": str(base / "ws"), "DAGSTER_HOME": str(home)}


def _files_below(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _wait(what: str, poll, timeout: float, logs: Deployment):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = poll()
        if value:
            return value
        time.sleep(0.5)
    tails = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted(logs.logs.glob("*.log"))
    )
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")


def test_prod_profile_runs_steps_on_celery_workers_and_survives_a_killed_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_services()
    # a SIGTERM (a CI timeout) unwinds through the cleanup below like Ctrl-C does
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    postgres, redis, s3 = PostgresServer(), RedisServer(), S3Server()
    workers: dict[str, subprocess.Popen] = {}
    dep = ui = None
    try:
        postgres.start()
        redis.start()
        s3.start()
        storage_root = f"s3://{S3Server.BUCKET}/workspace"
        dep = Deployment(
            tmp_path,
            mlops_env="prod",
            extra_env={
                **prod_environment(postgres, redis),
                **s3.environment(),
                "MLOPS_STORAGE_ROOT": storage_root,
                "MLOPS_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
                # a run per region: the steps of several runs spread over both workers
                "MLOPS_REGIONS_PER_RUN": "1",
            },
        )
        use_prod_instance(dep)
        for name in WORKERS:
            workers[name] = start_worker(dep, name, env=_host_env(dep, tmp_path, name))
        ui = DagsterUI(dep)  # webserver + daemon; prod: the sensors start with it
        ui.start()
        # this process reads the instance too: its dagster.yaml names the variable
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", dep.env["DAGSTER_POSTGRES_URL"])
        instance = dg.DagsterInstance.from_config(str(dep.home))
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"

        source = tmp_path / "sample"
        generate(SampleConfig(), source)  # what `make demo` generates
        # dropped from a host of its own (a data engineer's machine)
        out = subprocess.run(
            [str(BIN / "mlops-assets"), "ingest", "--spec", "sample", "--source-dir", str(source)],
            cwd=REPO_ROOT,
            env=_host_env(dep, tmp_path, "laptop"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr

        raw_keys = [raw_asset_key(s) for s in load_spec("sample").sources]

        def features_of_every_region() -> list[str] | None:
            """Every source ingested, then every region's features built after the last."""
            regions = sorted(instance.get_dynamic_partitions("region"))
            raw = [
                record.storage_id
                for key in raw_keys  # the sample has no actuals file: that one stays empty
                for record in instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key), limit=1
                ).records
            ]
            if len(regions) != 5 or len(raw) < len(raw_keys) - 1:
                return None
            last_raw = max(raw)
            done = {
                r
                for r in regions
                for record in instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey("features"), asset_partitions=[r]),
                    limit=1,
                ).records
                if record.storage_id > last_raw
            }
            busy = instance.get_runs(
                dg.RunsFilter(
                    statuses=[
                        dg.DagsterRunStatus.QUEUED,
                        dg.DagsterRunStatus.STARTING,
                        dg.DagsterRunStatus.STARTED,
                    ]
                )
            )
            return regions if done == set(regions) and not busy else None

        regions = _wait("ingest and features of 5 regions", features_of_every_region, 900, dep)
        ingest_and_features = [r.run_id for r in instance.get_runs()]
        assert {w for _, _, w in _executions(instance, ingest_and_features)} <= set(WORKERS)

        # kill w1 while it executes a backfill step, from a thread-free poll loop
        killed: dict[str, str] = {}

        def kill_w1_mid_step() -> None:
            backfill_runs = [
                r.run_id
                for r in instance.get_runs()
                if r.tags.get("dagster/backfill") and r.run_id not in ingest_and_features
            ]
            for run_id, step, worker in _executions(instance, backfill_runs):
                if worker == "w1" and step not in _succeeded_steps(instance, run_id):
                    kill_worker(workers["w1"])
                    killed.update(run_id=run_id, step=step)
                    return

        import threading

        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set() and not killed:
                with contextlib.suppress(Exception):
                    kill_w1_mid_step()
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.monotonic()
        backfill_id = _backfill(ui, regions)
        backfill_s = time.monotonic() - start
        stop.set()
        watcher.join(timeout=10)
        assert killed, "w1 never took a backfill step"

        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == len(regions)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        executions = _executions(instance, [r.run_id for r in runs])
        # steps ran in both workers
        assert {w for _, _, w in executions} == set(WORKERS), executions
        # the step w1 died in was delivered again, to w2, and succeeded there
        again = [
            w for run, step, w in executions if (run, step) == (killed["run_id"], killed["step"])
        ]
        assert again == ["w1", "w2"], (killed, executions)
        assert killed["step"] in _succeeded_steps(instance, killed["run_id"])

        # every partition materialized, with its checks, none failing
        for key in ("region_model", "forecast"):
            assert instance.get_materialized_partitions(dg.AssetKey(key)) >= set(regions)
        # (a one-region run's evaluations carry no partition of their own: the run's it is;
        # a backfill run names it as a range of one)
        evaluations = [
            (
                entry.dagster_event.asset_check_evaluation_data,
                run.tags.get("dagster/partition")
                or run.tags["dagster/asset_partition_range_start"],
            )
            for run in runs
            for entry in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        checked = {(e.asset_key.to_user_string(), e.partition or p) for e, p in evaluations}
        assert checked == {(k, r) for k in ("region_model", "forecast") for r in regions}
        assert [(e.check_name, p) for e, p in evaluations if not e.passed] == []

        # one approved version per region in the registry, its artifacts in S3 (as intact
        # as registered), none on the local disk
        for name, value in s3.environment().items():
            monkeypatch.setenv(name, value)
        workspace = Workspace(dep.ws_root, dep.env["MLOPS_DATABASE_URL"], storage_root)
        registry = ModelRegistry.for_workspace(workspace)
        for region in regions:
            approved = [v for v in registry.versions(region) if v.status == APPROVED]
            assert len(approved) == 1, (region, approved)
            for uri in approved[0].artifacts.values():
                assert uri.startswith(f"{storage_root}/models/{region}/"), uri
        assert registry.verify() == []
        assert not workspace.models_dir.exists()
        # the ingested files, the feature tables the workers trained from and the forecasts
        # they wrote are in S3 too
        assert workspace.data.keys("features") == [f"features/{r}.parquet" for r in regions]
        assert workspace.data.keys("raw/sales")
        for region in regions:
            assert workspace.data.keys(workspace.forecasts_folder(region), ".forecast.parquet")
        for folder in ("raw", "features", "forecasts"):
            assert not (dep.ws_root / folder).exists(), folder
        # no host kept a file of its own below its MLOPS_HOME: nothing a step read came
        # from one host's disk
        homes = {"daemon": dep.ws_root} | {
            host: tmp_path / "hosts" / host / "ws" for host in (*WORKERS, "laptop")
        }
        local = {host: _files_below(home) for host, home in homes.items() if home.exists()}
        assert not any(local.values()), local
        # the state database is the Postgres one: the ingestion manifest is there
        assert int(postgres.sql("mlops", "SELECT count(*) FROM manifest_files")) > 0

        failed = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE]
        assert failed == [], [(r.job_name, r.tags) for r in failed]
        print(
            f"prod e2e: backfill of {len(regions)} regions {backfill_s:.1f} s; steps: "
            + ", ".join(f"{step}@{w}" for _, step, w in executions)
            + f"; killed w1 in {killed['step']} of run {killed['run_id'][:8]}"
        )
        instance.dispose()
    finally:
        if ui is not None:
            ui.stop()
        for proc in workers.values():
            kill_worker(proc)
        if dep is not None:
            dep.stop()
        redis.stop()
        postgres.stop()
        s3.stop()
        signal.signal(signal.SIGTERM, previous)
