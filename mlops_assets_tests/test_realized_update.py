"""Incremental realized performance: after every kind of change, the tables are exactly
what scoring every forecast file again gives, and only the origins that changed are read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets import realized
from mlops_assets.landing import drop_dataset, ingest_file, scan_landing
from mlops_assets.realized_update import update_realized
from mlops_assets.spec import DatasetSpec
from mlops_assets.warehouse import regions_with_sales
from mlops_assets.workspace import Workspace

HORIZON_DAYS = 14


@pytest.fixture
def region_ws(tmp_path: Path, sample_dir: Path, sample_spec: DatasetSpec):
    """An ingested sample workspace, one of its regions and the region's ground truth."""
    ws = Workspace(tmp_path / "ws")
    drop_dataset(sample_spec, sample_dir, ws)
    for f in scan_landing(ws, sample_spec):
        ingest_file(ws, sample_spec, f.source, f.relpath)
    region = sorted(regions_with_sales(ws, sample_spec))[0]
    truth = realized.read_ground_truth(ws, sample_spec, region)
    return ws, region, truth


def _write_forecast(ws: Workspace, region: str, truth: pd.DataFrame, origin, bias: float):
    """A forecast file for ``origin``: every series of the region, the next 14 days, the
    actual times ``bias`` (so each origin has its own error)."""
    origin = pd.Timestamp(origin)
    dates = pd.date_range(origin + pd.Timedelta(days=1), periods=HORIZON_DAYS, freq="D")
    series = truth[["store", "item"]].drop_duplicates()
    rows = series.merge(pd.DataFrame({"date": dates}), how="cross")
    rows = rows.merge(truth[["store", "item", "date", "target"]], how="left")
    rows["prediction"] = rows["target"].fillna(10.0).clip(lower=0) * bias + 1.0
    rows = rows.drop(columns="target").assign(
        region_key=region,
        origin=origin,
        step=(rows["date"] - origin).dt.days,
        model_version=1,
        model_label="v1",
        run_id="test",
        created_at=pd.Timestamp("2026-01-01"),
    )
    ws.data.write_frame(rows, ws.forecast_key(region, str(origin.date())))


def _full(ws: Workspace, spec: DatasetSpec, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What scoring every forecast file again gives."""
    forecasts = realized.read_forecasts(ws, region)
    actuals = realized.forecast_ground_truth(ws, spec, region, forecasts)
    return (
        realized.realized_performance(forecasts, actuals, floor=0.0),
        realized.weekly_realized(forecasts, actuals, floor=0.0),
    )


def _assert_as_full(update, ws, spec, region) -> None:
    per_origin, weekly = _full(ws, spec, region)
    pd.testing.assert_frame_equal(update.per_origin, per_origin)
    pd.testing.assert_frame_equal(update.weekly, weekly)
    # and what the asset wrote is what it returned
    stored = realized.read_realized_performance(ws, region).drop(columns="region_key")
    pd.testing.assert_frame_equal(stored, per_origin)


def test_only_new_rewritten_or_corrected_origins_are_scored_again(
    region_ws, sample_spec, sample_dir
):
    ws, region, truth = region_ws
    last = truth["date"].max()
    origins = [last - pd.Timedelta(days=d) for d in (70, 63, 56, 49, 42)]
    for i, origin in enumerate(origins[:4]):
        _write_forecast(ws, region, truth, origin, bias=1.0 + 0.05 * i)

    first = update_realized(ws, sample_spec, region, floor=0.0)
    assert first.full and first.origins_scored == 4
    _assert_as_full(first, ws, sample_spec, region)

    # nothing changed: nothing is read or scored
    again = update_realized(ws, sample_spec, region, floor=0.0)
    assert not again.full and again.origins_scored == 0
    _assert_as_full(again, ws, sample_spec, region)

    # a new origin: it alone is scored (and it becomes the live forecast of later weeks)
    _write_forecast(ws, region, truth, origins[4], bias=0.9)
    new = update_realized(ws, sample_spec, region, floor=0.0)
    assert new.origins_scored == 1
    _assert_as_full(new, ws, sample_spec, region)

    # a rewritten forecast file (another model for the same origin)
    _write_forecast(ws, region, truth, origins[1], bias=1.3)
    rewritten = update_realized(ws, sample_spec, region, floor=0.0)
    assert rewritten.origins_scored == 1
    _assert_as_full(rewritten, ws, sample_spec, region)

    # a late correction of one day's actuals: the origins whose window holds that day
    day = origins[0] + pd.Timedelta(days=3)  # in the first origin's window only
    _drop_actuals(ws, sample_spec, sample_dir, day, "correction.csv")
    corrected = update_realized(ws, sample_spec, region, floor=0.0)
    assert corrected.origins_scored == 1
    _assert_as_full(corrected, ws, sample_spec, region)
    changed = corrected.per_origin.set_index("origin")["wape"]
    before = rewritten.per_origin.set_index("origin")["wape"]
    assert changed[origins[0]] != before[origins[0]]
    assert np.allclose(changed.drop(origins[0]), before.drop(origins[0]), equal_nan=True)


def test_a_deleted_forecast_file_or_another_floor_scores_every_origin(region_ws, sample_spec):
    ws, region, truth = region_ws
    last = truth["date"].max()
    origins = [last - pd.Timedelta(days=d) for d in (35, 28, 21)]
    for origin in origins:
        _write_forecast(ws, region, truth, origin, bias=1.1)
    update_realized(ws, sample_spec, region, floor=0.0)

    ws.data.delete(ws.forecast_key(region, str(origins[1].date())))
    gone = update_realized(ws, sample_spec, region, floor=0.0)
    assert gone.full and gone.origins_scored == 2
    _assert_as_full(gone, ws, sample_spec, region)

    floor = update_realized(ws, sample_spec, region, floor=50.0)
    assert floor.full and floor.origins_scored == 2


def _drop_actuals(ws: Workspace, spec: DatasetSpec, sample_dir: Path, day, name: str) -> None:
    """Land and ingest an actuals file that corrects every sales row of ``day``."""
    sales = pd.concat(pd.read_csv(f) for f in sorted((sample_dir / "sales").glob("*.csv")))
    fix = sales[pd.to_datetime(sales["date"]) == pd.Timestamp(day)].copy()
    fix["units"] = fix["units"] * 2 + 5
    folder = ws.root / "landing" / "actuals"
    folder.mkdir(parents=True, exist_ok=True)
    fix.to_csv(folder / name, index=False)
    (landed,) = [f for f in scan_landing(ws, spec) if f.relpath.endswith(name)]
    assert ingest_file(ws, spec, landed.source, landed.relpath).status == "ingested"
