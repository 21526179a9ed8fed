"""The per-region HTML report on small hand-made frames: every section renders, the file
is self-contained (no script, no external URL), empty inputs give explanatory sentences,
data strings are escaped, and the key plots return decodable PNGs (the drift heatmap an
SVG: its cells are checked in ``charts/test_heatmap.py`` and below)."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.reports import (
    HEATMAP_SIGNALS,
    attribution_plot,
    drift_heatmap,
    drift_heatmap_digest,
    estimated_performance_plot,
    forecast_vs_actual_plot,
    metrics_over_time_plot,
    render_region_report,
)
from mlops_assets.storage.data_store import DataStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    "Alerts",
    "Forecast vs actual",
    "Metrics over time",
    "Estimated vs realized performance",
    "Drift per feature over time",
    "Data quality",
    "Attribution ranking",
)
WEEKS = pd.date_range("2024-01-01", periods=4, freq="7D")  # Mondays
HOSTILE = "<script>alert(1)</script>"
SVG = "http://www.w3.org/2000/svg"


def _is_png(b64: str) -> bool:
    return base64.b64decode(b64, validate=True).startswith(PNG_MAGIC)


def _svg(b64: str) -> ET.Element:
    """A base64 SVG parsed (raises unless it is well-formed XML with an <svg> root)."""
    root = ET.fromstring(base64.b64decode(b64, validate=True))
    assert root.tag == f"{{{SVG}}}svg"
    return root


def _is_image(b64: str) -> bool:
    return _is_png(b64) or _svg(b64) is not None


def _model() -> dict:
    return {
        "label": "Nord v3",
        "status": "approved",
        "version": 3,
        "trained_at": "2023-12-31T10:00:00",
        "train_date_min": "2021-01-01",
        "train_date_max": "2023-12-31",
        "metrics": {"mape": 0.12, "wape": 0.1, "rmse": 4.0, "rmse_zero": 0.5, "bias": -0.02},
        "baseline_metrics": {"hist_avg": {"mape": 0.2, "wape": 0.18, "rmse": 7.5}},
    }


def _forecasts(store: str = "S1") -> pd.DataFrame:
    frames = []
    for origin in ("2024-01-07", "2024-01-14", "2024-01-21"):
        dates = pd.date_range(pd.Timestamp(origin) + pd.Timedelta(days=1), periods=14)
        for s in (store, "S2", "S3"):
            frames.append(
                pd.DataFrame(
                    {
                        "region_key": "nord",
                        "store": s,
                        "item": "A",
                        "date": dates,
                        "origin": pd.Timestamp(origin),
                        "prediction": np.linspace(10, 12, len(dates)),
                        "model_version": 3,
                        "run_id": "r1",
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _ground_truth(store: str = "S1") -> pd.DataFrame:
    dates = pd.date_range("2023-12-01", "2024-01-28")
    frames = [
        pd.DataFrame({"store": s, "item": "A", "date": dates, "target": 10.0 + k, "open": 1})
        for k, s in enumerate((store, "S2", "S3"))
    ]
    return pd.concat(frames, ignore_index=True)


def _weekly() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region_key": "nord",
            "week_start": WEEKS,
            "origin": WEEKS - pd.Timedelta(days=1),
            "model_version": 3,
            "model_label": "Nord v3",
            "lead_days": 1,
            "days_with_actuals": 7,
            "n_rows": 21,
            "n_pct_rows": 21,
            "mape": [0.1, 0.11, 0.25, 0.3],
            "rmspe": 0.15,
            "wape": [0.09, 0.1, 0.2, 0.28],
            "rmse": [3.5, 4.1, 8.0, 9.5],
            "rmse_zero": np.nan,
            "mae": 3.0,
            "bias": [0.01, -0.02, 0.1, 0.12],
        }
    )


def _by_origin() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "region_key": "nord",
            "origin": pd.to_datetime(["2024-01-07", "2024-01-14", "2024-01-21"]),
            "model_version": 3,
            "model_label": "Nord v3",
            "forecast_rows": 42,
            "horizon_days": 14,
            "days_with_actuals": [14, 14, 7],
            "horizon_coverage": [1.0, 1.0, 0.5],
            "first_actual_date": pd.to_datetime(["2024-01-08", "2024-01-15", "2024-01-22"]),
            "last_actual_date": pd.to_datetime(["2024-01-21", "2024-01-28", "2024-01-28"]),
            "n_rows": [42, 42, 21],
            "n_pct_rows": [42, 42, 21],
            "mape": [0.1, 0.2, np.nan],
            "rmspe": 0.2,
            "wape": [0.1, 0.18, np.nan],
            "rmse": [4.0, 7.0, np.nan],
            "rmse_zero": np.nan,
            "mae": 3.0,
            "bias": [0.0, 0.05, np.nan],
        }
    )


def _row(
    signal,
    feature,
    method,
    week,
    value,
    *,
    upper=0.1,
    lower=np.nan,
    alert=False,
    ignored=False,
    realized=np.nan,
) -> dict:
    return {
        "signal": signal,
        "feature": feature,
        "method": method,
        "week_start": week,
        "rows": 140,
        "value": value,
        "lower": lower,
        "upper": upper,
        "nml_alert": alert,
        "ignored": ignored,
        "realized": realized,
        "region": "nord",
    }


def _monitoring(feature: str = "promo") -> pd.DataFrame:
    rows = []
    for i, w in enumerate(WEEKS):
        late = i >= 2
        rows += [
            _row("feature_drift", feature, "jensen_shannon", w, 0.3 if late else 0.05, alert=late),
            _row("feature_drift", "price", "jensen_shannon", w, 0.04),
            _row("feature_drift", "dow", "jensen_shannon", w, 0.5, alert=True, ignored=True),
            _row(
                "fleet_gap_drift",
                "temperature",
                "mean_gap_to_fleet",
                w,
                4.0 if late else 0.1,
                lower=-2.0,
                upper=2.0,
                alert=late,
            ),
            _row("multivariate_drift", "reconstruction_error", "pca", w, 1.0, upper=1.2),
            _row(
                "data_quality",
                feature,
                "missing_values",
                w,
                0.4 if i == 3 else 0.0,
                upper=0.05,
                alert=i == 3,
            ),
            _row("data_quality", "price", "out_of_range", w, 0.0, upper=0.01),
            _row(
                "estimated_performance",
                "rmse",
                "dle",
                w,
                4.0 + i,
                upper=6.0,
                realized=[3.5, 4.1, np.nan, np.nan][i],
            ),
            _row("estimated_performance", "mae", "dle", w, 3.0 + i, upper=5.0),
            # the weather left the training range in the last week: the estimate is blind
            _row("estimated_performance", "outside_training_range", "range", w, 0.25 * (i == 3)),
            _row(
                "attribution_drift",
                "ndcg",
                "ndcg_mean_abs_shap",
                w,
                0.98 - 0.05 * i,
                upper=np.nan,
                lower=0.9,
            ),
        ]
    # another region's rows must not leak into this report
    other = _row("feature_drift", "other_region_feature", "jensen_shannon", WEEKS[0], 0.9)
    rows.append({**other, "region": "sued"})
    return pd.DataFrame(rows)


def _alerts(detail: str = "promo, temperature") -> pd.DataFrame:
    rows = []
    for i, w in enumerate(WEEKS):
        for signal in ("data_drift", "multivariate_drift", "data_quality", "model_quality"):
            raw = signal == "data_drift" and i >= 2 or signal == "model_quality" and i == 3
            rows.append(
                {
                    "region": "nord",
                    "week_start": w,
                    "signal": signal,
                    "raw": raw,
                    "alert": signal == "data_drift" and i == 3,
                    "detail": detail if raw else "",
                }
            )
    return pd.DataFrame(rows)


def _importance(feature: str = "promo") -> dict[str, float]:
    names = [feature, "price", "lag_7", "dow", "temperature", *(f"f{i}" for i in range(20))]
    return {n: 100.0 / (i + 1) for i, n in enumerate(names)}


def _full_report(**overrides) -> str:
    kwargs = dict(
        region="nord",
        region_name="Nord",
        generated_at="2024-01-29T06:00:00Z",
        model=_model(),
        forecasts=_forecasts(),
        ground_truth=_ground_truth(),
        realized_weekly=_weekly(),
        realized_by_origin=_by_origin(),
        monitoring=_monitoring(),
        alerts=_alerts(),
        importance=_importance(),
        recent_importance={**_importance(), "price": 200.0},
    )
    kwargs.update(overrides)
    return render_region_report(**kwargs)


def _assert_self_contained(doc: str) -> None:
    low = doc.lower()
    assert "<script" not in low
    assert "http://" not in low and "https://" not in low
    assert "javascript:" not in low
    # every image is inline
    for src in re.findall(r'src="([^"]*)"', doc):
        assert src.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,"))


def test_full_report_has_every_section_plots_and_alert_weeks() -> None:
    doc = _full_report()
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    positions = [doc.index(f"<h2>{title}</h2>") for title in SECTIONS]
    assert positions == sorted(positions)  # in the documented order
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', doc)
    assert len(images) >= 4  # forecast, metrics, estimated, attribution
    assert all(_is_png(b) for b in images)
    (heatmap,) = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', doc)
    assert _svg(heatmap) is not None
    assert "could not be drawn" not in doc
    _assert_self_contained(doc)
    # header
    assert "Nord v3" in doc and "approved" in doc and "2021-01-01 to 2023-12-31" in doc
    assert "2024-01-29T06:00:00Z" in doc
    # alerts: latest week status, the alert week and its detail
    assert "Latest week: 2024-01-22" in doc
    assert '<span class="alert">ALERT</span>' in doc and "finding" in doc
    alert_table = doc[doc.index("Alert weeks") :]
    assert "2024-01-22" in alert_table and "promo, temperature" in alert_table
    assert "persist" in doc and "other regions" in doc
    # metrics formatted as percentages with one decimal, missing as n/a
    assert "12.0%" in doc and "30.0%" in doc and "n/a" in doc
    # drift table lists the alerting features with their weeks; ignored dow is not listed
    drift = doc[doc.index('id="drift"') : doc.index('id="quality"')]
    assert "promo" in drift and "2024-01-15, 2024-01-22" in drift
    assert "temperature" in drift and "<td>dow</td>" not in drift
    assert "other_region_feature" not in doc
    quality = doc[doc.index('id="quality"') : doc.index('id="attribution"')]
    assert "missing values" in quality and "2024-01-22" in quality
    estimated = doc[doc.index('id="estimated"') : doc.index('id="drift"')]
    assert "rows outside training range" in estimated
    assert "cannot say how much error the drift adds" in estimated
    assert "backtest" in estimated  # what the estimate learned from
    assert '<td class="num">25.0%</td>' in estimated
    assert estimated.count('<td class="num">0.0%</td>') == 3
    attribution = doc[doc.index('id="attribution"') :]
    assert "0.830" in attribution and "below" in attribution  # NDCG 0.83 < 0.9


def test_report_with_every_input_empty_renders_explanations() -> None:
    empty = pd.DataFrame()
    doc = render_region_report(
        region="nord",
        region_name="Nord",
        generated_at="2024-01-29",
        model={},
        forecasts=empty,
        ground_truth=empty,
        realized_weekly=empty,
        realized_by_origin=empty,
        monitoring=empty,
        alerts=empty,
        importance={},
        recent_importance=None,
    )
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in doc
    for sentence in (
        "No alert evaluation yet",
        "No forecasts yet",
        "No week has actuals yet",
        "No forecast origin has been scored yet",
        "No performance estimate yet",
        "No drift statistics yet",
        "No data-quality statistics yet",
        "No feature attribution was saved",
        "No weekly NDCG yet",
        "No holdout metrics were recorded",
    ):
        assert sentence in doc, sentence
    assert "n/a" in doc
    assert "data:image/png" not in doc
    _assert_self_contained(doc)


def test_report_with_empty_frames_that_keep_their_columns() -> None:
    """Readers return empty frames with the right columns before the first run."""
    doc = _full_report(
        ground_truth=_ground_truth().iloc[0:0],
        realized_weekly=_weekly().iloc[0:0],
        realized_by_origin=_by_origin().iloc[0:0],
        monitoring=_monitoring().iloc[0:0],
        alerts=_alerts().iloc[0:0],
        recent_importance=None,
    )
    assert "No actuals have arrived yet" in doc
    assert "No week has actuals yet" in doc and "No drift statistics yet" in doc
    assert len(re.findall("data:image/png;base64,", doc)) == 2  # forecasts, attribution
    _assert_self_contained(doc)


def test_hostile_strings_from_data_appear_only_escaped() -> None:
    doc = _full_report(
        region_name=HOSTILE,
        model={**_model(), "label": HOSTILE},
        forecasts=_forecasts(store=HOSTILE),
        ground_truth=_ground_truth(store=HOSTILE),
        monitoring=_monitoring(feature=HOSTILE),
        alerts=_alerts(detail=HOSTILE),
        importance=_importance(feature=HOSTILE),
    )
    assert HOSTILE not in doc
    assert "<script" not in doc.lower()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert doc.count(escaped) >= 5  # title, heading, model, alert detail, drift tables
    assert "could not be drawn" not in doc


def test_mathtext_in_feature_names_does_not_break_plots() -> None:
    name = "$x_{1$ and $$"
    assert _svg(drift_heatmap(_monitoring(feature=name))) is not None
    assert _is_png(attribution_plot(_importance(feature=name), None))
    assert _is_png(forecast_vs_actual_plot(_forecasts(store=name), _ground_truth(store=name)))


def test_a_report_is_replaced_whole_in_the_data_store(tmp_path: Path) -> None:
    data = DataStore(tmp_path)
    data.write_bytes("monitoring/nord/report.html", b"<html>old</html>")
    doc = _full_report(region_name="Nörd ü")
    path = data.write_bytes("monitoring/nord/report.html", doc.encode("utf-8"))
    assert Path(path).read_text(encoding="utf-8") == doc
    assert [p.name for p in Path(path).parent.iterdir()] == ["report.html"]  # no temp left


@pytest.mark.parametrize(
    ("plot", "full", "empty"),
    [
        (
            "forecast",
            lambda: forecast_vs_actual_plot(_forecasts(), _ground_truth(), n_series=2),
            lambda: forecast_vs_actual_plot(pd.DataFrame(), pd.DataFrame()),
        ),
        (
            "heatmap",
            lambda: drift_heatmap(_monitoring()),
            lambda: drift_heatmap(pd.DataFrame()),
        ),
        (
            "attribution",
            lambda: attribution_plot(_importance(), {"price": 3.0, "new": 1.0}),
            lambda: attribution_plot({}, None),
        ),
        (
            "metrics",
            lambda: metrics_over_time_plot(_weekly(), _model()["metrics"]),
            lambda: metrics_over_time_plot(pd.DataFrame()),
        ),
        (
            "estimated",
            lambda: estimated_performance_plot(_monitoring(), 4.0),
            lambda: estimated_performance_plot(pd.DataFrame()),
        ),
    ],
)
def test_plots_return_an_image_and_an_empty_state_png(plot, full, empty) -> None:
    full_image, empty_png = full(), empty()
    assert _is_image(full_image), plot
    assert _is_png(empty_png), plot  # empty input: a small "nothing yet" image, not ""
    assert full_image != empty_png


def test_forecast_plot_without_actuals_and_heatmap_of_ignored_only() -> None:
    assert _is_png(forecast_vs_actual_plot(_forecasts(), pd.DataFrame()))
    ignored = _monitoring()
    ignored = ignored[ignored["feature"] == "dow"]
    assert _svg(drift_heatmap(ignored)) is not None


def test_flags_read_back_as_object_with_missing_values() -> None:
    monitoring = _monitoring().astype({"nml_alert": object, "ignored": object})
    monitoring.loc[monitoring.index[:3], ["nml_alert", "ignored"]] = None
    alerts = _alerts().astype({"raw": object, "alert": object, "detail": object})
    alerts.loc[alerts.index[:2], ["raw", "alert", "detail"]] = None
    doc = _full_report(monitoring=monitoring, alerts=alerts)
    assert "could not be drawn" not in doc and "Alert weeks (1)" in doc


def test_report_wording_region_once_counts_in_words_and_no_empty_ndcg_rows() -> None:
    same = _full_report(region="Nord", region_name="Nord")
    assert "Nord (Nord)" not in same and "Monitoring report: Nord</h1>" in same
    other = _full_report(region="Rhein_Main", region_name="Rhein, Main")
    assert "Rhein, Main (Rhein_Main)" in other  # the key where it differs from the name

    forecasts = _forecasts()
    one_origin = forecasts[forecasts["origin"] == forecasts["origin"].max()]
    doc = _full_report(forecasts=one_origin)
    assert "1 forecast origin for 3 series" in doc and "1 forecast origins" not in doc
    assert "the forecasts of the latest origin dashed" in doc
    assert "3 forecast origins for 3 series" in _full_report()

    # a week without an NDCG (too few rows to rank) gets no row with an empty value
    monitoring = _monitoring()
    ndcg = monitoring["signal"] == "attribution_drift"
    monitoring.loc[ndcg & (monitoring["week_start"] == WEEKS[0]), "value"] = np.nan
    section = _full_report(monitoring=monitoring).split("<h2>Attribution ranking</h2>")[1]
    rows = re.findall(r"<tr><td>(\d{4}-\d{2}-\d{2})</td>", section)
    assert len(rows) == len(WEEKS) - 1 and str(WEEKS[0].date()) not in rows


def test_the_heatmap_digest_follows_what_the_heatmap_draws(tmp_path: Path) -> None:
    """Same drawn content, same digest (any row order, after a Parquet round trip, other
    signals added); any drawn value or flag changed, another digest."""
    table = _monitoring()
    digest = drift_heatmap_digest(table)
    table.to_parquet(tmp_path / "t.parquet", index=False)
    round_trip = pd.read_parquet(tmp_path / "t.parquet").sample(frac=1.0, random_state=1)
    assert drift_heatmap_digest(round_trip) == digest
    other = table[~table["signal"].isin(HEATMAP_SIGNALS)].assign(value=99.0)
    assert drift_heatmap_digest(pd.concat([table, other])) == digest
    quiet = table.index[(table["signal"] == "feature_drift") & (table["feature"] == "price")][0]
    changed_value = table.assign(value=table["value"].where(table.index != quiet, 7.0))
    assert drift_heatmap_digest(changed_value) != digest
    flagged = table.assign(nml_alert=table["nml_alert"].where(table.index != quiet, True))
    assert not table.loc[quiet, "nml_alert"] and drift_heatmap_digest(flagged) != digest
    assert drift_heatmap_digest(None) == drift_heatmap_digest(pd.DataFrame())


def test_the_report_reuses_the_heatmap_the_drift_report_drew(tmp_path: Path, monkeypatch) -> None:
    from mlops_assets import monitoring, reports
    from mlops_assets.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    table = _monitoring()
    drawn = monitoring.stored_drift_heatmap(ws, "Nord", table, draw=True)
    assert _svg(drawn) is not None

    def no_drawing(_table):
        raise AssertionError("drawn again")

    monkeypatch.setattr(reports, "drift_heatmap", no_drawing)
    assert monitoring.stored_drift_heatmap(ws, "Nord", table.iloc[::-1], draw=False) == drawn
    monkeypatch.undo()

    changed = table.assign(value=table["value"] * 2)  # another table: drawn, the old one goes
    assert monitoring.stored_drift_heatmap(ws, "Nord", changed, draw=False) != drawn
    assert [
        p.name.startswith("drift_heatmap.") for p in (ws.root / "monitoring" / "Nord").iterdir()
    ] == [True]


def test_the_heatmap_shows_each_weeks_severity_and_outlines_nannyml_alerts() -> None:
    table = _monitoring()
    svg = _svg(drift_heatmap(table[table["region"] == "nord"]))  # as the report passes it
    texts = [t.text or "" for t in svg.iter(f"{{{SVG}}}text")]
    assert "watched features" in texts
    assert "features without drift alerts (shown, never alert)" in texts
    for label in ("promo", "price", "temperature (gap to fleet)", "dow"):
        assert label in texts
    assert "all numerics (PCA reconstruction)" in texts
    weeks = [t for t in texts if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t)]
    assert weeks == [str(w.date()) for w in WEEKS]
    numbers = [t for t in texts if re.fullmatch(r"\d+\.\d", t)]
    assert len(numbers) == 5 * len(WEEKS)  # every row has a value every week
    # value / upper: promo 0.3 / 0.1 in the late weeks, the ignored dow 0.5 / 0.1 each week
    assert numbers.count("3.0") == 2 and numbers.count("5.0") == len(WEEKS)
    outlined = [r for r in svg.iter(f"{{{SVG}}}rect") if r.get("class") == "outlined"]
    assert len(outlined) == 4  # promo and temperature in the late weeks; dow never alerts
