"""Fixtures shared by the unit tests: generated sample data, shipped specs, a workspace."""

from __future__ import annotations

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
