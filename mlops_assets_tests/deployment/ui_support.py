"""The Dagster UI for end-to-end tests: `dg dev` on 127.0.0.1 over a ``Deployment``'s
instance, its GraphQL API, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.deployment.local_services import free_port
from mlops_assets_tests.deployment.daemon_support import BIN, REPO_ROOT, Deployment

CHROMIUM = os.environ.get("MLOPS_CHROMIUM", "/usr/bin/chromium")
# as root on a closed network: no sandbox, no background connections (see the env notes)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCATION = "mlops_assets.definitions"
REPOSITORY = "__repository__"


def require_chromium() -> str:
    """The browser's path; skips the test without it, unless CI asks for it
    (``MLOPS_E2E_REQUIRE_BROWSER=1``: then a missing browser fails the test)."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    why = f"no Chromium at {CHROMIUM} (`make e2e` installs Debian's chromium as root)"
    if os.environ.get("MLOPS_E2E_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


def artifacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``MLOPS_E2E_ARTIFACTS`` (CI keeps it), else the test's tmp."""
    out = Path(os.environ.get("MLOPS_E2E_ARTIFACTS") or tmp_path / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


class DagsterUI:
    """`dg dev` (webserver + daemon + code server) in its own process group."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = deployment.logs / "dg-dev.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300) -> None:
        env = {**self.deployment.env, "VIRTUAL_ENV": str(BIN.parent)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(self.port)]
                + ["-w", "workspace.yaml"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"dg dev exited:\n{self.log_tail()}"
            with contextlib.suppress(OSError, ValueError, KeyError, AssertionError):
                nodes = self.graphql(
                    "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
                )["repositoriesOrError"]["nodes"]
                if nodes:
                    return
            time.sleep(1)
        raise AssertionError(f"the UI did not answer within {timeout} s\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the whole group (webserver, daemon, code servers, runs), then SIGKILL
        whatever is left after 60 s."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            # the server answers a mutation that returned a PythonError with HTTP 500 and
            # the error in the body, which is what the UI shows: read it the same way
            if exc.code != 500:
                raise
            body = json.loads(exc.read())
        assert not body.get("errors"), body["errors"]
        return body["data"]


def browser_page(playwright: Any, chromium: str) -> Any:
    browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
    return browser, browser.new_page(viewport={"width": 1600, "height": 1000})


def dismiss_community_dialog(page: Any) -> None:
    """The UI greets a new browser profile with a newsletter dialog: skip it."""
    skip = page.get_by_role("button", name="Skip")
    with contextlib.suppress(Exception):
        skip.click(timeout=3000)
