"""Tests for the quality gate: each rule's pass/fail boundary and what its message says.

The gate only reads metric dicts (``model`` and the baselines), so these tests build them
by hand; ``test_region_models.py`` runs the gate on trained models.
"""

from __future__ import annotations

import pytest

from mlops_assets.gate import GATE_CHECKS, GateResult, evaluate_gate
from mlops_assets.spec import GateSettings

DEFAULT = GateSettings()  # mape <= 45%, >= 40% below hist_avg (waived < 6%), tolerance 5%


def metrics(model: float | None, hist_avg: float | None = 0.30, naive: float | None = 0.25):
    """Metric dicts as training returns them; wape set apart from mape on purpose."""

    def m(v: float | None) -> dict[str, float | None]:
        return {"mape": v, "wape": None if v is None else v / 2, "rmspe": v}

    return {"model": m(model), "hist_avg": m(hist_avg), "seasonal_naive": m(naive)}


def by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


def test_every_rule_is_reported_once_in_order():
    results = evaluate_gate(metrics(0.12), DEFAULT)
    assert [r.name for r in results] == list(GATE_CHECKS)
    assert all(r.passed for r in results)
    assert all(r.values["metric"] == "mape" for r in results)


# --------------------------------------------------------------------------------------
# 1. metric threshold


def test_an_impossible_threshold_fails_the_threshold_rule():
    gate = GateSettings(max_value=0.0001)
    result = by_name(evaluate_gate(metrics(0.12), gate))["gate_metric_threshold"]
    assert not result.passed
    assert "mape" in result.message and "12.0%" in result.message and ">" in result.message
    assert result.values["value"] == 0.12 and result.values["max_value"] == 0.0001


def test_threshold_boundary_value_passes_and_just_above_fails():
    gate = GateSettings(max_value=0.2)
    assert by_name(evaluate_gate(metrics(0.2), gate))["gate_metric_threshold"].passed
    above = by_name(evaluate_gate(metrics(0.2001), gate))["gate_metric_threshold"]
    assert not above.passed
    assert above.message == "mape 20.0% > 20.0%"


def test_threshold_message_names_metric_and_both_numbers():
    result = by_name(evaluate_gate(metrics(0.12), DEFAULT))["gate_metric_threshold"]
    assert result.passed
    assert result.message == "mape 12.0% <= 45.0%"


def test_the_configured_metric_is_the_one_judged():
    """With ``metric: wape`` the gate reads WAPE (here half of MAPE) everywhere."""
    gate = GateSettings(metric="wape", max_value=0.10)
    results = by_name(evaluate_gate(metrics(0.16), gate))
    assert results["gate_metric_threshold"].passed  # wape 8% although mape is 16%
    assert results["gate_metric_threshold"].message == "wape 8.0% <= 10.0%"
    assert all(r.values["metric"] == "wape" for r in results.values())
    assert results["gate_reduction_vs_baseline"].values["baseline"] == pytest.approx(0.15)


# --------------------------------------------------------------------------------------
# 2. reduction vs the historical average


def test_reduction_rule_passes_at_the_required_reduction():
    # 0.18 vs 0.30: exactly 40% lower
    result = by_name(evaluate_gate(metrics(0.18), DEFAULT))["gate_reduction_vs_baseline"]
    assert result.passed
    assert result.values["reduction"] == pytest.approx(0.4)


def test_reduction_rule_fails_below_the_required_reduction_and_says_by_how_much():
    result = by_name(evaluate_gate(metrics(0.24), DEFAULT))["gate_reduction_vs_baseline"]
    assert not result.passed
    assert result.values["reduction"] == pytest.approx(0.2)
    msg = result.message
    assert "mape 24.0%" in msg and "historical average 30.0%" in msg
    assert "reduction 20.0% < 40.0%" in msg


def test_reduction_is_waived_when_the_error_is_already_very_low():
    # a steady series: the model at 5% barely beats the average at 5.5%
    result = by_name(evaluate_gate(metrics(0.05, hist_avg=0.055), DEFAULT))[
        "gate_reduction_vs_baseline"
    ]
    assert result.passed
    assert result.message.startswith("waived: mape 5.0% is below 6.0%")
    assert "reduction 9.1%" in result.message


def test_waiver_is_strictly_below_the_configured_level():
    gate = GateSettings(reduction_waived_below=0.05)
    at = by_name(evaluate_gate(metrics(0.05, hist_avg=0.055), gate))
    assert not at["gate_reduction_vs_baseline"].passed
    assert "waived" not in at["gate_reduction_vs_baseline"].message
    # no waiver at all when configured to 0
    off = GateSettings(reduction_waived_below=0.0)
    assert not by_name(evaluate_gate(metrics(0.01, hist_avg=0.011), off))[
        "gate_reduction_vs_baseline"
    ].passed


def test_reduction_rule_fails_without_a_usable_baseline_unless_waived():
    for base in (None, 0.0):
        result = by_name(evaluate_gate(metrics(0.12, hist_avg=base), DEFAULT))[
            "gate_reduction_vs_baseline"
        ]
        assert not result.passed
        assert "no usable error" in result.message
        assert result.values["reduction"] is None
    waived = by_name(evaluate_gate(metrics(0.03, hist_avg=None), DEFAULT))
    assert waived["gate_reduction_vs_baseline"].passed


# --------------------------------------------------------------------------------------
# 3. seasonal naive


def test_seasonal_naive_must_be_beaten_strictly():
    better = by_name(evaluate_gate(metrics(0.12, naive=0.20), DEFAULT))["gate_beats_seasonal_naive"]
    assert better.passed and better.message == "mape 12.0% < seasonal naive 20.0%"
    tie = by_name(evaluate_gate(metrics(0.12, naive=0.12), DEFAULT))["gate_beats_seasonal_naive"]
    assert not tie.passed
    worse = by_name(evaluate_gate(metrics(0.15, naive=0.12), DEFAULT))["gate_beats_seasonal_naive"]
    assert not worse.passed and worse.message == "mape 15.0% >= seasonal naive 12.0%"


def test_seasonal_naive_rule_can_be_switched_off():
    gate = GateSettings(require_beats_seasonal_naive=False)
    result = by_name(evaluate_gate(metrics(0.15, naive=0.12), gate))["gate_beats_seasonal_naive"]
    assert result.passed and "not required" in result.message


def test_seasonal_naive_without_a_value_does_not_block():
    result = by_name(evaluate_gate(metrics(0.12, naive=None), DEFAULT))
    assert result["gate_beats_seasonal_naive"].passed


# --------------------------------------------------------------------------------------
# 4. no worse than the approved model


def test_no_approved_model_passes():
    result = by_name(evaluate_gate(metrics(0.12), DEFAULT))["gate_no_worse_than_approved"]
    assert result.passed and result.message == "no approved model yet"
    assert result.values["approved"] is None


def test_no_worse_than_approved_within_the_tolerance():
    # approved 10%, tolerance 5% -> limit 10.5%
    def rule(value: float) -> GateResult:
        results = evaluate_gate(
            metrics(value), DEFAULT, approved_metric=0.10, approved_label="Sud:v1"
        )
        return by_name(results)["gate_no_worse_than_approved"]

    assert rule(0.09).passed  # better
    assert rule(0.104).passed  # slightly worse, within the tolerance
    assert rule(0.105).passed  # at the limit
    worse = rule(0.106)
    assert not worse.passed
    assert worse.message == "mape 10.6% vs approved Sud:v1 10.0% on the same holdout (limit 10.5%)"
    assert worse.values["approved"] == 0.10 and worse.values["approved_version"] == "Sud:v1"
    assert worse.values["tolerance"] == 0.05


def test_zero_tolerance_means_not_worse_at_all():
    gate = GateSettings(tolerance_vs_approved=0.0)
    ok = evaluate_gate(metrics(0.10), gate, approved_metric=0.10, approved_label="Nord:v3")
    worse = evaluate_gate(metrics(0.1001), gate, approved_metric=0.10, approved_label="Nord:v3")
    assert by_name(ok)["gate_no_worse_than_approved"].passed
    assert not by_name(worse)["gate_no_worse_than_approved"].passed


# --------------------------------------------------------------------------------------
# a model without the metric


def test_a_metric_that_could_not_be_computed_fails_every_rule():
    results = evaluate_gate(metrics(None), DEFAULT, approved_metric=0.1, approved_label="X:v1")
    assert [r.name for r in results] == list(GATE_CHECKS)
    assert not any(r.passed for r in results)
    assert all("mape could not be computed" in r.message for r in results)
