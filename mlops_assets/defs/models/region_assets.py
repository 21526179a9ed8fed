"""region_model and forecast, computed by one op that handles one region or a batch.

A run per region costs about 4-8 s before any work (a process, Dagster, the code location,
pandas and LightGBM imported again), which dominates when regions are many and small. An
asset backfill (the UI's or ``launchPartitionBackfill``) therefore puts up to
``regions_per_run`` regions in one run (``BackfillPolicy.multi_run``; the setting
``MLOPS_REGIONS_PER_RUN``), and this op loops over them.

Dagster 1.13 cannot report a failed partition from a step over several partitions
(dagster-io/dagster #17836), so a batch reports each region itself: every region that
succeeds logs its materializations and check evaluations for its own partition (with its
own metadata and data version), a region that fails is logged with its error and skipped,
and the step fails at the end naming the failed regions. Dagster then shows exactly the
failed regions as failed and the others as materialized. One region (every run that the
sensors, jobs and the demo launch) takes Dagster's ordinary path: results are yielded and
an exception fails the step with its own traceback.

Both assets live in one op so that a batch needs no downstream step in the same run (a
step over several partitions that yields no output would make Dagster skip it). When the
region's model fails a blocking gate check, its forecast is not made, as Dagster's blocking
check would skip it.
"""

import time
import traceback
from collections.abc import Callable, Iterator, Sequence

import dagster as dg

from mlops_assets.defs.forecasts.assets import FORECAST_KEY, forecast_region, forecast_spec
from mlops_assets.defs.models.assets import (
    REGION_MODEL_KEY,
    load_lightgbm_for_run,
    region_model_spec,
    train_region,
)
from mlops_assets.defs.models.checks import (
    REGISTRY_CHECK,
    check_registry_integrity,
    registry_check_spec,
)
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.naming import require_safe_key
from mlops_assets.settings import DEFAULT_REGIONS_PER_RUN
from mlops_assets.spec import DatasetSpec

REGISTRY_CHECK_KEY = dg.AssetCheckKey(REGION_MODEL_KEY, REGISTRY_CHECK)
_DATA_VERSION_TAG = "dagster/data_version"
_DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
_BACKFILL_TAG = "dagster/backfill"

RegionResult = dg.MaterializeResult | dg.AssetCheckResult


def build_region_assets(
    spec: DatasetSpec, regions_per_run: int = DEFAULT_REGIONS_PER_RUN
) -> dg.AssetsDefinition:
    model_asset, model_checks = region_model_spec(spec)
    forecast_asset, forecast_checks = forecast_spec(spec)

    @dg.multi_asset(
        name="region_model_and_forecast",
        specs=[model_asset, forecast_asset],
        check_specs=[*model_checks, registry_check_spec(), *forecast_checks],
        partitions_def=region_partitions,
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(regions_per_run),
        description="Train, gate and register a region's model, then forecast with the "
        "region's approved model; a backfill run handles several regions, each reported on "
        "its own partition.",
    )
    def region_model_and_forecast(
        context: dg.AssetExecutionContext,
        workspace: WorkspaceResource,
        notifier: NotifierResource,
    ) -> Iterator[RegionResult]:
        load_lightgbm_for_run(context)

        def results(region: str) -> Iterator[RegionResult]:
            return region_results(context, spec, workspace, notifier, region)

        regions = context.partition_keys
        if len(regions) == 1:
            yield from results(regions[0])
            return
        run_batch(context, regions, results)

    return region_model_and_forecast


def region_results(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    workspace: WorkspaceResource,
    notifier: NotifierResource,
    region: str,
) -> Iterator[RegionResult]:
    """What the run selected, for one region, each result as soon as it exists (a failing
    forecast does not take the model's materialization with it): the model (with its gate),
    the registry check, and the forecast unless the new model failed a blocking check."""
    selected = context.selected_asset_keys
    gate_passed = True
    if REGION_MODEL_KEY in selected:
        trained = timed(train_region, context, spec, workspace, notifier, region)
        gate_passed = all(c.passed for c in trained.check_results or [])
        yield trained
    if REGISTRY_CHECK_KEY in context.selected_asset_check_keys:
        yield check_registry_integrity(workspace, region)
    if FORECAST_KEY in selected:
        if gate_passed:
            yield timed(forecast_region, context, spec, workspace, region)
        else:
            context.log.info(f"{region}: no forecast, the new model failed a blocking check")


def timed(compute: Callable[..., dg.MaterializeResult], *args) -> dg.MaterializeResult:
    """The result with ``compute_s``, the seconds its computation took (plotted across
    materializations; the benchmarks add them up per asset)."""
    start = time.perf_counter()
    result = compute(*args)
    seconds = round(time.perf_counter() - start, 3)
    return result._replace(metadata={**(result.metadata or {}), "compute_s": seconds})


def run_batch(
    context: dg.AssetExecutionContext,
    regions: Sequence[str],
    results: Callable[[str], Iterator[RegionResult]],
) -> None:
    """Each region's results logged on its own partition; failed regions are logged, the
    rest carry on, and the step fails at the end naming them."""
    failed: dict[str, str] = {}
    for region in regions:
        try:
            for result in results(require_safe_key(region)):
                log_region_result(context, region, result)
        except Exception as exc:  # noqa: BLE001  one region's failure must not stop the rest
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            failed[region] = f"{type(exc).__name__}: {first_line}"
            context.log.error(f"region {region} failed:\n{traceback.format_exc()}")
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(regions)} regions failed: "
            + "; ".join(f"{r}: {why}" for r, why in failed.items()),
            metadata={"failed_regions": ", ".join(failed), "regions_in_run": len(regions)},
        )


def log_region_result(context: dg.AssetExecutionContext, region: str, result: RegionResult) -> None:
    """A region's result as runtime events on its partition (what Dagster records when a
    one-region step yields it)."""
    if isinstance(result, dg.AssetCheckResult):
        _log_check(context, region, result)
        return
    tags = {}
    if result.data_version is not None:
        tags[_DATA_VERSION_TAG] = result.data_version.value
        tags[_DATA_VERSION_IS_USER_PROVIDED_TAG] = "true"
    if backfill := context.run.tags.get(_BACKFILL_TAG):
        tags[_BACKFILL_TAG] = backfill
    context.log_event(
        dg.AssetMaterialization(
            asset_key=result.asset_key,
            partition=region,
            metadata=result.metadata,
            tags=tags or None,
        )
    )
    for check in result.check_results or []:
        _log_check(context, region, check)


def _log_check(context: dg.AssetExecutionContext, region: str, check: dg.AssetCheckResult) -> None:
    context.log_event(
        dg.AssetCheckEvaluation(
            asset_key=check.asset_key,
            check_name=check.check_name,
            passed=check.passed,
            metadata=check.metadata,
            severity=check.severity,
            description=check.description,
            partition=region,
        )
    )
