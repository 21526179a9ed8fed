"""Raw assets: one per landing source, each materialization ingests new landing files."""

import hashlib
from datetime import timedelta
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from mlops_assets.defs.resources import WorkspaceResource
from mlops_assets.landing import (
    affected_regions,
    ingest_files,
    reason_line,
    requeue_unknown_store_files,
    scan_landing,
)
from mlops_assets.spec import DatasetSpec
from mlops_assets.warehouse import ingested_files
from mlops_assets.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

FILES_VALID = "landing_files_valid"
KNOWN_COLUMNS = "no_unknown_columns"


class IngestConfig(dg.Config):
    files: list[str] = Field(
        default_factory=list,
        description="Landing files to ingest, as paths relative to the landing zone's root "
        "(`landing/<source>/<name>`; the landing sensor fills this in). Empty: every file "
        "in this source's landing folder whose content is not in the manifest yet.",
    )


def raw_asset_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"raw_{source}")


def landing_freshness_policy(spec: DatasetSpec, source: str) -> dg.FreshnessPolicy | None:
    """The sales feed is late when no sales file has been ingested (the raw asset has not
    materialized) for ``thresholds.landing_max_age_days``: Dagster's freshness daemon then
    marks the asset as failing its freshness in the UI (nothing downstream is blocked).
    The other sources arrive irregularly (store master, events, corrections), so they carry
    no policy."""
    if spec.sources[source].kind != "sales":
        return None
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=spec.thresholds.landing_max_age_days)
    )


def unannounced_files(
    context: dg.AssetExecutionContext, ws: Workspace, source: str, all_files: "pd.DataFrame"
) -> set[str]:
    """Files of this source ingested since its last materialization, by any run.

    A run killed after ingesting some files never materialized, so no ``affected_regions``
    ever named their regions and the region sensor would not refresh them: the next
    materialization announces every file whose raw Parquet was written after the previous
    materialization (or every file, before the first one). An object store keeps whole
    seconds, so there a file of the previous materialization's second is announced again
    (an extra refresh of its regions, never a missed one)."""
    previous = context.instance.get_latest_materialization_event(context.asset_key)
    data = ws.data
    after_ns = -1
    if previous is not None:
        after_ns = int(previous.timestamp * 1e9) - (0 if data.is_local else 1_000_000_000)
    done = all_files[all_files["ingested_at"] != ""]
    return {sha for sha in done["sha"] if data.modified_ns(ws.raw_key(source, sha)) > after_ns}


def build_raw_asset(spec: DatasetSpec, source: str) -> dg.AssetsDefinition:
    """The ``raw_<source>`` asset: validated, normalised rows of every accepted file."""
    src = spec.sources[source]
    # sources that reference stores are ingested after the store master in the same run
    deps = []
    if src.kind not in ("stores", "weather", "events"):
        deps.append(raw_asset_key(spec.source_name("stores")))
        if spec.has("store_regions") and src.kind != "store_regions":
            deps.append(raw_asset_key(spec.source_name("store_regions")))
    key = raw_asset_key(source)

    @dg.asset(
        key=key,
        group_name="ingest",
        deps=deps,
        kinds={"duckdb", "parquet"},
        freshness_policy=landing_freshness_policy(spec, source),
        description=(
            f"Validated rows of every `{src.kind}` file dropped into `landing/{source}/`, "
            "normalised to canonical columns (one Parquet file per distinct file content). "
            "Files failing validation are quarantined with a machine-readable reason."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                FILES_VALID,
                asset=key,
                description="Every landing file in this run passed validation (WARN: a bad "
                "file is quarantined, the rest of the data carries on).",
            ),
            dg.AssetCheckSpec(
                KNOWN_COLUMNS,
                asset=key,
                description="No accepted file of this run had columns the spec does not know "
                "(WARN: they were dropped, and are named here; a source with "
                "`unknown_columns: quarantine` quarantines such files instead).",
            ),
        ],
    )
    def raw_source(
        context: dg.AssetExecutionContext, config: IngestConfig, workspace: WorkspaceResource
    ) -> dg.MaterializeResult:
        ws, ds = workspace.workspace(), workspace.dataset()
        files = config.files or [f.relpath for f in scan_landing(ws, ds) if f.source == source]
        outcomes = ingest_files(ws, ds, source, files, run_id=context.run.run_id)
        for o in outcomes:
            if o.status == "quarantined":
                context.log.warning(f"quarantined {o.relpath}: {reason_line(o.record)}")
        new_ok = [o.sha256 for o in outcomes if o.status == "ingested"]
        unknown = {
            o.relpath: o.record["unknown_columns"]
            for o in outcomes
            if o.status == "ingested" and o.record.get("unknown_columns")
        }
        for rel, cols in unknown.items():
            context.log.warning(f"{rel}: ignored columns the spec does not know: {cols}")
        bad = [o for o in outcomes if o.status == "quarantined"]
        requeued: list[str] = []
        if src.kind == "stores" and new_ok:
            # files quarantined for stores this master may add get their next attempt
            requeued = requeue_unknown_store_files(ws)
            if requeued:
                context.log.info(f"requeued {len(requeued)} file(s) with unknown stores")
        all_files = ingested_files(ws, source)
        announced = unannounced_files(context, ws, source, all_files) | set(new_ok)
        regions = affected_regions(ws, ds, source, sorted(announced))
        version = hashlib.sha256("".join(all_files["sha"]).encode()).hexdigest()[:16]
        table = dg.MetadataValue.md(
            "| file | status | rows | reason |\n|---|---|---|---|\n"
            + "\n".join(
                f"| {o.relpath} | {o.status} | {o.record.get('rows', '')} "
                f"| {o.record.get('reason', '')} |"
                for o in outcomes
            )
            if outcomes
            else "no new files"
        )
        return dg.MaterializeResult(
            metadata={
                "files": table,
                "files_ingested": len(new_ok),
                "files_quarantined": len(bad),
                "files_already_seen": sum(not o.new for o in outcomes),
                "rows_ingested": sum(o.record.get("rows", 0) for o in outcomes if o.new),
                "exact_duplicates_dropped": sum(
                    o.record.get("exact_duplicates_dropped", 0) for o in outcomes if o.new
                ),
                "affected_regions": dg.MetadataValue.json(regions),
                **(
                    {"requeued_unknown_store_files": dg.MetadataValue.json(requeued)}
                    if src.kind == "stores"
                    else {}
                ),
                "total_files": len(all_files),
            },
            data_version=dg.DataVersion(version),
            check_results=[
                dg.AssetCheckResult(
                    check_name=FILES_VALID,
                    passed=not bad,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(
                        "; ".join(f"{o.relpath}: {reason_line(o.record)}" for o in bad)
                        or f"{len(outcomes)} file(s) valid"
                    ),
                    metadata={
                        # the short reasons; the engine's full text is in each reason file
                        "quarantined": dg.MetadataValue.json(
                            [
                                {
                                    "file": o.record["file"],
                                    "reason": reason_line(o.record),
                                    "quarantined_copy": o.record["quarantined_copy"],
                                    "reason_file": o.record["quarantined_copy"] + ".reason.json",
                                }
                                for o in bad
                            ]
                        )
                    },
                ),
                dg.AssetCheckResult(
                    check_name=KNOWN_COLUMNS,
                    passed=not unknown,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=(
                        "; ".join(f"{rel}: ignored columns {cols}" for rel, cols in unknown.items())
                        or "no accepted file had columns the spec does not know"
                    ),
                    metadata={"ignored_columns": dg.MetadataValue.json(unknown)},
                ),
            ],
        )

    return raw_source


def build_raw_assets(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    return [build_raw_asset(spec, source) for source in spec.sources]
