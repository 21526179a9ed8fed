"""Fixtures shared by the unit tests: generated sample data, shipped specs, a workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_assets.sample_data import SampleConfig, generate
from mlops_assets.spec import DatasetSpec, load_spec
from mlops_assets.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[1]
ROSSMANN_DIR = REPO_ROOT.parent / "shared" / "data" / "rossmann-100"


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``SampleConfig.tiny()`` written once per session (stores/ sales/ weather/ events/
    future/). Shared: copy files out of it, never modify it."""
    out = tmp_path_factory.mktemp("sample_dir")
    generate(SampleConfig.tiny(), out)
    return out


@pytest.fixture(scope="session")
def sample_spec() -> DatasetSpec:
    return load_spec("sample")


@pytest.fixture(scope="session")
def rossmann_spec() -> DatasetSpec:
    return load_spec("rossmann")


@pytest.fixture
def tmp_workspace(tmp_path: Path) -> Workspace:
    """An empty workspace below ``tmp_path/ws`` (nothing created on disk yet)."""
    return Workspace(tmp_path / "ws")


@pytest.fixture
def rossmann_dir() -> Path:
    """The real rossmann-100 dataset next to the repository; skips when it is absent."""
    if not (ROSSMANN_DIR / "train.csv").is_file():
        pytest.skip(f"rossmann-100 data not found at {ROSSMANN_DIR} (kept outside the repo)")
    return ROSSMANN_DIR


BUCKET = "mlops-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on loopback with one bucket; its address."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS variables pointing at the loopback server (how a deployment passes
    credentials: never in the URL); a fresh prefix of the bucket for this test."""
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"
