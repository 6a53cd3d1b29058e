"""Greedy allocation of order increments under shared budgets and capacities.

An order is a sequence of *increments* per unit (the first lifts the order to its MOQ, each further one adds a
pack). Increment ``k`` of unit ``i`` buys ``gain[i, k]`` (expected units served, or expected cost avoided) and
uses ``weight_c[i, k]`` of each shared constraint ``c`` (money against a budget per period, buyer or supplier;
volume or units against the capacity of a location). Increments of a unit must be taken in order.

The allocator sorts every increment by its gain per unit of *normalised* resource, ``gain / sum_c(weight_c /
limit_c)`` (gain per currency unit when only a budget binds), and takes them in that order while every
constraint has room. Ratios are made non-increasing within each unit first (the MOQ increment is usually the
best per unit, but if it is not, the later ones inherit its ratio), so a unit's increments stay in order. For
concave gains and one constraint this is the greedy for the LP relaxation of the knapsack: its value is at
least the integer optimum minus the largest single increment gain, and equals it when all weights are equal
(checked against brute force in ``tests/kernels/test_allocate.py``).

The loop is one Numba pass over the sorted increments (O(M log M) for the sort); nothing per unit runs in
Python. The greedy is sequential by nature, so it runs on the host for either backend: CuPy inputs are copied
to the host and the result comes back as CuPy arrays (M is the number of order increments, small beside the
simulation).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kernels._backend import get_array_module, to_host

__all__ = ["Allocation", "Constraint", "allocate_increments"]


@dataclasses.dataclass(frozen=True)
class Constraint:
    """One shared resource split into groups (a budget per supplier, a capacity per location, ...).

    Attributes:
        name: written to the evidence of the units it binds (``"budget"``, ``"capacity"``, ``"supply"``).
        weight: (M,) use of the resource by each increment (>= 0).
        group: (M,) int group of each increment in ``0..G-1``, or -1 when the increment is not limited by it.
        limit: (G,) amount of the resource per group (>= 0).
    """

    name: str
    weight: np.ndarray
    group: np.ndarray
    limit: np.ndarray


@dataclasses.dataclass(frozen=True)
class Allocation:
    """Result of :func:`allocate_increments`.

    Attributes:
        taken: (N,) increments taken per unit.
        blocked_by: (N,) index into the constraints of the first one that refused the unit's next increment,
            -1 when the unit got every increment it asked for.
        remaining: per constraint, (G,) amount left per group.
        value: total gain of the taken increments.
    """

    taken: np.ndarray
    blocked_by: np.ndarray
    remaining: list[np.ndarray]
    value: float


def allocate_increments(
    unit_of: np.ndarray, step: np.ndarray, gain: np.ndarray, constraints: list[Constraint], n_units: int
) -> Allocation:
    """Take increments in order of gain per normalised resource while every constraint has room.

    Args:
        unit_of: (M,) unit index of each increment in ``0..n_units-1``; increments of a unit must be
            contiguous and in ``step`` order.
        step: (M,) position of the increment within its unit, 0, 1, 2, ...
        gain: (M,) gain of each increment (>= 0).
        constraints: the shared resources; with none, every increment is taken.
        n_units: N.

    Returns:
        An :class:`Allocation`.

    Raises:
        ValueError: shapes differ, a weight or limit is negative, or increments are not contiguous per unit.
        kernels.BackendError: arrays on different devices.
    """
    xp = get_array_module(
        unit_of, step, gain, *(a for c in constraints for a in (c.weight, c.group, c.limit))
    )
    if xp is not np:  # sequential greedy: run on the host, hand the result back on the device
        host = [
            Constraint(c.name, to_host(c.weight), to_host(c.group), to_host(c.limit)) for c in constraints
        ]
        res = allocate_increments(to_host(unit_of), to_host(step), to_host(gain), host, n_units)
        return Allocation(
            taken=xp.asarray(res.taken),
            blocked_by=xp.asarray(res.blocked_by),
            remaining=[xp.asarray(r) for r in res.remaining],
            value=res.value,
        )
    from kernels import _policy_cpu as cpu  # noqa: PLC0415 - Numba loads when a kernel first runs

    unit_of = np.ascontiguousarray(unit_of, dtype=np.int64)
    step = np.ascontiguousarray(step, dtype=np.int64)
    gain = np.ascontiguousarray(gain, dtype=np.float64)
    m = unit_of.shape[0]
    if step.shape != (m,) or gain.shape != (m,):
        raise ValueError(
            f"unit_of, step and gain must share shape (M,); got {unit_of.shape}, {step.shape}, {gain.shape}"
        )
    if m and (np.any(unit_of < 0) or np.any(unit_of >= n_units)):
        raise ValueError(f"unit_of: expected unit indices in 0..{n_units - 1}")
    if m > 1:
        same = unit_of[1:] == unit_of[:-1]
        if np.any(same & (step[1:] != step[:-1] + 1)) or np.any(~same & (step[1:] != 0)) or step[0] != 0:
            raise ValueError("increments must be contiguous per unit with step 0, 1, 2, ...")
    if np.any(gain < 0):
        raise ValueError("gain: expected gains >= 0")

    n_con = len(constraints)
    offsets = np.cumsum([0] + [len(c.limit) for c in constraints])
    weight = np.zeros((n_con, m))
    group = np.full((n_con, m), -1, dtype=np.int64)
    remaining = np.zeros(int(offsets[-1]))
    denom = np.zeros(m)
    for c, con in enumerate(constraints):
        w = np.asarray(con.weight, dtype=np.float64)
        g = np.asarray(con.group, dtype=np.int64)
        lim = np.asarray(con.limit, dtype=np.float64)
        if w.shape != (m,) or g.shape != (m,):
            raise ValueError(f"constraint {con.name!r}: weight and group must have shape ({m},)")
        if np.any(w < 0) or np.any(lim < 0):
            raise ValueError(f"constraint {con.name!r}: weights and limits must be >= 0")
        if np.any(g >= len(lim)):
            raise ValueError(f"constraint {con.name!r}: group index beyond its {len(lim)} limits")
        weight[c] = w
        group[c] = np.where(g >= 0, g + offsets[c], -1)
        remaining[offsets[c] : offsets[c + 1]] = lim
        limited = g >= 0
        scale = np.where(limited, lim[np.maximum(g, 0)] if len(lim) else 0.0, np.inf)
        denom += np.where(
            limited & (scale > 0),
            w / np.where(scale > 0, scale, 1.0),
            np.where(limited & (w > 0), np.inf, 0.0),
        )
    ratio = np.where(denom > 0, gain / np.where(denom > 0, denom, 1.0), np.inf)
    ratio = np.where(np.isinf(denom), 0.0, ratio)
    ratio = cpu.monotone_ratio(unit_of, step, ratio)
    # Highest ratio first; ties keep unit order and step order so a unit's increments stay in sequence.
    order = np.lexsort((step, unit_of, -ratio)).astype(np.int64)
    taken = np.zeros(n_units, dtype=np.int64)
    blocked_by = np.full(n_units, -1, dtype=np.int64)
    cpu.greedy(order, unit_of, step, weight, group, remaining, taken, blocked_by)
    # Value of the taken increments: those with step < taken[unit].
    value = float(gain[step < taken[unit_of]].sum()) if m else 0.0
    remaining_per = [remaining[offsets[c] : offsets[c + 1]].copy() for c in range(n_con)]
    return Allocation(taken=taken, blocked_by=blocked_by, remaining=remaining_per, value=value)
