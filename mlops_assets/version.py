"""Which code produced a model or a forecast (recorded in the registry for lineage)."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<package version>+<git commit>`` (``MLOPS_CODE_VERSION`` overrides, e.g. in images
    built without the .git folder); ``+dirty`` when the working tree has changes."""
    if os.environ.get("MLOPS_CODE_VERSION"):
        return os.environ["MLOPS_CODE_VERSION"]
    try:
        pkg = version("mlops-assets")
    except PackageNotFoundError:
        pkg = "0+unknown"
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pkg
    return f"{pkg}+{commit}{'.dirty' if dirty else ''}"
