"""Monte-Carlo simulation of periodic-review inventory, per planning unit.

Every unit is simulated over ``n_paths`` independent demand and lead-time paths of ``n_periods`` periods
under its own demand distribution (forecast quantiles or Poisson / negative binomial / gamma / normal), its
supplier's lead-time distribution (empirical or parametric; orders may cross) and its policy ((R,S),
(R,s,S), (R,s,nQ) or min/max), with backorders or lost sales, starting from its net inventory and open
orders. The kernels keep O(1) state per path and O(units) memory in all; the backend (Numba on the CPU,
CuPy on a CUDA GPU) is chosen from the input arrays, and a seed gives the same result on any thread count.

Timing convention (one period ``t = 0, 1, ..., n_periods - 1``):

1. **Receive**: every order due in period ``t`` arrives at its start and is added to the net inventory
   (backorders are served first, implicitly, since net inventory = on-hand - backorders).
2. **Review**: if ``t % R == 0`` the inventory position ``IP = net inventory + on order`` is compared with
   the policy and an order ``q`` may be placed. Its lead time ``L >= 0`` is drawn; it arrives at the start of
   period ``t + L`` (step 1 of that period), so an order with ``L = 0`` serves the demand of ``t`` itself.
3. **Demand** ``D_t`` occurs and is served from on-hand stock; the unserved part ``B_t`` is backordered
   (net inventory goes negative) or lost.
4. **Count**: end-of-period on-hand, backorders, stockouts (``B_t > 0`` or backorders outstanding).

Hence an order placed at review ``t`` is the last one to arrive before period ``t + L + R``: it must
cover the demand of the ``L + R`` periods ``t, ..., t + L + R - 1`` (the *protection interval*). For
normal demand, a fixed lead time and backorders the optimal order-up-to level for a cycle service level
``alpha`` is ``S* = mu * (L + R) + z_alpha * sigma * sqrt(L + R)`` - *not* over ``L`` periods and not over
``L + 1`` when ``R > 1``; with ``R = 1`` it is ``L + 1`` periods. (stockpyl's optimiser and simulator use
different conventions here, see issue 6; ours are the same in the simulator and the optimisers.)

Statistics are counted from period ``burn_in`` on (``burn_in = 0`` answers "from today's state";
``burn_in >= L_max + R`` with a full start answers "in steady state"):

* ``cycle_service_level``: fraction of review cycles ``[kR, (k+1)R)`` with ``kR >= burn_in`` without a
  stockout. With backorders, a fixed lead time a multiple of ``R`` and steady state this is
  ``P(D over L + R <= S)``.
* ``fill_rate``: 1 - (demand not served from stock on arrival) / (demand), totals over paths.
* ``p_stockout``: probability of at least one stockout period within the counted horizon.
* ``expected_stockout_units``: mean unserved demand per path over the counted horizon.
* ``expected_on_hand``: mean end-of-period on-hand stock; ``expected_excess``: mean on-hand at the end of
  the horizon; ``expected_backorders``, ``expected_orders`` (count over the horizon),
  ``expected_order_quantity`` (units ordered over the horizon), ``expected_demand`` (over the horizon).

Example:
    >>> import numpy as np
    >>> from kernels.simulate import simulate, poisson_demand, uniform_lead_times, order_up_to_policy
    >>> n = 1000
    >>> res = simulate(
    ...     poisson_demand(np.full(n, 4.0)),
    ...     uniform_lead_times(2, 8, n),
    ...     order_up_to_policy(np.full(n, 40.0)),
    ...     n_periods=52, n_paths=500, seed=7,
    ... )
    >>> res.fill_rate.shape
    (1000,)

Memory: O(1) state per path and O(units) results; the inputs' alias tables take 8 bytes per support point
(about ``2 * (24 sd + 10)`` points for Poisson/negative binomial) per unit, or per unit and period when the
demand parameters vary by period.

The same call with CuPy arrays (``cupy.full(n, 4.0)``) runs on the GPU. Call :func:`warmup` once at
start-up (a Serve replica's constructor) so no request pays for compilation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from kernels._backend import get_array_module, to_host
from kernels._sampling import build_discrete_tables, build_pmf_tables
from kernels._simulate_cpu import STAT, simulate_cpu
from kernels._simulate_inputs import (
    DemandModel,
    LeadTimes,
    Policy,
    discretized_gamma_lead_times,
    empirical_lead_times,
    fixed_lead_time,
    gamma_demand,
    lead_times_from_pmf,
    min_max_policy,
    negative_binomial_demand,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    quantile_demand,
    s_Q_policy,
    s_S_policy,
    uniform_lead_times,
)

__all__ = [
    "DemandModel",
    "LeadTimes",
    "Policy",
    "SimResult",
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
    "simulate",
    "uniform_lead_times",
    "warmup",
]


_CHUNK_UNITS = 8


@dataclass(frozen=True)
class SimResult:
    """Per-unit results of :func:`simulate`; every array has shape ``(n_units,)`` on the input's device.

    Attributes:
        cycle_service_level: fraction of counted review cycles without a stockout.
        cycle_service_level_se: its Monte-Carlo standard error (from the per-path spread).
        fill_rate: fraction of demand served from stock on arrival (1 where there was no demand).
        fill_rate_se: its standard error (delta method for a ratio of path totals).
        p_stockout: probability of at least one stockout within the counted horizon.
        expected_stockout_units: mean unserved demand per path over the counted horizon.
        expected_on_hand: mean on-hand stock at the end of a counted period.
        expected_excess: mean on-hand stock at the end of the horizon.
        expected_backorders: mean backorders at the end of a counted period.
        expected_orders: mean number of orders placed per path over the counted horizon.
        expected_order_quantity: mean units ordered per path over the counted horizon.
        expected_demand: mean demand per path over the counted horizon.
        n_paths: paths simulated; n_periods: periods per path; burn_in: periods not counted.
    """

    cycle_service_level: Any
    cycle_service_level_se: Any
    fill_rate: Any
    fill_rate_se: Any
    p_stockout: Any
    expected_stockout_units: Any
    expected_on_hand: Any
    expected_excess: Any
    expected_backorders: Any
    expected_orders: Any
    expected_order_quantity: Any
    expected_demand: Any
    n_paths: int
    n_periods: int
    burn_in: int


def _seed(seed: int | np.random.Generator) -> np.uint64:
    if isinstance(seed, np.random.Generator):
        return np.uint64(seed.integers(0, 2**63))
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0 or a numpy Generator; got {seed!r}")
    return np.uint64(int(seed) % 2**64)


def _demand_tables(demand: DemandModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if demand.kind in ("poisson", "negative_binomial"):
        p1, p2 = to_host(demand.p1), to_host(demand.p2)
        return build_discrete_tables(demand.code, p1.ravel(), p2.ravel() if demand.code == 1 else None)
    return np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(2, np.uint32)


def _ring_capacity(max_lead: int, n_open: int) -> int:
    need = max(max_lead + 1, n_open, 1)
    return 1 << (need - 1).bit_length()


@dataclass(frozen=True)
class KernelArgs:
    """Everything a backend kernel needs, host arrays except the per-unit ones (device of the input)."""

    seed: np.uint64
    kind: int
    d_off: np.ndarray
    d_lo: np.ndarray
    d_tab: np.ndarray
    p1: Any
    p2: Any
    qx: Any
    qtau: Any
    lt_off: np.ndarray
    lt_lo: np.ndarray
    lt_tab: np.ndarray
    supplier: Any
    policy: Any
    s: Any
    S: Any
    Q: Any
    R: Any
    net0: Any
    open_orders: Any
    lost: int
    n_paths: int
    n_periods: int
    burn_in: int
    n_dper: int
    ring_cap: int


def prepare(
    demand: DemandModel,
    lead_times: LeadTimes,
    policy: Policy,
    *,
    n_periods: int,
    n_paths: int,
    seed: int | np.random.Generator,
    lost_sales: bool = False,
    initial_net_inventory: Any = None,
    open_orders: Any = None,
    burn_in: int = 0,
) -> tuple[Any, KernelArgs]:
    """Validate the inputs of :func:`simulate` and lay them out for a kernel; returns ``(xp, args)``."""
    if not isinstance(demand, DemandModel):
        raise TypeError("demand: expected a DemandModel (e.g. poisson_demand(mean))")
    if not isinstance(lead_times, LeadTimes):
        raise TypeError("lead_times: expected a LeadTimes (e.g. fixed_lead_time(2, n_units))")
    if not isinstance(policy, Policy):
        raise TypeError("policy: expected a Policy (e.g. order_up_to_policy(S))")
    for name, v, lo in (("n_periods", n_periods, 1), ("n_paths", n_paths, 1), ("burn_in", burn_in, 0)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name}: expected an integer >= {lo}; got {v!r}")
    if burn_in >= n_periods:
        raise ValueError(f"burn_in: must be below n_periods = {n_periods}; got {burn_in}")
    n = demand.n_units
    for name, m in (("lead_times.supplier", lead_times.supplier.shape[0]), ("policy", policy.n_units)):
        if m != n:
            raise ValueError(f"{name}: has {m} units but demand has {n}")
    if demand.n_dper not in (1, n_periods):
        raise ValueError(f"demand: has {demand.n_dper} periods of parameters; expected 1 or {n_periods}")
    xp = get_array_module(
        demand.p1, demand.values, lead_times.supplier, policy.order_up_to, initial_net_inventory, open_orders
    )
    if initial_net_inventory is None:
        initial_net_inventory = policy.order_up_to if policy.kind != "s_Q" else policy.reorder_point
    net0 = xp.ascontiguousarray(xp.asarray(initial_net_inventory, dtype=xp.float64))
    if net0.shape != (n,) or not bool(xp.isfinite(net0).all()):
        raise ValueError(f"initial_net_inventory: expected finite values of shape ({n},); got {net0.shape}")
    if open_orders is None:
        oo = xp.zeros((n, 0))
    else:
        oo = xp.ascontiguousarray(xp.asarray(open_orders, dtype=xp.float64))
        if oo.ndim != 2 or oo.shape[0] != n or not bool(xp.isfinite(oo).all()) or bool((oo < 0).any()):
            raise ValueError(
                f"open_orders: expected non-negative quantities of shape ({n}, k), column j arriving at the "
                f"start of period j; got shape {tuple(oo.shape)}"
            )
    if lost_sales and bool((net0 < 0).any()):
        raise ValueError("initial_net_inventory: must be >= 0 with lost sales (there are no backorders)")
    d_off, d_lo, d_tab = _demand_tables(demand)
    lt_off, lt_lo, lt_tab = build_pmf_tables(lead_times.pmf)
    qx = demand.values if demand.values is not None else xp.zeros((n, demand.n_dper, 2))
    qtau = demand.levels if demand.levels is not None else xp.asarray([0.25, 0.75])
    args = KernelArgs(
        _seed(seed), demand.code, d_off, d_lo, d_tab, demand.p1, demand.p2, qx, qtau, lt_off, lt_lo, lt_tab,
        lead_times.supplier, xp.full(n, policy.code, dtype=xp.int64), policy.reorder_point,
        policy.order_up_to, policy.order_quantity, policy.review_period, net0, oo, int(bool(lost_sales)),
        int(n_paths), int(n_periods), int(burn_in), demand.n_dper,
        _ring_capacity(lead_times.max_lead_time, oo.shape[1]),
    )  # fmt: skip
    return xp, args


def _w(x: np.ndarray) -> np.ndarray:
    """A C-contiguous writeable array (Numba's explicit signatures reject read-only views)."""
    return x if x.flags.c_contiguous and x.flags.writeable else np.array(x, order="C")


def run_kernel(xp: Any, a: KernelArgs) -> Any:
    """Per-unit statistic sums, shape ``(n_units, N_STAT)``, from the backend of ``xp``."""
    if xp is np:
        a = KernelArgs(**{k: _w(v) if isinstance(v, np.ndarray) else v for k, v in vars(a).items()})
        # dynamic scheduling in small chunks of units: on a shared machine a descheduled thread's units are
        # taken over by the others instead of holding up the whole call
        with numba.parallel_chunksize(_CHUNK_UNITS):
            return simulate_cpu(
                a.seed, a.kind, a.d_off, a.d_lo, a.d_tab, a.p1, a.p2, a.qx, a.qtau, a.lt_off, a.lt_lo,
                a.lt_tab, a.supplier, a.policy, a.s, a.S, a.Q, a.R, a.net0, a.open_orders, a.lost, a.n_paths,
                a.n_periods, a.burn_in, a.n_dper, a.ring_cap,
            )  # fmt: skip
    from kernels._simulate_gpu import simulate_gpu  # noqa: PLC0415 - GPU path only

    return simulate_gpu(a)


def summarize(xp: Any, sums: Any, n_paths: int, n_periods: int, burn_in: int) -> SimResult:
    """Turn per-unit sums (``(n_units, N_STAT)``) into a :class:`SimResult`."""
    P = float(n_paths)

    def col(name: str) -> Any:
        return sums[:, STAT[name]]

    dem, sh = col("demand"), col("short")
    mean_d = dem / P
    safe_d = xp.where(dem > 0, dem, 1.0)
    r = sh / safe_d
    fill = xp.where(dem > 0, 1.0 - r, 1.0)
    var_ratio = (col("short_sq") - 2 * r * col("short_demand") + r * r * col("demand_sq")) / P
    fill_se = xp.where(dem > 0, xp.sqrt(xp.maximum(var_ratio, 0.0) / P) / xp.where(dem > 0, mean_d, 1.0), 0.0)
    cyc = col("cycles") / P
    safe_c = xp.where(cyc > 0, cyc, 1.0)
    ok_frac = col("ok_cycles") / P / safe_c
    ok_var = col("ok_cycles_sq") / P / (safe_c * safe_c) - ok_frac * ok_frac
    counted = float(n_periods - burn_in)
    return SimResult(
        cycle_service_level=xp.where(cyc > 0, ok_frac, 1.0),
        cycle_service_level_se=xp.sqrt(xp.maximum(ok_var, 0.0) / P),
        fill_rate=fill,
        fill_rate_se=fill_se,
        p_stockout=col("stockout_paths") / P,
        expected_stockout_units=sh / P,
        expected_on_hand=col("on_hand") / (P * counted),
        expected_excess=col("final_on_hand") / P,
        expected_backorders=col("backorders") / (P * counted),
        expected_orders=col("orders") / P,
        expected_order_quantity=col("order_qty") / P,
        expected_demand=mean_d,
        n_paths=int(n_paths),
        n_periods=int(n_periods),
        burn_in=int(burn_in),
    )


def simulate(
    demand: DemandModel,
    lead_times: LeadTimes,
    policy: Policy,
    *,
    n_periods: int,
    n_paths: int,
    seed: int | np.random.Generator,
    lost_sales: bool = False,
    initial_net_inventory: Any = None,
    open_orders: Any = None,
    burn_in: int = 0,
) -> SimResult:
    """Simulate every unit's inventory under its policy and return per-unit service and stock figures.

    Args:
        demand: demand model for ``n_units`` units (see ``poisson_demand``, ``quantile_demand``, ...).
        lead_times: lead-time distribution of each unit's supplier.
        policy: replenishment policy and levels per unit.
        n_periods: periods per path (the horizon), ``T``.
        n_paths: Monte-Carlo paths per unit, ``P``.
        seed: integer seed (or a ``numpy.random.Generator`` to draw one from); the same seed gives the same
            numbers on any thread count and on both backends.
        lost_sales: unserved demand is lost instead of backordered.
        initial_net_inventory: shape ``(n_units,)``, on-hand minus backorders at the start of period 0;
            default ``S`` (``s`` for (s, Q)): a full start.
        open_orders: shape ``(n_units, k)``, quantities already on order, column ``j`` arriving at the start
            of period ``j``.
        burn_in: leading periods simulated but not counted (steady-state figures).

    Returns:
        A :class:`SimResult` of arrays of shape ``(n_units,)`` on the input's device.

    Raises:
        ValueError: an input has the wrong shape or values; the message names it.
        BackendError: inputs on different devices, or CuPy arrays without a usable GPU.
    """
    xp, a = prepare(
        demand, lead_times, policy, n_periods=n_periods, n_paths=n_paths, seed=seed, lost_sales=lost_sales,
        initial_net_inventory=initial_net_inventory, open_orders=open_orders, burn_in=burn_in,
    )  # fmt: skip
    return summarize(xp, run_kernel(xp, a), n_paths, n_periods, burn_in)


def warmup() -> None:
    """Compile (or load from the on-disk cache) every CPU kernel of the simulation and the optimisers."""
    n = 2
    for d in (
        poisson_demand(np.ones(n)),
        negative_binomial_demand(np.ones(n), np.ones(n)),
        normal_demand(np.ones(n), np.ones(n)),
        gamma_demand(np.ones(n), np.ones(n)),
        quantile_demand(np.tile([0.5, 1.0, 2.0], (n, 1)), [0.1, 0.5, 0.9]),
    ):
        simulate(
            d, fixed_lead_time(1, n), order_up_to_policy(np.full(n, 3.0)), n_periods=2, n_paths=1, seed=0
        )
        d.moments()
