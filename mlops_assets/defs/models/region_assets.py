"""region_model and forecast, computed by one op that handles one region or a batch.

Regions come one per run (the sensors, jobs and the demo) or several per run (an asset
backfill: ``BackfillPolicy.multi_run`` with the setting ``MLOPS_REGIONS_PER_RUN``); a
batch is looped over and reported region by region (``mlops_assets.defs.batching``).

Both assets live in one op so that a batch needs no downstream step in the same run (a
step over several partitions that yields no output would make Dagster skip it). When the
region's model fails a blocking gate check, its forecast is not made, as Dagster's blocking
check would skip it.
"""

from collections.abc import Iterator

import dagster as dg

from mlops_assets.defs import batching
from mlops_assets.defs.batching import RegionResult, timed
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
from mlops_assets.settings import DEFAULT_REGIONS_PER_RUN
from mlops_assets.spec import DatasetSpec

REGISTRY_CHECK_KEY = dg.AssetCheckKey(REGION_MODEL_KEY, REGISTRY_CHECK)


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
            return model_and_forecast_results(context, spec, workspace, notifier, region)

        yield from batching.region_results(context, results)

    return region_model_and_forecast


def model_and_forecast_results(
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
