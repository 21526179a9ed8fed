"""The quality gate a newly trained region model must pass before it may forecast.

Four rules, each a blocking asset check on ``region_model`` (thresholds in the spec's
``gate:`` block):

1. ``gate_metric_threshold``: the holdout metric (default MAPE over actuals above the
   floor) is at most ``max_value`` (default 45%).
2. ``gate_reduction_vs_baseline``: the metric is at least ``min_reduction_vs_baseline``
   (default 40%) lower than the historical-average baseline's, unless the model's metric
   is already below ``reduction_waived_below`` (default 6%): a very steady series is
   forecast well by its own average too, and the reduction stops meaning anything.
3. ``gate_beats_seasonal_naive``: the metric is lower than seasonal naive's.
4. ``gate_no_worse_than_approved``: the metric is at most ``tolerance_vs_approved``
   (relative, default 5%) worse than the region's current approved model on the same
   holdout rows (passes when there is no approved model yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops_assets.spec import GateSettings

GATE_CHECKS = {
    "gate_metric_threshold": "Holdout metric within the configured maximum.",
    "gate_reduction_vs_baseline": "Enough error reduction vs the historical-average baseline "
    "(waived when the error is already very low).",
    "gate_beats_seasonal_naive": "Better than the seasonal-naive forecast.",
    "gate_no_worse_than_approved": "No worse than the current approved model (within tolerance) "
    "on the same holdout.",
}


@dataclass
class GateResult:
    name: str
    passed: bool
    message: str
    values: dict[str, Any] = field(default_factory=dict)


def evaluate_gate(
    metrics: dict[str, dict[str, Any]],
    gate: GateSettings,
    *,
    approved_metric: float | None = None,
    approved_label: str | None = None,
    candidate_metric: float | None = None,
    basis: str = "same holdout",
) -> list[GateResult]:
    """Apply the gate to ``metrics`` (``model`` and baselines -> metric dicts).

    ``approved_metric`` is the current approved model's metric on the same holdout rows
    (``None`` when the region has no approved model); ``candidate_metric`` the new model's
    on those rows when they are not the whole holdout (``basis`` says which rows).
    """
    m = gate.metric
    value = metrics["model"].get(m)
    base = metrics["hist_avg"].get(m)
    naive = metrics["seasonal_naive"].get(m)
    pct = _pct
    out: list[GateResult] = []
    if value is None:
        reason = f"{m} could not be computed (no holdout rows with actuals above the floor)"
        return [GateResult(name, False, reason, {"metric": m}) for name in GATE_CHECKS]

    out.append(
        GateResult(
            "gate_metric_threshold",
            value <= gate.max_value,
            f"{m} {pct(value)} {'<=' if value <= gate.max_value else '>'} {pct(gate.max_value)}",
            {"metric": m, "value": value, "max_value": gate.max_value},
        )
    )

    red = None if base in (None, 0) else 1 - value / base
    if value < gate.reduction_waived_below:
        ok, msg = (
            True,
            (
                f"waived: {m} {pct(value)} is below {pct(gate.reduction_waived_below)}"
                + (f" (reduction {pct(red)})" if red is not None else "")
            ),
        )
    elif red is None:
        ok, msg = False, "the historical-average baseline has no usable error to compare with"
    else:
        ok = red >= gate.min_reduction_vs_baseline
        msg = (
            f"{m} {pct(value)} vs historical average {pct(base)}: reduction {pct(red)} "
            f"{'>=' if ok else '<'} {pct(gate.min_reduction_vs_baseline)}"
        )
    out.append(
        GateResult(
            "gate_reduction_vs_baseline",
            ok,
            msg,
            {
                "metric": m,
                "value": value,
                "baseline": base,
                "reduction": red,
                "min_reduction": gate.min_reduction_vs_baseline,
            },
        )
    )

    if not gate.require_beats_seasonal_naive:
        ok, msg = True, "not required by configuration"
    elif naive is None:
        ok, msg = True, "seasonal naive could not be computed"
    else:
        ok = value < naive
        msg = f"{m} {pct(value)} {'<' if ok else '>='} seasonal naive {pct(naive)}"
    out.append(
        GateResult(
            "gate_beats_seasonal_naive",
            ok,
            msg,
            {"metric": m, "value": value, "seasonal_naive": naive},
        )
    )

    if approved_metric is None:
        ok, msg = True, "no approved model yet"
    else:
        limit = approved_metric * (1 + gate.tolerance_vs_approved)
        compared = value if candidate_metric is None else candidate_metric
        ok = compared <= limit
        msg = (
            f"{m} {pct(compared)} vs approved {approved_label or ''} {pct(approved_metric)} on "
            f"the {basis} (limit {pct(limit)})"
        )
    out.append(
        GateResult(
            "gate_no_worse_than_approved",
            ok,
            msg,
            {
                "metric": m,
                "value": value,
                "compared_value": value if candidate_metric is None else candidate_metric,
                "basis": basis,
                "approved": approved_metric,
                "approved_version": approved_label,
                "tolerance": gate.tolerance_vs_approved,
            },
        )
    )
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"
