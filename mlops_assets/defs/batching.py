"""Several regions in one run: each region reported on its own partition.

A run costs about 4-8 s before any work (a process, Dagster, the code location and the
libraries imported again), which dominates when regions are many and their work is small.
Partitioned assets that a backfill or the region sensor hand several regions at once
(``BackfillPolicy.multi_run``, or a run over a range of ``region`` partitions) loop over
``context.partition_keys`` with :func:`run_batch`.

Dagster 1.13 cannot report a failed partition from a step over several partitions
(dagster-io/dagster #17836), so a batch reports each region itself: every region that
succeeds logs its materializations and check evaluations for its own partition (with its
own metadata and data version), a region that fails is logged with its error and skipped,
and the step fails at the end naming the failed regions. Dagster then shows exactly the
failed regions as failed and the others as materialized. A region whose result fails a
blocking check with ERROR severity (a rejected model) is named too: a run of that region
alone fails on it, and a batch must not report success where its regions' runs would not.
One region takes Dagster's ordinary path: results are yielded and an exception fails the
step with its own traceback.

A batch step yields no outputs, so Dagster would skip any step of the same run that waits
on them (and end the run SUCCESS): a batch refuses to run beside such steps. Every
region-partitioned asset is therefore computed by one op (``defs.region_pipeline``), so
that a refresh of several regions is one run.
"""

import time
import traceback
from collections.abc import Callable, Iterator, Sequence

import dagster as dg
from dagster._core.storage.tags import BACKFILL_ID_TAG

from mlops_assets.naming import require_safe_key

_DATA_VERSION_TAG = "dagster/data_version"
_DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"

RegionResult = dg.MaterializeResult | dg.AssetCheckResult


def timed(compute: Callable[..., dg.MaterializeResult], *args) -> dg.MaterializeResult:
    """The result with ``compute_s``, the seconds its computation took (plotted across
    materializations; the benchmarks add them up per asset)."""
    start = time.perf_counter()
    result = compute(*args)
    seconds = round(time.perf_counter() - start, 3)
    return result._replace(metadata={**(result.metadata or {}), "compute_s": seconds})


def region_results(
    context: dg.AssetExecutionContext, results: Callable[[str], Iterator[RegionResult]]
) -> Iterator[RegionResult]:
    """The step body of a region-partitioned op: one region yields its results (Dagster's
    ordinary path), several are run as a batch (:func:`run_batch`)."""
    regions = context.partition_keys
    if len(regions) == 1:
        yield from results(require_safe_key(regions[0]))
        return
    if waiting := steps_waiting_on(context):
        raise dg.Failure(
            description=f"a run over {len(regions)} regions cannot also run "
            f"{', '.join(waiting)}: a step over several regions reports each region itself "
            "and yields no outputs, so Dagster would skip them. Launch them as an asset "
            "backfill (it runs them after this asset) or one region a run."
        )
    run_batch(context, regions, results)


def steps_waiting_on(context: dg.AssetExecutionContext) -> list[str]:
    """The run's other steps that take this step's outputs as inputs."""
    step_context = context.get_step_execution_context()
    own = step_context.step.key
    deps = step_context.execution_plan.get_all_step_deps()
    return sorted(key for key, upstream in deps.items() if own in upstream)


def failed_blocking_checks(
    context: dg.AssetExecutionContext, result: RegionResult
) -> list[dg.AssetCheckKey]:
    """The checks of ``result`` that fail a step as Dagster fails it: blocking checks of
    the op that failed with ERROR severity."""
    checks = [result] if isinstance(result, dg.AssetCheckResult) else result.check_results or []
    blocking = {spec.key for spec in context.assets_def.check_specs if spec.blocking}
    return [
        key
        for c in checks
        if not c.passed
        and c.severity == dg.AssetCheckSeverity.ERROR
        and (key := dg.AssetCheckKey(c.asset_key or result.asset_key, c.check_name)) in blocking
    ]


def run_batch(
    context: dg.AssetExecutionContext,
    regions: Sequence[str],
    results: Callable[[str], Iterator[RegionResult]],
) -> None:
    """Each region's results logged on its own partition; a region that fails, or fails
    a blocking check, is logged and the rest carry on. The step fails at the end naming
    them, as a run of that region alone would have failed."""
    failed: dict[str, str] = {}
    for region in regions:
        blocked: list[dg.AssetCheckKey] = []
        try:
            for result in results(require_safe_key(region)):
                log_region_result(context, region, result)
                blocked += failed_blocking_checks(context, result)
        except Exception as exc:  # noqa: BLE001  one region's failure must not stop the rest
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            failed[region] = f"{type(exc).__name__}: {first_line}"
            context.log.error(f"region {region} failed:\n{traceback.format_exc()}")
            continue
        if blocked:
            failed[region] = "blocking check(s) failed: " + ", ".join(
                k.to_user_string() for k in blocked
            )
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
    if backfill := context.run.tags.get(BACKFILL_ID_TAG):
        tags[BACKFILL_ID_TAG] = backfill
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
