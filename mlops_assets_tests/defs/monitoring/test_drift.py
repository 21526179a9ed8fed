"""drift_report: a region's statistics against the reference saved with its approved model."""

import dagster as dg
import pandas as pd

from mlops_assets.defs.local_driver import run_partitions
from mlops_assets.defs.monitoring.drift import DRIFT_REPORT_KEY
from mlops_assets.monitoring import attribution, read_drift_report, refresh
from mlops_assets_tests.defs.models.pipeline_support import materializations
from mlops_assets_tests.registry.support import edit_record

REGION = "Nord"


def _drift_report(p) -> dict:
    result = p.execute("__ASSET_JOB", REGION, [DRIFT_REPORT_KEY])
    assert result.success
    return materializations(p.instance, result.run_id)["drift_report"].metadata


def test_drift_report_compares_with_the_reference_saved_with_the_model(model_pipeline, monkeypatch):
    p = model_pipeline()
    (run,) = run_partitions(p.defs, p.instance, "train_job", [REGION])
    assert run.success
    mv = p.registry.latest_approved(REGION)
    train_rows = mv.record["train_rows"]

    meta = _drift_report(p)
    assert meta["reference_source"].value == f"saved with {mv.label}"
    assert meta["attribution_weeks_reused"].value == 0  # nothing to reuse yet
    assert meta["drift_thresholds_reused"].value == 0
    assert meta["drift_weeks_reused"].value == 0
    assert meta["reference_rows"].value == train_rows
    # the weather's gap to the fleet over the training window is saved with it too
    assert meta["fleet_gap_reference"].value == f"saved with {mv.label}"
    gap = p.registry.load_fleet_gap(mv)
    assert gap["date"].min() == pd.Timestamp(mv.record["train_date_min"])
    assert gap["date"].max() <= pd.Timestamp(mv.record["train_date_max"])
    assert {"temperature_c", "precipitation_mm"} <= set(gap.columns)
    before = read_drift_report(p.workspace, REGION)
    assert len(before) and set(before["model_version"]) == {mv.version}

    # the features are recomputed: the training window's temperatures move by 5 degrees
    path = p.workspace.features_path(REGION)
    features = pd.read_parquet(path)
    dates = pd.to_datetime(features["date"])
    window = dates.between(mv.record["train_date_min"], mv.record["train_date_max"])
    features.loc[window, "temperature_c"] += 5.0
    features.to_parquet(path, index=False)

    # the saved reference does not move: the same statistics as before, and every week's
    # Shapley ranking is taken from the last table instead of computed again
    calls: list[int] = []
    real = attribution.shap_contributions
    monkeypatch.setattr(attribution, "shap_contributions", lambda *a: calls.append(1) or real(*a))
    again = _drift_report(p)
    assert again["reference_source"].value == f"saved with {mv.label}"
    pd.testing.assert_frame_equal(read_drift_report(p.workspace, REGION), before)
    attribution_weeks = (before["signal"] == "attribution_drift").sum()
    assert again["attribution_weeks_reused"].value == attribution_weeks > 0
    # so are the univariate thresholds of every watched feature and the reconstruction's
    drifts = before[before["signal"].isin(["feature_drift", "multivariate_drift"])]
    thresholds = len(drifts[["signal", "feature"]].drop_duplicates())
    assert again["drift_thresholds_reused"].value == thresholds > 1
    # and, as the weeks since training are unchanged, every signal's weekly rows
    weekly = before["chunk_hash"].astype(str).str.contains(refresh.WEEK_SEPARATOR, regex=False)
    chunks = before.loc[weekly, ["signal", "week_start"]].drop_duplicates()
    assert set(chunks["signal"]) == set(refresh.REUSED_SIGNALS)
    assert again["drift_weeks_reused"].value == len(chunks) > 3
    assert calls == []

    # a version registered without a reference (an older model) falls back to the moved
    # feature table, and its temperature statistics change
    def drop_reference(body: dict) -> None:
        del body["artifacts"]["reference.parquet"], body["checksums"]["reference.parquet"]

    edit_record(p.registry, REGION, mv.version, drop_reference)
    meta = _drift_report(p)
    assert meta["reference_source"].value.startswith("the feature table's training window")
    assert meta["drift_thresholds_reused"].value == 0  # other reference rows: computed
    # the weeks of the signals whose references are saved apart are still taken: the
    # DLE's (the model's out-of-sample forecasts) and the fleet gap's
    apart = chunks["signal"].isin(["estimated_performance", "fleet_gap_drift"])
    assert meta["drift_weeks_reused"].value == apart.sum() > 0
    assert meta["reference_rows"].value == train_rows
    after = read_drift_report(p.workspace, REGION)
    temperature = (after["feature"] == "temperature_c") & (after["signal"] == "feature_drift")
    assert temperature.any()
    assert not after.loc[temperature, "value"].equals(before.loc[temperature, "value"])
    assert isinstance(meta["reference_rows"], dg.IntMetadataValue)
