"""Benchmark: a region's realized performance after ``--origins`` weekly forecasts, scored
again in full (what the asset did before ``realized_update``) against the incremental
update, in the same run.

One generated region (``--stores`` stores x 4 departments, daily, enough days for the
origins) is ingested as the platform does it; a forecast file of 42 days (the sample
spec's horizon) is written for each weekly origin, as the forecast asset writes them.
Timed, each ``--repeats`` times (median):

- ``full_s``: every forecast file read and scored against its ground truth
  (``realized.read_forecasts`` + ``forecast_ground_truth`` + both tables);
- ``new_origin_s``: ``realized_update.update_realized`` after one more origin's file
  (the weekly refresh: the new origin is scored, every other row kept);
- ``unchanged_s``: ``update_realized`` with nothing new.

Prints and writes ``benchmarks/results/realized_scale.json`` (``ratio_new_origin_to_full``).

    .venv/bin/python benchmarks/realized_scale.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_replay import build_workspace  # noqa: E402
from report import provenance  # noqa: E402

from mlops_assets import realized  # noqa: E402
from mlops_assets.realized_update import update_realized  # noqa: E402
from mlops_assets.sample_data import SampleConfig, generate  # noqa: E402
from mlops_assets.spec import load_spec  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "realized_scale.json"


def write_forecast(ws, region: str, series: pd.DataFrame, origin: pd.Timestamp, horizon: int):
    """A forecast file as the forecast asset writes it (predictions: noise around 50)."""
    dates = pd.date_range(origin + pd.Timedelta(days=1), periods=horizon, freq="D")
    rows = series.merge(pd.DataFrame({"date": dates}), how="cross")
    rng = np.random.default_rng(int(origin.value % 2**32))
    rows = rows.assign(
        region_key=region,
        origin=origin,
        step=(rows["date"] - origin).dt.days,
        prediction=rng.gamma(4.0, 12.5, len(rows)),
        model_version=1,
        model_label="v1",
        run_id="bench",
        created_at=pd.Timestamp("2026-01-01"),
    )
    ws.data.write_frame(rows, ws.forecast_key(region, str(origin.date())))


def full_rescore(ws, spec, region: str) -> int:
    forecasts = realized.read_forecasts(ws, region)
    actuals = realized.forecast_ground_truth(ws, spec, region, forecasts)
    realized.realized_performance(forecasts, actuals, floor=0.0)
    realized.weekly_realized(forecasts, actuals, floor=0.0)
    return len(forecasts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", type=int, default=125)
    ap.add_argument("--origins", type=int, default=104, help="weekly forecast origins")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    spec = load_spec("sample")
    horizon = spec.horizon * spec.period_days
    days = (args.origins + args.repeats + 1) * 7 + horizon + 7
    with tempfile.TemporaryDirectory(prefix="realized-scale-") as tmp:
        config = SampleConfig(
            n_regions=1, n_stores=args.stores, n_departments=4, days=days, file_format="parquet"
        )
        generate(config, Path(tmp) / "source")
        ws, regions, _, _ = build_workspace(Path(tmp) / "source", Path(tmp) / "ws", spec)
        region = next(iter(regions))
        truth = realized.read_ground_truth(ws, spec, region)
        series = truth[["store", "item"]].drop_duplicates()
        first = truth["date"].min() + pd.Timedelta(days=7)
        origins = [first + pd.Timedelta(weeks=w) for w in range(args.origins + args.repeats)]
        for origin in origins[: args.origins]:
            write_forecast(ws, region, series, origin, horizon)
        update_realized(ws, spec, region, floor=0.0)  # the state of the last refresh

        full, new, unchanged = [], [], []
        for i in range(args.repeats):
            t = time.perf_counter()
            forecast_rows = full_rescore(ws, spec, region)
            full.append(time.perf_counter() - t)
            write_forecast(ws, region, series, origins[args.origins + i], horizon)
            t = time.perf_counter()
            update = update_realized(ws, spec, region, floor=0.0)
            new.append(time.perf_counter() - t)
            assert update.origins_scored == 1 and not update.full
            t = time.perf_counter()
            update = update_realized(ws, spec, region, floor=0.0)
            unchanged.append(time.perf_counter() - t)
            assert update.origins_scored == 0
    report = {
        **provenance(),
        "series": len(series),
        "origins": args.origins,
        "horizon_days": horizon,
        "forecast_rows": forecast_rows,
        "ground_truth_rows": len(truth),
        "repeats": args.repeats,
        "full_s": round(statistics.median(full), 3),
        "new_origin_s": round(statistics.median(new), 3),
        "unchanged_s": round(statistics.median(unchanged), 3),
    }
    report["ratio_new_origin_to_full"] = round(report["new_origin_s"] / report["full_s"], 3)
    for key in ("forecast_rows", "full_s", "new_origin_s", "unchanged_s"):
        print(f"{key:26s} {report[key]}")
    print(f"{'ratio_new_origin_to_full':26s} {report['ratio_new_origin_to_full']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
