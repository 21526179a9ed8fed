"""The fire drill end to end, on generated data small enough for CI: weekly file drops go
through the real sensors and runs; drift injected into one region from week 2 must be
flagged (data and attribution drift) for that region only, breach its model quality,
trigger tuning for it alone (the tuned model waits for approval) and notify each step."""

import json

import pytest

from mlops_assets.cli import main
from mlops_assets.defs.drill import DrillConfig, run_drill

# the fire drill replays weeks of data through the whole pipeline: `make e2e`
pytestmark = pytest.mark.e2e

DRIFT = "Nord"


@pytest.fixture(scope="module")
def drill():
    # the command's defaults (5 regions x 15 stores, +20 C from week 2) over 3 weeks: at
    # this size the models use temperature, so its Shapley ranking moves too (~100 s)
    cfg = DrillConfig(drift_region=DRIFT, weeks=3, drift_week=2, tuning_trials=2)
    return run_drill(cfg, log=lambda *_: None)


def test_only_the_drifted_region_alerts(drill):
    regions = drill["regions"]
    assert drill["drift_region"] == DRIFT and len(regions) == 5
    assert drill["drift_kind"] == "weather_shift"
    assert regions[DRIFT]["drift_alert_weeks"], regions[DRIFT]
    assert min(regions[DRIFT]["drift_alert_weeks"]) >= 2  # nothing before the drift
    assert regions[DRIFT]["attribution_alert_weeks"], regions[DRIFT]
    assert min(regions[DRIFT]["attribution_alert_weeks"]) >= 2
    for key, r in regions.items():
        if key != DRIFT:
            assert r["drift_alert_weeks"] == [] and r["attribution_alert_weeks"] == [], key
            assert r["quality_breach_week"] is None and not r["tuning_triggered"], key


def test_quality_breach_triggers_tuning_for_that_region_and_waits_for_approval(drill):
    nord = drill["regions"][DRIFT]
    assert nord["quality_breach_week"] in (2, 3)
    assert nord["tuning_triggered"]
    models = drill["models"]
    tuned = models[DRIFT]["tuned"]
    assert len(tuned) == 1, tuned  # one tuning run per approved version, however long it lasts
    # never approved automatically: it waits for a person, or the gate rejected it (reasons)
    assert tuned[0]["status"] in ("pending_approval", "rejected"), tuned
    assert tuned[0]["status"] == "pending_approval" or tuned[0]["reasons"]
    assert models[DRIFT]["approved"] == f"{DRIFT}:v1"
    assert all(not m["tuned"] for k, m in models.items() if k != DRIFT)
    # realized error after the drift is far above the error before it
    realized = [v for v in nord["realized_rmse"] if v is not None]
    assert len(realized) == 3 and realized[-1] > 2 * realized[0]


def test_every_step_is_notified_for_the_drifted_region_only(drill):
    kinds = {(n["kind"], n["region"]) for n in drill["notifications"]}
    assert ("drift_alert", DRIFT) in kinds
    assert ("quality_breach", DRIFT) in kinds
    assert ("tuning_started", DRIFT) in kinds
    # the tuned model's registration is announced either way
    assert {("model_pending_approval", DRIFT), ("model_rejected", DRIFT)} & kinds
    assert {region for _, region in kinds} == {DRIFT}
    assert all(1 <= n["week"] <= 3 for n in drill["notifications"])


def test_the_estimate_marks_the_weeks_whose_inputs_left_the_training_range(drill):
    """+20 C takes the drifted region's temperatures past anything the model was fitted
    on, where DLE's error model is as flat as the model: those weeks are marked (each
    replay week records the next week's estimate, so the first drifted forecast week is
    recorded in drift week 2), the other regions' never are."""
    for key, r in drill["regions"].items():
        share = r["estimate_outside_training_range"]
        assert len(share) == len(r["estimated_rmse"]) == 3, (key, share)
        if key == DRIFT:
            assert share[0] == 0.0 and min(share[1:]) > 0.5, share
        else:
            assert share == [0.0, 0.0, 0.0], (key, share)


def test_the_estimate_rises_before_the_actuals_confirm(drill):
    """The label-free estimate's error model learned from a year of backtest forecasts
    that this model errs on warm days, so the first forecast week with the +20 C weather
    (estimated in drift week 2, its actuals due in week 3) is estimated well above the week
    before; the other regions' estimates move less. Measured over 6 weeks: Nord 35.7 ->
    57.5 (x1.61), the others x0.96-x1.12."""
    regions = drill["regions"]
    nord = regions[DRIFT]["estimated_rmse"]
    assert nord[1] > 1.3 * nord[0], nord
    assert nord[1] > regions[DRIFT]["realized_rmse"][0], nord  # above the undrifted error
    assert regions[DRIFT]["quality_breach_week"] >= 2  # the estimate rose in week 2
    for key, r in regions.items():
        if key != DRIFT:
            est = r["estimated_rmse"]
            assert est[1] < 1.3 * est[0], (key, est)


def test_drill_command_rejects_an_unknown_region(tmp_path, capsys):
    out = tmp_path / "drill.json"
    code = main(["drill", "--drift-region", "Atlantis", "--weeks", "2", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "Atlantis" in capsys.readouterr().err


def test_drill_config_is_validated():
    with pytest.raises(ValueError, match="drift week"):
        DrillConfig(weeks=2, drift_week=3)
    with pytest.raises(ValueError, match="drift kind"):
        DrillConfig(drift_kind="meteor")


def test_result_is_json(drill):
    text = json.dumps(drill)
    assert '"drift_alert_weeks"' in text and '"notifications"' in text


def test_drill_command_passes_the_drift_magnitudes(tmp_path, monkeypatch):
    import mlops_assets.defs.drill as drill_module

    seen: list[DrillConfig] = []

    def fake_run(cfg, keep=False):
        seen.append(cfg)
        return {"regions": {}, "notifications": []}

    monkeypatch.setattr(drill_module, "run_drill", fake_run)
    out = tmp_path / "drill.json"
    args = ["drill", "--weather-shift", "20", "--level-shift", "0.3", "--out", str(out)]
    assert main(args) == 0
    assert (seen[-1].weather_shift, seen[-1].level_shift) == (20.0, 0.3)
    assert main(["drill", "--out", str(out)]) == 0  # defaults come from DrillConfig
    assert (seen[-1].weather_shift, seen[-1].level_shift) == (
        DrillConfig.weather_shift,
        DrillConfig.level_shift,
    )
