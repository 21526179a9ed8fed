"""registry_artifacts_intact: the WARN check on region_model, per region partition."""

from pathlib import Path

import dagster as dg

from mlops_assets.defs.models.checks import REGISTRY_CHECK
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.region_pipeline import REGISTRY_CHECK_KEY, build_region_pipeline
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.registry import ModelRegistry
from mlops_assets.spec import load_spec
from mlops_assets.workspace import Workspace
from mlops_assets_tests.registry.support import register_approved_placeholder


def _check(home: Path, instance: dg.DagsterInstance, region: str) -> dg.AssetCheckEvaluation:
    """Run the check alone on one partition (as the UI's "Execute" does; it also runs with
    every region_model materialization) and return its result."""
    defs = dg.Definitions(
        assets=[build_region_pipeline(load_spec("sample"))],
        resources={
            "workspace": WorkspaceResource(root=str(home)),
            "notifier": NotifierResource(workspace=WorkspaceResource(root=str(home))),
        },
    )
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_check_selection={REGISTRY_CHECK_KEY}, asset_selection=set()
    )
    result = job.execute_in_process(partition_key=region, instance=instance, raise_on_error=False)
    assert result.success  # a WARN check never fails the run
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == REGISTRY_CHECK and evaluation.partition == region
    return evaluation


def test_the_check_warns_about_the_versions_of_its_region_that_do_not_match(tmp_path, instance):
    home = tmp_path / "home"
    registry = ModelRegistry.for_workspace(Workspace(home))
    for region in ("Nord", "Nord", "Sud"):
        register_approved_placeholder(registry, region)
    instance.add_dynamic_partitions(region_partitions.name, ["Nord", "Sud"])

    ok = _check(home, instance, "Nord")
    assert ok.passed and ok.severity == dg.AssetCheckSeverity.WARN
    assert ok.metadata["versions_checked"].value == 2 and ok.metadata["problems"].value == 0

    (registry.store.root / "Nord" / "0001" / "model.txt").write_text("tree\nswapped\n")
    bad = _check(home, instance, "Nord")
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.WARN
    assert "Nord:v1 model.txt: checksum_mismatch" in bad.description
    assert bad.metadata["bad_versions"].value == "Nord:v1"
    assert bad.metadata["problems"].value == 1

    assert _check(home, instance, "Sud").passed  # another region's damage is not Sud's
