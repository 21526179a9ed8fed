"""A landing zone on a local folder and on S3 (moto), for the landing zone's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets.storage.landing_zone import LandingZone


@pytest.fixture(params=["local", "s3"])
def zone(request: pytest.FixtureRequest, tmp_path: Path) -> LandingZone:
    if request.param == "local":
        return LandingZone(tmp_path / "ws")
    return LandingZone(request.getfixturevalue("s3_env"))
