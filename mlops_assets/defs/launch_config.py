"""Launchpad config that is checked when a run is launched, not in the run's first step.

Dagster validates a job's config schema (types, required fields) before it creates a run,
but a ``dg.Config``'s pydantic constraints (``ge=1``, ``min_length``...) and checks against
live state (does this model version exist?) run only when the step builds its config: a
typo became a red run. A job config mapping runs in the code server while the run's plan
is built, before the run exists, so whatever it raises refuses the launch: the UI shows
the message and nothing is left on the Runs page.

Dagster refuses a config mapping on a partitioned job, so a partitioned job (tuning_job)
keeps its op config: its partition (the region) is checked at launch, its other fields in
the step.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg

ConfigT = TypeVar("ConfigT", bound=dg.Config)


def checked_at_launch(
    config_cls: type[ConfigT],
    op_name: str,
    check: Callable[[ConfigT], str | None] | None = None,
) -> dg.ConfigMapping:
    """The job's launchpad form is ``config_cls``'s fields (given to op ``op_name``);
    ``config_cls``'s constraints and then ``check`` (the reason a valid-looking config
    cannot run, or None) are applied at launch."""

    def to_run_config(values: dict[str, Any]) -> dict[str, Any]:
        from pydantic import ValidationError

        try:
            config = config_cls(**values)
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors()
            )
            raise dg.DagsterInvalidConfigError(reasons, [], values) from None
        if check is not None and (problem := check(config)):
            raise dg.DagsterInvalidConfigError(problem, [], values)
        return {"ops": {op_name: {"config": values}}}

    return dg.ConfigMapping(config_fn=to_run_config, config_schema=config_cls.to_config_schema())
