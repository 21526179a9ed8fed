"""Every region-partitioned asset, computed by one op that handles one region or a batch.

features -> region_model -> forecast -> realized_performance -> drift_report: a run
computes what it selected (``can_subset``), region by region, in that order. The jobs
select parts of it: ``features_job`` (features), ``train_job`` (region_model, forecast),
``refresh_job`` (features, forecast, realized_performance, drift_report).

Regions come one per run (a job launched for one region) or several per run (the region
sensor's batches, an asset backfill: ``BackfillPolicy.multi_run`` with the setting
``MLOPS_REGIONS_PER_RUN``); a batch is looped over and reported region by region
(``mlops_assets.defs.batching``). A run pays a launch and the stack's imports (about
4-8 s) before any work, which a daily refresh of hundreds of regions would pay once per
region otherwise.

The assets live in one op because Dagster cannot chain steps over several partitions
here: a step over a batch logs each region's results itself and yields no output, so
Dagster would skip every step after it. Dagster's blocking checks only skip later
steps, so within the op a region whose result failed a blocking check with ERROR
severity (a features ERROR check, the model's gate, no approved model to forecast with)
stops there: its later assets are not computed, and the other regions carry on. The step
then fails, naming the region and the check, as a run of that region alone fails.
"""

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import dagster as dg

from mlops_assets.defs import batching
from mlops_assets.defs.batching import RegionResult, timed
from mlops_assets.defs.features.assets import FEATURES_KEY, features_session, features_spec
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
from mlops_assets.defs.monitoring.assets import (
    REALIZED_PERFORMANCE_KEY,
    realized_performance_region,
    realized_performance_spec,
)
from mlops_assets.defs.monitoring.drift import (
    DRIFT_REPORT_KEY,
    drift_report_region,
    drift_report_spec,
)
from mlops_assets.defs.partitions import region_partitions
from mlops_assets.defs.resources import NotifierResource, WorkspaceResource
from mlops_assets.settings import DEFAULT_REGIONS_PER_RUN
from mlops_assets.spec import DatasetSpec

REGISTRY_CHECK_KEY = dg.AssetCheckKey(REGION_MODEL_KEY, REGISTRY_CHECK)
# the order a region's assets are computed in (each depends on the ones before it)
PIPELINE_ORDER = (
    FEATURES_KEY,
    REGION_MODEL_KEY,
    FORECAST_KEY,
    REALIZED_PERFORMANCE_KEY,
    DRIFT_REPORT_KEY,
)


def build_region_pipeline(
    spec: DatasetSpec, regions_per_run: int = DEFAULT_REGIONS_PER_RUN
) -> dg.AssetsDefinition:
    features_asset, feature_checks = features_spec(spec)
    model_asset, model_checks = region_model_spec(spec)
    forecast_asset, forecast_checks = forecast_spec(spec)
    check_specs = [*feature_checks, *model_checks, registry_check_spec(), *forecast_checks]

    @dg.multi_asset(
        name="region_pipeline",
        specs=[
            features_asset,
            model_asset,
            forecast_asset,
            realized_performance_spec(spec),
            drift_report_spec(spec),
        ],
        check_specs=check_specs,
        partitions_def=region_partitions,
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(regions_per_run),
        description="A region's features, model, forecast and monitoring, in that order, "
        "for what the run selected; a run over several regions reports each region on its "
        "own partition, and a region that fails or fails a blocking check stops alone.",
    )
    def region_pipeline(
        context: dg.AssetExecutionContext,
        workspace: WorkspaceResource,
        notifier: NotifierResource,
    ) -> Iterator[RegionResult]:
        selected = context.selected_asset_keys
        if selected & {REGION_MODEL_KEY, FORECAST_KEY}:
            load_lightgbm_for_run(context)
        with ExitStack() as stack:
            features = (
                stack.enter_context(features_session(context, workspace, notifier))
                if FEATURES_KEY in selected
                else None
            )
            steps: dict[dg.AssetKey, Callable[[str], dg.MaterializeResult]] = {
                REGION_MODEL_KEY: lambda r: train_region(context, spec, workspace, notifier, r),
                FORECAST_KEY: lambda r: forecast_region(context, spec, workspace, r),
                REALIZED_PERFORMANCE_KEY: lambda r: realized_performance_region(
                    context, spec, workspace, r
                ),
                DRIFT_REPORT_KEY: lambda r: drift_report_region(context, spec, workspace, r),
            }
            if features is not None:
                steps[FEATURES_KEY] = features

            def results(region: str) -> Iterator[RegionResult]:
                return region_pipeline_results(context, workspace, steps, region)

            yield from batching.region_results(context, results)

    return region_pipeline


def region_pipeline_results(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    steps: dict[dg.AssetKey, Callable[[str], dg.MaterializeResult]],
    region: str,
) -> Iterator[RegionResult]:
    """The selected assets of one region in pipeline order, each result as soon as it
    exists (a failing forecast does not take the model's materialization with it), and
    the registry check after the model. A result that fails a blocking check (with ERROR
    severity, as Dagster blocks) ends the region: what follows it would be built on a
    table or model that failed its gate."""
    selected = [key for key in PIPELINE_ORDER if key in context.selected_asset_keys]
    for i, key in enumerate(selected):
        result = timed(steps[key], region)
        yield result
        if key == REGION_MODEL_KEY and REGISTRY_CHECK_KEY in context.selected_asset_check_keys:
            yield check_registry_integrity(workspace, region)
        failed = [k.name for k in batching.failed_blocking_checks(context, result)]
        if failed and (later := selected[i + 1 :]):
            context.log.info(
                f"{region}: {', '.join(k.to_user_string() for k in later)} not computed, "
                f"{key.to_user_string()} failed the blocking check(s) {', '.join(failed)}"
            )
            return
    if REGION_MODEL_KEY not in selected and REGISTRY_CHECK_KEY in context.selected_asset_check_keys:
        yield check_registry_integrity(workspace, region)
