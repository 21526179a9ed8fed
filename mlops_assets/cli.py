"""`mlops-assets` command line: generate sample data, drop datasets, run the demo.

Examples::

    mlops-assets demo                                  # sample data -> features, in-process
    mlops-assets generate --out /tmp/sample --stores 40
    mlops-assets ingest --spec rossmann --source-dir ../shared/data/rossmann-100 --process
    mlops-assets quarantine
    mlops-assets landing status --json
    mlops-assets tune --region Nord --trials 50 --timeout 600
    mlops-assets local-prod                            # the prod profile on this machine

A configuration or input problem (a missing source folder, an unknown spec, a file that
cannot be read, a bad environment variable) ends in one ``error: ...`` line on stderr and
exit code 2, never a traceback.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.landing import drop_dataset
from mlops_assets.notifications import WEBHOOK_ENV, check_webhook_url
from mlops_assets.settings import Settings, SettingsError, load_settings
from mlops_assets.spec import SpecError, load_spec
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    import dagster as dg
    import pandas as pd

    from mlops_assets.registry import ModelRegistry


class CliError(Exception):
    """A problem with what the command was given: reported as one line, exit code 2."""


def _source_dir(value: str) -> Path:
    """The dataset folder to read, checked before any work starts."""
    path = Path(value)
    if not path.exists():
        raise CliError(f"source folder {value} does not exist")
    if not path.is_dir():
        raise CliError(f"source folder {value} is not a folder")
    return path


def _out_file(value: str) -> Path:
    """An output file, checked before a long computation rather than after it."""
    path = Path(value)
    if path.is_dir():
        raise CliError(f"--out {value} is a folder, not a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _one_line(exc: BaseException) -> str:
    """An error as one line: ``path: reason`` for file errors, whitespace collapsed
    (YAML and DuckDB errors span several lines)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
        text = f"{' -> '.join(names)}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


# the instance configuration of a DAGSTER_HOME that has none: Dagster's defaults, except
# its usage statistics (on unless a dagster.yaml turns them off; nothing leaves the machine)
NO_TELEMETRY_CONFIG = "telemetry:\n  enabled: false\n"


def _instance() -> "dg.DagsterInstance":
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        # like `make demo`: an instance in .dagster_home below the current directory, with
        # the dagster.yaml found there (telemetry off, run limits)
        home = Path.cwd() / ".dagster_home"
        home.mkdir(exist_ok=True)
        if not (home / "dagster.yaml").exists() and Path("dagster.yaml").exists():
            shutil.copyfile("dagster.yaml", home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and not (home / "dagster.yml").exists():
        (home / "dagster.yaml").write_text(NO_TELEMETRY_CONFIG)
    return dg.DagsterInstance.get()


def process(settings: Settings, *, train: bool = False) -> list:
    """Run the sensors and their runs in-process until nothing is left to do; with
    ``train``, then train and forecast every region (what the weekly schedule does)."""
    from mlops_assets.definitions import build_definitions
    from mlops_assets.defs.local_driver import run_partitions, run_sensors
    from mlops_assets.defs.models.jobs import TRAIN_JOB
    from mlops_assets.defs.monitoring.jobs import REGION_MONITORING_JOB
    from mlops_assets.defs.partitions import region_partitions

    defs = build_definitions(settings)
    with _instance() as instance:
        runs = run_sensors(defs, instance)
        if train:
            regions = sorted(instance.get_dynamic_partitions(region_partitions.name))
            stale = [r for r in regions if _needs_training(settings, instance, r)]
            runs += run_partitions(defs, instance, TRAIN_JOB, stale, tags={"mlops/trigger": "cli"})
            if stale:
                # monitoring of the new models from their first forecast (the training's
                # run made it): drift reports of the forecast weeks, then the fleet alerts
                # and reports (monitoring_sensor)
                runs += run_partitions(
                    defs, instance, REGION_MONITORING_JOB, stale, tags={"mlops/trigger": "cli"}
                )
                runs += run_sensors(defs, instance)
        return runs


def _needs_training(settings: Settings, instance: "dg.DagsterInstance", region: str) -> bool:
    """Whether the region's newest model was trained on other features than the current."""
    from mlops_assets.defs.features.assets import FEATURES_KEY
    from mlops_assets.defs.models.assets import latest_data_version
    from mlops_assets.registry import ModelRegistry

    versions = ModelRegistry.for_workspace(settings.workspace()).versions(region)
    current = latest_data_version(instance, FEATURES_KEY, region)
    return not versions or versions[-1].record.get("training_data_version") != current


def model_summary(settings: Settings) -> list[dict]:
    """Per region: the latest model version, its status and holdout metrics."""
    from mlops_assets.registry import ModelRegistry

    registry = ModelRegistry.for_workspace(settings.workspace())
    out = []
    for region in registry.regions():
        versions = registry.versions(region)
        if not versions:
            continue
        latest, approved = versions[-1], registry.latest_approved(region)
        m = latest.record.get("metrics", {})
        base = latest.record.get("baseline_metrics", {}).get("hist_avg", {})
        out.append(
            {
                "region_key": region,
                "latest": latest.label,
                "status": latest.status,
                "approved": approved.label if approved else "-",
                "mape": m.get("mape"),
                "baseline_mape": base.get("mape"),
                "reduction": m.get("mape_reduction_vs_baseline"),
                "rmspe": m.get("rmspe"),
            }
        )
    return out


def region_summary(settings: Settings) -> list[dict]:
    """Per-region row counts and date ranges of the feature tables."""
    from mlops_assets.warehouse import connect, has_view

    ws, spec = settings.workspace(), load_spec(settings.spec)
    with connect(ws, spec, features=True) as con:
        if not has_view(con, "features"):
            return []
        rows = con.execute(
            "SELECT f.region_key, any_value(g.region), count(*) FILTER (WHERE NOT is_future), "
            "count(*) FILTER (WHERE is_future), count(DISTINCT store), count(DISTINCT item), "
            "CAST(min(date) AS VARCHAR), CAST(max(date) FILTER (WHERE NOT is_future) AS VARCHAR) "
            "FROM features f LEFT JOIN regions g USING (region_key) GROUP BY 1 ORDER BY 1"
        ).fetchall()
    keys = (
        "region_key",
        "region",
        "history_rows",
        "future_rows",
        "stores",
        "items",
        "first_date",
        "last_date",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def _print_runs(runs: list) -> None:
    for run in runs:
        state = "ok  " if run.success else "FAIL"
        where = f"[{run.partition_key}]" if run.partition_key else ""
        extra = f"  failed checks: {', '.join(run.failed_checks)}" if run.failed_checks else ""
        print(f"  {state} {run.job}{where} -> {', '.join(run.assets) or '-'}{extra}")


def _print_summary(summary: list[dict]) -> None:
    print(f"\n{'region':<14}{'key':<14}{'rows':>9}{'future':>8}{'stores':>8}{'items':>7}  history")
    for r in summary:
        print(
            f"{r['region']:<14}{r['region_key']:<14}{r['history_rows']:>9}"
            f"{r['future_rows']:>8}{r['stores']:>8}{r['items']:>7}"
            f"  {r['first_date']}..{r['last_date']}"
        )
    print(f"{'total':<28}{sum(r['history_rows'] for r in summary):>9}")


def _print_models(models: list[dict]) -> None:
    if not models:
        return

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    print(
        f"\n{'region':<14}{'model':<16}{'status':<18}{'MAPE':>7}{'baseline':>10}"
        f"{'reduction':>11}{'RMSPE':>8}  approved"
    )
    for m in models:
        print(
            f"{m['region_key']:<14}{m['latest']:<16}{m['status']:<18}{pct(m['mape']):>7}"
            f"{pct(m['baseline_mape']):>10}{pct(m['reduction']):>11}{pct(m['rmspe']):>8}"
            f"  {m['approved']}"
        )


def cmd_generate(args: argparse.Namespace) -> int:
    from mlops_assets.sample_data import DriftSpec, SampleConfig, generate

    drift = []
    for d in args.drift:
        try:
            r, s, k, m = d.rsplit(":", 3)
            drift.append(
                DriftSpec(region=r, start=date.fromisoformat(s), kind=k, magnitude=float(m))
            )
        except ValueError as exc:
            raise CliError(f"--drift {d!r}: expected REGION:YYYY-MM-DD:KIND:MAGNITUDE") from exc
    config = SampleConfig(
        seed=args.seed,
        n_regions=args.regions,
        n_stores=args.stores,
        n_departments=args.departments,
        days=args.days,
        drift=tuple(drift),
        file_format=args.format,
    )
    start = time.perf_counter()
    summary = generate(config, Path(args.out))
    print(
        json.dumps(
            {**summary.to_dict(), "wall_seconds": round(time.perf_counter() - start, 2)},
            indent=2,
            default=str,
        )
    )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    spec = load_spec(settings.spec)
    ws = settings.workspace()
    dropped = drop_dataset(spec, _source_dir(args.source_dir), ws)
    print(f"dropped {len(dropped)} file(s) into {ws.landing_zone.location()}")
    if args.process:
        start = time.perf_counter()
        runs = process(settings)
        _print_runs(runs)
        _print_summary(region_summary(settings))
        print(f"processed in {time.perf_counter() - start:.1f} s")
        return 0 if all(r.success for r in runs) else 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mlops_assets.sample_data import SampleConfig, generate

    settings = _settings(args, spec="sample")
    if args.fresh and settings.home.exists():
        shutil.rmtree(settings.home)
    start = time.perf_counter()
    source = settings.home / "incoming" / "sample"
    if not source.exists():
        summary = generate(SampleConfig(seed=args.seed), source)
        print(
            f"generated sample data: {summary.n_rows_sales} sales rows, "
            f"{len(summary.regions)} regions -> {source}"
        )
    ws = settings.workspace()
    dropped = drop_dataset(load_spec("sample"), source, ws)
    print(f"dropped {len(dropped)} file(s) into {ws.landing_zone.location()}")
    runs = process(settings, train=True)
    _print_runs(runs)
    summary = region_summary(settings)
    _print_summary(summary)
    _print_models(model_summary(settings))
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s; workspace {settings.home}")
    print("see it in the UI: make dev, then open http://127.0.0.1:3000")
    failed = [r for r in runs if not r.success]
    if failed or not summary:
        print(f"{len(failed)} run(s) failed" if failed else "no features were produced")
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mlops_assets.evaluation import evaluate_dataset, region_line

    spec, source, out = load_spec(args.spec), _source_dir(args.source_dir), _out_file(args.out)
    report = evaluate_dataset(spec, source)
    out.write_text(json.dumps(report, indent=2, default=str))
    o = report["overall"]
    print(
        f"{report['dataset']}: holdout {report['holdout_start']}..{report['holdout_end']}, "
        f"{len(report['regions'])} regions, {report['wall_seconds']} s"
    )
    print(
        f"overall MAPE {o['mape']:.2%}  RMSPE {o['rmspe']:.2%}  WAPE {o['wape']:.2%}  "
        f"baseline MAPE {o['baseline_mape']:.2%}  reduction "
        f"{o['mape_reduction_vs_baseline']:.1%}"
    )
    for key, r in report["regions"].items():
        print(region_line(key, r))
    print(f"written to {out}")
    return 0


def cmd_migrate_state(args: argparse.Namespace) -> int:
    """Import what older workspaces kept in files (the ingestion manifest's JSON records,
    the registry's logs and version records, the notification feed and alerting state,
    the tuning studies' journal files) into the state database, once; opening each of
    them (tuning: a region's next run) does the same on first use. With ``--to URL``, then
    copy that state database into the one at URL (a dev workspace's SQLite into prod's
    PostgreSQL; ``storage.state_copy``): what the target has already is kept, and exit 1
    when a row or study could not be copied."""
    from mlops_assets.notifications import Notifier
    from mlops_assets.storage.database import engine_for
    from mlops_assets.storage.manifest import Manifest
    from mlops_assets.storage.notification_tables import import_notification_files
    from mlops_assets.storage.registry_tables import import_registry_files
    from mlops_assets.storage.state_copy import StateCopyError, check_target, copy_state
    from mlops_assets.storage.tuning_studies import migrate_journal_studies

    ws = _settings(args).workspace()
    target = args.to_database
    if target is not None:
        if "://" not in target:
            raise CliError("--to must be a database URL, e.g. postgresql+psycopg2://user@host/db")
        if not ws.root.is_dir():
            raise CliError(f"no workspace at {ws.root}")
        try:  # before any work: a wrong target changes nothing
            check_target(ws.state_database_url, target)
        except StateCopyError as exc:
            raise CliError(str(exc)) from None
    engine = engine_for(ws.state_database_url)
    added = {"manifest_files": Manifest(engine).import_json_records(ws)}
    added.update(import_registry_files(engine, ws.registry_dir))
    added.update(import_notification_files(engine, *Notifier.legacy_files(ws)))
    studies = migrate_journal_studies(ws)
    added["tuning_studies"] = studies.copied
    where = engine.url.render_as_string(hide_password=True)
    print(f"state database {where}: " + ", ".join(f"{t} +{n}" for t, n in added.items()))
    if not any(added.values()):
        print("nothing to import: the files were imported before, or there are none")
    for reason in studies.skipped:
        print(f"not copied: {reason}")
    if target is None:
        return 0
    try:
        copied = copy_state(ws.state_database_url, target)
    except StateCopyError as exc:
        raise CliError(str(exc)) from None
    print("\n".join(copied.lines()))
    return 0 if copied.complete else 1


def cmd_migrate_data(args: argparse.Namespace) -> int:
    """Copy a workspace's data tables (ingested files, features, forecasts, monitoring),
    model artifacts, landing files and quarantine (copies and reasons) from its folder to
    the storage root, before the workspace runs with ``MLOPS_STORAGE_ROOT``; the local
    copies stay (raw files are never deleted). The registry then checks every copied
    artifact against its recorded checksum."""
    from mlops_assets.model_store import LocalModelStore
    from mlops_assets.registry import ModelRegistry
    from mlops_assets.storage.data_store import copy_tables
    from mlops_assets.storage.landing_zone_copy import copy_landing_zone
    from mlops_assets.storage.object_store import copy_artifacts, model_store_for

    settings = _settings(args)  # --to is checked as MLOPS_STORAGE_ROOT is
    shared = settings.workspace()
    if not shared.storage_root:
        raise CliError("no storage root: pass --to URL or set MLOPS_STORAGE_ROOT")
    local = Workspace(shared.root, shared.database_url)
    source, target = local.data, shared.data
    if target.url == source.url:
        raise CliError(f"the storage root {shared.storage_root} is the workspace folder itself")
    tables = copy_tables(source, target)
    models = copy_artifacts(LocalModelStore(local.models_dir), model_store_for(shared))
    print(
        f"{tables['copied']} table(s) and {models['copied']} model artifact(s) copied from "
        f"{source.url} to {target.url}; {tables['skipped']} table(s) and "
        f"{models['skipped']} artifact(s) already there"
    )
    zone = copy_landing_zone(local.landing_zone, shared.landing_zone)
    landing, quarantine = zone["landing"], zone["quarantine"]
    print(
        f"{landing['copied']} landing file(s) and {quarantine['copied']} quarantine file(s) "
        f"copied; {landing['skipped']} landing file(s) and {quarantine['skipped']} "
        "quarantine file(s) already there"
    )
    problems = ModelRegistry.for_workspace(shared).verify()
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def cmd_registry(args: argparse.Namespace) -> int:
    from mlops_assets.registry import ModelRegistry, RegistryError

    settings = _settings(args)
    registry = ModelRegistry.for_workspace(settings.workspace())
    if args.action == "list":
        regions = [args.region] if args.region else registry.regions()
        for region in regions:
            approved = registry.latest_approved(region)
            pruned = registry.pruned(region)
            for mv in registry.versions(region):
                m = mv.record.get("metrics", {})
                mape = m.get("mape")
                mark = "*" if approved and mv.version == approved.version else " "
                print(
                    f"{mark} {mv.label:<16}{mv.status:<18}{mv.created_at:<34}"
                    f"{mv.record.get('source', ''):<15}"
                    f"MAPE {'n/a' if mape is None else f'{mape:.1%}'}"
                    + ("  (artifacts pruned)" if mv.version in pruned else "")
                )
        return 0
    if args.action == "prune":
        verb = "would prune" if args.dry_run else "pruned"
        total = 0
        try:  # a ValidationError (negative counts) is a ValueError
            keep = load_spec(settings.spec).retention.with_overrides(
                keep_archived=args.keep_archived, keep_rejected=args.keep_rejected
            )
            for region in [args.region] if args.region else registry.regions():
                done = registry.prune(
                    region, actor=args.actor, dry_run=args.dry_run, **keep.model_dump()
                )
                for p in done:
                    print(f"{verb} {p.version.label} ({p.version.status}, {p.freed_bytes} bytes)")
                total += sum(p.freed_bytes for p in done)
        except (RegistryError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"{verb} {total} bytes ({keep.keep_archived} archived and "
            f"{keep.keep_rejected} rejected versions kept per region)"
        )
        return 0
    if args.action == "verify":
        return _registry_verify(registry, args.region, as_json=args.json)
    if not args.region:
        raise CliError(f"registry {args.action} needs --region")
    if args.action == "history":
        for event in registry.history(args.region):
            print(json.dumps(event, sort_keys=True))
        return 0
    if args.version is None or not args.reason:
        raise CliError(f"registry {args.action} needs --version and --reason")
    change = getattr(registry, args.action)
    try:
        mv = change(args.region, args.version, actor=args.actor, reason=args.reason)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{mv.label} is now {mv.status}")
    return 0


def _registry_verify(registry: "ModelRegistry", region: str | None, *, as_json: bool) -> int:
    """Check every loadable version's artifacts against their recorded checksums (after
    sweeping what killed writes left); exit 0 when all match, 1 on any problem, 2 when
    the request itself is wrong (an unknown or unsafe region)."""
    from mlops_assets.registry import RegistryError

    try:
        report = registry.check_integrity(region)
        if region is not None and region not in report.checked and report.ok:
            raise RegistryError(f"region {region!r} has no registered versions")
    except (RegistryError, ValueError) as exc:  # an unsafe region key is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return 0 if report.ok else 1
    for where in report.swept:
        print(f"swept leftover {where}")
    for problem in report.problems:
        print(problem)
    checked = sum(len(v) for v in report.checked.values())
    pruned = sum(len(v) for v in report.pruned.values())
    scope = f"{checked} version(s) of {len(report.checked)} region(s) checked, {pruned} pruned"
    if report.ok:
        print(f"ok: every artifact matches its checksum ({scope})")
        return 0
    bad = len({p.label for p in report.problems})
    print(f"{len(report.problems)} problem(s) in {bad} version(s) or log(s) ({scope})")
    return 1


def cmd_explain(args: argparse.Namespace) -> int:
    import pandas as pd

    ws = _settings(args).workspace()
    data = ws.data
    try:
        stored = data.keys(ws.forecasts_folder(args.region), ".explanations.parquet")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not stored:
        raise CliError(f"no forecasts with explanations for region {args.region!r}")
    try:
        key = ws.forecast_key(args.region, args.origin, "explanations") if args.origin else None
    except ValueError:
        raise CliError(f"--origin {args.origin!r} is not a date (YYYY-MM-DD)") from None
    key = key or stored[-1]
    if not data.exists(key):
        raise CliError(f"no forecast of origin {args.origin} for region {args.region!r}")
    try:
        day = pd.Timestamp(args.date) if args.date else None
    except ValueError as exc:
        raise CliError(f"--date {args.date!r} is not a date (YYYY-MM-DD)") from exc
    origin_day = key.rsplit("/", 1)[-1].split(".")[0]
    frame = data.read_parquet(key)
    forecast = data.read_parquet(key.replace(".explanations.", ".forecast."))
    rows = frame[_asked_rows(frame, args, day)]
    on_demand = ""
    if rows.empty:
        rows = _explain_on_demand(ws, _settings(args).spec, args, forecast, origin_day, day)
        on_demand = ", computed on demand"
    if rows.empty:
        print("no such series/date in the latest forecast", file=sys.stderr)
        return 1
    preds = forecast.set_index(["store", "item", "date"])["prediction"]
    for (store, item, day), group in rows.groupby(["store", "item", "date"]):
        print(
            f"{store}/{item} {pd.Timestamp(day).date()}: forecast "
            f"{preds.get((store, item, day), float('nan')):.1f} "
            f"({forecast['model_label'].iloc[0]}, origin {origin_day}{on_demand})"
        )
        for r in group.sort_values("rank").itertuples():
            value = "missing" if pd.api.types.is_scalar(r.value) and pd.isna(r.value) else r.value
            print(f"    {r.rank}. {r.feature:<28} = {value!s:<12} {r.contribution:+.4f}")
    return 0


def _asked_rows(
    frame: "pd.DataFrame", args: argparse.Namespace, day: "pd.Timestamp | None"
) -> "pd.Series":
    """Which rows of a forecast or explanations frame ``explain`` asks for (store, and
    item and date when given)."""
    import pandas as pd

    keep = frame["store"].astype(str) == args.store
    if args.item:
        keep &= frame["item"].astype(str) == args.item
    if day is not None:
        keep &= pd.to_datetime(frame["date"]) == day
    return keep


def _explain_on_demand(
    ws: Workspace,
    spec_name: str,
    args: argparse.Namespace,
    forecast: "pd.DataFrame",
    forecast_day: str,
    day: "pd.Timestamp | None",
) -> "pd.DataFrame":
    """Top Shapley contributions of a forecast series whose explanations were not stored
    (the forecast asset keeps those of ``forecast.explain_series`` series), from the model
    version that made the forecast and the region's feature table. Only for the origin the
    feature table is at now: an older origin's inputs are gone."""
    import lightgbm as lgb
    import pandas as pd

    from mlops_assets.forecasting import read_future_rows, read_origin, top_contributions
    from mlops_assets.registry import ModelRegistry

    wanted = forecast[_asked_rows(forecast, args, day)]
    if wanted.empty:
        return wanted
    spec = load_spec(spec_name)
    with ws.features_version(args.region) as read:
        origin = read_origin(read)
        if origin is None or str(origin.date()) != forecast_day:
            raise CliError(
                f"the explanations of {args.store} were not stored with the forecast of "
                f"origin {forecast_day} (it keeps those of {spec.forecast.explain_series} "
                "series) and the features are now at origin "
                f"{origin.date() if origin is not None else '-'}: explain the latest origin"
            )
        rows = read_future_rows(read, origin, spec.horizon * spec.period_days)
    registry = ModelRegistry.for_workspace(ws)
    mv = registry.get(args.region, int(wanted["model_version"].iloc[0]))
    text, meta = registry.load_artifacts(mv)

    def keys(frame: pd.DataFrame) -> pd.Series:
        dates = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
        return frame["store"].astype(str) + "/" + frame["item"].astype(str) + "@" + dates

    mask = keys(rows).isin(set(keys(wanted))).to_numpy()
    return top_contributions(rows[mask], lgb.Booster(model_str=text), meta)


def cmd_quarantine(args: argparse.Namespace) -> int:
    from mlops_assets.landing import quarantined, reason_line

    ws = _settings(args).workspace()
    try:
        records = quarantined(ws)
    except (OSError, ValueError) as exc:  # a reason file that is unreadable or not JSON
        raise CliError(_one_line(exc)) from exc
    if args.requeue:
        from mlops_assets.landing import requeue

        matches = [r for r in records if r["sha256"].startswith(args.requeue)]
        if len({r["sha256"] for r in matches}) != 1:
            print(
                f"error: {args.requeue!r} matches {len(matches)} quarantined files", file=sys.stderr
            )
            return 2
        n = requeue(ws, matches[0]["sha256"])
        print(
            f"requeued {matches[0]['file']} (attempt {n + 1}); the landing sensor will "
            "ingest it again"
        )
        return 0
    for r in records:
        print(f"{r['sha256'][:12]}  {r['processed_at']}  {r['file']}  {reason_line(r)}")
    if not records:
        print("no quarantined files")
    return 0


def cmd_notifications(args: argparse.Namespace) -> int:
    """The notification feed (run failures, gate results, approvals, alerts), oldest first."""
    from mlops_assets.notifications import KINDS, Notifier

    if args.kind and args.kind not in KINDS:
        raise CliError(f"unknown kind {args.kind!r}; expected one of {', '.join(KINDS)}")
    if args.last < 1:
        raise CliError("--last must be at least 1")
    notifier = Notifier.for_workspace(_settings(args).workspace())
    records = notifier.read(kind=args.kind, region=args.region)[-args.last :]
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    for r in records:
        where = f" [{r['region']}]" if r["region"] else ""
        print(f"{r['at']}  {r['kind']}{where}: {r['message']}")
    if not records:
        print("no notifications")
    return 0


def cmd_landing(args: argparse.Namespace) -> int:
    """``landing status``: every landing file, its hash, state and why it is not ingested."""
    from mlops_assets.landing import LANDING_STATES, landing_status

    settings = _settings(args)
    ws, spec = settings.workspace(), load_spec(settings.spec)
    explain = None
    home = os.environ.get("DAGSTER_HOME") or (
        str(Path.cwd() / ".dagster_home") if (Path.cwd() / ".dagster_home").is_dir() else None
    )
    if home and (Path(home) / "dagster.yaml").exists():
        import dagster as dg

        from mlops_assets.defs.ingest.sensors import pending_reasons

        instance = dg.DagsterInstance.from_config(home)

        def explain(paths: list[str]) -> dict[str, str]:
            return pending_reasons(instance, paths)

    files = landing_status(ws, spec, explain)
    if args.json:
        print(json.dumps({"files": files}, indent=2))
        return 0
    for f in files:
        line = f"{f['state']:<11} {f['sha256'][:12]}  {f['path']}"
        print(line + (f"  ({f['reason']})" if f["reason"] else ""))
    counts = {s: sum(f["state"] == s for f in files) for s in LANDING_STATES}
    print(", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(files)} landing files")
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    from mlops_assets.defs.drill import DrillConfig, run_drill

    out = _out_file(args.out)
    try:
        cfg = DrillConfig(
            drift_region=args.drift_region,
            weeks=args.weeks,
            drift_week=args.drift_week,
            drift_kind=args.drift_kind,
            seed=args.seed,
            **{
                name: value
                for name in ("weather_shift", "level_shift")
                if (value := getattr(args, name)) is not None
            },
        )
        result = run_drill(cfg, keep=args.keep)
    except ValueError as exc:  # a bad config, or a region the generated data lacks
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.write_text(json.dumps(result, indent=2, default=str))
    for key, r in result["regions"].items():
        print(
            f"  {key:<12} drift alerts {r['drift_alert_weeks']}  attribution "
            f"{r['attribution_alert_weeks']}  quality breach week {r['quality_breach_week']}  "
            f"tuning {'yes' if r['tuning_triggered'] else 'no'}"
        )
    print(f"{len(result['notifications'])} notification(s); written to {out}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from mlops_assets.defs.features.assets import FEATURES_KEY
    from mlops_assets.defs.models.assets import STATUS_NOTIFICATIONS, latest_data_version
    from mlops_assets.notifications import Notification, Notifier
    from mlops_assets.registry import ModelRegistry
    from mlops_assets.tuning import TuningError, load_region_features, tune_and_register

    settings = _settings(args)
    spec, ws = load_spec(settings.spec), settings.workspace()
    try:
        tuning = spec.tuning.with_overrides(n_trials=args.trials, timeout_seconds=args.timeout)
        features, fs = load_region_features(ws, spec, args.region)
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with _instance() as instance:  # the features' data version, for the registry record
        features_version = latest_data_version(instance, FEATURES_KEY, args.region)
    run_id = f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    try:
        outcome = tune_and_register(
            features,
            fs,
            spec,
            ModelRegistry.for_workspace(ws),
            args.region,
            workspace=ws,
            run_id=run_id,
            features_version=features_version,
            tuning=tuning,
        )
    except TuningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result, mv = outcome.result, outcome.version
    print(result.describe())
    print(f"study {result.study_name} in {result.storage_path}")
    print(
        f"trials: {result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} "
        f"failed; best parameters: {json.dumps(result.best_params, sort_keys=True)}"
    )
    why = "; ".join(mv.reasons) or "passed the quality gate, review and approve it"
    print(f"registered {mv.label} as {mv.status}: {why}")
    webhook = os.environ.get(WEBHOOK_ENV) or None
    Notifier.for_workspace(ws, webhook).send(
        Notification(
            STATUS_NOTIFICATIONS[mv.status],
            f"{mv.label} is {mv.status}: {result.describe()}; {why}",
            mv.region,
            {"version": mv.version, "run_id": run_id, "study": result.study_name},
        )
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Become a Celery worker of the prod profile (replaces this process; stop it with
    SIGTERM). Its configuration is the executor's (deployment/celery.py), written below
    DAGSTER_HOME, whose instance (Postgres) the steps report to."""
    from mlops_assets.deployment.celery import (
        check_broker_settings,
        worker_command,
        write_worker_config,
    )

    check_broker_settings()
    home = os.environ.get("DAGSTER_HOME", "").strip()
    if not home:
        raise CliError("a worker needs DAGSTER_HOME: the instance its steps report to")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.name):
        raise CliError(f"worker name {args.name!r}: letters, digits, '_', '.', '-' only")
    config = write_worker_config(Path(home) / "celery" / f"{args.name}.yaml")
    command = worker_command(args.name, config, args.concurrency)
    # dagster-celery starts `celery` from PATH: the one installed beside this Python
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    sys.stdout.flush()
    os.execv(command[0], command)
    return 0  # not reached


def _settings(args: argparse.Namespace, spec: str | None = None) -> Settings:
    env = dict(os.environ)
    if getattr(args, "home", None):
        env["MLOPS_HOME"] = args.home
    if getattr(args, "to", None):  # migrate-data's storage root
        env["MLOPS_STORAGE_ROOT"] = args.to
    if getattr(args, "spec", None) or spec:
        env["MLOPS_SPEC"] = getattr(args, "spec", None) or spec
    settings = load_settings(env)
    if settings.home.exists() and not settings.home.is_dir():
        raise CliError(f"the workspace root {settings.home} is a file, not a folder")
    # definitions loaded in this process (e.g. by the driver) must see the same choice
    os.environ.update({"MLOPS_HOME": str(settings.home), "MLOPS_SPEC": settings.spec})
    return settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write the synthetic sample dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--regions", type=int, default=5)
    p.add_argument("--stores", type=int, default=20)
    p.add_argument("--departments", type=int, default=4)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--format", choices=["csv", "parquet"], default="csv")
    p.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="REGION:YYYY-MM-DD:KIND:MAGNITUDE",
        help="inject drift (kind: weather_shift, level_shift, promo_effect_loss)",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("ingest", help="drop a dataset directory into the landing zone")
    p.add_argument("--spec", required=True, help="spec name (sample, rossmann) or YAML path")
    p.add_argument("--source-dir", required=True)
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.add_argument(
        "--process",
        action="store_true",
        help="also run the sensors and their runs in-process (no daemon needed)",
    )
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("demo", help="sample data -> landing -> raw -> features, in-process")
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="delete the workspace first")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "evaluate",
        help="ingest -> features -> train in a temporary "
        "workspace and write holdout metrics as JSON",
    )
    p.add_argument("--spec", required=True, help="spec name (sample, rossmann) or YAML path")
    p.add_argument("--source-dir", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "registry", help="list, approve, reject, roll back, prune or verify model versions"
    )
    p.add_argument(
        "action",
        choices=["list", "history", "approve", "reject", "rollback", "prune", "verify"],
        help="verify: check every version's artifacts against their recorded checksums "
        "(exit 1 on any problem)",
    )
    p.add_argument("--region")
    p.add_argument("--version", type=int)
    p.add_argument("--reason")
    p.add_argument("--actor", default=os.environ.get("USER", "cli"))
    p.add_argument("--home")
    p.add_argument("--spec", help="spec whose retention settings prune uses")
    p.add_argument("--keep-archived", type=int, help="prune: default the spec's retention")
    p.add_argument("--keep-rejected", type=int, help="prune: default the spec's retention")
    p.add_argument("--dry-run", action="store_true", help="prune: report, delete nothing")
    p.add_argument("--json", action="store_true", help="verify: the report as JSON")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("explain", help="top Shapley contributions of a series' forecasts")
    p.add_argument("--region", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--item")
    p.add_argument("--date", help="one target date (YYYY-MM-DD); default: all")
    p.add_argument("--origin", help="forecast origin (YYYY-MM-DD); default: the latest")
    p.add_argument("--home")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("quarantine", help="list quarantined landing files and why")
    p.add_argument("--home")
    p.add_argument(
        "--requeue",
        metavar="SHA_PREFIX",
        help="let a quarantined file be ingested again (after fixing the cause)",
    )
    p.set_defaults(func=cmd_quarantine)

    p = sub.add_parser("notifications", help="the notification feed, oldest first")
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.add_argument("--kind", help="only this kind (run_failure, model_approved, ...)")
    p.add_argument("--region", help="only this region")
    p.add_argument("--last", type=int, default=50, help="at most this many, the newest")
    p.add_argument("--json", action="store_true", help="print the records as a JSON list")
    p.set_defaults(func=cmd_notifications)

    p = sub.add_parser(
        "landing", help="every landing file with its SHA-256, state and why it is not ingested"
    )
    p.add_argument("action", choices=["status"])
    p.add_argument("--json", action="store_true", help='print {"files": [...]} as JSON')
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.add_argument("--spec", help="spec name or YAML path (default: MLOPS_SPEC or sample)")
    p.set_defaults(func=cmd_landing)

    p = sub.add_parser(
        "tune",
        help="tune a region's hyper-parameters (persistent study) and register the model "
        "for approval (never approved automatically)",
    )
    p.add_argument("--region", required=True, help="region key (as in the partitions)")
    p.add_argument("--trials", type=int, help="new trials (default: the spec's tuning.n_trials)")
    p.add_argument(
        "--timeout", type=float, help="seconds (default: the spec's tuning.timeout_seconds)"
    )
    p.add_argument("--spec", help="spec name or YAML path (default: MLOPS_SPEC or sample)")
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser(
        "drill",
        help="fire drill: replay weeks of generated data with drift in one region through "
        "the sensors, monitoring and tuning; writes what fired when",
    )
    p.add_argument("--drift-region", default="Nord", help="display name of the region")
    p.add_argument("--weeks", type=int, default=6, help="weeks to replay")
    p.add_argument("--drift-week", type=int, default=2, help="first drifted week (1-based)")
    p.add_argument(
        "--drift-kind",
        default="weather_shift",
        choices=["weather_shift", "level_shift", "promo_effect_loss", "weather_and_level"],
    )
    p.add_argument(
        "--weather-shift",
        type=float,
        help="degrees C added to the region's temperature (weather kinds; default 20)",
    )
    p.add_argument(
        "--level-shift",
        type=float,
        help="relative demand change, 0.6 = +60%% (level kinds; default 0.6)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    p.add_argument("--out", required=True, help="JSON result file")
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser(
        "migrate-state",
        help="import an older workspace's manifest, registry, notification and tuning "
        "journal files into the state database (once; the files stay); with --to, then "
        "copy that state database into another (dev's SQLite -> prod's PostgreSQL)",
    )
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.add_argument(
        "--to",
        dest="to_database",
        metavar="URL",
        help="copy the workspace's state database (tables and tuning studies) into this "
        "SQLAlchemy URL, e.g. postgresql+psycopg2://mlops@db:5432/mlops (the password from "
        "PGPASSWORD or ~/.pgpass, never printed); idempotent, keeps the target's rows",
    )
    p.set_defaults(func=cmd_migrate_state)

    p = sub.add_parser(
        "migrate-data",
        help="copy the workspace's data tables, models, landing files and quarantine below "
        "the storage root (the local files stay)",
    )
    p.add_argument("--home", help="workspace root (default: MLOPS_HOME or .mlops/<env>)")
    p.add_argument("--to", help="storage root URL (default: MLOPS_STORAGE_ROOT)")
    p.set_defaults(func=cmd_migrate_data)

    p = sub.add_parser(
        "worker",
        help="run a Celery worker for the prod profile's steps (MLOPS_EXECUTOR=celery)",
    )
    p.add_argument("--name", default="worker", help="worker name; Celery shows name@host")
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="steps this worker runs at once (one pool process each; default 1)",
    )
    p.set_defaults(func=cmd_worker)

    from mlops_assets.deployment.local_prod import add_parser as add_local_prod

    add_local_prod(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # refused before any work (the value is a secret and never printed)
        check_webhook_url(os.environ.get(WEBHOOK_ENV))
        return args.func(args)
    except BrokenPipeError:
        # the reader went away (`mlops-assets registry list | head`): stop quietly, and
        # point stdout at /dev/null so the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer cut off by a pipe
    except (CliError, SettingsError, SpecError, OSError) as exc:
        # what the user gave or the environment holds, not a bug: one line, no traceback
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
