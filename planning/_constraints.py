"""Shared budgets and capacities: orders split into increments, cut greedily by what each increment buys.

:func:`order_increments` splits each unit's order into a first increment (the MOQ) and whole-pack steps;
:func:`apply_constraints` hands the increments, with the expected units each one serves (from the plan's own
paths), to :func:`kernels.allocate_increments` under every budget and capacity and names the constraint that
cut an order.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kernels import Constraint, allocate_increments

__all__ = ["MAX_INCREMENTS", "apply_constraints", "constraint_of", "order_increments"]

#: An order is split into at most this many increments for budget / capacity allocation.
MAX_INCREMENTS = 8


def order_increments(
    q: np.ndarray, pack: np.ndarray, moq: np.ndarray, max_increments: int = MAX_INCREMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split each order into a first increment (the MOQ, at least one pack) and equal whole-pack steps.

    At most ``max_increments`` increments per order (steps of ``ceil(packs left / (max_increments - 1))``
    packs, the last one what remains), so that a million orders stay a few million increments.

    Returns:
        ``(unit_of, step, qty_after, size)``: flat (M,) arrays, increments contiguous per unit in step order;
        ``qty_after`` is the order quantity once the increment is taken, ``size`` the increment's quantity.
    """
    first = np.minimum(np.maximum(np.ceil(moq / pack) * pack, pack), q)
    packs_left = np.where(q > 0, np.rint((q - first) / pack), 0.0)
    step_packs = np.maximum(np.ceil(packs_left / max(max_increments - 1, 1)), 1.0)
    n_inc = np.where(q > 0, 1 + np.ceil(packs_left / step_packs), 0).astype(np.int64)
    unit_of = np.repeat(np.arange(q.shape[0]), n_inc)
    starts = np.cumsum(n_inc) - n_inc
    step = np.arange(unit_of.shape[0]) - np.repeat(starts, n_inc)
    qty_after = np.minimum(first[unit_of] + step * step_packs[unit_of] * pack[unit_of], q[unit_of])
    size = np.where(
        step == 0,
        first[unit_of],
        qty_after - np.minimum(first[unit_of] + (step - 1) * step_packs[unit_of] * pack[unit_of], q[unit_of]),
    )
    return unit_of, step, qty_after, size


def apply_constraints(u, q, bound_name, pack, moq, cost, unit_of, step, size, gain, budgets, capacities):
    """Cut orders to shared budgets and capacities by expected units served per unit of resource."""
    constraints = []
    for b in budgets:
        constraints.append(constraint_of("budget", u, b.by, b.limits, unit_of, size * cost[unit_of]))
    for c in capacities:
        vol = u[c.volume_column].to_numpy().astype(np.float64) if c.volume_column else np.ones(q.shape[0])
        constraints.append(constraint_of("capacity", u, c.by, c.limits, unit_of, size * vol[unit_of]))
    alloc = allocate_increments(unit_of, step, np.maximum(gain, 0.0), constraints, q.shape[0])
    taken_qty = np.zeros(q.shape[0])
    np.add.at(taken_qty, unit_of[step < alloc.taken[unit_of]], size[step < alloc.taken[unit_of]])
    q_new = taken_qty
    cut = q_new < q - 1e-9
    names = np.array([c.name for c in constraints], dtype=object)
    bound_name = np.where(cut & (alloc.blocked_by >= 0), names[np.maximum(alloc.blocked_by, 0)], bound_name)
    return q_new, bound_name


def constraint_of(name, u, by, limits, unit_of, weight):
    if by is None:
        total = float(limits) if not isinstance(limits, dict) else float(sum(limits.values()))
        return Constraint(name, weight, np.zeros(unit_of.shape[0], dtype=np.int64), np.array([total]))
    if by not in u.columns:
        raise ValueError(f"{name}: units have no column {by!r} to group by")
    if not isinstance(limits, dict):
        raise ValueError(f"{name} by {by}: expected a mapping of {by} -> limit")
    keys = list(limits)
    code = (
        u[by]
        .cast(pl.String)
        .replace_strict(keys, list(range(len(keys))), default=-1, return_dtype=pl.Int64)
        .to_numpy()
    )
    return Constraint(name, weight, code[unit_of], np.array([float(limits[k]) for k in keys]))
