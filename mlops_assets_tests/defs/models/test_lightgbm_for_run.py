"""Which runs import LightGBM without scikit-learn (see models/lightgbm_import.py)."""

import pytest

from mlops_assets.defs.models.assets import is_training_only


@pytest.mark.parametrize(
    ("job", "training_only"),
    [("train_job", True), ("features_job", True), ("refresh_job", False), ("ingest_job", False)],
)
def test_only_runs_without_monitoring_steps_take_the_core_import(defs, job, training_only):
    keys = defs.resolve_job_def(job).asset_layer.selected_asset_keys
    assert is_training_only(keys) is training_only
