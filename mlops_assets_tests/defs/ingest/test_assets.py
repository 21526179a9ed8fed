"""Raw assets: a file with columns the spec does not know, through a real materialization."""

from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.ingest.assets import build_raw_assets
from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.spec import SPECS_DIR, load_spec
from mlops_assets.storage.manifest import Manifest
from mlops_assets.workspace import Workspace
from mlops_assets_tests.defs.conftest import drop


def _spec(tmp_path: Path, mode: str) -> Path:
    text = (SPECS_DIR / "sample.yaml").read_text()
    path = tmp_path / "spec.yaml"
    path.write_text(
        text.replace("    kind: sales\n", f"    kind: sales\n    unknown_columns: {mode}\n", 1)
    )
    assert load_spec(path).sources["sales"].unknown_columns == mode
    return path


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == name and e.asset_key == dg.AssetKey("raw_sales")
    ]
    return evaluation


@pytest.mark.parametrize("mode", ["warn", "quarantine"])
def test_unknown_columns_warn_or_quarantine_as_the_spec_says(
    tmp_path, settings, sample_source, instance, mode
):
    spec_path = _spec(tmp_path, mode)
    home = settings.home
    drop(sample_source, settings, "stores")
    sales = next((sample_source / "sales").iterdir()).read_text().splitlines()
    extra = home / "landing" / "sales" / "extra.csv"
    extra.parent.mkdir(parents=True)
    extra.write_text(
        "\n".join([sales[0] + ",colour,till_id"] + [s + ",red,7" for s in sales[1:50]]) + "\n"
    )
    assets = build_raw_assets(load_spec(spec_path))
    result = dg.materialize(
        [a for a in assets if a.key.to_user_string() in ("raw_stores", "raw_sales")],
        resources={"workspace": WorkspaceResource(root=str(home), spec=str(spec_path))},
        instance=instance,
    )
    assert result.success
    valid = _check(result, "landing_files_valid")
    known = _check(result, "no_unknown_columns")
    assert known.severity == dg.AssetCheckSeverity.WARN
    [manifest] = [
        m for m in Manifest.for_workspace(Workspace(home)).records() if m["source"] == "sales"
    ]
    if mode == "warn":
        assert valid.passed and not known.passed
        assert known.description == "landing/sales/extra.csv: ignored columns ['colour', 'till_id']"
        assert known.metadata["ignored_columns"].value == {
            "landing/sales/extra.csv": ["colour", "till_id"]
        }
        assert manifest["status"] == "ingested"
        assert manifest["unknown_columns"] == ["colour", "till_id"]
    else:
        assert not valid.passed and known.passed
        assert valid.description.startswith(
            "landing/sales/extra.csv: unknown_columns: 2 column(s) the spec does not know: "
            "['colour', 'till_id']"
        )
        assert manifest["status"] == "quarantined" and manifest["reason"] == "unknown_columns"
