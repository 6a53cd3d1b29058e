"""The classic safety-stock rule, kept as the reference the simulated policy is measured against.

Order-up-to level for a periodic review ``R`` and a *fixed* mean lead time ``L`` (normal approximation):

    S = sum of the point forecast over the next L + R periods + z * RMSE * sqrt(L + R)

with ``z`` chosen for the target either as a cycle service level (``z = Phi^-1(target)``) or, the textbook
fill-rate form, from the standard normal loss function ``G(z) = phi(z) - z (1 - Phi(z))`` so that the expected
shortage per cycle is ``(1 - target)`` of the demand per review:
``sigma G(z) = (1 - target) mu_R``, ``sigma = RMSE sqrt(L + R)`` (Silver, Pyke & Thomas 2017, sec. 7.6).
``z`` is floored at 0 (no negative safety stock), as practice does.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = ["classic_order_up_to", "normal_loss_inverse"]


def _loss(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) - z * (1.0 - ndtr(z))


def normal_loss_inverse(g: np.ndarray) -> np.ndarray:
    """Solve ``G(z) = g`` for z (bisection, vectorised); ``g`` > 0, (N,)."""
    g = np.asarray(g, dtype=np.float64)
    lo = np.full(g.shape, -8.0)
    hi = np.full(g.shape, 8.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        too_much = _loss(mid) > g  # G decreasing: loss still above target -> raise z
        lo = np.where(too_much, mid, lo)
        hi = np.where(too_much, hi, mid)
    return 0.5 * (lo + hi)


def classic_order_up_to(
    mean: np.ndarray,
    rmse: np.ndarray,
    lead_time_mean: np.ndarray,
    review: int,
    target: float,
    method: str = "fill_rate",
    z_scale: float = 1.0,
) -> np.ndarray:
    """Classic order-up-to level per unit.

    Args:
        mean: (N, H) point forecast per future period (H >= lead time + review; the last period repeats).
        rmse: (N,) one-step-ahead forecast RMSE.
        lead_time_mean: (N,) fixed mean lead time in periods.
        review: review period in periods.
        target: service target in (0, 1).
        method: ``"fill_rate"`` (normal loss function) or ``"cycle_service"`` (``z = Phi^-1(target)``).
        z_scale: multiplies the safety stock (used to calibrate the reference to an achieved fill rate).

    Returns:
        (N,) order-up-to levels (real; orders round them).
    """
    mean = np.asarray(mean, dtype=np.float64)
    n, h = mean.shape
    lr = np.asarray(lead_time_mean, dtype=np.float64) + review
    full = np.floor(lr).astype(np.int64)
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(mean, axis=1)], axis=1)
    idx = np.minimum(full, h)
    over = np.maximum(full - h, 0)
    frac = lr - full
    demand_lr = (
        cum[np.arange(n), idx] + over * mean[:, -1] + frac * mean[np.arange(n), np.minimum(full, h - 1)]
    )
    sigma = np.asarray(rmse, dtype=np.float64) * np.sqrt(lr)
    if method == "cycle_service":
        z = np.full(n, float(ndtri(target)))
    elif method == "fill_rate":
        mu_r = mean[:, :review].sum(axis=1) if h >= review else mean.mean(axis=1) * review
        g = np.where(sigma > 0, (1.0 - target) * mu_r / np.maximum(sigma, 1e-12), np.inf)
        z = np.where(np.isfinite(g), normal_loss_inverse(np.minimum(g, 1e6)), 0.0)
    else:
        raise ValueError(f"method={method!r}: expected 'fill_rate' or 'cycle_service'")
    z = np.maximum(z, 0.0)
    return demand_lr + z_scale * z * sigma
