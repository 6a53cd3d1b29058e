"""Safety stock, reorder point and order-up-to level by simulation, vectorised across units.

Three optimisers, all with common random numbers (one seed, the same demand and lead-time draws at every
candidate level), so the level found never falls as the target rises:

* :func:`optimize_order_up_to`: the smallest order-up-to level ``S`` of an (R, S) policy with backorders
  meeting a target fill rate or cycle service level per unit, in steady state. One simulation gives the
  whole service curve of every unit (see ``kernels/_simulate_curve.py``), so the cost is that of a single
  simulation whatever the targets.
* :func:`optimize_cost`: the order-up-to level (and, among ``review_periods``, the review period) with the
  least expected holding + shortage + ordering cost per period.
* :func:`optimize_level`: any policy ((s, S), (s, nQ), min/max, (R, S)), lost sales, today's stock and open
  orders: bisection on a grid of levels, every unit at once, one :func:`kernels.simulate.simulate` per step.

``safety_stock`` is the level minus the mean demand over the protection interval, ``mean lead time + R``
periods (the timing convention of ``kernels/simulate.py``).

Backends: with CuPy inputs :func:`optimize_order_up_to` and :func:`optimize_cost` run their one-pass curve
kernel on the host (the per-unit parameters are copied; there is no CUDA curve kernel yet) and return device
arrays; :func:`optimize_level` runs every simulation on the GPU.

Example:
    >>> import numpy as np
    >>> from kernels.simulate import poisson_demand, uniform_lead_times
    >>> from kernels.optimize import optimize_order_up_to
    >>> n = 100
    >>> res = optimize_order_up_to(
    ...     poisson_demand(np.full(n, 4.0)), uniform_lead_times(2, 8, n),
    ...     target=0.95, metric="fill_rate", n_paths=400, seed=1,
    ... )
    >>> bool((res.fill_rate >= 0.95).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels._backend import get_array_module, to_host
from kernels._simulate_curve import CURVE, curve_cpu
from kernels._simulate_inputs import DemandModel, LeadTimes, Policy, order_up_to_policy
from kernels.simulate import SimResult, prepare, simulate

__all__ = ["CostResult", "LevelResult", "optimize_cost", "optimize_level", "optimize_order_up_to", "warmup"]

_METRICS = ("fill_rate", "cycle_service_level")


@dataclass(frozen=True)
class LevelResult:
    """Per-unit levels meeting a service target; arrays of shape ``(n_units,)`` on the input's device.

    Attributes:
        level: the optimised level (order-up-to ``S``, reorder point ``s``, or the shift, see the optimiser).
        safety_stock: ``level`` minus mean demand over ``mean lead time + R`` periods (order-up-to levels;
            for a reorder point, minus mean demand over the mean lead time).
        fill_rate: fill rate at ``level``.
        cycle_service_level: cycle service level at ``level``.
        expected_on_hand: mean end-of-period on-hand at ``level``.
        p_stockout: probability of a stockout within the counted horizon at ``level``.
        target: the target per unit; metric: ``fill_rate`` or ``cycle_service_level``.
    """

    level: Any
    safety_stock: Any
    fill_rate: Any
    cycle_service_level: Any
    expected_on_hand: Any
    p_stockout: Any
    target: Any
    metric: str


@dataclass(frozen=True)
class CostResult:
    """Cost-optimal order-up-to level per unit (arrays ``(n_units,)``); costs are per period.

    Attributes:
        level: order-up-to level ``S``.
        review_period: the chosen review period ``R``.
        cost: expected holding + shortage + ordering cost per period at the optimum.
        holding: expected holding cost per period; shortage: expected shortage cost per period;
        ordering: expected ordering cost per period.
        fill_rate: fill rate at the optimum; cycle_service_level: cycle service level at the optimum.
        safety_stock: ``level`` minus mean demand over ``mean lead time + R`` periods.
    """

    level: Any
    review_period: Any
    cost: Any
    holding: Any
    shortage: Any
    ordering: Any
    fill_rate: Any
    cycle_service_level: Any
    safety_stock: Any


def _per_unit(name: str, x: Any, n: int, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    a = np.asarray(to_host(x), dtype=np.float64)
    try:
        a = np.array(np.broadcast_to(a, (n,)))  # a writeable copy (Numba signatures)
    except ValueError:
        raise ValueError(f"{name}: expected a scalar or shape ({n},); got {a.shape}") from None
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: every entry must be finite")
    if lo is not None and (a < lo).any():
        raise ValueError(f"{name}: every entry must be >= {lo}")
    if hi is not None and (a > hi).any():
        raise ValueError(f"{name}: every entry must be <= {hi}")
    return a


def _check_metric(metric: str) -> int:
    if metric not in _METRICS:
        raise ValueError(f"metric: expected one of {_METRICS}; got {metric!r}")
    return _METRICS.index(metric)


def _window_moments(demand: DemandModel, lead_times: LeadTimes, R: np.ndarray):
    """Mean demand per period, its variance, and the mean protection interval (mean L + R), per unit."""
    mean, var = demand.moments()
    return mean.mean(axis=1), var.max(axis=1), mean.max(axis=1), lead_times.mean() + R


def _default_burn_in(lead_times: LeadTimes, R: np.ndarray, n_periods: int, burn_in: int | None) -> int:
    if burn_in is None:
        burn_in = min(lead_times.max_lead_time + int(R.max()), n_periods // 2)
    return int(burn_in)


def _curve(
    demand: DemandModel,
    lead_times: LeadTimes,
    review_period: Any,
    *,
    n_periods: int,
    n_paths: int,
    seed: Any,
    burn_in: int | None,
    step: Any,
    metric: int,
    target: np.ndarray,
    hold: np.ndarray,
    pen: np.ndarray,
):
    n = demand.n_units
    R = np.asarray(to_host(order_up_to_policy(np.zeros(n), review_period).review_period))
    burn = _default_burn_in(lead_times, R, n_periods, burn_in)
    xp, a = prepare(
        demand, lead_times, order_up_to_policy(np.zeros(n), R), n_periods=n_periods, n_paths=n_paths,
        seed=seed, burn_in=burn,
    )  # fmt: skip
    mean_bar, var_max, mean_max, window = _window_moments(demand, lead_times, R)
    if step is None:
        h = np.ones(n) if demand.kind in ("poisson", "negative_binomial") else np.maximum(
            np.sqrt(var_max * window) / 100.0, 1e-9)  # fmt: skip
    else:
        h = _per_unit("step", step, n, lo=0.0)
        if (h <= 0).any():
            raise ValueError("step: every entry must be > 0")
    W = lead_times.max_lead_time + R
    span = mean_max * W + 10.0 * np.sqrt(var_max * W) + 10.0 * h
    bins = np.minimum(np.ceil(span / h) + 2, 1 << 22).astype(np.int64)
    # the curve kernel runs on the host (CuPy inputs are copied; results go back to the device)
    c = {k: v if np.isscalar(v) else np.array(to_host(v), order="C") for k, v in vars(a).items()}
    out = curve_cpu(
        c["seed"], c["kind"], c["d_off"], c["d_lo"], c["d_tab"], c["p1"], c["p2"], c["qx"], c["qtau"],
        c["lt_off"], c["lt_lo"], c["lt_tab"], c["supplier"], R.astype(np.int64), h, bins, int(n_paths),
        int(n_periods), burn, c["n_dper"], c["ring_cap"], metric, target, hold, pen,
    )  # fmt: skip
    return xp, out, mean_bar * window


def optimize_order_up_to(
    demand: DemandModel,
    lead_times: LeadTimes,
    *,
    target: Any,
    metric: str = "fill_rate",
    review_period: Any = 1,
    n_periods: int = 64,
    n_paths: int = 1000,
    seed: Any,
    burn_in: int | None = None,
    step: Any = None,
) -> LevelResult:
    """Smallest order-up-to level per unit meeting a target, (R, S) policy with backorders, steady state.

    Args:
        demand: demand model of ``n_units`` units.
        lead_times: lead-time distribution of each unit's supplier.
        target: target fill rate or cycle service level in [0, 1], scalar or ``(n_units,)``.
        metric: ``fill_rate`` or ``cycle_service_level``.
        review_period: ``R``, scalar or ``(n_units,)``.
        n_periods: simulated periods per path, burn-in included.
        n_paths: paths per unit.
        seed: integer seed (or ``numpy.random.Generator``).
        burn_in: periods not counted (default ``L_max + max R``, at most half the periods).
        step: level grid per unit (default 1 for integer demand, else 1% of the demand's standard deviation
            over the protection interval); levels are multiples of ``step``.

    Returns:
        A :class:`LevelResult`; its figures equal those of ``simulate(..., order_up_to_policy(level),
        burn_in=...)`` with the same seed and a full start.
    """
    n = demand.n_units
    m = _check_metric(metric)
    tgt = _per_unit("target", target, n, 0.0, 1.0)
    z = np.zeros(n)
    xp, out, window_mean = _curve(
        demand, lead_times, review_period, n_periods=n_periods, n_paths=n_paths, seed=seed, burn_in=burn_in,
        step=step, metric=m, target=tgt, hold=z, pen=z,
    )  # fmt: skip
    level = out[:, CURVE["level"]]
    res = LevelResult(
        level=level,
        safety_stock=level - window_mean,
        fill_rate=out[:, CURVE["fill_rate"]],
        cycle_service_level=out[:, CURVE["cycle_service_level"]],
        expected_on_hand=out[:, CURVE["on_hand"]],
        p_stockout=out[:, CURVE["p_stockout"]],
        target=tgt,
        metric=metric,
    )
    return _to_device(xp, res)


def optimize_cost(
    demand: DemandModel,
    lead_times: LeadTimes,
    *,
    holding_cost: Any,
    shortage_cost: Any,
    ordering_cost: Any = 0.0,
    review_periods: tuple[int, ...] = (1,),
    n_periods: int = 64,
    n_paths: int = 1000,
    seed: Any,
    burn_in: int | None = None,
    step: Any = None,
) -> CostResult:
    """Order-up-to level and review period with the least expected cost per period, per unit.

    Cost per period = ``holding_cost * E[on-hand at period end] + shortage_cost * E[unserved units]
    + ordering_cost * E[orders placed]``; backorders, (R, S) policy, steady state.

    Args:
        demand: demand model of ``n_units`` units.
        lead_times: lead-time distribution of each unit's supplier.
        holding_cost: per unit held per period, scalar or ``(n_units,)``, >= 0.
        shortage_cost: per unit of demand not served from stock, scalar or ``(n_units,)``, >= 0.
        ordering_cost: per order placed, scalar or ``(n_units,)``, >= 0.
        review_periods: candidate review periods ``R``; each costs one simulation.
        n_periods: simulated periods per path, burn-in included.
        n_paths: paths per unit.
        seed: integer seed (or ``numpy.random.Generator``); the same numbers serve every candidate.
        burn_in: periods not counted (default ``L_max + max R``, at most half the periods).
        step: level grid per unit, as in :func:`optimize_order_up_to`.
    """
    n = demand.n_units
    hold = _per_unit("holding_cost", holding_cost, n, 0.0)
    pen = _per_unit("shortage_cost", shortage_cost, n, 0.0)
    K = _per_unit("ordering_cost", ordering_cost, n, 0.0)
    if not review_periods or any(int(r) != r or r < 1 for r in review_periods):
        raise ValueError(f"review_periods: expected integers >= 1; got {review_periods!r}")
    burn_in = _default_burn_in(lead_times, np.asarray(review_periods), n_periods, burn_in)
    best = None
    for R in review_periods:
        xp, out, window_mean = _curve(
            demand, lead_times, R, n_periods=n_periods, n_paths=n_paths, seed=seed, burn_in=burn_in,
            step=step, metric=0, target=np.full(n, 2.0), hold=hold, pen=pen,
        )  # fmt: skip
        S = out[:, CURVE["cost_level"]]
        S_grid = out[:, CURVE["cost"]]
        ordering = K * out[:, CURVE["orders"]]
        cand = {
            "level": S,
            "review_period": np.full(n, int(R)),
            "cost": S_grid + ordering,
            "ordering": ordering,
            "fill_rate": out[:, CURVE["cost_fill_rate"]],
            "cycle_service_level": out[:, CURVE["cost_cycle_service_level"]],
            "safety_stock": S - window_mean,
            "hs": S_grid,
        }
        if best is None:
            best = cand
        else:
            better = cand["cost"] < best["cost"]
            best = {k: np.where(better, cand[k], best[k]) for k in best}
    # split holding / shortage at the optimum by re-simulating once with the chosen levels (same seed)
    sim = _simulate_host(demand, lead_times, best["level"], best["review_period"], n_periods, n_paths, seed,
                         burn_in)  # fmt: skip
    holding = hold * to_host(sim.expected_on_hand)
    counted = sim.n_periods - sim.burn_in
    shortage = pen * to_host(sim.expected_stockout_units) / counted
    res = CostResult(
        level=best["level"], review_period=best["review_period"], cost=best["cost"], holding=holding,
        shortage=shortage, ordering=best["ordering"], fill_rate=best["fill_rate"],
        cycle_service_level=best["cycle_service_level"], safety_stock=best["safety_stock"],
    )  # fmt: skip
    return _to_device(xp, res)


def _simulate_host(demand, lead_times, level, R, n_periods, n_paths, seed, burn_in) -> SimResult:
    Rh = np.asarray(to_host(R)).astype(np.int64)
    burn = _default_burn_in(lead_times, Rh, n_periods, burn_in)
    xp = get_array_module(demand.p1)
    pol = order_up_to_policy(xp.asarray(level), xp.asarray(Rh))
    return simulate(demand, lead_times, pol, n_periods=n_periods, n_paths=n_paths, seed=seed, burn_in=burn)


def _to_device(xp: Any, res: Any) -> Any:
    if xp is np:
        return res
    fields = {k: xp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in vars(res).items()}
    return type(res)(**fields)


def optimize_level(
    demand: DemandModel,
    lead_times: LeadTimes,
    policy: Policy,
    *,
    target: Any,
    metric: str = "fill_rate",
    parameter: str = "order_up_to",
    n_periods: int,
    n_paths: int,
    seed: Any,
    lost_sales: bool = False,
    initial_net_inventory: Any = None,
    open_orders: Any = None,
    burn_in: int = 0,
    step: float = 1.0,
    upper: Any = None,
) -> LevelResult:
    """Smallest level on a grid meeting a target per unit, for any policy, by bisection with common numbers.

    Every bisection step simulates all units at their current midpoints with the same seed, so a unit's
    figure at a level is the same whichever step evaluates it. The level searched is ``parameter``:
    ``order_up_to`` (``S`` / max), ``reorder_point`` (``s`` / min) or ``shift`` (``s`` and ``S`` moved
    together by the same amount, keeping ``S - s``; the level is then the new ``S`` for order-up-to style
    policies and the new ``s`` for (s, nQ)). The other levels stay as in ``policy``. Assumes the metric
    does not fall as the level rises (true for backorders; with lost sales and crossing orders it holds on
    average and, by common random numbers, in practice). Levels are searched from 0 upwards.

    Args:
        demand: demand model (as for :func:`kernels.simulate.simulate`).
        lead_times: lead-time distribution per supplier and the supplier of each unit.
        policy: the policy; its levels other than the searched one stay fixed.
        target: target in [0, 1], scalar or ``(n_units,)``.
        metric: ``fill_rate`` or ``cycle_service_level``.
        parameter: ``order_up_to``, ``reorder_point`` or ``shift``.
        n_periods: periods per path.
        n_paths: paths per unit.
        seed: integer seed; the same numbers serve every candidate level.
        lost_sales: unserved demand is lost instead of backordered.
        initial_net_inventory: ``(n_units,)``; default the candidate level's full start.
        open_orders: ``(n_units, k)``, column ``j`` arriving at the start of period ``j``.
        burn_in: leading periods not counted.
        step: grid spacing of the level (> 0).
        upper: upper end of the search per unit (default from the demand over ``L_max + R`` periods,
            doubled until the target is met).

    Returns:
        A :class:`LevelResult` (figures from the final simulation at the chosen levels).
    """
    if parameter not in ("order_up_to", "reorder_point", "shift"):
        raise ValueError(f"parameter: expected order_up_to, reorder_point or shift; got {parameter!r}")
    _check_metric(metric)
    if not step > 0:
        raise ValueError(f"step: expected > 0; got {step!r}")
    n = demand.n_units
    tgt = _per_unit("target", target, n, 0.0, 1.0)
    xp = get_array_module(demand.p1, policy.order_up_to)
    R = np.asarray(to_host(policy.review_period))
    mean_bar, var_max, mean_max, window = _window_moments(demand, lead_times, R)
    W = lead_times.max_lead_time + R
    base_s = np.asarray(to_host(policy.reorder_point))
    base_S = np.asarray(to_host(policy.order_up_to))
    anchor = base_S if policy.kind != "s_Q" else base_s

    def at(k: np.ndarray) -> tuple[Policy, np.ndarray]:
        x = k * step
        if parameter == "order_up_to":
            lv = {"order_up_to": x}
            level = x
        elif parameter == "reorder_point":
            lv = {"reorder_point": x}
            level = x
        else:
            lv = {"reorder_point": base_s + (x - anchor), "order_up_to": base_S + (x - anchor)}
            level = x
        return policy.with_levels(**{k2: xp.asarray(v) for k2, v in lv.items()}), level

    def metric_at(k: np.ndarray) -> tuple[np.ndarray, SimResult]:
        pol, _ = at(k)
        res = simulate(
            demand, lead_times, pol, n_periods=n_periods, n_paths=n_paths, seed=seed, lost_sales=lost_sales,
            initial_net_inventory=initial_net_inventory, open_orders=open_orders, burn_in=burn_in,
        )  # fmt: skip
        return np.asarray(to_host(getattr(res, metric))), res

    if upper is None:
        hi_val = mean_max * W + 4.0 * np.sqrt(var_max * W) + step
    else:
        hi_val = _per_unit("upper", upper, n)
    k_lo = np.zeros(n, dtype=np.int64)
    k_hi = np.ceil(hi_val / step).astype(np.int64)
    for _ in range(20):  # grow the bracket until the top meets the target
        m_hi, _res = metric_at(k_hi)
        short = m_hi < tgt
        if not short.any():
            break
        k_lo = np.where(short, k_hi, k_lo)
        k_hi = np.where(short, 2 * k_hi + 1, k_hi)
    while (k_lo < k_hi).any():
        mid = (k_lo + k_hi) // 2
        m_mid, _res = metric_at(mid)
        ok = m_mid >= tgt
        active = k_lo < k_hi
        k_hi = np.where(active & ok, mid, k_hi)
        k_lo = np.where(active & ~ok, mid + 1, k_lo)
    _, final = metric_at(k_hi)
    _, level = at(k_hi)
    if parameter == "reorder_point":
        ss = level - mean_bar * lead_times.mean()
    else:
        ss = level - mean_bar * window
    res = LevelResult(
        level=level, safety_stock=ss, fill_rate=to_host(final.fill_rate),
        cycle_service_level=to_host(final.cycle_service_level),
        expected_on_hand=to_host(final.expected_on_hand), p_stockout=to_host(final.p_stockout), target=tgt,
        metric=metric,
    )  # fmt: skip
    return _to_device(xp, res)


def warmup() -> None:
    """Compile (or load from the on-disk cache) the simulation and curve kernels."""
    from kernels.simulate import fixed_lead_time, poisson_demand  # noqa: PLC0415
    from kernels.simulate import warmup as simulate_warmup  # noqa: PLC0415

    simulate_warmup()
    n = 2
    optimize_order_up_to(
        poisson_demand(np.ones(n)), fixed_lead_time(1, n), target=0.9, n_periods=4, n_paths=2, seed=0
    )
