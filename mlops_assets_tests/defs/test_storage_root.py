"""A region's whole life with the data tables on S3 (``MLOPS_STORAGE_ROOT``, moto's server
on 127.0.0.1): what a step on one worker host writes, a step on another reads."""

import pytest

from mlops_assets.cli import main
from mlops_assets.defs.local_driver import run_partitions
from mlops_assets.defs.monitoring.sensors import MONITORING_JOB
from mlops_assets.monitoring import read_alerts, read_drift_report
from mlops_assets.realized import read_weekly_realized


@pytest.mark.e2e  # trains, forecasts and monitors a region through Dagster: `make e2e`
def test_a_region_is_trained_forecast_and_monitored_with_its_tables_in_s3(
    model_pipeline, s3_env, monkeypatch, capsys
):
    p = model_pipeline(storage_root=s3_env)
    region = p.regions[0]
    runs = [
        *run_partitions(p.defs, p.instance, "train_job", [region]),
        *run_partitions(p.defs, p.instance, "refresh_job", [region]),
    ]
    assert runs and all(r.success for r in runs), runs
    assert p.execute(MONITORING_JOB).success

    ws, home = p.workspace, p.settings.home
    data = ws.data
    origin = p.origin(region)
    assert data.keys(ws.forecasts_folder(region)) == [
        ws.forecast_key(region, origin, "explanations"),
        ws.forecast_key(region, origin),
    ]
    assert data.keys(ws.monitoring_folder(region)) == [
        ws.monitoring_key(region, "drift_report.parquet"),
        ws.monitoring_key(region, "realized_performance.parquet"),
        ws.monitoring_key(region, "realized_state.parquet"),
        ws.monitoring_key(region, "realized_weekly.parquet"),
    ]
    assert data.exists(ws.monitoring_key(region, "report.html"))
    assert len(read_drift_report(ws, region)) and "week_start" in read_weekly_realized(ws, region)
    assert len(read_alerts(ws)) and set(read_alerts(ws)["region"]) >= {region}
    for folder in ("raw", "features", "forecasts", "monitoring", "models"):
        assert not (home / folder).exists(), folder  # nothing only this host has

    # the command line reads the same tables
    monkeypatch.setenv("MLOPS_STORAGE_ROOT", s3_env)
    store = str(data.read_parquet(ws.forecast_key(region, origin))["store"].iloc[0])
    assert main(["explain", "--home", str(home), "--region", region, "--store", store]) == 0
    assert f"origin {origin}" in capsys.readouterr().out
