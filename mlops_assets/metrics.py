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
