"""The run-failure notifier turns a failed run into a feed entry (and webhook post)."""

import json

import dagster as dg
import pytest

from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.notifications import Notifier
from mlops_assets.workspace import Workspace


def _notifier(tmp_path, **kwargs) -> NotifierResource:
    """The notifier of a workspace below ``tmp_path`` (its feed: the state database)."""
    return NotifierResource(workspace=WorkspaceResource(root=str(tmp_path / "ws")), **kwargs)


def _feed(tmp_path) -> list[dict]:
    return Notifier.for_workspace(Workspace(tmp_path / "ws")).read()


def test_failed_run_is_notified_with_its_region(tmp_path, instance):
    @dg.op
    def explode():
        raise RuntimeError("disk full")

    @dg.job
    def broken_job():
        explode()

    result = broken_job.execute_in_process(
        instance=instance, raise_on_error=False, tags={"dagster/partition": "Nord"}
    )
    assert not result.success
    from mlops_assets.defs.notifications.sensors import build_run_failure_notifier

    sensor = build_run_failure_notifier(dg.DefaultSensorStatus.STOPPED)
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"notifier": _notifier(tmp_path)},
    ).for_run_failure() as context:
        sensor(context)
    [entry] = _feed(tmp_path)
    assert entry["kind"] == "run_failure" and entry["region"] == "Nord"
    # the cause, not "the run failed": the step, the error's first line and a link
    link = f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert entry["message"] == f"broken_job failed at step explode: RuntimeError: disk full {link}"
    assert entry["details"]["run_id"] == result.run_id
    assert entry["details"]["step"] == "explode" and entry["details"]["run_url"] == link


def test_repeated_failures_of_one_kind_are_posted_once(tmp_path, instance):
    """Three runs failing with the same error: one webhook post, three feed entries."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    from mlops_assets.defs.notifications.sensors import build_run_failure_notifier

    posts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()

    @dg.op
    def explode():
        raise RuntimeError("disk full")

    @dg.job
    def broken_job():
        explode()

    sensor = build_run_failure_notifier(dg.DefaultSensorStatus.STOPPED)
    notifier = _notifier(tmp_path, webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
    try:
        for region in ("Nord", "Sud", "West"):
            result = broken_job.execute_in_process(
                instance=instance, raise_on_error=False, tags={"dagster/partition": region}
            )
            with dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_instance=instance,
                dagster_run=result.dagster_run,
                dagster_event=result.get_run_failure_event(),
                resources={"notifier": notifier},
            ).for_run_failure() as context:
                sensor(context)
    finally:
        server.shutdown()
        server.server_close()
    entries = _feed(tmp_path)
    assert [(e["region"], e["details"]["grouped"]) for e in entries] == [
        ("Nord", False),
        ("Sud", True),
        ("West", True),
    ]
    assert [p["region"] for p in posts] == ["Nord"]


SECRET = "T0KEN-s3cr3t"


def _refused_url() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook/{SECRET}"


def test_failing_webhook_never_fails_the_sensor(tmp_path, instance):
    """The run-failure sensor with a webhook that answers 500: recorded, not raised."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    from mlops_assets.defs.notifications.sensors import build_run_failure_notifier

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server API)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()

    @dg.op
    def explode():
        raise RuntimeError("disk full")

    @dg.job
    def broken_job():
        explode()

    result = broken_job.execute_in_process(instance=instance, raise_on_error=False)
    sensor = build_run_failure_notifier(dg.DefaultSensorStatus.STOPPED)
    url = f"http://127.0.0.1:{server.server_port}/hook/{SECRET}"
    try:
        with dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(),
            resources={"notifier": _notifier(tmp_path, webhook_url=url)},
        ).for_run_failure() as context:
            sensor(context)
    finally:
        server.shutdown()
        server.server_close()
    entries = _feed(tmp_path)
    assert [e["kind"] for e in entries] == ["run_failure", "delivery_failed"]
    assert "HTTP 500" in entries[1]["message"] and SECRET not in json.dumps(entries)


def test_unreachable_webhook_never_fails_a_run(tmp_path):
    @dg.asset
    def approves(notifier: NotifierResource) -> None:
        notifier.send("model_approved", "Nord:v1 approved", region="Nord")

    resource = _notifier(tmp_path, webhook_url=_refused_url())
    assert dg.materialize([approves], resources={"notifier": resource}).success
    entries = _feed(tmp_path)
    assert [e["kind"] for e in entries] == ["model_approved", "delivery_failed"]


def test_non_http_webhook_is_refused_when_the_resource_starts(tmp_path):
    calls = []

    @dg.asset
    def approves(notifier: NotifierResource) -> None:
        calls.append(1)

    resource = _notifier(tmp_path, webhook_url=f"ftp://hooks.example/{SECRET}")
    result = dg.materialize([approves], resources={"notifier": resource}, raise_on_error=False)
    assert not result.success and calls == []  # refused before the asset ran
    failure = next(e for e in result.all_events if e.is_failure)
    text = str(failure.event_specific_data.error.to_string())
    assert "MLOPS_WEBHOOK_URL is not an http:// or https:// URL" in text and SECRET not in text


def test_non_http_webhook_refuses_to_load_the_code_location(tmp_path, monkeypatch):
    from mlops_assets.definitions import build_definitions
    from mlops_assets.settings import Settings, SettingsError

    monkeypatch.setenv("MLOPS_WEBHOOK_URL", f"smtp://hooks.example/{SECRET}")
    with pytest.raises(SettingsError, match="MLOPS_WEBHOOK_URL") as exc:
        build_definitions(Settings(env="ci", home=tmp_path, spec="sample"))
    assert SECRET not in str(exc.value)


def test_code_location_load_error_never_prints_the_url(tmp_path):
    """What `dg dev` / a run process shows when the module fails to import: the setting's
    name and the problem, nowhere the URL (not in the traceback either)."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "MLOPS_ENV": "ci",
        "MLOPS_HOME": str(tmp_path / "ws"),
        "MLOPS_WEBHOOK_URL": f"hooks.example.com/services/{SECRET}",
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import mlops_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "SettingsError: MLOPS_WEBHOOK_URL is not an http:// or https:// URL" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_a_run_failed_from_outside_is_notified_with_the_engine_error(tmp_path, instance):
    """A run whose worker died or never started has no failed step: the cause is the engine
    event with the error (not "marked as failed from outside the execution context")."""
    from dagster._core.events import EngineEventData
    from dagster._utils.error import SerializableErrorInfo

    from mlops_assets.defs.notifications.sensors import build_run_failure_notifier

    @dg.op
    def noop():
        pass

    @dg.job
    def train_job():
        noop()

    run = instance.create_run_for_job(train_job, tags={"dagster/partition": "Sud"})
    instance.report_engine_event(
        "Run worker (pid 4242) is not running",
        run,
        EngineEventData(
            error=SerializableErrorInfo(
                "DagsterUserCodeUnreachableError: User code server request timed out\n",
                [],
                "DagsterUserCodeUnreachableError",
            )
        ),
    )
    instance.report_run_failed(run)
    failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1]
    sensor = build_run_failure_notifier(dg.DefaultSensorStatus.STOPPED)
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        dagster_event=failure.get_dagster_event(),
        resources={"notifier": _notifier(tmp_path)},
    ).for_run_failure() as context:
        sensor(context)
    [entry] = _feed(tmp_path)
    assert entry["region"] == "Sud" and entry["details"]["step"] is None
    assert entry["details"]["error"] == (
        "DagsterUserCodeUnreachableError: User code server request timed out"
    )
