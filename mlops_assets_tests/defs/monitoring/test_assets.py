"""realized_performance: forecast files scored against ground truth, per origin and week."""

import base64
import re

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.defs.monitoring.assets import REALIZED_PERFORMANCE_KEY
from mlops_assets.realized import read_realized_performance, read_weekly_realized
from mlops_assets_tests.defs.models.pipeline_support import materializations

_PNG = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def _write_forecast(p, region: str, origin: pd.Timestamp, rows: pd.DataFrame) -> None:
    """A forecast file as the forecast asset writes it (hand-made: no training needed)."""
    frame = rows[["store", "item", "date", "prediction"]].assign(
        region_key=region, origin=origin, step=(rows["date"] - origin).dt.days,
        model_version=1, model_label=f"{region}:v1", run_id="hand", created_at="",
    )  # fmt: skip
    path = p.workspace.forecast_path(region, str(origin.date()))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _materialize(p, region: str) -> dg.ExecuteInProcessResult:
    job = p.defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=p.instance,
        partition_key=region,
        asset_selection=[REALIZED_PERFORMANCE_KEY],
        raise_on_error=False,
    )


def test_forecasts_are_scored_per_origin_and_per_week_with_metrics_as_numbers(model_pipeline):
    p = model_pipeline()
    features = p.features("Nord")
    features["date"] = pd.to_datetime(features["date"])
    last = features.loc[~features["is_future"], "date"].max()
    # an origin two weeks back, forecasting 10% above every open day's actual ...
    early = last - pd.Timedelta(days=14)
    hist = features[~features["is_future"] & (features["date"] > early)].copy()
    open_day = hist["open"] == 1
    hist["prediction"] = (1.1 * hist["target"].clip(lower=0)).where(open_day, 0.0)
    _write_forecast(p, "Nord", early, hist)
    # ... and the latest origin, whose actuals have not arrived
    future = features[features["is_future"]].assign(prediction=1.0)
    _write_forecast(p, "Nord", last, future)

    result = _materialize(p, "Nord")

    assert result.success
    meta = materializations(p.instance, result.run_id)["realized_performance"].metadata
    per_origin = read_realized_performance(p.workspace, "Nord")
    assert [o.date() for o in per_origin["origin"]] == [early.date(), last.date()]
    scored = per_origin.iloc[0]
    assert scored["n_rows"] == int(open_day.sum()) and scored["horizon_coverage"] == 1.0
    assert scored["mape"] == pytest.approx(0.1) and scored["wape"] == pytest.approx(0.1)
    assert scored["bias"] == pytest.approx(0.1)
    assert per_origin.iloc[1]["n_rows"] == 0 and pd.isna(per_origin.iloc[1]["mape"])
    weekly = read_weekly_realized(p.workspace, "Nord")
    assert [w.date() for w in weekly["week_start"]] == [
        (early + pd.Timedelta(days=1)).date(),
        (early + pd.Timedelta(days=8)).date(),
    ]  # the sample's history ends on a Sunday: both weeks after the origin are whole
    assert list(weekly["lead_days"]) == [1, 8] and list(weekly["days_with_actuals"]) == [7, 7]
    assert weekly["mape"].tolist() == pytest.approx([0.1, 0.1])

    # metrics as plain floats (plotted across materializations), counts, table, plot
    assert isinstance(meta["latest_week_mape_pct"], dg.FloatMetadataValue)  # plotted
    assert meta["latest_week_mape_pct"].value == 10.0  # a percentage, rounded
    assert meta["latest_week_wape_pct"].value == 10.0
    assert meta["latest_week_rmse"].value > 0
    assert meta["latest_week_start"].value == str(weekly["week_start"].iloc[-1].date())
    assert (meta["origins"].value, meta["origins_with_actuals"].value) == (2, 1)
    assert meta["scored_rows"].value == scored["n_rows"]
    assert meta["forecast_rows"].value == len(hist) + len(future)
    table = meta["by_origin"].value.splitlines()
    assert table[0].startswith("| origin | model | rows | coverage | mape |")
    assert "| 10.0% |" in table[2]
    png = _PNG.search(meta["weekly_plot"].value)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "note" not in meta


def test_regions_without_forecasts_or_actuals_materialize_with_a_note(model_pipeline):
    p = model_pipeline()
    features = p.features("Sud")
    features["date"] = pd.to_datetime(features["date"])
    last = features.loc[~features["is_future"], "date"].max()
    _write_forecast(p, "Sud", last, features[features["is_future"]].assign(prediction=1.0))

    waiting = _materialize(p, "Sud")
    never = _materialize(p, "Ost")

    assert waiting.success and never.success
    meta = materializations(p.instance, waiting.run_id)["realized_performance"].metadata
    assert "have no ground truth yet" in meta["note"].value
    assert str(last.date()) in meta["note"].value
    assert "latest_week_mape_pct" not in meta and "weekly_plot" not in meta
    assert read_realized_performance(p.workspace, "Sud")["n_rows"].tolist() == [0]
    assert read_weekly_realized(p.workspace, "Sud").empty
    meta = materializations(p.instance, never.run_id)["realized_performance"].metadata
    assert meta["note"].value.startswith("no forecasts yet")
    assert meta["origins"].value == 0
    assert read_realized_performance(p.workspace, "Ost").empty
