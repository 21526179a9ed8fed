"""monitoring_alerts: which holdout level each region's weekly quality is compared with."""

import pytest

from mlops_assets import monitoring
from mlops_assets.defs.local_driver import run_partitions
from mlops_assets.defs.monitoring.sensors import MONITORING_JOB
from mlops_assets_tests.defs.models.pipeline_support import check_evaluations


@pytest.mark.e2e  # trains and monitors every region through Dagster (~60 s): `make e2e`
def test_the_estimated_quality_signal_is_compared_with_each_models_holdout_rmse(
    model_pipeline, monkeypatch
):
    """quality_signal "estimated": the DLE estimate is an RMSE, so the alerts compare it with
    each approved model's holdout RMSE (the gate's MAPE would make every week a
    hundredfold breach), and the check says where the estimate cannot see the error."""
    p = model_pipeline(monitoring={"quality_signal": "estimated"})
    trained = run_partitions(p.defs, p.instance, "train_job", p.regions)
    refreshed = run_partitions(p.defs, p.instance, "refresh_job", p.regions)
    assert all(r.success for r in [*trained, *refreshed])

    seen = {}
    fleet_status = monitoring.fleet_status

    def spy(tables, realized, holdout_error, settings, *, metric):
        seen["holdout_error"] = dict(holdout_error)
        seen["tables"] = tables
        return fleet_status(tables, realized, holdout_error, settings, metric=metric)

    monkeypatch.setattr(monitoring, "fleet_status", spy)
    result = p.execute(MONITORING_JOB)
    assert result.success

    approved = {r: p.registry.latest_approved(r) for r in p.regions}
    assert seen["holdout_error"] == {
        r: mv.record["metrics"]["rmse"] for r, mv in approved.items() if mv is not None
    }
    assert all(v > 1 for v in seen["holdout_error"].values())  # units, not a fraction
    tables = seen["tables"]
    est = tables[(tables["signal"] == "estimated_performance") & (tables["feature"] == "rmse")]
    severity = est["value"] / est["region"].map(seen["holdout_error"])
    assert len(est) and severity.between(0.2, 5).all(), severity.describe()

    check = check_evaluations(p.instance, result.run_id)["monitoring_alerts:model_quality"]
    # the generated data has no drift: estimates near the holdout RMSE, no breach
    assert check.passed, check.description
    blind = monitoring.estimate_blind_weeks(tables)
    assert ("estimate blind" in check.description) == (len(blind) > 0)
    alerts = monitoring.read_alerts(p.workspace)
    assert not alerts.loc[alerts["signal"] == "model_quality", "alert"].any()
