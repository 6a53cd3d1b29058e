"""Baseline forecast distributions from sales history, used where no model forecast is given.

Point forecast: the mean of the last ``recent`` non-promoted periods (a moving average) times the unit's
promotion lift in promoted future periods (known promotion calendar). The lift is the unit's promoted /
non-promoted mean, shrunk towards the pooled lift with weight ``n_promo / (n_promo + shrink)`` so that units
with few promotions borrow strength.

Spread: the RMSE of that forecast measured over *whole protection intervals* of ``k`` periods (errors summed
from each historical origin, divided by ``sqrt(k)``), so errors that persist (a moving average lagging a trend
or a season) widen the distribution as they do in reality; the classic rule's one-step RMSE x sqrt(L + R)
misses that. Distribution per period: gamma with that mean and standard deviation (lift-scaled in promoted
periods), a continuous stand-in for over-dispersed, intermittent counts (shape < 1 puts most mass near zero).

Evidence names the source :data:`BASELINE_SOURCE`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["BASELINE_SOURCE", "BaselineForecast", "DEFAULT_LEVELS", "gamma_quantiles", "history_baseline"]

BASELINE_SOURCE = "baseline:moving_average_gamma"
#: 49 evenly spaced levels 0.02 .. 0.98.
DEFAULT_LEVELS = np.round(np.linspace(0.02, 0.98, 49), 4)


@dataclasses.dataclass(frozen=True)
class BaselineForecast:
    """A baseline forecast distribution per unit and future period.

    Attributes:
        levels: (Q,) quantile levels.
        values: (N, H, Q) float32 quantiles (gamma with mean ``mean`` and sd ``interval_rmse`` x lift).
        mean: (N, H) point forecast (moving average with promotion lift).
        rmse: (N,) one-step-ahead RMSE of the point forecast over the window.
        lift: (N,) promotion lift used.
        interval_rmse: (N,) RMSE per period implied by the errors of the forecast summed over ``interval``
            periods, ``sqrt(E[(sum_j y_{s+j} - k f_s)^2] / k)``: equals ``rmse`` when errors are independent
            and exceeds it when they persist (a lagging moving average in a trend or season).
        source: evidence label.
    """

    levels: np.ndarray
    values: np.ndarray
    mean: np.ndarray
    rmse: np.ndarray
    lift: np.ndarray
    interval_rmse: np.ndarray
    source: str = BASELINE_SOURCE


def _rolling_mean_excluding(y: np.ndarray, keep: np.ndarray, k: int) -> np.ndarray:
    """Mean of the kept values among the last ``k`` periods before each period, (N, T); NaN where none."""
    n, t = y.shape
    cs_y = np.concatenate([np.zeros((n, 1)), np.cumsum(np.where(keep, y, 0.0), axis=1)], axis=1)
    cs_n = np.concatenate([np.zeros((n, 1)), np.cumsum(keep, axis=1)], axis=1)
    lo = np.maximum(np.arange(t) - k, 0)
    s = cs_y[:, np.arange(t)] - cs_y[:, lo]
    c = cs_n[:, np.arange(t)] - cs_n[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def history_baseline(
    history: np.ndarray,
    promo_history: np.ndarray,
    promo_future: np.ndarray,
    levels: np.ndarray = DEFAULT_LEVELS,
    window: int = 52,
    recent: int = 13,
    shrink: float = 4.0,
    interval: np.ndarray | int = 2,
    spread: bool = True,
) -> BaselineForecast:
    """Moving-average forecast distribution with promotion lift and interval-measured spread.

    Args:
        history: (N, T) demand per period, oldest first, T >= 2.
        promo_history: (N, T) bool, period was promoted.
        promo_future: (N, H) bool, future period will be promoted (known promotion calendar).
        levels: (Q,) quantile levels in (0, 1).
        window: periods of history for the distribution and the RMSE.
        recent: periods of the moving-average level.
        shrink: pseudo-count of promotions pulling a unit's lift towards the pooled lift.
        interval: (N,) or scalar number of periods k >= 1 over which forecast errors are summed for
            ``interval_rmse`` (the protection interval, mean lead time + review, rounded).
        spread: False: the point forecast only (``mean``, ``lift``); ``rmse`` and ``interval_rmse`` are NaN
            and ``values`` is empty (a caller that needs the mean skips most of the cost).

    Returns:
        :class:`BaselineForecast`.
    """
    y = np.asarray(history, dtype=np.float64)
    p = np.asarray(promo_history, dtype=bool)
    pf = np.asarray(promo_future, dtype=bool)
    if y.ndim != 2 or p.shape != y.shape or pf.ndim != 2 or pf.shape[0] != y.shape[0]:
        raise ValueError(
            f"history {y.shape}, promo_history {p.shape}, promo_future {pf.shape}: expected (N, T), "
            "(N, T) and (N, H)"
        )
    if y.shape[1] < 2:
        raise ValueError("history: need at least 2 periods")
    if np.any(y < 0) or not np.all(np.isfinite(y)):
        raise ValueError("history: expected finite demand >= 0")
    n, t = y.shape
    base = ~p
    # Promotion lift, shrunk to the pooled lift.
    n_promo = p.sum(axis=1)
    m_base = np.where(base.sum(1) > 0, (y * base).sum(1) / np.maximum(base.sum(1), 1), 0.0)
    m_promo = np.where(n_promo > 0, (y * p).sum(1) / np.maximum(n_promo, 1), 0.0)
    pooled = (y * p).sum() / max((m_base[:, None] * p).sum(), 1e-12) if n_promo.sum() else 1.0
    raw = np.where(m_base > 0, m_promo / np.maximum(m_base, 1e-12), pooled)
    w = n_promo / (n_promo + shrink)
    lift = np.clip(w * raw + (1 - w) * pooled, 1.0, 5.0)

    win = slice(max(t - window, 0), t)
    yw = np.where(base[:, win], y[:, win], np.nan)
    window_mean = _row_nanmean(np.where(np.all(np.isnan(yw), axis=1)[:, None], y[:, win], yw))
    rec = np.where(base[:, -recent:], y[:, -recent:], np.nan)
    with np.errstate(invalid="ignore"):
        recent_mean = np.where(np.all(np.isnan(rec), axis=1), window_mean, _row_nanmean(rec))
    promo_factor = np.where(pf, lift[:, None], 1.0)  # (N, H)
    mean = recent_mean[:, None] * promo_factor
    if not spread:
        nan = np.full(n, np.nan)
        return BaselineForecast(
            np.asarray(levels, dtype=np.float64), np.empty((n, 0, 0), np.float32), mean, nan, lift, nan
        )

    # One-step-ahead RMSE of the moving-average forecast over the window.
    ma = _rolling_mean_excluding(y, base, recent)
    f = ma * np.where(p, lift[:, None], 1.0)
    err = (y - f)[:, win]
    with np.errstate(invalid="ignore"):
        rmse = np.sqrt(_row_nanmean(err**2))
    rmse = np.where(np.isfinite(rmse), rmse, np.sqrt(np.maximum(window_mean, 0.0)))

    # Errors summed over k periods from each origin s in the window (promotion lift divided out).
    k = np.clip(np.broadcast_to(np.asarray(interval, dtype=np.int64), (n,)), 1, max(t - 1, 1))
    y_base = np.where(p, y / lift[:, None], y)
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(y_base, axis=1)], axis=1)
    origins = np.arange(max(t - window, 1), t)
    ends = np.minimum(origins[None, :] + k[:, None], t)
    valid = (origins[None, :] + k[:, None] <= t) & np.isfinite(ma[:, origins])
    sums = np.take_along_axis(cs, ends, axis=1) - cs[:, origins]
    err_k = np.where(valid, sums - k[:, None] * np.nan_to_num(ma[:, origins]), 0.0)
    n_valid = valid.sum(axis=1)
    var_k = np.where(n_valid >= 8, (err_k**2).sum(axis=1) / np.maximum(n_valid, 1), np.nan)
    interval_rmse = np.where(np.isfinite(var_k), np.sqrt(var_k / k), rmse)
    interval_rmse = np.maximum(interval_rmse, rmse)
    values = gamma_quantiles(mean, interval_rmse[:, None] * promo_factor, levels)
    return BaselineForecast(
        levels=np.asarray(levels, dtype=np.float64),
        values=values,
        mean=mean,
        rmse=rmse,
        lift=lift,
        interval_rmse=interval_rmse,
    )


def gamma_quantiles(mean: np.ndarray, sd: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of a gamma distribution per unit and period (continuous stand-in for over-dispersed counts).

    Args:
        mean: (N, H) means (>= 0; zero gives all-zero quantiles).
        sd: (N,) or (N, H) standard deviations (> 0).
        levels: (Q,) levels.

    Returns:
        (N, H, Q) float32.
    """
    from scipy.special import gammaincinv

    m = np.maximum(np.asarray(mean, dtype=np.float64), 0.0)
    s = np.broadcast_to(np.asarray(sd, dtype=np.float64).reshape(m.shape[0], -1), m.shape)
    s = np.maximum(s, 1e-6)
    pos = m > 1e-9
    shape = np.where(pos, (m / s) ** 2, 1.0)
    scale = np.where(pos, s * s / np.maximum(m, 1e-9), 0.0)
    q = gammaincinv(shape[..., None], np.asarray(levels)[None, None, :]) * scale[..., None]
    return q.astype(np.float32)


def _row_nanmean(a: np.ndarray) -> np.ndarray:
    """Mean of each row over its non-NaN values; NaN for a row (or a window) with none, without a warning.

    Args:
        a: (N, T) values with NaN for missing; T may be 0.

    Returns:
        (N,) float64.
    """
    ok = ~np.isnan(a)
    n = ok.sum(axis=1)
    total = np.where(ok, a, 0.0).sum(axis=1)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)
