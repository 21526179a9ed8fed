"""Forecast accuracy metrics, as fractions (0.10 means 10%).

Plain MAPE explodes on near-zero actuals (slow movers, closed days), so ``mape`` and
``rmspe`` are computed over rows whose actual exceeds ``floor``; ``wape`` (sum of absolute
errors over sum of actuals) is the robust companion that every row counts in.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

METRIC_NAMES = ("mape", "wape", "rmse", "rmse_zero", "rmspe", "mae", "bias")


def _arrays(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    if a.shape != f.shape:
        raise ValueError(f"actual {a.shape} and forecast {f.shape} differ in shape")
    keep = ~(np.isnan(a) | np.isnan(f))
    return a[keep], f[keep]


def regression_metrics(
    actual: npt.ArrayLike, forecast: npt.ArrayLike, *, floor: float = 0.0
) -> dict[str, float | int | None]:
    """MAPE and RMSPE on actual > floor; WAPE, RMSE, MAE and bias on all rows; RMSE on
    rows whose actual is 0. ``None`` where a metric has no rows to be computed on."""
    a, f = _arrays(actual, forecast)
    err = f - a
    pos = a > floor
    zero = a == 0
    total = float(np.abs(a).sum())
    return {
        "n": int(a.size),
        "n_pct": int(pos.sum()),
        "mape": float(np.mean(np.abs(err[pos]) / a[pos])) if pos.any() else None,
        "rmspe": float(np.sqrt(np.mean((err[pos] / a[pos]) ** 2))) if pos.any() else None,
        "wape": float(np.abs(err).sum() / total) if total > 0 else None,
        "rmse": float(np.sqrt(np.mean(err**2))) if a.size else None,
        "rmse_zero": float(np.sqrt(np.mean(err[zero] ** 2))) if zero.any() else None,
        "mae": float(np.mean(np.abs(err))) if a.size else None,
        "bias": float(err.sum() / total) if total > 0 else None,
    }


def reduction(model: float | None, baseline: float | None) -> float | None:
    """Relative error reduction of a model versus a baseline (0.4 = 40% lower error)."""
    if model is None or baseline is None or baseline <= 0:
        return None
    return 1.0 - model / baseline


# metrics that are fractions of the actuals (0.1265 = 12.65%); "bias" is signed
FRACTION_METRICS = frozenset({"mape", "wape", "rmspe", "bias"})


def readable_number(value: float) -> float:
    """A float rounded for people: two decimals from 1 up, three significant digits below
    (a plain float either way, so Dagster still plots it across materializations)."""
    if value == 0 or abs(value) >= 1:
        return round(float(value), 2)
    return float(f"{value:.3g}")


def metric_metadata(metrics: dict[str, float | int | None], prefix: str = "") -> dict[str, float]:
    """Metrics as asset metadata a data scientist reads without squinting: fractions as
    percentages (``mape`` 0.126471... -> ``mape_pct`` 12.65), the rest rounded
    (``readable_number``); metrics without a value are left out."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if value is None or isinstance(value, bool) or not np.isfinite(value):
            continue
        base = name.removesuffix("_vs_baseline")
        if base in FRACTION_METRICS or name.endswith("_reduction_vs_baseline"):
            out[f"{prefix}{base}_pct"] = round(100 * float(value), 2)
        else:
            out[f"{prefix}{name}"] = readable_number(value)
    return out
