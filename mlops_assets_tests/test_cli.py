"""The command line: the demo, and ingesting the real rossmann-100 dataset through its spec."""

import json
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import cli
from mlops_assets.notifications import Notifier
from mlops_assets.storage.manifest import Manifest
from mlops_assets.workspace import Workspace
from mlops_assets_tests.registry.support import edit_record, register_approved_placeholder

ROSSMANN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rossmann-100"


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.delenv("MLOPS_SPEC", raising=False)
    monkeypatch.setenv("MLOPS_ENV", "ci")
    return home


@pytest.mark.e2e  # the whole demo pipeline: `make e2e`
def test_demo_runs_the_pipeline_and_prints_region_rows(tmp_path, dagster_home, capsys):
    assert cli.main(["demo", "--home", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    for region in ("Nord", "Süd", "Rhein, Main", "Ost", "West"):
        assert region in out
    assert "Rhein_Main" in out and "FAIL" not in out
    # each new model is monitored from the forecast its training run made: features are
    # not conditioned nor forecasts made again (no refresh_job), then the fleet's alerts
    assert out.count("region_monitoring_job[") == 5 and "refresh_job" not in out
    assert out.count("-> drift_report, realized_performance") == 5
    assert "monitoring_job -> monitoring_alerts" in out
    feed = Notifier.for_workspace(Workspace(tmp_path / "ws")).read()
    assert sorted(e["region"] for e in feed if e["kind"] == "model_approved") == [
        "Nord",
        "Ost",
        "Rhein_Main",
        "Sud",
        "West",
    ]
    # a second demo finds nothing new and still prints the summary
    assert cli.main(["demo", "--home", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert " ok " not in out and "Rhein_Main" in out


@pytest.mark.e2e  # ingests the whole of rossmann-100 (~30 s): `make e2e`
@pytest.mark.skipif(not ROSSMANN.is_dir(), reason=f"real data not present at {ROSSMANN}")
def test_rossmann_ingests_into_twelve_safe_region_partitions(tmp_path, dagster_home, capsys):
    home = tmp_path / "ws"
    code = cli.main(
        [
            "ingest",
            "--spec",
            "rossmann",
            "--source-dir",
            str(ROSSMANN),
            "--home",
            str(home),
            "--process",
        ]
    )
    assert code == 0, capsys.readouterr().out
    with dg.DagsterInstance.get() as instance:
        regions = sorted(instance.get_dynamic_partitions("region"))
        assert len(regions) == 12 and "HB_NI" in regions
        assert all("," not in r for r in regions)
        raw_sales = instance.get_latest_materialization_event(dg.AssetKey("raw_sales"))
        assert raw_sales.asset_materialization.metadata["exact_duplicates_dropped"].value == 6
    manifests = Manifest.for_workspace(Workspace(home)).records()
    train = next(m for m in manifests if m["file"].endswith("train.csv"))
    assert train["status"] == "ingested"
    assert train["rows"] == 91256 and train["exact_duplicates_dropped"] == 6
    # the weather files beyond the 12 mapped states were never dropped, nothing quarantined
    assert not (home / "quarantine").exists()


def test_evaluate_writes_the_metrics_json(tmp_path, capsys):
    from mlops_assets.sample_data import SampleConfig, generate

    generate(SampleConfig.tiny(days=500), tmp_path / "src")
    out = tmp_path / "eval.json"
    assert (
        cli.main(
            [
                "evaluate",
                "--spec",
                "sample",
                "--source-dir",
                str(tmp_path / "src"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert {"holdout_start", "holdout_end", "wall_seconds", "overall", "regions"} <= set(report)
    assert sorted(report["regions"]) == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    keys = {"mape", "wape", "rmse", "rmspe", "baseline_mape", "mape_reduction_vs_baseline"}
    for metrics in [report["overall"], *report["regions"].values()]:
        assert keys <= set(metrics)
        assert 0 < metrics["mape"] < 1 and 0 < metrics["wape"] < 1  # fractions
        assert metrics["mape_reduction_vs_baseline"] == pytest.approx(
            1 - metrics["mape"] / metrics["baseline_mape"]
        )
    # the last 42 days of the generated history are the holdout
    assert report["holdout_end"] == str(SampleConfig.tiny(days=500).end)
    printed = capsys.readouterr().out  # one line per region, as written to the JSON
    for key, metrics in report["regions"].items():
        assert f"  {key:<12} MAPE {metrics['mape']:.2%}  RMSPE {metrics['rmspe']:.2%}" in printed
    assert not list(tmp_path.glob("mlops-evaluate-*"))  # the temporary workspace is gone


def _registry(home: Path):
    from mlops_assets.registry import ModelRegistry
    from mlops_assets.workspace import Workspace

    return ModelRegistry.for_workspace(Workspace(home))


def test_an_instance_without_a_dagster_yaml_runs_with_telemetry_off(dagster_home):
    """Dagster collects usage statistics unless a dagster.yaml turns them off: a bare
    DAGSTER_HOME gets one that does; a user's own configuration is left as it is."""
    from dagster_shared.telemetry import get_telemetry_enabled_from_dagster_yaml

    assert get_telemetry_enabled_from_dagster_yaml()  # Dagster's default
    with cli._instance():
        pass
    assert not get_telemetry_enabled_from_dagster_yaml()

    own = "telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 1\n"
    (dagster_home / "dagster.yaml").write_text(own)
    with cli._instance() as instance:
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 1
    assert (dagster_home / "dagster.yaml").read_text() == own


def test_registry_prune_dry_run_then_prune_and_list_marks_pruned(tmp_path, dagster_home, capsys):
    home = tmp_path / "ws"
    registry = _registry(home)
    for _ in range(3):  # v1, v2 archived; v3 approved
        register_approved_placeholder(registry, "Nord")
    args = ["registry", "prune", "--home", str(home), "--keep-archived", "1"]

    assert cli.main([*args, "--dry-run"]) == 0
    assert "would prune Nord:v1 (archived, " in capsys.readouterr().out
    assert registry.pruned("Nord") == {}

    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "pruned Nord:v1 (archived, " in out and "Nord:v2" not in out
    assert sorted(registry.pruned("Nord")) == [1]

    assert cli.main([*args[:-1], "-1"]) == 2  # a negative count: a clear error, no pruning
    assert "keep_archived" in capsys.readouterr().err
    assert sorted(registry.pruned("Nord")) == [1]

    assert cli.main(["registry", "list", "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.endswith("(artifacts pruned)") for line in lines] == [True, False, False]

    code = cli.main(
        ["registry", "rollback", "--home", str(home), "--region", "Nord", "--version", "1"]
        + ["--reason", "try"]
    )
    assert code == 2
    assert "artifacts were pruned" in capsys.readouterr().err


def test_output_cut_off_by_a_closed_pipe_ends_quietly(tmp_path):
    """`mlops-assets registry list | head -1`: no traceback when head stops reading."""
    import subprocess
    import sys

    home = tmp_path / "ws"
    registry = _registry(home)
    for region in [f"R{i:03d}" for i in range(400)]:  # more output than a pipe buffers
        register_approved_placeholder(registry, region)
    cmd = [sys.executable, "-m", "mlops_assets.cli", "registry", "list", "--home", str(home)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout.readline().startswith(b"* R000:v1")
        proc.stdout.close()  # the reader goes away after one line
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141


def test_landing_status_says_which_run_left_a_file_pending(
    tmp_path, dagster_home, sample_dir, capsys
):
    import uuid

    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    home = tmp_path / "ws"
    landing_dir = home / "landing" / "stores"
    landing_dir.mkdir(parents=True)
    (landing_dir / "stores.csv").write_bytes((sample_dir / "stores" / "stores.csv").read_bytes())
    rel = "landing/stores/stores.csv"
    with dg.DagsterInstance.get() as instance:  # an ingest run that died with the file
        instance.add_run(
            dg.DagsterRun(
                job_name="ingest_job",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.FAILURE,
                run_config={"ops": {"raw_stores": {"config": {"files": [rel]}}}},
                tags={"mlops/trigger": "landing_sensor", "dagster/run_key": "ingest-abc"},
            )
        )

    assert cli.main(["landing", "status", "--json", "--home", str(home)]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert [(f["path"], f["source"], f["state"]) for f in files] == [(rel, "stores", "pending")]
    assert set(files[0]) == {"path", "sha256", "source", "state", "reason"}
    assert "(attempt 1) ended FAILURE" in files[0]["reason"]
    assert "requests attempt 2" in files[0]["reason"]

    assert cli.main(["landing", "status", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pending     {files[0]['sha256'][:12]}  {rel}  (ingest run ")
    assert out.rstrip().endswith("0 ingested, 0 quarantined, 1 pending of 1 landing files")


def test_registry_verify_prints_problems_and_exits_by_what_it_found(tmp_path, dagster_home, capsys):
    home = tmp_path / "ws"
    registry = _registry(home)
    register_approved_placeholder(registry, "Nord")
    register_approved_placeholder(registry, "Nord")
    register_approved_placeholder(registry, "Sud")
    verify = ["registry", "verify", "--home", str(home)]

    assert cli.main(verify) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ok: every artifact matches its checksum (3 version(s) of 2 region(s) checked, 0 pruned)"
    ]

    (home / "models" / "Nord" / "0001" / "model.txt").write_text("tree\nswapped\n")
    edit_record(registry, "Sud", 1, lambda body: body["checksums"].pop("model.json"))
    orphan = home / "models" / "Nord" / "0003" / "model.txt"  # a killed registration's
    orphan.parent.mkdir()
    orphan.write_text("tree\n")

    assert cli.main(verify) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"swept leftover {orphan.as_uri()}"
    assert lines[1].startswith("Nord:v1 model.txt: checksum_mismatch: sha256 recorded ")
    assert lines[2].startswith("Sud:v1 model.json: missing_checksum: ")
    assert (
        lines[3]
        == "2 problem(s) in 2 version(s) or log(s) (3 version(s) of 2 region(s) checked, 0 pruned)"
    )
    assert len(lines) == 4 and not orphan.exists()

    assert cli.main([*verify, "--region", "Sud", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["checked"] == {"Sud": [1]}
    assert [(p["label"], p["artifact"], p["kind"]) for p in report["problems"]] == [
        ("Sud:v1", "model.json", "missing_checksum")
    ]

    (home / "models" / "Nord" / "0001" / "model.txt").write_text("tree\n")  # as registered
    assert cli.main([*verify, "--region", "Nord"]) == 0
    assert capsys.readouterr().out.startswith("ok: every artifact matches")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "Ost"], "region 'Ost' has no registered versions"),
        (["--region", "../Nord"], "error: "),
    ],
)
def test_registry_verify_usage_errors_exit_2(tmp_path, dagster_home, capsys, extra, message):
    home = tmp_path / "ws"
    register_approved_placeholder(_registry(home), "Nord")
    assert cli.main(["registry", "verify", "--home", str(home), *extra]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_registry_verify_unknown_option_is_a_usage_error(tmp_path, dagster_home):
    with pytest.raises(SystemExit) as info:
        cli.main(["registry", "verify", "--home", str(tmp_path), "--regoin", "Nord"])
    assert info.value.code == 2


# -- errors: one line on stderr, exit code 2, no traceback ----------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CI environment whose variables the CLI may change are restored afterwards."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("MLOPS_ENV", "ci")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("MLOPS_SPEC", "sample")
    monkeypatch.delenv("MLOPS_WEBHOOK_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (tmp_path / "broken.yaml").write_text("name: sample\nsources: [unclosed\n  x: 1\n")
    return tmp_path


def _fails_cleanly(argv: list[str], capsys: pytest.CaptureFixture, *expected: str) -> str:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    for text in expected:
        assert text in lines[0]
    return lines[0]


INGEST = ["ingest", "--spec", "sample", "--source-dir"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (INGEST + ["nowhere"], ["source folder nowhere does not exist"]),
        (INGEST + ["a_file"], ["source folder a_file is not a folder"]),
        (["ingest", "--spec", "no_such_spec", "--source-dir", "src"], ["unknown spec", "sample"]),
        (["ingest", "--spec", "missing.yaml", "--source-dir", "src"], ["missing.yaml"]),
        (["ingest", "--spec", "folder.yaml", "--source-dir", "src"], ["is a folder"]),
        (["ingest", "--spec", "latin1.yaml", "--source-dir", "src"], ["UTF-8"]),
        (["ingest", "--spec", "broken.yaml", "--source-dir", "src"], ["not valid YAML"]),
        (INGEST + ["src", "--home", "a_file"], ["a_file is a file, not a folder"]),
        (["generate", "--out", "a_file"], ["a_file", "Not a directory"]),
        (["generate", "--out", "gen", "--drift", "Nord:junk"], ["--drift 'Nord:junk'"]),
        (["evaluate", "--spec", "no_such_spec", "--source-dir", "src", "--out", "o.json"], []),
        (["evaluate", "--spec", "sample", "--source-dir", "nowhere", "--out", "o.json"], []),
        (["evaluate", "--spec", "sample", "--source-dir", "src", "--out", "src"], ["a folder"]),
        (["registry", "history"], ["needs --region"]),
        (["registry", "approve", "--region", "Nord"], ["needs --version and --reason"]),
        (["registry", "prune", "--spec", "no_such_spec"], ["unknown spec"]),
        (["explain", "--region", "Nord", "--store", "S1"], ["no forecasts", "'Nord'"]),
        (["tune", "--region", "Nord", "--spec", "no_such_spec"], ["unknown spec"]),
        (["drill", "--out", "src"], ["--out src is a folder"]),
    ],
)
def test_input_errors_are_one_line_with_exit_code_2(cli_env, capsys, argv, expected):
    _fails_cleanly(argv, capsys, *expected)


def test_a_folder_where_a_landing_file_goes_is_one_line(cli_env, capsys):
    """Unreadable/unwritable even for root: a folder sits where a landing file must go."""
    (cli_env / "src" / "stores").mkdir()
    (cli_env / "src" / "stores" / "stores.csv").write_text("store_id,region\n")
    (cli_env / "ws" / "landing" / "stores" / "stores.csv").mkdir(parents=True)
    _fails_cleanly(INGEST + ["src"], capsys, "stores.csv", "Is a directory")


@pytest.mark.parametrize("content", [None, "{not json"], ids=["folder", "not-json"])
def test_unreadable_quarantine_record_is_one_line(cli_env, capsys, content):
    record = cli_env / "ws" / "quarantine" / "sales" / "abc__x.csv.reason.json"
    record.parent.mkdir(parents=True)
    if content is None:
        record.mkdir()
    else:
        record.write_text(content)
    _fails_cleanly(["quarantine"], capsys, "quarantine/sales/abc__x.csv.reason.json")


def test_bad_environment_is_one_line(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_ENV", "staging")
    _fails_cleanly(["quarantine"], capsys, "MLOPS_ENV='staging'")


def test_non_http_webhook_is_refused_before_any_work_without_showing_it(
    cli_env, capsys, monkeypatch
):
    monkeypatch.setenv("MLOPS_WEBHOOK_URL", "ftp://hooks.example.com/T0KEN-s3cr3t")
    line = _fails_cleanly(["generate", "--out", "gen"], capsys, "MLOPS_WEBHOOK_URL")
    assert "T0KEN-s3cr3t" not in line and "hooks.example.com" not in line
    assert not (cli_env / "gen").exists()


def test_errors_print_no_traceback_from_a_real_process(cli_env):
    import subprocess
    import sys

    for argv in (INGEST + ["nowhere"], ["ingest", "--spec", "nope", "--source-dir", "src"]):
        proc = subprocess.run(
            [sys.executable, "-m", "mlops_assets.cli", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_quarantine_lists_one_line_reasons_without_paths(cli_env, capsys, sample_dir):
    from mlops_assets.landing import ingest_file
    from mlops_assets.spec import load_spec
    from mlops_assets.workspace import Workspace

    ws = Workspace(cli_env / "ws")
    lines = (sample_dir / "sales" / "sales_2023.csv").read_text().splitlines()
    lines[9000] += ",oops"
    landing_file = ws.landing_dir("sales") / "ragged.csv"
    landing_file.parent.mkdir(parents=True)
    landing_file.write_text("\n".join(lines) + "\n")
    outcome = ingest_file(ws, load_spec("sample"), "sales", "landing/sales/ragged.csv")
    assert outcome.status == "quarantined"

    assert cli.main(["quarantine"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(outcome.sha256[:12])
    assert line.endswith(
        "landing/sales/ragged.csv  unparseable: could not read ragged.csv: line 9001 has 7 "
        "fields where the header has 6: " + repr(lines[9000])
    )
    assert str(cli_env) not in line


def test_a_worker_without_its_broker_or_instance_is_one_line(cli_env, capsys, monkeypatch):
    monkeypatch.delenv("MLOPS_CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("MLOPS_CELERY_BACKEND_URL", raising=False)
    _fails_cleanly(["worker"], capsys, "MLOPS_CELERY_BROKER_URL and MLOPS_CELERY_BACKEND_URL")
    monkeypatch.setenv("MLOPS_CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("MLOPS_CELERY_BACKEND_URL", "redis://127.0.0.1:1/1")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    _fails_cleanly(["worker"], capsys, "DAGSTER_HOME")
    monkeypatch.setenv("DAGSTER_HOME", str(cli_env))
    _fails_cleanly(["worker", "--name", "../w1"], capsys, "worker name '../w1'")
