"""forecast: scored only by a region's approved model, with checks that say what is wrong."""

import dagster as dg
import pandas as pd

from mlops_assets.defs.forecasts.assets import FORECAST_KEY
from mlops_assets.defs.models.assets import REGION_MODEL_KEY
from mlops_assets.registry import APPROVED, PENDING, REJECTED
from mlops_assets_tests.defs.models.pipeline_support import check_evaluations, materializations


def test_forecast_uses_the_approved_version_not_a_newer_rejected_or_pending_one(
    model_pipeline,
):
    p = model_pipeline()
    trained = p.execute("train_job", "Sud")
    assert trained.success
    registry = p.registry
    v1 = registry.latest_approved("Sud")
    assert v1.version == 1
    text, meta = registry.load_artifacts(v1)
    for status in (REJECTED, PENDING):  # v2 rejected, v3 waiting for a reviewer
        registry.register(
            "Sud",
            model_text=text,
            model_meta=meta,
            record={"source": "tuning"},
            status=status,
            reasons=["gate_metric_threshold: mape 50.0% > 45.0%"] if status == REJECTED else [],
            actor="test",
        )
    assert [(v.version, v.status) for v in registry.versions("Sud")] == [
        (1, APPROVED),
        (2, REJECTED),
        (3, PENDING),
    ]

    result = p.execute("train_job", "Sud", [FORECAST_KEY])

    assert result.success
    assert set(materializations(p.instance, result.run_id)) == {"forecast"}
    forecast = pd.read_parquet(p.workspace.forecast_path("Sud", p.origin("Sud")))
    assert set(forecast["run_id"]) == {result.run_id}  # this run rewrote the origin's file
    assert set(forecast["model_version"]) == {1}
    assert set(forecast["model_label"]) == {"Sud:v1"}
    checks = check_evaluations(p.instance, result.run_id)
    assert checks["forecast:approved_model_available"].description == "scored with Sud:v1"


def test_forecast_without_an_approved_model_fails_its_check_and_writes_nothing(model_pipeline):
    p = model_pipeline()

    never_trained = p.execute("train_job", "Ost", [FORECAST_KEY])

    assert not never_trained.success
    check = check_evaluations(p.instance, never_trained.run_id)["forecast:approved_model_available"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "region Ost has no approved model (no model has been trained)" in check.description
    assert "approve a version with the registry job" in check.description
    assert p.forecast_files("Ost") == []

    # a version waiting for approval does not forecast either, and the message names it
    text, meta = "tree\nplaceholder\n", {"features": []}
    p.registry.register(
        "Ost",
        model_text=text,
        model_meta=meta,
        record={"source": "tuning"},
        status=PENDING,
        reasons=[],
        actor="test",
    )
    pending = p.execute("train_job", "Ost", [FORECAST_KEY])

    assert not pending.success
    check = check_evaluations(p.instance, pending.run_id)["forecast:approved_model_available"]
    assert not check.passed and "Ost:v1=pending_approval" in check.description
    assert p.forecast_files("Ost") == []


def test_forecast_with_a_stale_model_warns_and_still_forecasts(model_pipeline):
    p = model_pipeline(gate={"stale_after_days": 1})
    path = p.workspace.features_path("West")
    full = pd.read_parquet(path)
    origin = pd.Timestamp(p.origin("West"))
    # the model is trained while the feature table still ended 30 days earlier ...
    dates = pd.to_datetime(full["date"])
    full[full["is_future"].astype(bool) | (dates <= origin - pd.Timedelta(days=30))].to_parquet(
        path, index=False
    )
    trained = p.execute("train_job", "West", [REGION_MODEL_KEY])
    assert trained.success
    v1 = p.registry.latest_approved("West")
    assert v1.version == 1
    assert pd.Timestamp(v1.record["train_date_max"]) <= origin - pd.Timedelta(days=30)
    # ... then 30 more days of data arrive and a forecast runs without retraining
    full.to_parquet(path, index=False)

    result = p.execute("train_job", "West", [FORECAST_KEY])

    assert result.success  # a WARN check does not block
    checks = check_evaluations(p.instance, result.run_id)
    stale = checks["forecast:model_not_stale"]
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["age_days"].value >= 30
    assert "West:v1 trained on data until" in stale.description
    assert "(limit 1)" in stale.description
    assert checks["forecast:approved_model_available"].passed
    forecast = pd.read_parquet(p.workspace.forecast_path("West", str(origin.date())))
    assert len(forecast) > 0 and set(forecast["model_label"]) == {"West:v1"}


def test_explanations_are_stored_for_a_sample_of_series_and_computed_on_demand(
    model_pipeline, capsys, monkeypatch
):
    """The forecast keeps the Shapley explanations of ``forecast.explain_series`` series
    (TreeSHAP of every row of a large fleet would take minutes); `mlops-assets explain`
    computes any other series' from the model that made the forecast, with the same
    numbers the asset would have stored."""
    import lightgbm as lgb

    from mlops_assets import cli
    from mlops_assets.forecasting import future_rows, top_contributions

    p = model_pipeline(forecast={"explain_series": 2})
    assert p.execute("train_job", "Sud").success
    origin = p.origin("Sud")
    forecast = pd.read_parquet(p.workspace.forecast_path("Sud", origin))
    explained = pd.read_parquet(p.workspace.forecast_path("Sud", origin, "explanations"))
    every = set(zip(forecast["store"], forecast["item"], strict=True))
    stored = set(zip(explained["store"], explained["item"], strict=True))
    assert len(stored) == 2 < len(every)
    days = forecast.groupby(["store", "item"])["date"].nunique()
    assert len(explained) == 5 * sum(days[s] for s in stored)  # top 5 of every stored row

    store, item = sorted(every - stored)[0]
    monkeypatch.setenv("MLOPS_SPEC", str(p.settings.spec))
    args = ["explain", "--region", "Sud", "--store", store, "--item", item]
    assert cli.main([*args, "--home", str(p.settings.home)]) == 0
    out = capsys.readouterr().out
    assert out.count("computed on demand") == days[(store, item)]
    text, meta = p.registry.load_artifacts(p.registry.latest_approved("Sud"))
    rows = future_rows(p.features("Sud"), pd.Timestamp(origin), 42)
    rows = rows[(rows["store"] == store) & (rows["item"] == item)]
    expected = top_contributions(rows, lgb.Booster(model_str=text), meta)
    for contribution in expected["contribution"]:
        assert f"{contribution:+.4f}" in out

    # a day of actuals later the features are at the next origin: the forecast's own
    # inputs are gone, and explain says so instead of explaining other rows
    features = p.features("Sud")
    next_day = pd.to_datetime(features["date"]) == pd.Timestamp(origin) + pd.Timedelta(days=1)
    features.loc[next_day, "is_future"] = False
    p.workspace.data.write_frame(features, p.workspace.features_key("Sud"))
    assert cli.main([*args, "--home", str(p.settings.home)]) != 0
    err = capsys.readouterr().err
    assert (
        f"features are now at origin {(pd.Timestamp(origin) + pd.Timedelta(days=1)).date()}" in err
    )
    assert "explain the latest origin" in err
