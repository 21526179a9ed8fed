"""The platform's library calls made directly, in one process, without Dagster.

Each stage calls the plain functions the corresponding asset calls, in the same order, one
region after another (no run processes, no event log, no concurrency):

- ingest: ``landing.ingest_files`` per source (``raw_<source>`` assets);
- features: ``copy_features`` + ``check_features`` per region (``features``);
- training: ``train_and_register`` (fit, baselines, gate, registry, monitoring reference,
  fleet gap) + the holdout plot per region (``region_model``);
- scoring: load the approved model, ``make_forecast`` + ``top_contributions``, both written
  (``forecast``);
- monitoring: what the backfill of ``realized_performance`` + ``drift_report`` and then
  ``monitoring_job`` do: realized performance, the drift report (nannyml) with its plots
  and those of the region's HTML report, per region, then the fleet status, alert table
  and HTML reports (``monitoring_alerts``; notifications left out).

Used by ``scale.py`` and ``rossmann_e2e.py`` for Dagster's overhead (Dagster stage wall
minus direct wall) on a copy of the same landing files.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import lightgbm as lgb

from mlops_assets import monitoring, realized, reports
from mlops_assets.conditioning import copy_features, feature_set
from mlops_assets.data_checks import check_features
from mlops_assets.forecasting import (
    explained_rows,
    forecast_origin,
    future_rows,
    make_forecast,
    top_contributions,
)
from mlops_assets.landing import drop_dataset, ingest_files, scan_landing
from mlops_assets.plots import holdout_series_sparklines, holdout_sparkline, markdown_image
from mlops_assets.region_models import train_and_register
from mlops_assets.registry import ModelRegistry
from mlops_assets.spec import DatasetSpec, load_spec
from mlops_assets.warehouse import (
    connect,
    last_sales_date,
    region_fleet_gap,
    regions_with_sales,
)
from mlops_assets.workspace import Workspace

RUN_ID = "direct-benchmark"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def process_cpu_s() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class DirectPipeline:
    """The stages on a workspace of their own; ``stage_s`` collects the timings."""

    def __init__(self, source_dir: Path, root: Path, spec: str = "sample") -> None:
        self.spec: DatasetSpec = load_spec(spec)
        self.ws = Workspace(root)
        self.source_dir = source_dir
        self.stage_s: dict[str, float] = {}
        # CPU seconds of this process (every thread: TreeSHAP uses every core) per stage,
        # to set against the run workers' CPU in the same stage (``ProcessSampler``)
        self.stage_cpu_s: dict[str, float] = {}
        self.outcomes: dict = {}  # region -> TrainingOutcome
        self.regions: list[str] = []

    def run_all(self) -> dict[str, float]:
        drop_dataset(self.spec, self.source_dir, self.ws)
        for stage in ("ingest", "features", "training", "scoring", "monitoring"):
            start, cpu = time.perf_counter(), process_cpu_s()
            getattr(self, stage)()
            self.stage_s[stage] = round(time.perf_counter() - start, 2)
            self.stage_cpu_s[stage] = round(process_cpu_s() - cpu, 2)
            print(f"  direct {stage}: {self.stage_s[stage]} s", flush=True)
        return self.stage_s

    def ingest(self) -> None:
        by_source: dict[str, list[str]] = {}
        for f in scan_landing(self.ws, self.spec):  # sources in ingest order
            by_source.setdefault(f.source, []).append(f.relpath)
        statuses = [
            o.status
            for source, relpaths in by_source.items()
            for o in ingest_files(self.ws, self.spec, source, relpaths)
        ]
        if "quarantined" in statuses:
            raise RuntimeError(f"direct ingest quarantined {statuses.count('quarantined')} file(s)")
        self.regions = sorted(regions_with_sales(self.ws, self.spec))

    def features(self) -> None:
        for region in self.regions:
            data, key = self.ws.data, self.ws.features_key(region)
            with connect(self.ws, self.spec, shared=False) as con, data.staged(key) as staged:
                fs = copy_features(con, self.spec, region, staged)
                last = last_sales_date(con, self.spec)
                check_features(staged, self.spec, fs, previous_rows=None, dataset_last_date=last)

    def training(self) -> None:
        registry = ModelRegistry.for_workspace(self.ws)
        for region in self.regions:
            features = self.ws.read_features(region)
            with connect(self.ws, self.spec) as con:
                fs = feature_set(con, self.spec, list(features.columns))
            outcome = train_and_register(
                features,
                fs,
                self.spec,
                registry,
                region,
                run_id=RUN_ID,
                features_version=None,
                fleet_gap=region_fleet_gap(self.ws, self.spec, region),
            )
            holdout_series_sparklines(outcome.trained.holdout)
            holdout_sparkline(outcome.trained.holdout)
            self.outcomes[region] = outcome

    def scoring(self) -> None:
        registry = ModelRegistry.for_workspace(self.ws)
        for region in self.regions:
            mv = registry.latest_approved(region)
            if mv is None:
                continue
            features = self.ws.read_features(region)
            origin = forecast_origin(features)
            rows = future_rows(features, origin, self.spec.horizon * self.spec.period_days)
            text, meta = registry.load_artifacts(mv)
            booster = lgb.Booster(model_str=text)
            frame = make_forecast(
                rows,
                booster,
                meta,
                region_key=region,
                origin=origin,
                model_version=mv.version,
                model_label=mv.label,
                run_id=RUN_ID,
            )
            origin_s = str(origin.date())
            self.ws.data.write_frame(frame, self.ws.forecast_key(region, origin_s))
            self.ws.data.write_frame(
                # the stored sample of series, as the forecast asset does
                top_contributions(
                    explained_rows(rows, self.spec.forecast.explain_series), booster, meta
                ),
                self.ws.forecast_key(region, origin_s, "explanations"),
            )

    def monitoring(self) -> None:
        from mlops_assets.defs.monitoring.alerts import _write_reports

        ws, ds = self.ws, self.spec
        registry = ModelRegistry.for_workspace(ws)
        # as the Dagster pass's monitoring: the features and forecasts are those the
        # features and scoring stages wrote
        floor = ds.model.metric_floor
        for region in self.regions:
            forecasts = realized.read_forecasts(ws, region)
            actuals = realized.forecast_ground_truth(ws, ds, region, forecasts)
            per_origin = realized.realized_performance(forecasts, actuals, floor=floor)
            weekly = realized.weekly_realized(forecasts, actuals, floor=floor)
            realized.write_realized(ws, region, per_origin, weekly)
            if len(weekly):
                realized.weekly_plot(weekly, title=region)
            mv = registry.latest_approved(region)
            if mv is None:
                continue
            text, meta = registry.load_artifacts(mv)
            booster = lgb.Booster(model_str=text)
            features = ws.read_features(region)
            cols = monitoring.monitored_columns(meta, ds)
            inputs = monitoring.monitoring_inputs(
                region,
                features,
                booster,
                meta,
                ds,
                saved_reference=registry.load_reference(mv, meta),
                saved_gap=registry.load_fleet_gap(mv),
                fleet_gap=region_fleet_gap(ws, ds, region, cols.region_level),
            )
            if inputs.analysis.empty or inputs.reference.empty:
                continue
            # this model's last table, as the drift_report asset reads it (a refresh reuses
            # its unchanged work)
            previous = monitoring.model_drift_report(ws, region, mv.version)
            table = monitoring.region_drift(inputs, booster, meta, ds, previous=previous)
            table["model_version"] = mv.version
            ws.data.write_frame(table, monitoring.drift_report_key(ws, region))
            markdown_image(monitoring.stored_drift_heatmap(ws, region, table, draw=True), "d")
            report_plots = reports.draw_region_report_plots(ws, ds, registry, mv, meta)
            estimated = report_plots.get("estimated_performance")
            markdown_image(estimated or reports.estimated_performance_plot(table), "e")
        # monitoring_alerts: the fleet view over every approved region
        s, metric = ds.monitoring, ds.gate.metric
        holdout_metric = monitoring.quality_metric(s, metric)
        fleet = monitoring.fleet_inputs(ws, registry, self.regions, holdout_metric)
        status = monitoring.fleet_status(
            fleet.all_tables, fleet.weekly, fleet.holdout_error, s, metric=metric
        )
        ws.data.write_frame(status.alerts, monitoring.alerts_key(ws))
        _write_reports(ws, ds, registry, status, fleet.approved, fleet.tables)
