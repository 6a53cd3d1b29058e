"""Service targets for a group of units: each unit's fill rate chosen where stock buys the most service.

A fill-rate target usually belongs to a group (a category, a store, the whole business): what is measured is
the units served from stock over the units demanded, summed over the group. Meeting 95% in *every* unit is
one way to reach 95% for the group, and an expensive one: a slow, lumpy unit with a long, late-prone supplier
needs weeks of stock for each point of its fill rate, while a fast, steady one needs a few units. The least
inventory that reaches the group target gives each unit the fill rate where the marginal stock per marginal
unit served is the same for all (the exchange curves of Silver, Pyke & Thomas, *Inventory and Production
Management in Supply Chains*, 4th ed., 2017, ch. 7).

Per unit, from its sorted Monte-Carlo samples (:class:`planning._levels.ProtectionSamples`), a *menu* of
candidate levels: the least order-up-to ``S_k`` meeting each fill rate ``tau_k`` of a grid from a floor (no
unit is left below it) to 99.8%, with its simulated fill ``F_k`` and expected on-hand ``H_k`` (stock after
the period's demand, averaged over the lot as :func:`planning._levels.order_up_to_levels` does). Then, per
group with weights ``w_i`` (expected demand per period), a multiplier ``lambda`` per group is found by
bisection so that every unit picking ``argmax_k lambda w_i F_k - H_k`` meets ``sum w_i F_i >= target sum
w_i`` with the least ``lambda``: the Lagrangian relaxation of *min sum H_i subject to the group fill*,
optimal over the convex hull of the menus (off the hull by at most one unit's step). Units of a group that
cannot reach the target even at the top of their menus are all given the top.
"""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from planning._levels import _N_LOT, _excess, _fill, _least_level, _suffix_sums
from planning._policy import ProtectionSamples

__all__ = [
    "ServiceAllocation",
    "ServiceMenu",
    "allocate_group_fill",
    "allocated_targets",
    "fill_grid",
    "service_menu",
]

_JIT = {"cache": True, "nogil": True}


@nb.njit(nb.float64(nb.float32[:], nb.float64[:], nb.float64, nb.float64), **_JIT)
def _on_hand(b, cb, s, lot):  # pragma: no cover - compiled
    """Expected stock left after the period's demand, ``E[(y - X)^+]`` with ``y`` uniform on [S, S + lot)."""
    m = b.shape[0]
    mean_b = cb[0] / m
    if lot <= 0.0:
        return s - mean_b + _excess(b, cb, s)
    acc = 0.0
    for g in range(_N_LOT):
        y = s + (g + 0.5) / _N_LOT * lot
        acc += y - mean_b + _excess(b, cb, y)
    return acc / _N_LOT


@nb.njit(
    nb.void(
        nb.float32[:, :],
        nb.float32[:, :],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:, :],
        nb.float64[:, :],
        nb.float64[:, :],
        nb.float64[:],
    ),
    parallel=True,
    **_JIT,
)
def _menu(d_l, d_lr, lot, taus, out_s, out_fill, out_onhand, out_mean_r):  # pragma: no cover - compiled
    n, m = d_l.shape
    for i in nb.prange(n):
        a = d_l[i]
        b = d_lr[i]
        ca, cb = _suffix_sums(a, b)
        mean_r = (cb[0] - ca[0]) / m
        out_mean_r[i] = mean_r
        for k in range(taus.shape[0]):
            if mean_r <= 0.0:
                s = 0.0
                f = 1.0
            else:
                s = _least_level(a, ca, b, cb, mean_r, lot[i], taus[k])
                f = min(max(_fill(a, ca, b, cb, mean_r, s, lot[i]), 0.0), 1.0)
            out_s[i, k] = s
            out_fill[i, k] = f
            out_onhand[i, k] = _on_hand(b, cb, s, lot[i])


@dataclasses.dataclass(frozen=True)
class ServiceMenu:
    """Candidate levels per unit, each (N, K) float64 but ``weight`` (N,).

    Attributes:
        taus: (K,) fill-rate grid the candidates were found for.
        order_up_to: least level meeting ``taus[k]``.
        fill_rate: its simulated fill rate (>= ``taus[k]``).
        on_hand: its expected on-hand.
        weight: expected demand per period (the unit's weight in a group's fill rate).
    """

    taus: np.ndarray
    order_up_to: np.ndarray
    fill_rate: np.ndarray
    on_hand: np.ndarray
    weight: np.ndarray


def fill_grid(floor: float, top: float = 0.998) -> np.ndarray:
    """Fill rates of a menu: every 5 points from ``floor`` to 90%, every point to 99%, 99.5% and ``top``."""
    if not 0.0 <= floor < top < 1.0:
        raise ValueError(f"fill floor {floor}: expected 0 <= floor < {top}")
    coarse = np.arange(floor, 0.9, 0.05)
    fine = np.arange(0.9, 0.9951, 0.01)
    grid = np.unique(np.round(np.r_[coarse, fine, 0.995, top], 6))
    return grid[grid >= floor]


def service_menu(samples: ProtectionSamples, lot_size: np.ndarray, taus: np.ndarray) -> ServiceMenu:
    """Least order-up-to level, fill rate and on-hand per unit for each fill rate of ``taus``.

    Args:
        samples: sorted protection samples (``is_sorted=True``), (N, P).
        lot_size: (N,) effective lot (see :func:`planning._levels.effective_lot`).
        taus: (K,) increasing fill rates in [0, 1).

    Returns:
        :class:`ServiceMenu`.
    """
    if not samples.is_sorted:
        raise ValueError("service_menu: expected sorted samples (order_up_to_levels(..., in_place=True))")
    n = samples.d_l.shape[0]
    taus = np.ascontiguousarray(taus, dtype=np.float64)
    if taus.ndim != 1 or np.any(np.diff(taus) <= 0) or np.any(taus < 0) or np.any(taus >= 1):
        raise ValueError(f"taus: expected increasing fill rates in [0, 1), got {taus.tolist()}")
    lot = np.array(np.broadcast_to(np.asarray(lot_size, dtype=np.float64), (n,)))
    shape = (n, taus.shape[0])
    s, f, h = np.empty(shape), np.empty(shape), np.empty(shape)
    w = np.empty(n)
    _menu(samples.d_l, samples.d_lr, lot, taus, s, f, h, w)
    return ServiceMenu(taus=taus, order_up_to=s, fill_rate=f, on_hand=h, weight=w)


@nb.njit(
    nb.void(
        nb.float64[:, :],
        nb.float64[:, :],
        nb.float64[:],
        nb.int64[:],
        nb.float64[:],
        nb.int64[:],
        nb.float64[:],
    ),
    **_JIT,
)
def _choose(fill, on_hand, weight, group, lam, out_k, out_served):  # pragma: no cover - compiled
    """Per unit the menu entry maximising ``lam[g] w F - H``; served weight ``sum w F`` per group."""
    out_served[:] = 0.0
    for i in range(fill.shape[0]):
        g = group[i]
        best = 0
        best_v = lam[g] * weight[i] * fill[i, 0] - on_hand[i, 0]
        for k in range(1, fill.shape[1]):
            v = lam[g] * weight[i] * fill[i, k] - on_hand[i, k]
            if v > best_v:
                best_v = v
                best = k
        out_k[i] = best
        out_served[g] += weight[i] * fill[i, best]


@dataclasses.dataclass(frozen=True)
class ServiceAllocation:
    """Outcome of :func:`allocate_group_fill`.

    Attributes:
        choice: (N,) chosen menu entry per unit.
        order_up_to: (N,) chosen level.
        fill_rate: (N,) its simulated fill rate.
        group_fill: (G,) simulated fill rate of each group at the chosen levels.
        multiplier: (G,) stock per unit served at the margin (``lambda``), the group's price of service.
    """

    choice: np.ndarray
    order_up_to: np.ndarray
    fill_rate: np.ndarray
    group_fill: np.ndarray
    multiplier: np.ndarray


def allocate_group_fill(
    menu: ServiceMenu, group: np.ndarray, target: np.ndarray, iterations: int = 60
) -> ServiceAllocation:
    """Each unit's level so that every group meets its fill target with the least expected on-hand.

    Args:
        menu: from :func:`service_menu`.
        group: (N,) group index 0..G-1 of each unit.
        target: (G,) fill-rate target of each group, in (0, 1).
        iterations: bisection steps on ``log lambda``.

    Returns:
        :class:`ServiceAllocation`.
    """
    group = np.ascontiguousarray(group, dtype=np.int64)
    target = np.ascontiguousarray(target, dtype=np.float64)
    n = menu.weight.shape[0]
    if group.shape != (n,) or (n and (group.min() < 0 or group.max() >= target.shape[0])):
        raise ValueError(f"group: expected ({n},) indices into {target.shape[0]} targets")
    if np.any(target <= 0) or np.any(target >= 1):
        raise ValueError("target: expected group fill targets in (0, 1)")
    w = np.maximum(menu.weight, 0.0)
    total = np.bincount(group, weights=w, minlength=target.shape[0])
    need = target * total
    # log-lambda bracket: lambda ~ stock per unit of demand at the margin; 1e-6..1e9 periods covers any unit
    lo = np.full(target.shape[0], np.log(1e-6))
    hi = np.full(target.shape[0], np.log(1e9))
    k = np.empty(n, dtype=np.int64)
    served = np.empty(target.shape[0])
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        _choose(menu.fill_rate, menu.on_hand, w, group, np.exp(mid), k, served)
        ok = served >= need - 1e-9 * total
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    lam = np.exp(hi)
    _choose(menu.fill_rate, menu.on_hand, w, group, lam, k, served)
    rows = np.arange(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_fill = np.where(total > 0, served / total, 1.0)
    return ServiceAllocation(
        choice=k,
        order_up_to=menu.order_up_to[rows, k],
        fill_rate=menu.fill_rate[rows, k],
        group_fill=group_fill,
        multiplier=lam,
    )


def allocated_targets(
    menu: ServiceMenu, group: np.ndarray, unit_target: np.ndarray
) -> tuple[np.ndarray, np.ndarray, ServiceAllocation]:
    """Group targets from the units' own and each unit's allocated fill target.

    A group's target is the demand-weighted mean of its units' targets (their plain mean when the group has
    no expected demand). The unit's allocated target is the fill rate of its chosen menu entry, so that the
    least level meeting it is that entry's level.

    Args:
        menu: from :func:`service_menu` (all units).
        group: (N,) group index 0..G-1.
        unit_target: (N,) each unit's own fill target.

    Returns:
        ``(group_target (G,), allocated (N,), allocation)``.
    """
    group = np.asarray(group, dtype=np.int64)
    unit_target = np.asarray(unit_target, dtype=np.float64)
    g = int(group.max()) + 1 if group.size else 0
    w = np.maximum(menu.weight, 0.0)
    tot = np.bincount(group, weights=w, minlength=g)
    plain = np.bincount(group, weights=unit_target, minlength=g) / np.maximum(
        np.bincount(group, minlength=g), 1
    )
    weighted = np.bincount(group, weights=w * unit_target, minlength=g) / np.where(tot > 0, tot, 1.0)
    g_target = np.where(tot > 0, weighted, plain)
    alloc = allocate_group_fill(menu, group, g_target)
    return g_target, menu.taus[alloc.choice], alloc
