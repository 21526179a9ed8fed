"""Through the real server, as a user of the UI: after `make demo`, `dg dev` on 127.0.0.1;
the partition backfill the UI sends (GraphQL `launchPartitionBackfill` of region_model +
forecast over every region) completes with every check passed; a pending version is
approved through `registry_job`; then headless Chromium shows the lineage, a model's
metadata (metrics table, holdout plot) and checks, and no failed run. Screenshots are kept
(``MLOPS_E2E_ARTIFACTS``)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.registry import APPROVED, PENDING, ModelRegistry
from mlops_assets.settings import DEFAULT_REGIONS_PER_RUN
from mlops_assets.workspace import Workspace
from mlops_assets_tests.deployment.daemon_support import Deployment
from mlops_assets_tests.deployment.ui_support import (
    LOCATION,
    REPOSITORY,
    DagsterUI,
    artifacts_dir,
    browser_page,
    dismiss_community_dialog,
    require_chromium,
)

pytestmark = pytest.mark.e2e

GROUPS = ("ingest", "features", "models", "forecasts", "monitoring")
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""
LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""
RUN_STATUS = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""


def _wait(what: str, poll, timeout: float, ui: DagsterUI):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = poll()
        if value is not None:
            return value
        time.sleep(3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{ui.log_tail()}")


def _backfill(ui: DagsterUI, regions: list[str]) -> str:
    params = {
        "partitionNames": regions,
        "assetSelection": [{"path": ["region_model"]}, {"path": ["forecast"]}],
        "fromFailure": False,
        "tags": [],
    }
    launched = ui.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def done() -> str | None:
        status = ui.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        return status["status"] if status["status"] not in ("REQUESTED", "CANCELING") else None

    status = _wait("the backfill", done, 1200, ui)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), f"backfill ended {status}"
    return backfill_id


def _launch_registry_job(ui: DagsterUI, region: str, version: int) -> dict:
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": REPOSITORY,
            "jobName": "registry_job",
        },
        "runConfigData": {
            "region": region,
            "version": version,
            "action": "approve",
            "reason": "reviewed the tuning report in the UI test",
        },
    }
    return ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"]


def _approve_through_registry_job(ui: DagsterUI, region: str, version: int) -> None:
    # a version that does not exist is refused by the launch itself: an error, no run
    refused = _launch_registry_job(ui, region, version + 100)
    assert refused["__typename"] in ("PythonError", "RunConfigValidationInvalid"), refused
    said = refused.get("message", "") + " ".join(e["message"] for e in refused.get("errors", []))
    assert f"{region} has no model version {version + 100}; its versions:" in said, refused

    launched = _launch_registry_job(ui, region, version)
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished() -> str | None:
        status = ui.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    assert _wait("the registry_job run", finished, 600, ui) == "SUCCESS"


def test_the_ui_backfills_approves_and_shows_the_truth(tmp_path: Path) -> None:
    chromium = require_chromium()
    from playwright.sync_api import sync_playwright

    shots = artifacts_dir(tmp_path)
    dep = Deployment(tmp_path)  # ci: sensors stay off, the backfill is the only work
    ui = DagsterUI(dep)
    try:
        dep.cli("mlops-assets", "demo", timeout=900)
        instance = dg.DagsterInstance.from_config(str(dep.home))
        regions = sorted(instance.get_dynamic_partitions("region"))
        assert len(regions) == 5
        ui.start()

        backfill_id = _backfill(ui, regions)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        # several regions a run (BackfillPolicy.multi_run), each reported on its partition
        assert len(runs) == math.ceil(len(regions) / DEFAULT_REGIONS_PER_RUN)
        for key in ("region_model", "forecast"):
            for region in regions:
                [record] = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[region]),
                    limit=1,
                ).records
                assert record.run_id in {r.run_id for r in runs}, (key, region)
        evaluations = [
            entry.dagster_event.asset_check_evaluation_data
            for run in runs
            for entry in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        checked = {(e.asset_key.to_user_string(), e.partition) for e in evaluations}
        assert checked == {(k, r) for k in ("region_model", "forecast") for r in regions}
        failing = [(e.check_name, e.partition) for e in evaluations if not e.passed]
        assert failing == []

        # a pending version (what a tuning run registers) approved from the UI's job
        registry = ModelRegistry.for_workspace(Workspace(dep.ws_root))
        region = regions[0]
        served = registry.latest_approved(region)
        text, meta = registry.load_artifacts(served)
        pending = registry.register(
            region,
            model_text=text,
            model_meta=meta,
            record={"source": "tuning", "metrics": served.record.get("metrics", {})},
            status=PENDING,
            reasons=[],
            actor="ui-test",
        )
        _approve_through_registry_job(ui, region, pending.version)
        assert registry.latest_approved(region).version == pending.version
        assert registry.versions(region)[-1].status == APPROVED

        with sync_playwright() as playwright:
            browser, page = browser_page(playwright, chromium)
            page.goto(f"{ui.url}/asset-groups", wait_until="networkidle", timeout=120_000)
            dismiss_community_dialog(page)
            for group in GROUPS:
                page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "lineage.png"))

            page.goto(
                f"{ui.url}/assets/region_model?partition={region}",
                wait_until="networkidle",
                timeout=120_000,
            )
            dismiss_community_dialog(page)
            page.get_by_text("mape_pct", exact=True).first.wait_for(timeout=60_000)
            metrics = page.locator("table", has_text="seasonal_naive").first
            metrics.wait_for(timeout=60_000)  # the metrics table, drawn in place
            plot = page.locator("img[alt='holdout: daily total']").first
            plot.scroll_into_view_if_needed(timeout=60_000)
            assert plot.evaluate("img => img.complete && img.naturalWidth > 0")
            page.screenshot(path=str(shots / "region_model.png"), full_page=True)

            page.goto(
                f"{ui.url}/assets/region_model?view=checks",
                wait_until="networkidle",
                timeout=120_000,
            )
            dismiss_community_dialog(page)
            page.get_by_text("gate_metric_threshold", exact=True).first.wait_for(timeout=60_000)
            body = page.inner_text("body")
            assert "Succeeded" in body and "Failed" not in body
            page.screenshot(path=str(shots / "region_model_checks.png"))

            page.goto(f"{ui.url}/runs", wait_until="networkidle", timeout=120_000)
            dismiss_community_dialog(page)
            page.get_by_text("registry_job", exact=True).first.wait_for(timeout=60_000)
            runs_page = page.inner_text("body")
            assert "Success" in runs_page and "Failure" not in runs_page
            page.screenshot(path=str(shots / "runs.png"))
            browser.close()
        failed = [r for r in instance.get_runs() if r.status != dg.DagsterRunStatus.SUCCESS]
        assert failed == [], [(r.job_name, r.status.value) for r in failed]
    finally:
        ui.stop()
        dep.stop()
    assert dep.stray_processes() == [], "a process of the UI outlived the test"
