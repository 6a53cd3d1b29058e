"""Order-up-to levels, risks, service menus and group fill targets from simulated protection demand.

The samples come from :func:`kernels.policy.policy_samples` (forecast quantiles or a history bootstrap;
orders crossing or not): paired draws of ``D_L`` and ``D_LR`` per unit. With a periodic-review order-up-to
policy and backorders, the units short in the cycle that the order covers are ``(D_LR - S)^+ - (D_L - S)^+``
(Hadley & Whitin 1963; Silver, Pyke & Thomas 2017, ch. 7), so the fill rate at level ``S`` is

    beta(S) = 1 - (E[(D_LR - S)^+] - E[(D_L - S)^+]) / E[D_LR - D_L]

estimated from the paths, and the order-up-to level is the least whole ``S`` with ``beta(S) >= target`` (found
by bisection; ``beta`` is non-decreasing in ``S``). Nothing here assumes normal demand or a fixed lead time,
which is where the classic ``z * RMSE * sqrt(L + R)`` rule goes wrong on intermittent demand and late
suppliers.

The fill rate only needs the two marginal distributions, so :func:`order_up_to_levels` may sort each row of
the samples in place (``in_place=True``, what the planner does to save memory and time); sorted samples then
also give ``E[min(D_LR, y)]`` for budget allocation by binary search.

Group fill targets (:func:`service_menu`, :func:`allocate_group_fill`): a fill-rate target usually belongs to
a group (a category, a store, the whole business). Meeting it in *every* unit is the most expensive way to
meet it for the group; the least inventory that reaches it gives each unit the fill rate where the marginal
stock per marginal unit served is the same for all (the exchange curves of Silver, Pyke & Thomas 2017,
ch. 7). Per unit a *menu*: the least ``S_k`` meeting each fill rate ``tau_k`` of a grid from a floor to 99.8%,
with its simulated fill ``F_k`` and expected on-hand ``H_k``; then per group a multiplier ``lambda`` is
found by bisection so that every unit picking ``argmax_k lambda w_i F_k - H_k`` meets ``sum w_i F_i >= target
sum w_i`` with the least ``lambda`` (the Lagrangian relaxation of *min sum H_i subject to the group fill*,
optimal over the convex hull of the menus). Units of a group that cannot reach the target even at the top of
their menus are all given the top.

Backends: the arrays of the samples choose them (NumPy: Numba, :mod:`kernels._policy_cpu`; CuPy: CUDA,
:mod:`kernels._policy_gpu`); every other array argument must live on the same device.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from kernels._backend import engine_backend, get_array_module, to_host
from kernels.policy import ProtectionSamples

__all__ = [
    "ServiceAllocation",
    "ServiceMenu",
    "UnitLevels",
    "allocate_group_fill",
    "allocated_targets",
    "effective_lot",
    "expected_served",
    "fill_grid",
    "order_up_to_levels",
    "service_menu",
]


@dataclasses.dataclass(frozen=True)
class UnitLevels:
    """Simulated policy levels and risks per unit, all (N,) float64 (on the samples' device).

    Attributes:
        order_up_to: least whole ``S`` whose simulated fill rate meets the target.
        fill_rate_at_level: simulated fill rate at ``S``.
        fill_rate_no_order: simulated fill rate if nothing is ordered (inventory position stays).
        stockout_probability: P(D_L > inventory position): a stockout before an order placed now can arrive.
        mean_protection_demand: E[D_LR].
        mean_review_demand: E[D_LR - D_L], demand per review cycle.
        expected_on_hand_at_level: E[(S - D_LR)^+], stock left when the next order arrives.
        quantile_levels: (K,) levels of the two quantile arrays below.
        protection_quantiles: (N, K) quantiles of D_LR.
        lead_time_quantiles: (N, K) quantiles of D_L (demand before an order placed now arrives).
    """

    order_up_to: Any
    fill_rate_at_level: Any
    fill_rate_no_order: Any
    stockout_probability: Any
    mean_protection_demand: Any
    mean_review_demand: Any
    expected_on_hand_at_level: Any
    quantile_levels: Any
    protection_quantiles: Any
    lead_time_quantiles: Any


def _samples_xp(samples: ProtectionSamples, *others: Any) -> Any:
    return get_array_module(samples.d_l, samples.d_lr, *others)


def order_up_to_levels(
    samples: ProtectionSamples,
    fill_target: Any,
    position: Any,
    lot_size: Any | None = None,
    quantile_levels: tuple[float, ...] = (0.05, 0.5, 0.9, 0.95),
    in_place: bool = False,
) -> UnitLevels:
    """Least order-up-to level meeting the fill-rate target, and risks at the current inventory position.

    Orders rounded up to packs and raised to an MOQ leave the inventory position after ordering above ``S``:
    with ``lot_size`` ``Q`` it is taken as uniform on ``[S, S + Q)`` (Hadley & Whitin's steady state for lot
    orders), so the lot's own cover counts towards the fill rate and ``S`` is not padded twice.

    Args:
        samples: from :func:`kernels.policy.policy_samples`, (N, P) each.
        fill_target: (N,) or scalar fill-rate target in (0, 1).
        position: (N,) inventory position (on hand + on order - backorders - committed).
        lot_size: (N,) effective lot ``Q`` >= 0 (0: orders exactly reach ``S``); see :func:`effective_lot`.
        quantile_levels: levels of the demand quantiles reported (evidence, transfer shortfalls).
        in_place: sort the rows of ``samples`` in place instead of copying them; afterwards use
            ``dataclasses.replace(samples, is_sorted=True)``.

    Returns:
        :class:`UnitLevels`.

    Raises:
        ValueError: a target, lot or quantile level out of range.
    """
    xp = _samples_xp(samples, position, lot_size, fill_target)
    n = samples.d_l.shape[0]
    target = xp.array(xp.broadcast_to(xp.asarray(fill_target, dtype=xp.float64), (n,)))
    if bool(xp.any(target <= 0)) or bool(xp.any(target >= 1)):
        raise ValueError("fill_target: expected targets in (0, 1)")
    pos = xp.ascontiguousarray(xp.asarray(position, dtype=xp.float64))
    lot = (
        xp.zeros(n) if lot_size is None else xp.array(xp.broadcast_to(xp.asarray(lot_size, xp.float64), (n,)))
    )
    if bool(xp.any(lot < 0)):
        raise ValueError("lot_size: expected lots >= 0")
    out = [xp.empty(n) for _ in range(7)]
    ql = np.asarray(quantile_levels, dtype=np.float64)
    if np.any(ql < 0) or np.any(ql > 1):
        raise ValueError("quantile_levels: expected levels in [0, 1]")
    ql = xp.asarray(ql)
    q_lr = xp.empty((n, ql.shape[0]))
    q_l = xp.empty((n, ql.shape[0]))
    if samples.is_sorted:
        d_l, d_lr = samples.d_l, samples.d_lr
    elif in_place:
        samples.d_l.sort(axis=1)
        samples.d_lr.sort(axis=1)
        d_l, d_lr = samples.d_l, samples.d_lr
    else:
        d_l, d_lr = xp.sort(samples.d_l, axis=1), xp.sort(samples.d_lr, axis=1)
    engine_backend(xp).levels(d_l, d_lr, target, pos, lot, *out, ql, q_lr, q_l)
    s, fill_s, fill_ip, p_so, mean_lr, mean_r, onhand = out
    return UnitLevels(
        order_up_to=s,
        fill_rate_at_level=fill_s,
        fill_rate_no_order=fill_ip,
        stockout_probability=p_so,
        mean_protection_demand=mean_lr,
        mean_review_demand=mean_r,
        expected_on_hand_at_level=onhand,
        quantile_levels=ql,
        protection_quantiles=q_lr,
        lead_time_quantiles=q_l,
    )


def effective_lot(pack: Any, moq: Any, mean_review_demand: Any) -> Any:
    """Effective lot ``Q`` of orders rounded to packs and raised to the MOQ, (N,).

    A review orders the demand since the last one (about ``mu_R``) rounded up to a pack, or the MOQ when that
    is more; the position after ordering then exceeds ``S`` by up to ``max(pack, MOQ - mu_R)``.
    """
    xp = get_array_module(pack, moq, mean_review_demand)
    pack = xp.asarray(pack, dtype=xp.float64)
    return xp.maximum(
        pack, xp.asarray(moq, dtype=xp.float64) - xp.asarray(mean_review_demand, dtype=xp.float64)
    )


def expected_served(samples: ProtectionSamples, unit_of: Any, y: Any) -> Any:
    """Expected units served over the protection interval, ``E[min(D_LR, y)]``, concave in ``y``.

    Args:
        samples: (N, P) protection samples (sorted rows make it O(log P) per query).
        unit_of: (M,) unit of each query.
        y: (M,) stock level (inventory position after the order).

    Returns:
        (M,) float64.
    """
    xp = _samples_xp(samples, unit_of, y)
    unit_of = xp.ascontiguousarray(unit_of, dtype=xp.int64)
    y = xp.ascontiguousarray(y, dtype=xp.float64)
    out = xp.empty(unit_of.shape[0])
    backend = engine_backend(xp)
    if samples.is_sorted and unit_of.shape[0]:
        grouped = bool(xp.all(unit_of[1:] >= unit_of[:-1]))  # the planner's increments already are
        if grouped:
            order = xp.arange(unit_of.shape[0])
        else:  # CuPy's argsort is stable; NumPy's needs asking
            order = np.argsort(unit_of, kind="stable") if xp is np else xp.argsort(unit_of)
        uo = unit_of[order]
        starts = xp.flatnonzero(xp.concatenate((xp.ones(1, dtype=bool), uo[1:] != uo[:-1])))
        units = uo[starts]
        starts = xp.concatenate((starts, xp.asarray([uo.shape[0]]))).astype(xp.int64)
        tmp = xp.empty_like(out)
        backend.served_sorted(samples.d_lr, units.astype(xp.int64), starts, y[order], tmp)
        out[order] = tmp
    else:
        backend.served(samples.d_lr, unit_of, y, out)
    return out


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

    taus: Any
    order_up_to: Any
    fill_rate: Any
    on_hand: Any
    weight: Any


def fill_grid(floor: float, top: float = 0.998) -> np.ndarray:
    """Fill rates of a menu: every 5 points from ``floor`` to 90%, every point to 99%, 99.5% and ``top``."""
    if not 0.0 <= floor < top < 1.0:
        raise ValueError(f"fill floor {floor}: expected 0 <= floor < {top}")
    coarse = np.arange(floor, 0.9, 0.05)
    fine = np.arange(0.9, 0.9951, 0.01)
    grid = np.unique(np.round(np.r_[coarse, fine, 0.995, top], 6))
    return grid[grid >= floor]


def service_menu(samples: ProtectionSamples, lot_size: Any, taus: Any) -> ServiceMenu:
    """Least order-up-to level, fill rate and on-hand per unit for each fill rate of ``taus``.

    Args:
        samples: sorted protection samples (``is_sorted=True``), (N, P).
        lot_size: (N,) effective lot (see :func:`effective_lot`).
        taus: (K,) increasing fill rates in [0, 1) (host or the samples' device).

    Returns:
        :class:`ServiceMenu`.
    """
    if not samples.is_sorted:
        raise ValueError("service_menu: expected sorted samples (order_up_to_levels(..., in_place=True))")
    xp = _samples_xp(samples, lot_size)
    n = samples.d_l.shape[0]
    taus_h = np.ascontiguousarray(to_host(taus), dtype=np.float64)
    if taus_h.ndim != 1 or np.any(np.diff(taus_h) <= 0) or np.any(taus_h < 0) or np.any(taus_h >= 1):
        raise ValueError(f"taus: expected increasing fill rates in [0, 1), got {taus_h.tolist()}")
    taus = xp.asarray(taus_h)
    lot = xp.array(xp.broadcast_to(xp.asarray(lot_size, dtype=xp.float64), (n,)))
    shape = (n, taus.shape[0])
    s, f, h = xp.empty(shape), xp.empty(shape), xp.empty(shape)
    w = xp.empty(n)
    engine_backend(xp).menu(samples.d_l, samples.d_lr, lot, taus, s, f, h, w)
    return ServiceMenu(taus=taus, order_up_to=s, fill_rate=f, on_hand=h, weight=w)


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

    choice: Any
    order_up_to: Any
    fill_rate: Any
    group_fill: Any
    multiplier: Any


def allocate_group_fill(
    menu: ServiceMenu, group: Any, target: Any, iterations: int = 60
) -> ServiceAllocation:
    """Each unit's level so that every group meets its fill target with the least expected on-hand.

    Args:
        menu: from :func:`service_menu`.
        group: (N,) group index 0..G-1 of each unit.
        target: (G,) fill-rate target of each group, in (0, 1).
        iterations: bisection steps on ``log lambda``.

    Returns:
        :class:`ServiceAllocation`.

    Raises:
        ValueError: a group index or a target out of range.
    """
    xp = get_array_module(menu.fill_rate, menu.on_hand, menu.weight, group, target)
    choose = engine_backend(xp).choose
    group = xp.ascontiguousarray(group, dtype=xp.int64)
    target = xp.ascontiguousarray(target, dtype=xp.float64)
    n = menu.weight.shape[0]
    if group.shape != (n,) or (n and (int(group.min()) < 0 or int(group.max()) >= target.shape[0])):
        raise ValueError(f"group: expected ({n},) indices into {target.shape[0]} targets")
    if bool(xp.any(target <= 0)) or bool(xp.any(target >= 1)):
        raise ValueError("target: expected group fill targets in (0, 1)")
    w = xp.maximum(menu.weight, 0.0)
    total = xp.bincount(group, weights=w, minlength=target.shape[0])
    need = target * total
    # log-lambda bracket: lambda ~ stock per unit of demand at the margin; 1e-6..1e9 periods covers any unit
    lo = xp.full(target.shape[0], np.log(1e-6))
    hi = xp.full(target.shape[0], np.log(1e9))
    k = xp.empty(n, dtype=xp.int64)
    served = xp.empty(target.shape[0])
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        choose(menu.fill_rate, menu.on_hand, w, group, xp.exp(mid), k, served)
        ok = served >= need - 1e-9 * total
        hi = xp.where(ok, mid, hi)
        lo = xp.where(ok, lo, mid)
    lam = xp.exp(hi)
    choose(menu.fill_rate, menu.on_hand, w, group, lam, k, served)
    rows = xp.arange(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        group_fill = xp.where(total > 0, served / total, 1.0)
    return ServiceAllocation(
        choice=k,
        order_up_to=menu.order_up_to[rows, k],
        fill_rate=menu.fill_rate[rows, k],
        group_fill=group_fill,
        multiplier=lam,
    )


def allocated_targets(menu: ServiceMenu, group: Any, unit_target: Any) -> tuple[Any, Any, ServiceAllocation]:
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
    xp = get_array_module(menu.weight, group, unit_target)
    group = xp.asarray(group, dtype=xp.int64)
    unit_target = xp.asarray(unit_target, dtype=xp.float64)
    g = int(group.max()) + 1 if group.size else 0
    w = xp.maximum(menu.weight, 0.0)
    tot = xp.bincount(group, weights=w, minlength=g)
    plain = xp.bincount(group, weights=unit_target, minlength=g) / xp.maximum(
        xp.bincount(group, minlength=g), 1
    )
    weighted = xp.bincount(group, weights=w * unit_target, minlength=g) / xp.where(tot > 0, tot, 1.0)
    g_target = xp.where(tot > 0, weighted, plain)
    alloc = allocate_group_fill(menu, group, g_target)
    return g_target, menu.taus[alloc.choice], alloc
