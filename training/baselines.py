"""Baseline forecasters, always computed beside the TFT.

Last value, seasonal naive, moving average, Croston and TSB for intermittent demand.

Every baseline takes the history ``y`` (N, T) (series x time, ``NaN`` = unobserved, observations assumed
left-aligned with trailing gaps only at the start) and a horizon ``H`` and returns (N, H) point forecasts.
They loop over time at most once and are vectorised over series.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "last_value",
    "seasonal_naive",
    "moving_average",
    "croston",
    "tsb",
    "BASELINES",
    "forecast_baselines",
]


def _last_observed(y: np.ndarray) -> np.ndarray:
    obs = ~np.isnan(y)
    idx = y.shape[1] - 1 - obs[:, ::-1].argmax(axis=1)
    val = y[np.arange(y.shape[0]), idx]
    return np.where(obs.any(axis=1), val, 0.0)


def last_value(y: np.ndarray, H: int) -> np.ndarray:
    """Naive forecast: the last observed value repeated H times (0 for a series with no history).

    Args:
        y: (N, T) history.
        H: horizon.

    Returns:
        (N, H) forecasts.
    """
    y = np.asarray(y, float)
    return np.repeat(_last_observed(y)[:, None], H, axis=1)


def seasonal_naive(y: np.ndarray, H: int, m: int = 12) -> np.ndarray:
    """Seasonal naive: y_hat[T + h] = y[T + h - m * ceil((h + 1) / m)], falling back to the last value.

    Args:
        y: (N, T) history.
        H: horizon.
        m: season length (12 for monthly data, 7 for daily).

    Returns:
        (N, H) forecasts.
    """
    y = np.asarray(y, float)
    T = y.shape[1]
    h = np.arange(H)
    src = T - m + (h % m)
    out = np.full((y.shape[0], H), np.nan)
    ok = src >= 0
    out[:, ok] = y[:, src[ok]]
    fallback = last_value(y, H)
    return np.where(np.isnan(out), fallback, out)


def moving_average(y: np.ndarray, H: int, k: int = 3) -> np.ndarray:
    """Mean of the last k observed periods, repeated H times.

    Args:
        y: (N, T) history.
        H: horizon.
        k: window length.

    Returns:
        (N, H) forecasts.
    """
    y = np.asarray(y, float)
    tail = y[:, -k:]
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        mean = np.nanmean(tail, axis=1)
    mean = np.where(np.isnan(mean), _last_observed(y), mean)
    return np.repeat(mean[:, None], H, axis=1)


def croston(y: np.ndarray, H: int, alpha: float = 0.1) -> np.ndarray:
    """Croston's method (Croston 1972) for intermittent demand.

    Demand sizes z and inter-demand intervals p are smoothed only in periods with demand:
    at the first demand z = y, p = (periods since the series start, inclusive); afterwards at each demand
    z += alpha (y - z), p += alpha (q - p) with q the periods since the previous demand. Forecast z / p.
    Series without any demand forecast 0.

    Args:
        y: (N, T) history (``NaN`` treated as unobserved and skipped).
        H: horizon.
        alpha: smoothing constant in (0, 1].

    Returns:
        (N, H) forecasts.
    """
    y = np.asarray(y, float)
    N, T = y.shape
    z = np.full(N, np.nan)
    p = np.full(N, np.nan)
    q = np.zeros(N)
    for t in range(T):
        obs = ~np.isnan(y[:, t])
        q = q + obs
        demand = obs & (y[:, t] > 0)
        first = demand & np.isnan(z)
        later = demand & ~first
        z = np.where(first, y[:, t], z)
        p = np.where(first, q, p)
        z = np.where(later, z + alpha * (y[:, t] - z), z)
        p = np.where(later, p + alpha * (q - p), p)
        q = np.where(demand, 0.0, q)
    f = np.where(np.isnan(z), 0.0, z / np.where(np.isnan(p), 1.0, p))
    return np.repeat(f[:, None], H, axis=1)


def tsb(y: np.ndarray, H: int, alpha: float = 0.1, beta: float = 0.1) -> np.ndarray:
    """Teunter-Syntetos-Babai (2011): smoothed demand probability d times smoothed demand size z.

    At the first demand z = y and d = 1 / (periods since the series start, inclusive); afterwards every
    observed period updates d += beta (1[y > 0] - d) and, in periods with demand, z += alpha (y - z).
    Forecast d * z; series without any demand forecast 0.

    Args:
        y: (N, T) history.
        H: horizon.
        alpha: smoothing of the demand size.
        beta: smoothing of the demand probability.

    Returns:
        (N, H) forecasts.
    """
    y = np.asarray(y, float)
    N, T = y.shape
    z = np.full(N, np.nan)
    d = np.full(N, np.nan)
    q = np.zeros(N)
    for t in range(T):
        obs = ~np.isnan(y[:, t])
        q = q + obs
        demand = obs & (y[:, t] > 0)
        started = ~np.isnan(z)
        first = demand & ~started
        upd = obs & started
        d = np.where(upd, d + beta * (demand.astype(float) - d), d)
        z = np.where(upd & demand, z + alpha * (y[:, t] - z), z)
        z = np.where(first, y[:, t], z)
        d = np.where(first, 1.0 / np.maximum(q, 1.0), d)
    f = np.where(np.isnan(z), 0.0, d * z)
    return np.repeat(f[:, None], H, axis=1)


BASELINES = {
    "last_value": last_value,
    "seasonal_naive": seasonal_naive,
    "moving_average": moving_average,
    "croston": croston,
    "tsb": tsb,
}


def forecast_baselines(y: np.ndarray, H: int, season: int = 12) -> dict[str, np.ndarray]:
    """All baselines at once: name -> (N, H) forecasts."""
    return {
        "last_value": last_value(y, H),
        "seasonal_naive": seasonal_naive(y, H, season),
        "moving_average": moving_average(y, H),
        "croston": croston(y, H),
        "tsb": tsb(y, H),
    }
