"""The generated fleets, built once for all the monitoring tests."""

import pytest

from mlops_assets_tests.monitoring.fleet_support import Fleets


@pytest.fixture(scope="package")
def fleets(tmp_path_factory: pytest.TempPathFactory) -> Fleets:
    return Fleets(tmp_path_factory)
