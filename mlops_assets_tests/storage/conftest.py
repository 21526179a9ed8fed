"""Fixtures of the storage tests: a landing zone on a local folder and on S3 (moto), and a
count of the landing files the sensor hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets.storage.landing_zone import LandingZone


@pytest.fixture(params=["local", "s3"])
def zone(request: pytest.FixtureRequest, tmp_path: Path) -> LandingZone:
    if request.param == "local":
        return LandingZone(tmp_path / "ws")
    return LandingZone(request.getfixturevalue("s3_env"))


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The relpaths of the landing files hashed (``landing.landing_sha256``) from now on:
    the sensor must not hash a file it already knows again."""
    from mlops_assets import landing

    seen: list[str] = []
    real = landing.landing_sha256

    def counting(ws, source: str, relpath: str, zone=None) -> str:
        seen.append(relpath)
        return real(ws, source, relpath, zone)

    monkeypatch.setattr(landing, "landing_sha256", counting)
    return seen
