"""Validated inputs of the inventory simulation: demand models, lead-time distributions and policies.

Each is a frozen dataclass built by a constructor function that checks shapes and values and names the
offending field in its error. Arrays may be NumPy (CPU backend) or CuPy (GPU backend); they are kept as
given (float64 / int64) and the backend is chosen from them by ``kernels.simulate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np

from kernels._backend import get_array_module, to_host
from kernels._sampling import (
    DEMAND_GAMMA,
    DEMAND_NEGBIN,
    DEMAND_NORMAL,
    DEMAND_POISSON,
    DEMAND_QUANTILE,
    quantile_inverse,
)
from kernels._jit import lazy_njit

__all__ = [
    "DemandModel",
    "LeadTimes",
    "Policy",
    "discretized_gamma_lead_times",
    "empirical_lead_times",
    "fixed_lead_time",
    "gamma_demand",
    "lead_times_from_pmf",
    "min_max_policy",
    "negative_binomial_demand",
    "normal_demand",
    "order_up_to_policy",
    "poisson_demand",
    "quantile_demand",
    "s_Q_policy",
    "s_S_policy",
    "uniform_lead_times",
]

_KIND_CODE = {
    "poisson": DEMAND_POISSON,
    "negative_binomial": DEMAND_NEGBIN,
    "normal": DEMAND_NORMAL,
    "gamma": DEMAND_GAMMA,
    "quantile": DEMAND_QUANTILE,
}
POLICY_CODE = {"order_up_to": 0, "s_S": 1, "s_Q": 2, "min_max": 3}


def _as_float(name: str, x: Any, xp=None) -> Any:
    xp = xp or get_array_module(x)
    if not hasattr(x, "shape"):
        x = np.asarray(x, dtype=np.float64)
        xp = np
    a = xp.asarray(x, dtype=xp.float64)
    if a.ndim and not a.flags.c_contiguous:
        a = xp.ascontiguousarray(a)
    if a.size and not bool(xp.isfinite(a).all()):
        raise ValueError(f"{name}: every entry must be finite; got NaN or infinity")
    return a


def _per_unit_period(name: str, x: Any, *, nonneg: bool = True, positive: bool = False) -> Any:
    a = _as_float(name, x)
    xp = get_array_module(a)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (n_units,) or (n_units, n_periods); got {tuple(a.shape)}")
    if positive and bool((a <= 0).any()):
        raise ValueError(f"{name}: every entry must be > 0")
    if nonneg and bool((a < 0).any()):
        raise ValueError(f"{name}: every entry must be >= 0")
    return xp.ascontiguousarray(a)


@dataclass(frozen=True)
class DemandModel:
    """Demand per unit and period.

    Attributes:
        kind: one of ``poisson``, ``negative_binomial``, ``normal``, ``gamma``, ``quantile``.
        p1: shape ``(n_units, n_dper)``: the mean (poisson, negative_binomial, normal) or gamma shape; for
            ``quantile`` unused (zeros). ``n_dper`` is 1 (constant over periods) or ``n_periods``.
        p2: shape ``(n_units, n_dper)``: NB size, normal standard deviation or gamma scale (else zeros).
        values: quantile forecasts, shape ``(n_units, n_dper, m)`` (``quantile`` only).
        levels: quantile levels, shape ``(m,)``, strictly increasing in (0, 1) (``quantile`` only).
    """

    kind: str
    p1: Any
    p2: Any
    values: Any = None
    levels: Any = None

    @property
    def code(self) -> int:
        """Kernel code of the distribution."""
        return _KIND_CODE[self.kind]

    @property
    def n_units(self) -> int:
        """Number of planning units."""
        return int(self.p1.shape[0])

    @property
    def n_dper(self) -> int:
        """1 when the distribution is the same every period, else the number of periods."""
        return int(self.p1.shape[1])

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of one period's demand on the host, each shape ``(n_units, n_dper)``."""
        p1, p2 = to_host(self.p1), to_host(self.p2)
        if self.kind == "poisson":
            return p1, p1.copy()
        if self.kind == "negative_binomial":
            return p1, p1 + p1 * p1 / p2
        if self.kind == "normal":
            return p1, p2 * p2
        if self.kind == "gamma":
            return p1 * p2, p1 * p2 * p2
        return _quantile_moments(to_host(self.values), to_host(self.levels))


def poisson_demand(mean: Any) -> DemandModel:
    """Poisson demand with the given mean per unit (``(n_units,)``) or unit and period (``(n_units, T)``)."""
    m = _per_unit_period("mean", mean)
    return DemandModel("poisson", m, get_array_module(m).zeros_like(m))


def negative_binomial_demand(mean: Any, size: Any) -> DemandModel:
    """Negative-binomial (gamma-Poisson) demand: variance ``mean + mean**2 / size``.

    Args:
        mean: shape ``(n_units,)`` or ``(n_units, T)``, >= 0.
        size: same shape (or broadcastable), > 0; small sizes mean overdispersed, intermittent demand.
    """
    m = _per_unit_period("mean", mean)
    xp = get_array_module(m)
    k = _per_unit_period("size", size, positive=True)
    try:
        k = xp.broadcast_to(k, m.shape).copy()
    except ValueError:
        raise ValueError(f"size: expected the shape of mean {tuple(m.shape)}; got {tuple(k.shape)}") from None
    return DemandModel("negative_binomial", m, k)


def normal_demand(mean: Any, sd: Any) -> DemandModel:
    """Normal demand truncated at zero (negative draws count as no demand).

    Args:
        mean: shape ``(n_units,)`` or ``(n_units, T)``.
        sd: same shape, >= 0.
    """
    m = _per_unit_period("mean", mean, nonneg=False)
    s = _per_unit_period("sd", sd)
    if s.shape != m.shape:
        raise ValueError(f"sd: expected the shape of mean {tuple(m.shape)}; got {tuple(s.shape)}")
    return DemandModel("normal", m, s)


def gamma_demand(mean: Any, sd: Any) -> DemandModel:
    """Gamma demand with the given mean and standard deviation (both > 0, same shapes as for normal)."""
    m = _per_unit_period("mean", mean, positive=True)
    s = _per_unit_period("sd", sd, positive=True)
    if s.shape != m.shape:
        raise ValueError(f"sd: expected the shape of mean {tuple(m.shape)}; got {tuple(s.shape)}")
    shape = (m / s) ** 2
    return DemandModel("gamma", shape, s * s / m)


def quantile_demand(values: Any, levels: Any) -> DemandModel:
    """Demand from forecast quantiles, interpolated linearly with exponential tails.

    Args:
        values: shape ``(n_units, m)`` (same every period) or ``(n_units, T, m)``; non-decreasing along the
            last axis; the quantile forecasts.
        levels: shape ``(m,)``, ``m >= 2``, strictly increasing within (0, 1), e.g. ``[0.1, 0.5, 0.9]``.
    """
    v = _as_float("values", values)
    xp = get_array_module(v)
    lv = _as_float("levels", levels, xp)
    if lv.ndim != 1 or lv.shape[0] < 2:
        raise ValueError(f"levels: expected shape (m,) with m >= 2; got {tuple(lv.shape)}")
    if bool((lv <= 0).any() or (lv >= 1).any() or (xp.diff(lv) <= 0).any()):
        raise ValueError("levels: must be strictly increasing and inside (0, 1)")
    if v.ndim == 2:
        v = v[:, None, :]
    if v.ndim != 3 or v.shape[2] != lv.shape[0]:
        raise ValueError(
            f"values: expected shape (n_units, m) or (n_units, n_periods, m) with m = {lv.shape[0]}; "
            f"got {tuple(v.shape)}"
        )
    if bool((xp.diff(v, axis=2) < 0).any()):
        raise ValueError("values: quantiles must be non-decreasing along the last axis (crossing quantiles)")
    z = xp.zeros(v.shape[:2])
    return DemandModel("quantile", z, z, xp.ascontiguousarray(v), lv)


@lazy_njit(nb.types.UniTuple(nb.float64[:, :], 2)(nb.float64[:, :, :], nb.float64[:]), cache=True)
def _quantile_moments_nb(values, levels):
    n, tt, _ = values.shape
    mean = np.zeros((n, tt))
    var = np.zeros((n, tt))
    g = 4096
    for i in range(n):
        for t in range(tt):
            s1 = 0.0
            s2 = 0.0
            for j in range(g):
                x = quantile_inverse((j + 0.5) / g, levels, values[i, t])
                s1 += x
                s2 += x * x
            mean[i, t] = s1 / g
            var[i, t] = max(s2 / g - (s1 / g) ** 2, 0.0)
    return mean, var


def _quantile_moments(values: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _quantile_moments_nb(np.ascontiguousarray(values), np.ascontiguousarray(levels))


# ---------------------------------------------------------------------------------------------------------
# lead times
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeadTimes:
    """Lead-time distribution per supplier and the supplier of each unit.

    Attributes:
        pmf: host float64 array ``(n_suppliers, L_max + 1)``: ``pmf[j, L]`` = P(lead time = L periods) for
            supplier ``j``; rows sum to 1.
        supplier: int64 array ``(n_units,)`` of supplier indices (NumPy or CuPy).
    """

    pmf: np.ndarray
    supplier: Any

    @property
    def max_lead_time(self) -> int:
        """Largest lead time with positive probability."""
        return int(np.nonzero(self.pmf.sum(axis=0) > 0)[0].max())

    def mean(self) -> np.ndarray:
        """Mean lead time of each unit's supplier, host array ``(n_units,)``."""
        m = self.pmf @ np.arange(self.pmf.shape[1])
        return m[to_host(self.supplier)]


def lead_times_from_pmf(pmf: Any, supplier: Any = None, n_units: int | None = None) -> LeadTimes:
    """Lead times from explicit probabilities.

    Args:
        pmf: shape ``(n_suppliers, L_max + 1)`` or ``(L_max + 1,)`` (one supplier); rows are normalised.
        supplier: int array ``(n_units,)`` with values in ``[0, n_suppliers)``; default all zero.
        n_units: number of units when ``supplier`` is omitted.
    """
    p = np.atleast_2d(np.asarray(to_host(pmf), dtype=np.float64))
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"pmf: expected shape (n_suppliers, L_max + 1); got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("pmf: probabilities must be finite and >= 0")
    sums = p.sum(axis=1)
    bad = np.nonzero(sums <= 0)[0]
    if bad.size:
        raise ValueError(f"pmf: row {int(bad[0])} has no positive probability")
    p = p / sums[:, None]
    if supplier is None:
        if n_units is None:
            raise ValueError("supplier: give the supplier of each unit or n_units")
        supplier = np.zeros(n_units, dtype=np.int64)
    xp = get_array_module(supplier) if hasattr(supplier, "shape") else np
    sup = xp.ascontiguousarray(xp.asarray(supplier, dtype=xp.int64))
    if sup.ndim != 1:
        raise ValueError(f"supplier: expected shape (n_units,); got {tuple(sup.shape)}")
    if sup.size and bool((sup < 0).any() or (sup >= p.shape[0]).any()):
        raise ValueError(f"supplier: indices must lie in [0, {p.shape[0]})")
    return LeadTimes(p, sup)


def fixed_lead_time(lead_time: int, n_units: int) -> LeadTimes:
    """Every order arrives ``lead_time`` periods after it is placed (see the timing convention)."""
    if int(lead_time) != lead_time or lead_time < 0:
        raise ValueError(f"lead_time: expected an integer >= 0; got {lead_time!r}")
    pmf = np.zeros(int(lead_time) + 1)
    pmf[int(lead_time)] = 1.0
    return lead_times_from_pmf(pmf, n_units=n_units)


def uniform_lead_times(low: int, high: int, n_units: int) -> LeadTimes:
    """Lead time uniform on the integers ``low .. high`` (inclusive) for every unit."""
    if not (0 <= low <= high) or int(low) != low or int(high) != high:
        raise ValueError(f"low, high: expected integers 0 <= low <= high; got {low!r}, {high!r}")
    pmf = np.zeros(int(high) + 1)
    pmf[int(low) :] = 1.0
    return lead_times_from_pmf(pmf, n_units=n_units)


def empirical_lead_times(samples: list[Any], supplier: Any) -> LeadTimes:
    """Empirical lead-time distribution of each supplier from observed lead times (whole periods).

    Args:
        samples: one sequence of observed lead times (integers >= 0) per supplier.
        supplier: int array ``(n_units,)``, the supplier of each unit.
    """
    obs = [np.asarray(to_host(s)).ravel() for s in samples]
    for j, o in enumerate(obs):
        if o.size == 0:
            raise ValueError(f"samples[{j}]: supplier {j} has no observed lead times")
        if (o < 0).any() or (o != np.round(o)).any():
            raise ValueError(f"samples[{j}]: lead times must be whole periods >= 0")
    width = int(max(o.max() for o in obs)) + 1
    pmf = np.stack([np.bincount(o.astype(np.int64), minlength=width)[:width] for o in obs]).astype(float)
    return lead_times_from_pmf(pmf, supplier)


def discretized_gamma_lead_times(mean: Any, sd: Any, supplier: Any, max_lead_time: int | None = None):
    """Parametric lead times: a gamma(mean, sd) per supplier rounded to whole periods.

    Args:
        mean: shape ``(n_suppliers,)``, mean lead time in periods (> 0).
        sd: shape ``(n_suppliers,)``, standard deviation (> 0).
        supplier: int array ``(n_units,)``.
        max_lead_time: truncation (default: the largest 99.999% quantile).
    """
    from scipy import stats  # noqa: PLC0415 - only this constructor needs SciPy

    m = np.atleast_1d(np.asarray(to_host(mean), dtype=float))
    s = np.atleast_1d(np.asarray(to_host(sd), dtype=float))
    if m.shape != s.shape or (m <= 0).any() or (s <= 0).any():
        raise ValueError("mean, sd: expected positive arrays of the same shape (n_suppliers,)")
    shape, scale = (m / s) ** 2, s * s / m
    top = max_lead_time or int(np.ceil(stats.gamma.ppf(0.99999, shape, scale=scale).max()))
    edges = np.concatenate([[0.0], np.arange(top) + 0.5, [np.inf]])
    cdf = stats.gamma.cdf(edges[None, :], shape[:, None], scale=scale[:, None])
    return lead_times_from_pmf(np.diff(cdf, axis=1), supplier)


# ---------------------------------------------------------------------------------------------------------
# policies
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """Replenishment policy per unit (periodic review every ``review_period`` periods, starting at 0).

    Attributes:
        kind: ``order_up_to`` (R,S), ``s_S`` (R,s,S), ``s_Q`` (R,s,nQ) or ``min_max``.
        reorder_point: ``s`` / min, shape ``(n_units,)``.
        order_up_to: ``S`` / max, shape ``(n_units,)``.
        order_quantity: ``Q``, shape ``(n_units,)``.
        review_period: ``R`` >= 1, int64 shape ``(n_units,)``.
    """

    kind: str
    reorder_point: Any
    order_up_to: Any
    order_quantity: Any
    review_period: Any

    @property
    def code(self) -> int:
        """Kernel code of the policy."""
        return POLICY_CODE[self.kind]

    @property
    def n_units(self) -> int:
        """Number of planning units."""
        return int(self.order_up_to.shape[0])

    def with_levels(self, **levels: Any) -> Policy:
        """A copy with some level arrays replaced (``reorder_point``, ``order_up_to``, ``order_quantity``)."""
        fields = {f: getattr(self, f) for f in ("reorder_point", "order_up_to", "order_quantity")}
        fields.update(levels)
        return Policy(self.kind, review_period=self.review_period, **fields)


def _levels(name: str, x: Any, n: int | None, xp) -> Any:
    a = _as_float(name, x, xp if hasattr(x, "shape") else np)
    if a.ndim == 0:
        if n is None:
            raise ValueError(f"{name}: expected shape (n_units,); got a scalar")
        a = xp.full(n, float(a))
    if a.ndim != 1:
        raise ValueError(f"{name}: expected shape (n_units,); got {tuple(a.shape)}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name}: expected {n} entries (one per unit); got {a.shape[0]}")
    return a


def _review(review_period: Any, n: int, xp) -> Any:
    r = np.asarray(to_host(review_period))
    if (r != np.round(r)).any() or (r < 1).any():
        raise ValueError(f"review_period: expected integers >= 1; got {review_period!r}")
    r = np.broadcast_to(r.astype(np.int64), (n,))
    return xp.ascontiguousarray(xp.asarray(r))


def _policy(kind: str, s: Any, S: Any, Q: Any, review_period: Any) -> Policy:
    given = {"reorder_point": s, "order_up_to": S, "order_quantity": Q}
    arrays = [a for a in given.values() if hasattr(a, "shape") and np.ndim(a) >= 1]
    xp = get_array_module(*arrays) if arrays else np
    n = next((int(a.shape[0]) for a in arrays), None)
    if n is None:
        raise ValueError("levels: give at least one per-unit array of shape (n_units,)")
    out = {name: _levels(name, 0.0 if a is None else a, n, xp) for name, a in given.items()}
    return Policy(kind, review_period=_review(review_period, n, xp), **out)


def order_up_to_policy(order_up_to: Any, review_period: Any = 1) -> Policy:
    """(R, S): every review, order up to ``S``: ``q = max(S - IP, 0)``.

    Args:
        order_up_to: ``S`` per unit, shape ``(n_units,)``.
        review_period: ``R`` in periods, scalar or ``(n_units,)``.
    """
    return _policy("order_up_to", None, order_up_to, None, review_period)


def s_S_policy(reorder_point: Any, order_up_to: Any, review_period: Any = 1) -> Policy:
    """(R, s, S): at a review with ``IP <= s`` order up to ``S`` (arrays of shape ``(n_units,)``)."""
    return _policy("s_S", reorder_point, order_up_to, None, review_period)


def s_Q_policy(reorder_point: Any, order_quantity: Any, review_period: Any = 1) -> Policy:
    """(R, s, nQ): at a review with ``IP <= s`` order the least multiple of ``Q`` taking ``IP`` over ``s``."""
    p = _policy("s_Q", reorder_point, None, order_quantity, review_period)
    if bool((p.order_quantity <= 0).any()):
        raise ValueError("order_quantity: every entry must be > 0")
    return p


def min_max_policy(minimum: Any, maximum: Any, review_period: Any = 1) -> Policy:
    """Min/max: at a review with ``IP < min`` (strictly) order up to ``max`` (arrays ``(n_units,)``)."""
    return _policy("min_max", minimum, maximum, None, review_period)
