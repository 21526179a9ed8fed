"""Environment selection (dev, ci, prod): where data lives and which dataset is served.

Chosen by environment variables only, so the same code runs everywhere:

``MLOPS_ENV``   dev (default) | ci | prod
``MLOPS_HOME``  workspace root (landing zone, raw, features...). Default for dev and ci:
                ``.mlops/<env>`` below the current directory; prod must set it.
``MLOPS_SPEC``  dataset spec: a shipped name (``sample``, ``rossmann``) or a YAML path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("dev", "ci", "prod")


class SettingsError(ValueError):
    """An environment variable has a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    env: str
    home: Path
    spec: str

    @property
    def sensors_running_by_default(self) -> bool:
        """Sensors start with the daemon in dev and prod; CI drives runs itself."""
        return self.env != "ci"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    env = environ.get("MLOPS_ENV", "dev").strip() or "dev"
    if env not in ENVIRONMENTS:
        raise SettingsError(f"MLOPS_ENV={env!r}: expected one of {ENVIRONMENTS}")
    home = environ.get("MLOPS_HOME", "").strip()
    if not home:
        if env == "prod":
            raise SettingsError("MLOPS_ENV=prod needs MLOPS_HOME (the workspace root) to be set")
        home = str(Path.cwd() / ".mlops" / env)
    spec = environ.get("MLOPS_SPEC", "sample").strip() or "sample"
    return Settings(env=env, home=Path(home).expanduser().resolve(), spec=spec)
