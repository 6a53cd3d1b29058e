"""Protection-interval demand by bootstrap of each unit's own history (no distribution assumed).

Where no forecast distribution is given, a unit's recent demand history *is* its demand distribution: for
intermittent and lumpy units (most weeks zero, skewed sizes) a resample of the observed periods keeps the
share of zero periods and the size distribution that a gamma or normal fit blurs. :func:`history_pool` keeps
each unit's last non-promoted periods; :class:`kernels.HistoryDemand` draws a future period as one
pooled period times that period's known factor (the promotion lift in promoted periods, 1 otherwise), in the
one simulation of :func:`kernels.policy_samples` (crossing orders, lead-time posterior).
"""

from __future__ import annotations

import numpy as np

__all__ = ["history_pool"]


def history_pool(
    history: np.ndarray, promo_history: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """The last ``window`` non-promoted periods of each unit, left-aligned, and their count.

    Args:
        history: (N, T) demand per period, oldest first, finite and >= 0.
        promo_history: (N, T) bool, period was promoted (left out of the pool: its demand is not the base).
        window: periods of history looked at (>= 1).

    Returns:
        ``(pool, pool_len)``: (N, W) float64 with the kept values first, (N,) int64 counts. A unit with no
        non-promoted period keeps all its periods.
    """
    y = np.asarray(history, dtype=np.float64)
    p = np.asarray(promo_history, dtype=bool)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"history {y.shape}, promo_history {p.shape}: expected two (N, T) arrays")
    if window < 1:
        raise ValueError(f"window={window}: expected >= 1")
    if np.any(y < 0) or not np.all(np.isfinite(y)):
        bad = np.argwhere((y < 0) | ~np.isfinite(y))[0]
        raise ValueError(f"history: unit {bad[0]}, period {bad[1]}: expected finite demand >= 0")
    y = y[:, -window:]
    keep = ~p[:, -window:]
    keep[~keep.any(axis=1)] = True
    order = np.argsort(~keep, axis=1, kind="stable")  # kept periods first, in time order
    pool = np.ascontiguousarray(np.take_along_axis(y, order, axis=1))
    return pool, keep.sum(axis=1).astype(np.int64)
