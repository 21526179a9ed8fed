"""region_model through train_job: trained, gated by blocking checks, registered, forecast."""

import dagster as dg
import numpy as np
import pandas as pd

from mlops_assets.defs.forecasts.assets import FORECAST_CHECKS, FORECAST_KEY
from mlops_assets.defs.local_driver import run_partitions, run_sensors
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.defs.models.checks import REGISTRY_CHECK
from mlops_assets.gate import GATE_CHECKS
from mlops_assets.plots import INLINE_MARKDOWN_CHARS
from mlops_assets.registry import APPROVED, REJECTED
from mlops_assets.spec import load_spec
from mlops_assets_tests.defs.models.pipeline_support import check_evaluations, materializations


def test_sensors_then_train_job_approve_and_forecast_every_region(
    prepared_workspace, model_pipeline
):
    # the sensors took the sample data to a features partition per region
    assert prepared_workspace.sensor_runs and all(r.success for r in prepared_workspace.sensor_runs)
    p = model_pipeline()
    assert p.regions == ["Nord", "Ost", "Rhein_Main", "Sud", "West"]
    assert run_sensors(p.defs, p.instance) == []  # nothing left to do before training

    runs = run_partitions(p.defs, p.instance, "train_job", p.regions)

    assert [(r.partition_key, r.success, r.failed_checks) for r in runs] == [
        (region, True, []) for region in p.regions
    ]
    assert p.instance.get_materialized_partitions(REGION_MODEL_KEY) == set(p.regions)
    assert p.instance.get_materialized_partitions(FORECAST_KEY) == set(p.regions)
    expected_checks = {f"region_model:{c}" for c in [*GATE_CHECKS, REGISTRY_CHECK]} | {
        f"forecast:{c}" for c in FORECAST_CHECKS
    }
    for run in runs:
        region = run.partition_key
        checks = check_evaluations(p.instance, run.run_id)
        assert set(checks) == expected_checks
        assert all(c.passed for c in checks.values()), {k: c.description for k, c in checks.items()}
        # filed under the region, so a check's history (and its plots) is one series a region
        assert {c.partition for c in checks.values()} == {region}

        meta = materializations(p.instance, run.run_id)["region_model"].metadata
        assert meta["model_version"].value == 1
        assert meta["model_label"].value == f"{region}:v1"
        assert meta["status"].value == APPROVED
        assert isinstance(meta["mape_pct"], dg.FloatMetadataValue)  # plotted across runs
        assert 0 < meta["mape_pct"].value <= 45  # a percentage, two decimals
        assert meta["mape_pct"].value == round(meta["mape_pct"].value, 2)
        assert "mape" not in meta and "baseline_mape_pct" in meta
        assert meta["compared_with"].value == (
            "no approved model yet: the gate compared with the baselines only"
        )
        table = meta["metrics"].value.splitlines()
        assert table[0].startswith("| forecast | mape |")
        assert [row.split("|")[1].strip() for row in table[2:]] == [
            "model",
            "hist_avg",
            "hist_avg_dow",
            "seasonal_naive",
        ]
        # the three highest-volume series, each its own daily line chart
        series = meta["holdout_series_plot"].value
        assert series.count("](data:image/svg+xml,") == 3 and series.count("**store ") == 3
        # drawn in place by the UI: inline markdown under its 1,000-character limit
        assert meta["holdout_plot"].value.startswith("![holdout: daily total](data:image/svg")
        assert len(meta["holdout_plot"].value) <= INLINE_MARKDOWN_CHARS
        # no backtest by default (estimate_backtest_folds: 0), so no metadata claims one
        assert "backtest" not in meta

        versions = p.registry.versions(region)
        assert [(v.version, v.status) for v in versions] == [(1, APPROVED)]
        assert versions[0].record["run_id"] == run.run_id
        features = p.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("features"), asset_partitions=[region]),
            limit=1,
        ).records[0]
        assert (
            versions[0].record["training_data_version"]
            == (  # lineage to the features
                features.asset_materialization.tags["dagster/data_version"]
            )
        )
        assert p.registry.latest_approved(region).version == 1

        origin = p.origin(region)
        path = p.workspace.forecast_path(region, origin)
        forecast = pd.read_parquet(path)
        assert len(forecast) > 0
        assert set(forecast["model_version"]) == {1}
        assert set(forecast["model_label"]) == {f"{region}:v1"}
        assert set(forecast["run_id"]) == {run.run_id}
        assert {str(pd.Timestamp(o).date()) for o in forecast["origin"]} == {origin}
        assert (forecast["date"] > pd.Timestamp(origin)).all()
        assert np.isfinite(forecast["prediction"]).all()
        explanations = pd.read_parquet(p.workspace.forecast_path(region, origin, "explanations"))
        # top 5 contributions per forecast row of the stored sample of series
        explained = explanations.groupby(["store", "item"]).ngroups
        series = forecast.groupby(["store", "item"]).ngroups
        assert explained == min(series, load_spec("sample").forecast.explain_series)
        assert len(explanations) == 5 * len(forecast) * explained // series
        assert p.forecast_files(region) == sorted(
            [path, p.workspace.forecast_path(region, origin, "explanations")]
        )
        fmeta = materializations(p.instance, run.run_id)["forecast"].metadata
        assert fmeta["model_label"].value == f"{region}:v1"
        assert fmeta["origin"].value == origin


def test_failing_gate_rejects_the_version_and_blocks_the_forecast(model_pipeline):
    p = model_pipeline(gate={"max_value": 0.0001})  # no model gets a MAPE this low

    [run] = run_partitions(p.defs, p.instance, "train_job", ["Nord"])

    assert not run.success
    assert run.failed_checks == ["region_model:gate_metric_threshold"]
    checks = check_evaluations(p.instance, run.run_id)
    failed = checks["region_model:gate_metric_threshold"]
    assert failed.severity == dg.AssetCheckSeverity.ERROR and "> 0.0%" in failed.description
    # the model is still recorded (for the audit trail), the forecast never started
    assert run.assets == ["region_model"]
    assert not any(key.startswith("forecast:") for key in checks)
    meta = materializations(p.instance, run.run_id)["region_model"].metadata
    assert meta["status"].value == REJECTED

    [version] = p.registry.versions("Nord")
    assert (version.version, version.status) == (1, REJECTED)
    assert len(version.reasons) == 1
    assert version.reasons[0].startswith("gate_metric_threshold: mape ")
    assert p.registry.latest_approved("Nord") is None
    assert p.forecast_files("Nord") == []
    assert p.instance.get_materialized_partitions(FORECAST_KEY) == set()
