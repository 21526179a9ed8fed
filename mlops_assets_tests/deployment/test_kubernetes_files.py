"""Kubernetes on paper: deploy/Dockerfile, deploy/helm/values.yaml and README's commands agree
with the code, dagster.yaml and uv.lock.

Nothing here builds an image or renders the chart (no Docker daemon, no helm, no network):
the files are parsed and compared with what the code reads. ``problems`` collects every
disagreement; the test on the real files expects none, and the tests on broken copies show
that each kind of drift (a renamed module or variable, a secret as a plain value, a changed
limit, an unlocked or dev install, a root user) is caught.
"""

from __future__ import annotations

import copy
import importlib
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from mlops_assets.definitions import build_definitions
from mlops_assets.defs.ingest.sensors import LANDING_SENSOR, TRIGGER_TAG
from mlops_assets.notifications import WEBHOOK_ENV
from mlops_assets.settings import DATABASE_URL_ENV, ENVIRONMENTS, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DEPLOYMENT = "mlops-assets"
# the secrets the code reads, and the chart's key for Dagster's own Postgres password
SECRET_KEYS = {DATABASE_URL_ENV, WEBHOOK_ENV}
PG_PASSWORD_KEY = "postgresql-password"


@dataclass(frozen=True)
class Files:
    values: dict
    dockerfile: str
    dockerignore: str
    readme: str


def _read() -> Files:
    return Files(
        values=yaml.safe_load(VALUES.read_text()),
        dockerfile=DOCKERFILE.read_text(),
        dockerignore=(ROOT / ".dockerignore").read_text(),
        readme=(ROOT / "README.md").read_text(),
    )


# --- parsing --------------------------------------------------------------------------------


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    out = []
    for line in re.sub(r"\\\n", " ", dockerfile).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _shell_commands(text: str, program: str) -> list[list[str]]:
    """Each ``program ...`` command line in a text (a shell block, comments), as argv."""
    joined = re.sub(r"\\\n\s*#?\s*", " ", text)
    return [
        shlex.split(m.group(0))
        for m in re.finditer(rf"(?m)(?<![\w-]){re.escape(program)}\b[^\n]*", joined)
    ]


def _option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _env_list(env: list[dict] | dict | None) -> dict[str, str]:
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items()}
    return {e["name"]: e.get("value") for e in env or []}


def _bytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    m = re.fullmatch(r"([0-9.]+)([KMG]i?)?", str(quantity))
    assert m, f"not a memory quantity: {quantity!r}"
    return float(m.group(1)) * units.get(m.group(2) or "", 1)


def _walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, node


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _locked() -> dict[str, dict]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p for p in lock["package"]}


def _dagster_yaml() -> dict:
    return yaml.safe_load((ROOT / "dagster.yaml").read_text())


def _deployment(values: dict) -> dict:
    deployments = values["dagster-user-deployments"]["deployments"]
    named = [d for d in deployments if d["name"] == DEPLOYMENT]
    assert len(named) == 1 and len(deployments) == 1, "one user deployment, named mlops-assets"
    return named[0]


# --- the checks -----------------------------------------------------------------------------


def problems(files: Files) -> list[str]:
    found: list[str] = []
    for check in (
        _image_problems,
        _module_problems,
        _settings_problems,
        _secret_problems,
        _instance_problems,
        _resource_problems,
        _dockerfile_problems,
        _chart_version_problems,
    ):
        found += check(files)
    return found


def _image_problems(files: Files) -> list[str]:
    """One image name everywhere; its tag is the project version."""
    out = []
    image = _deployment(files.values)["image"]
    deployed = f"{image['repository']}:{image['tag']}"
    version = _pyproject()["project"]["version"]
    if str(image["tag"]) != version:
        out.append(f"the image tag {image['tag']!r} is not the project version {version!r}")
    for where, text in (("Dockerfile", files.dockerfile), ("README", files.readme)):
        builds = [c for c in _shell_commands(text, "docker") if c[1:2] == ["build"]]
        tags = {_option(c, "-t", "--tag") for c in builds}
        if tags != {deployed}:
            out.append(f"the {where} builds {sorted(map(str, tags))}, the values run {deployed}")
        if any(_option(c, "-f", "--file") != "deploy/Dockerfile" for c in builds):
            out.append(f"the {where}'s docker build does not use deploy/Dockerfile")
    return out


def _module_problems(files: Files) -> list[str]:
    """The gRPC server serves the code location workspace.yaml and `dg` load locally."""
    out = []
    deployment = _deployment(files.values)
    args = deployment.get("dagsterApiGrpcArgs")
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    local = workspace["load_from"][0]["python_module"]["module_name"]
    dg_target = _pyproject()["tool"]["dg"]["project"]["code_location_target_module"]
    if args != ["-m", local] or local != dg_target:
        out.append(f"dagsterApiGrpcArgs {args} do not name the code location {local!r}")
        return out
    try:
        module = importlib.import_module(args[1])
    except ImportError as exc:
        return [f"the code location module {args[1]!r} does not import: {exc}"]
    if not isinstance(getattr(module, "defs", None), dg.Definitions):
        out.append(f"{args[1]} defines no Definitions object `defs`")
    cmd = [v for k, v in _instructions(files.dockerfile) if k == "CMD"]
    if not cmd or yaml.safe_load(cmd[-1])[-2:] != args:
        out.append("the Dockerfile's CMD does not serve the same module")
    exposed = [v for k, v in _instructions(files.dockerfile) if k == "EXPOSE"]
    if exposed != [str(deployment["port"])] or (cmd and str(deployment["port"]) not in cmd[-1]):
        out.append(f"the Dockerfile exposes {exposed}, the values serve {deployment['port']}")
    return out


def _secret_keys(files: Files) -> dict[str, set[str]]:
    """Secret name -> keys, from README's `kubectl create secret generic` commands."""
    secrets = {}
    for argv in _shell_commands(files.readme, "kubectl"):
        if "secret" in argv and "generic" in argv:
            name = argv[argv.index("generic") + 1]
            keys = {a.split("=", 2)[1] for a in argv if a.startswith("--from-literal=")}
            secrets[name] = keys
    return secrets


def _settings_problems(files: Files) -> list[str]:
    """The deployment's variables are those the code reads, with values it accepts."""
    out = []
    deployment = _deployment(files.values)
    env = _env_list(deployment.get("env"))
    if env.get("MLOPS_ENV") != "prod" or "prod" not in ENVIRONMENTS:
        out.append(f"MLOPS_ENV is {env.get('MLOPS_ENV')!r}, not prod")
    # read back through the code: a variable the code does not read (or reads under another
    # name) fails here, prod refusing to start without its MLOPS_HOME
    secrets = {key: f"sqlite:///{key}.sqlite" for key in SECRET_KEYS - {WEBHOOK_ENV}}
    secrets[WEBHOOK_ENV] = "https://hooks.example.invalid/x"
    try:
        settings = load_settings({**env, **secrets})
    except ValueError as exc:
        return [*out, f"the code refuses the deployment's environment: {exc}"]
    if settings.env != "prod" or str(settings.home) != env.get("MLOPS_HOME"):
        out.append(f"the code reads MLOPS_ENV/MLOPS_HOME as {settings.env!r}, {settings.home}")
    if settings.spec != env.get("MLOPS_SPEC", "sample"):
        out.append("the code does not read the deployment's MLOPS_SPEC")
    if settings.database_url != secrets.get(DATABASE_URL_ENV):
        out.append(f"the code does not read the state database from {DATABASE_URL_ENV}")
    # a pod per run (K8sRunLauncher): its steps execute in it, not on Celery workers
    if settings.executor != "in_process":
        out.append(f"runs would send their steps to {settings.executor}, not run them in the pod")
    if settings.storage_root != env.get("MLOPS_STORAGE_ROOT"):
        out.append("the code does not read the deployment's MLOPS_STORAGE_ROOT")
    known = {
        "MLOPS_ENV",
        "MLOPS_HOME",
        "MLOPS_SPEC",
        "MLOPS_UI_URL",
        "MLOPS_EXECUTOR",
        "MLOPS_STORAGE_ROOT",
    }
    if unknown := set(env) - known:
        out.append(f"variables the code does not read: {sorted(unknown)}")
    # MLOPS_HOME lies on the shared volume the deployment (and so every run pod) mounts
    volumes = {v["name"] for v in deployment.get("volumes") or []}
    mounts = [m for m in deployment.get("volumeMounts") or [] if m["name"] in volumes]
    home = Path(env.get("MLOPS_HOME", ""))
    if not any(home.is_relative_to(m["mountPath"]) for m in mounts):
        out.append(f"MLOPS_HOME {str(home)!r} is on no volume the deployment mounts")
    if not (deployment.get("includeConfigInLaunchedRuns") or {}).get("enabled"):
        out.append("runs would not get the code location's env, secrets and volume")
    return out


def _secret_problems(files: Files) -> list[str]:
    """Secrets only through Kubernetes Secrets; the ones created are the ones referenced."""
    out = []
    deployment = _deployment(files.values)
    for path, value in _walk(files.values):
        if not isinstance(value, str):
            continue
        key = path.rsplit(".", 1)[-1]
        # a key naming a password or token holds one (`...SecretName` keys name a Secret)
        if value and re.search(r"password|secret|token", key, re.I) and "SecretName" not in key:
            out.append(f"{path} gives a secret as a plain value")
        if re.search(r"://[^/\s]*:[^/\s]*@", value):
            out.append(f"{path} holds a URL with credentials")
    for path, env in _walked_envs(files.values):
        if plain := SECRET_KEYS & set(_env_list(env)):
            out.append(f"{path}: {sorted(plain)} given as plain env values")
    referenced = {s["name"] for s in deployment.get("envSecrets") or []}
    created = _secret_keys(files)
    for name in referenced:
        if created.get(name) != SECRET_KEYS:
            out.append(f"secret {name!r} is created with {created.get(name)}, not {SECRET_KEYS}")
    if not referenced:
        out.append(f"no envSecrets for {sorted(SECRET_KEYS)}")
    pg_secret = files.values.get("global", {}).get("postgresqlSecretName")
    if files.values.get("generatePostgresqlPasswordSecret", True):
        out.append("the chart would generate the Postgres secret from a password in values")
    if created.get(pg_secret) != {PG_PASSWORD_KEY}:
        out.append(f"the Postgres password secret {pg_secret!r} is not created with kubectl")
    return out


def _walked_envs(values: dict) -> Iterator[tuple[str, object]]:
    def walk(node: object, path: str) -> Iterator[tuple[str, object]]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "env" and isinstance(v, list | dict):
                    yield f"{path}.env", v
                else:
                    yield from walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")

    yield from walk(values, "")


def _instance_problems(files: Files) -> list[str]:
    """The run queue, run monitoring, run retries and telemetry of dagster.yaml."""
    out = []
    local = _dagster_yaml()
    daemon = files.values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    custom = coordinator["config"].get("customRunCoordinator") or {}
    queued = custom.get("config") or {}
    if not (
        coordinator["enabled"]
        and coordinator["type"] == "CustomRunCoordinator"
        and (custom.get("module"), custom.get("class"))
        == ("dagster.core.run_coordinator", "QueuedRunCoordinator")
    ):
        out.append("runs are not queued (QueuedRunCoordinator with its whole config)")
    # dagster.yaml splits the queue's settings into `concurrency: runs:` and `run_queue:`
    expected = {**local["concurrency"]["runs"], **local["run_queue"]}
    for key, value in expected.items():
        if queued.get(key) != value:
            out.append(f"run queue {key} {queued.get(key)} != dagster.yaml's {value}")
    ingest = {"key": TRIGGER_TAG, "value": LANDING_SENSOR, "limit": 1}
    if ingest not in (queued.get("tag_concurrency_limits") or []):
        out.append("ingest runs (the landing sensor's tag) are not limited to one at a time")
    if files.values.get("concurrency", {}).get("runs"):
        out.append("run limits in both `concurrency.runs` and the run coordinator (chart fails)")
    for camel, snake in (("runMonitoring", "run_monitoring"), ("runRetries", "run_retries")):
        here = {_camel_to_snake(k): v for k, v in daemon[camel].items()}
        if here != local[snake]:
            out.append(f"dagsterDaemon.{camel} {here} != dagster.yaml's {snake} {local[snake]}")
    if files.values.get("telemetry", {}).get("enabled") is not False:
        out.append("telemetry is not disabled")
    if local["telemetry"]["enabled"] is not False:
        out.append("dagster.yaml enables telemetry")
    launcher = files.values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher" or "k8sRunLauncher" not in launcher["config"]:
        out.append("runs are not launched as Kubernetes Jobs (K8sRunLauncher)")
    return out


def _run_worker_peak_gb() -> float:
    """The measured peak RSS of a run worker (BENCHMARKS.md, the Scale section)."""
    m = re.search(r"^\| run_worker \| ([0-9.]+) \|", (ROOT / "BENCHMARKS.md").read_text(), re.M)
    assert m, "BENCHMARKS.md has no run_worker peak RSS row"
    return float(m.group(1))


def _resource_problems(files: Files) -> list[str]:
    out = []
    per_run = files.values["runLauncher"]["config"]["k8sRunLauncher"].get("resources")
    deployed = _deployment(files.values).get("resources")
    # the chart copies the code location's resources into its runs, where they win
    if deployed and deployed != per_run:
        out.append("the code location's resources (copied into its runs) differ from per-run")
    if not per_run:
        return [*out, "no per-run resources"]
    request = _bytes(per_run["requests"]["memory"])
    limit = _bytes(per_run.get("limits", {}).get("memory", "0"))
    peak = _run_worker_peak_gb() * 1e9
    if request < 1.25 * peak:
        out.append(f"a run requests {request / 1e9:.2f} GB, the measured peak is {peak / 1e9} GB")
    if limit < request:
        out.append("the run memory limit is below its request")
    return out


def _dockerfile_problems(files: Files) -> list[str]:
    out = []
    instructions = _instructions(files.dockerfile)
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    for image in (v.split()[0] for k, v in instructions if k == "FROM"):
        m = re.fullmatch(r"python:(\d+\.\d+)-slim(?:-\w+)?", image)
        if not m or m.group(1) not in requires:
            out.append(f"base image {image} is not a python:*-slim of {requires}")
    syncs = [shlex.split(v) for k, v in instructions if k == "RUN" and "uv sync" in v]
    if not syncs:
        out.append("the Dockerfile does not install with `uv sync`")
    for argv in syncs:
        if "--frozen" not in argv and "--locked" not in argv:
            out.append(f"`{' '.join(argv)}` does not install exactly uv.lock (--frozen)")
        if "--no-dev" not in argv or {"--dev", "--all-groups", "--group"} & set(argv):
            out.append(f"`{' '.join(argv)}` installs dev or other dependency groups")
        if _option(argv, "--extra") != "k8s":
            out.append(f"`{' '.join(argv)}` leaves out the k8s extra")
    uv_pin = re.search(r"uv==(\S+)", files.dockerfile)
    make_pin = re.search(r"^UV_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.M)
    if not uv_pin or not make_pin or uv_pin.group(1) != make_pin.group(1):
        out.append("the Dockerfile's uv is not the Makefile's UV_VERSION")
    users = [v for k, v in instructions if k == "USER"]
    uid = users[-1].split(":")[0] if users else "root"
    security = _deployment(files.values).get("podSecurityContext") or {}
    run_pod = files.values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    run_security = run_pod["podSpecConfig"]["securityContext"]
    if not uid.isdigit() or uid == "0":
        out.append(f"the image runs as {uid!r}, not a numeric non-root user")
    for where, ctx in (("code location", security), ("run pod", run_security)):
        if not ctx.get("runAsNonRoot") or str(ctx.get("runAsUser")) != uid:
            out.append(f"the {where} does not run as the image's non-root user {uid}")
    env = {}
    for value in (v for k, v in instructions if k == "ENV"):
        env.update(item.split("=", 1) for item in shlex.split(value))
    if env.get("MLOPS_ENV") != "prod":
        out.append("the image does not set MLOPS_ENV=prod")
    if SECRET_KEYS & set(env) or "MLOPS_HOME" in env:
        out.append("the image bakes in a secret or the workspace folder")
    sent = _dockerignore_allows(files.dockerignore)
    for argv in (shlex.split(v) for k, v in instructions if k == "COPY"):
        if any(a.startswith("--from") for a in argv):
            continue
        for src in argv[:-1]:
            if not (ROOT / src).exists() or not sent(src):
                out.append(f"COPY {src}: missing, or left out of the build context")
    return out


def _dockerignore_allows(text: str) -> Callable[[str], bool]:
    """Whether a top-level path reaches the build context (the `*` + `!name` form only)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    return lambda src: "*" not in lines or src.rstrip("/") in allowed


def _chart_version_problems(files: Files) -> list[str]:
    out = []
    locked = _locked()
    dagster_version = locked["dagster"]["version"]
    if dagster_version != dg.__version__:
        out.append(f"installed dagster {dg.__version__} is not the locked {dagster_version}")
    helm = [c for c in _shell_commands(files.readme, "helm") if c[1:3] == ["upgrade", "--install"]]
    if len(helm) != 1:
        return [*out, "README has no (single) `helm upgrade --install` command"]
    (argv,) = helm
    if "dagster/dagster" not in argv or _option(argv, "--version") != dagster_version:
        out.append(f"the chart is not dagster/dagster at the locked {dagster_version}")
    if _option(argv, "-f", "--values") != "deploy/helm/values.yaml":
        out.append("the helm command does not use deploy/helm/values.yaml")
    # the integration libraries the run pods need, at the version paired with dagster's
    major, minor, patch = dagster_version.split(".")
    paired = f"0.{int(minor) + 16}.{patch}"
    extra = {d["name"] for d in locked["mlops-assets"]["optional-dependencies"]["k8s"]}
    default = {d["name"] for d in locked["mlops-assets"]["dependencies"]}
    for lib, where, names in (
        ("dagster-k8s", "k8s extra", extra),
        ("dagster-postgres", "default dependencies", default),
    ):
        if lib not in names or locked.get(lib, {}).get("version") != paired:
            out.append(f"{lib} {paired} is not locked in the {where}")
    if "psycopg2-binary" not in locked:
        out.append("no psycopg2 for a postgresql+psycopg2:// state database")
    return out


# --- the tests ------------------------------------------------------------------------------


def test_the_kubernetes_files_agree_with_the_code():
    assert problems(_read()) == []


def test_the_values_environment_builds_the_code_location(tmp_path, monkeypatch):
    """The definitions load under the deployment's variables (the secrets filled in), with
    the storage root the values name and the state database from its secret as an EnvVar."""
    files = _read()
    env = _env_list(_deployment(files.values)["env"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "data"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'state.sqlite'}")
    monkeypatch.setenv(WEBHOOK_ENV, "https://hooks.example.invalid/x")
    defs = build_definitions(load_settings())
    workspace = defs.resources["workspace"]
    assert workspace.root == str(home)
    assert workspace.database_url == dg.EnvVar(DATABASE_URL_ENV)
    assert defs.resources["notifier"].ui_url == env["MLOPS_UI_URL"]
    assert defs.resources["notifier"].webhook_url == dg.EnvVar(WEBHOOK_ENV)


def _set(path: str, value: object) -> Callable[[Files], Files]:
    def mutate(files: Files) -> Files:
        values = copy.deepcopy(files.values)
        node = values
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value
        return replace(files, values=values)

    return mutate


def _env(name: str, value: str | None, rename: str | None = None) -> Callable[[Files], Files]:
    def mutate(files: Files) -> Files:
        values = copy.deepcopy(files.values)
        env = _deployment(values)["env"]
        env[:] = [e for e in env if e["name"] != name]
        if value is not None:
            env.append({"name": rename or name, "value": value})
        return replace(files, values=values)

    return mutate


def _docker(old: str, new: str) -> Callable[[Files], Files]:
    def mutate(files: Files) -> Files:
        assert old in files.dockerfile
        return replace(files, dockerfile=files.dockerfile.replace(old, new))

    return mutate


DEPLOYMENTS = "dagster-user-deployments.deployments.0"
QUEUE = "dagsterDaemon.runCoordinator.config.customRunCoordinator.config"


@pytest.mark.parametrize(
    ("mutate", "caught"),
    [
        (_set(f"{DEPLOYMENTS}.dagsterApiGrpcArgs", ["-m", "mlops_assets.defs"]), "code location"),
        (_set(f"{DEPLOYMENTS}.image.tag", "latest"), "project version"),
        (_env("MLOPS_ENV", "dev"), "not prod"),
        (_env("MLOPS_HOME", "/data/mlops", rename="MLOPS_ROOT"), "refuses"),
        (_env("MLOPS_HOME", "/srv/elsewhere"), "no volume"),
        (_env("MLOPS_STORAGE_ROOT", "s3://b/p", rename="MLOPS_ARTIFACTS"), "MLOPS_ARTIFACTS"),
        (_env("MLOPS_STORAGE_ROOT", "s3://AKIA:key@b/p"), "credentials"),
        (_env(DATABASE_URL_ENV, "postgresql+psycopg2://u:pw@db/mlops"), "credentials"),
        (_env(WEBHOOK_ENV, "https://hooks.example.com/x"), "plain env"),
        (_set("postgresql.postgresqlPassword", "hunter2"), "plain value"),
        (_set(f"{DEPLOYMENTS}.envSecrets", []), "no envSecrets"),
        (_set(f"{QUEUE}.max_concurrent_runs", 4), "max_concurrent_runs"),
        (_set(f"{QUEUE}.tag_concurrency_limits", []), "ingest runs"),
        (_set(f"{QUEUE}.max_user_code_failure_retries", 0), "max_user_code_failure_retries"),
        (_set("dagsterDaemon.runRetries.maxRetries", 5), "run_retries"),
        (_set("telemetry.enabled", True), "telemetry"),
        (_set("runLauncher.config.k8sRunLauncher.resources.requests.memory", "512Mi"), "peak"),
        (_docker("python:3.11-slim", "python:3.12-slim"), "base image"),
        (_docker("--no-dev --extra k8s --no-install-project", "--extra k8s"), "dev"),
        (_docker("uv sync --frozen --no-dev --extra k8s --no-editable", "uv sync"), "uv.lock"),
        (_docker("USER 10001:10001", "USER root"), "non-root"),
        (_docker('"-m", "mlops_assets.definitions"]', '"-m", "app"]'), "CMD"),
    ],
)
def test_a_drifted_copy_is_caught(mutate, caught):
    found = problems(mutate(_read()))
    assert any(caught in p for p in found), found
