"""Forecast accuracy metrics: point (MAE, WAPE, MASE, sMAPE, bias) and probabilistic (pinball, coverage).

The one definition of these figures in the project: backtests (``training.metrics`` re-exports them), the
telemetry posted by clients and the monitoring job (``workflow.telemetry``, ``workflow.monitoring``) all
compute them here.

Arrays follow one convention: actuals ``y`` and point forecasts ``y_hat`` are (N, H) (series x horizon) or any
equal shapes; quantile forecasts are (..., Q) with the quantile levels ``q`` (Q,). ``NaN`` actuals are
ignored.
WAPE and bias are ratios of sums, so they weight series by volume (the planner's view); MASE is per series
(Hyndman & Koehler 2006) and averaged.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["mae", "wape", "mase", "smape", "bias", "pinball", "coverage", "point_metrics"]


def _mask(y: np.ndarray, *others: np.ndarray) -> np.ndarray:
    m = ~np.isnan(y)
    for o in others:
        m &= ~np.isnan(o)
    return m


def mae(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Mean absolute error over observed entries."""
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    m = _mask(y, y_hat)
    return float(np.abs(y - y_hat)[m].mean())


def wape(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |y - y_hat| / sum |y|."""
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    m = _mask(y, y_hat)
    den = np.abs(y[m]).sum()
    return float(np.abs(y - y_hat)[m].sum() / den) if den > 0 else float("nan")


def bias(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Relative bias: sum (y_hat - y) / sum |y|; positive means over-forecast."""
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    m = _mask(y, y_hat)
    den = np.abs(y[m]).sum()
    return float((y_hat - y)[m].sum() / den) if den > 0 else float("nan")


def smape(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Symmetric MAPE in [0, 2]: mean 2|y - y_hat| / (|y| + |y_hat|), with 0/0 counted as 0."""
    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)
    m = _mask(y, y_hat)
    num = 2.0 * np.abs(y - y_hat)[m]
    den = (np.abs(y) + np.abs(y_hat))[m]
    return float(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0).mean())


def mase(y: np.ndarray, y_hat: np.ndarray, y_train: np.ndarray, m: int = 1) -> np.ndarray:
    """Mean absolute scaled error per series.

    Args:
        y: (N, H) actuals.
        y_hat: (N, H) forecasts.
        y_train: (N, T) in-sample history (``NaN`` allowed) giving the scale mean |y_t - y_{t-m}|.
        m: seasonal period of the naive scale (1: one-step naive).

    Returns:
        (N,) MASE per series; ``NaN`` where the in-sample scale is zero or undefined.
    """
    y, y_hat, y_train = (np.asarray(a, float) for a in (y, y_hat, y_train))
    diffs = np.abs(y_train[:, m:] - y_train[:, :-m])
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a series too short for the scale: NaN, by design
        scale = np.nanmean(np.where(np.isnan(diffs), np.nan, diffs), axis=1)
        err = np.nanmean(np.where(_mask(y, y_hat), np.abs(y - y_hat), np.nan), axis=1)
        out = err / scale
    return np.where(scale > 0, out, np.nan)


def pinball(y: np.ndarray, y_q: np.ndarray, q: np.ndarray) -> float:
    """Mean pinball (quantile) loss over observed entries and all quantile levels.

    Args:
        y: (...,) actuals.
        y_q: (..., Q) quantile forecasts.
        q: (Q,) quantile levels in (0, 1).
    """
    y, y_q, q = np.asarray(y, float), np.asarray(y_q, float), np.asarray(q, float)
    e = y[..., None] - y_q
    loss = np.maximum(q * e, (q - 1.0) * e)
    return float(loss[_mask(y)].mean())


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of observed actuals inside [lower, upper]."""
    y, lower, upper = np.asarray(y, float), np.asarray(lower, float), np.asarray(upper, float)
    m = _mask(y)
    return float(((y >= lower) & (y <= upper))[m].mean())


def point_metrics(y: np.ndarray, y_hat: np.ndarray, y_train: np.ndarray | None = None, m: int = 1) -> dict:
    """MAE, WAPE, sMAPE, bias (and mean MASE when ``y_train`` is given) as one dict of floats."""
    out = {"mae": mae(y, y_hat), "wape": wape(y, y_hat), "smape": smape(y, y_hat), "bias": bias(y, y_hat)}
    if y_train is not None:
        out["mase"] = float(np.nanmean(mase(y, y_hat, y_train, m)))
    return out
