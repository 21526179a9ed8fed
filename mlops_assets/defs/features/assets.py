"""The per-region conditioned feature table and its quality gates.

``features_region`` conditions one region; ``defs.region_pipeline`` runs it for every
region of a run (one region for a refresh of it, several for the region sensor's batches
of new regions and for backfills), each reported on its own partition.
"""

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg

from mlops_assets.conditioning import FEATURES_VERSION, copy_features
from mlops_assets.data_checks import FEATURE_CHECKS, check_features
from mlops_assets.defs.ingest.assets import raw_asset_key
from mlops_assets.defs.partitions import (
    latest_materialization,
    region_check_spec,
    region_partitions,
)
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.spec import DatasetSpec
from mlops_assets.warehouse import connect, ingested_files, last_sales_date

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from mlops_assets.workspace import Workspace

FEATURES_KEY = dg.AssetKey("features")


def _previous_rows(instance: dg.DagsterInstance, region: str) -> int | None:
    previous = latest_materialization(instance, FEATURES_KEY, region)
    value = previous.metadata.get("rows") if previous else None
    return int(value.value) if value is not None else None


def features_spec(spec: DatasetSpec) -> tuple[dg.AssetSpec, list[dg.AssetCheckSpec]]:
    """The features asset and its quality checks (ERROR ones block the region's later
    steps; computed by ``defs.region_pipeline``)."""
    asset = dg.AssetSpec(
        FEATURES_KEY,
        group_name="features",
        partitions_def=region_partitions,
        deps=[raw_asset_key(source) for source in spec.sources],
        kinds={"duckdb", "parquet"},
        description=(
            "One region's conditioned feature table: the ground truth (sales, with "
            "any later actuals winning over the same rows) joined with the store "
            "master, weather, events and the known future calendar, plus calendar "
            "features and target lags/rolling means that end at least the horizon "
            f"({spec.horizon} periods) before each row, so multi-step forecasts "
            "never see future actuals."
        ),
    )
    checks = [
        region_check_spec(
            name,
            FEATURES_KEY,
            blocking=severity == "ERROR",
            description=f"[{severity}] {text}",
        )
        for name, (severity, text) in FEATURE_CHECKS.items()
    ]
    return asset, checks


@contextmanager
def features_session(
    context: dg.AssetExecutionContext, workspace: WorkspaceResource, notifier: NotifierResource
) -> Iterator[Callable[[str], dg.MaterializeResult]]:
    """``features(region)`` for every region of a run, sharing one warehouse connection
    and one read of the manifest (the ingested files' checksums: the data version's input)."""
    ws, ds = workspace.workspace(), workspace.dataset()
    with connect(ws, ds, shared=False) as con:
        dataset_last = last_sales_date(con, ds)
        inputs = "".join(
            "".join(ingested_files(ws, source)["sha"]) for source in sorted(ds.sources)
        )

        def features(region: str) -> dg.MaterializeResult:
            return features_region(context, ds, ws, con, notifier, region, dataset_last, inputs)

        yield features


def features_region(
    context: dg.AssetExecutionContext,
    ds: DatasetSpec,
    ws: "Workspace",
    con: "duckdb.DuckDBPyConnection",
    notifier: NotifierResource,
    region: str,
    dataset_last: object,
    inputs: str,
) -> dg.MaterializeResult:
    """One region's feature table written, checked and described; ``con`` has the
    workspace views, ``inputs`` the ingested files' checksums (the data version's input)."""
    data, key = ws.data, ws.features_key(region)
    display = con.execute(
        "SELECT region FROM regions WHERE region_key = $r", {"r": region}
    ).fetchone()
    if display is None:
        raise dg.Failure(f"region {region!r} is not in the store master any more")
    # written and checked on this machine, then published (no read back from object storage)
    with data.staged(key) as staged:
        feature_set = copy_features(con, ds, region, staged)
        summary = _summary(staged)
        outcomes = check_features(
            staged,
            ds,
            feature_set,
            previous_rows=_previous_rows(context.instance, region),
            dataset_last_date=dataset_last,
        )
    path = data.location(key)
    if summary["history_rows"] == 0:
        raise dg.Failure(f"region {region!r} ({display[0]}) has no sales rows")
    for failed in (o for o in outcomes if not o.passed and o.severity == "ERROR"):
        notifier.send(
            "check_failure",
            f"features {failed.name}: {failed.message}",
            region=region,
            run_id=context.run.run_id,
            check=failed.name,
        )
    version = hashlib.sha256(f"{FEATURES_VERSION}:{region}:{inputs}".encode()).hexdigest()
    return dg.MaterializeResult(
        asset_key=FEATURES_KEY,
        metadata={
            "region": display[0],
            "rows": summary["rows"],
            "history_rows": summary["history_rows"],
            "future_rows": summary["future_rows"],
            "stores": summary["stores"],
            "items": summary["items"],
            "date_min": summary["date_min"],
            "date_max": summary["date_max"],
            "numeric_features": dg.MetadataValue.json(feature_set.numeric),
            "categorical_features": dg.MetadataValue.json(feature_set.categorical),
            "path": dg.MetadataValue.path(path),
        },
        data_version=dg.DataVersion(version[:16]),
        check_results=[
            dg.AssetCheckResult(
                asset_key=FEATURES_KEY,
                check_name=o.name,
                passed=o.passed,
                severity=dg.AssetCheckSeverity[o.severity],
                description=o.message,
                metadata={
                    k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                    for k, v in o.metadata.items()
                    if v is not None
                },
            )
            for o in outcomes
        ],
    )


def _summary(path: "Path") -> dict:
    import duckdb

    with duckdb.connect() as con:
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT is_future), "
            "count(*) FILTER (WHERE is_future), count(DISTINCT store), count(DISTINCT item), "
            "CAST(min(date) AS VARCHAR), CAST(max(date) AS VARCHAR) FROM read_parquet($p)",
            {"p": str(path)},
        ).fetchone()
    keys = ("rows", "history_rows", "future_rows", "stores", "items", "date_min", "date_max")
    return dict(zip(keys, row, strict=True))
