"""Numba kernel of the periodic-review inventory simulation (CPU backend).

One parallel loop over planning units; each unit runs its paths one after another and keeps only a few
scalars and a ring buffer of arrivals per path, so memory is O(units) and every unit's sums are added in the
same order whatever the thread count. The model and its timing convention are described in
``kernels/simulate.py``; the CUDA twin lives in ``kernels/_simulate_gpu.py``.

Speed (issue 6 benchmark): a path's random draws (and continuous demands) are computed first in a loop of
their own - the draws vectorise, and the serial inventory loop then has no hash and no out-of-line call, so
its sums stay in registers; the arrays are C-contiguous and the table/ring indices unsigned, so a table load
is one address computation. Each costs O(n_periods) scratch per unit being run, not per path.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from kernels._rng import draw, path_key
from kernels._sampling import gamma_draw, norm_ppf, open_uniform, quantile_inverse, sample_table
from kernels._jit import lazy_njit

__all__ = ["N_STAT", "STAT", "simulate_cpu"]

POLICY_RS = 0
POLICY_SS = 1
POLICY_SQ = 2
POLICY_MINMAX = 3

#: Columns of the per-unit sums returned by the kernels (sums over paths).
STAT = {
    "demand": 0,  # sum_p D_p (demand over the counted periods of path p)
    "short": 1,  # sum_p B_p (demand not served from stock on arrival)
    "short_sq": 2,
    "demand_sq": 3,
    "short_demand": 4,
    "ok_cycles": 5,  # sum_p (review cycles without a stockout)
    "ok_cycles_sq": 6,
    "cycles": 7,  # sum_p (review cycles counted)
    "stockout_paths": 8,  # paths with at least one stockout
    "on_hand": 9,  # sum_p sum_t on-hand at the end of period t
    "final_on_hand": 10,  # sum_p on-hand at the end of the horizon
    "backorders": 11,  # sum_p sum_t backorders at the end of period t
    "orders": 12,  # orders placed
    "order_qty": 13,  # units ordered
}
N_STAT = len(STAT)

_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

# every array is C-contiguous ([::1], see kernels.simulate._w): no stride multiply on every table load
_SIG = nb.float64[:, :](
    nb.uint64,  # seed
    nb.int64,  # demand kind
    nb.int64[::1],  # demand table offsets (n_units * n_dper + 1)
    nb.int64[::1],  # demand table lowest value (n_units * n_dper)
    nb.uint32[::1],  # demand tables
    nb.float64[:, ::1],  # p1 (n_units, n_dper): normal mean / gamma shape
    nb.float64[:, ::1],  # p2 (n_units, n_dper): normal sd / gamma scale
    nb.float64[:, :, ::1],  # quantile values (n_units, n_dper, m)
    nb.float64[::1],  # quantile levels (m,)
    nb.int64[::1],  # lead-time table offsets (n_suppliers + 1)
    nb.int64[::1],  # lead-time lowest value (n_suppliers,)
    nb.uint32[::1],  # lead-time tables
    nb.int64[::1],  # supplier of each unit (n_units,)
    nb.int64[::1],  # policy code (n_units,)
    nb.float64[::1],  # s: reorder point / min (n_units,)
    nb.float64[::1],  # S: order-up-to / max (n_units,)
    nb.float64[::1],  # Q: order quantity (n_units,)
    nb.int64[::1],  # R: review period (n_units,)
    nb.float64[::1],  # starting net inventory (n_units,)
    nb.float64[:, ::1],  # open orders: arrivals at the start of period k (n_units, n_open)
    nb.int64,  # lost sales (1) or backorders (0)
    nb.int64,  # n_paths
    nb.int64,  # n_periods
    nb.int64,  # burn-in periods (not counted)
    nb.int64,  # n_dper: demand parameters per period (n_periods) or constant (1)
    nb.int64,  # ring capacity (power of two > max lead time and >= n_open)
)


@nb.njit(cache=True, nogil=True, inline="always")
def period_demand(kind, x, t, i, n_dper, d_tab, d_off, d_lo, d_start, d_n, d_base, dv):
    """Period ``t``'s demand of unit ``i`` in an inventory loop (the simulator's and the cost-curve's).

    A table draw (Poisson / negative binomial: the unit's table ``d_start, d_n, d_base``, or row
    ``i * n_dper + t`` when tables vary by period) from the low 32 bits of ``x``, or the continuous demand
    drawn up front (``dv[t]``, kind >= 2).
    """
    if kind > 1:
        return dv[t]
    if n_dper > 1:
        r = i * n_dper + t
        d_start = d_off[r]
        d_n = (d_off[r + 1] - d_start) >> 1
        d_base = d_lo[r]
    return nb.float64(d_base + sample_table(d_tab, d_start, d_n, x & _LOW32))


@nb.njit(cache=True, nogil=True)
def continuous_demand(kind, key, u32, t, i, p1, p2, qx, qtau, tp):
    """Continuous demand (normal, gamma or quantile) of unit ``i`` in period ``t`` from uniform ``u32``."""
    if kind == 2:
        v = p1[i, tp] + p2[i, tp] * norm_ppf(open_uniform(u32))
        return v if v > 0.0 else 0.0
    if kind == 3:
        return gamma_draw(key, t, p1[i, tp], p2[i, tp], u32)
    return quantile_inverse(open_uniform(u32), qtau, qx[i, tp])


@lazy_njit(_SIG, cache=True, parallel=True, nogil=True)
def simulate_cpu(
    seed, kind, d_off, d_lo, d_tab, p1, p2, qx, qtau, lt_off, lt_lo, lt_tab, supplier, policy, s_lvl, S_lvl,
    Q, R, net0, open_orders, lost, n_paths, n_periods, burn_in, n_dper, ring_cap,
):  # fmt: skip
    """Per-unit sums of the simulation statistics, shape ``(n_units, N_STAT)`` (see ``STAT``)."""
    n_units = S_lvl.shape[0]
    n_open = open_orders.shape[1]
    mask = nb.uint64(ring_cap - 1)  # unsigned ring indices: no negative-index fix-up in the hot loop
    out = np.zeros((n_units, N_STAT))
    for i in nb.prange(n_units):
        ring = np.zeros(ring_cap)
        xs = np.empty(n_periods, np.uint64)  # the path's stream-0 draws
        dv = np.empty(n_periods)  # the path's continuous demands (kind >= 2)
        sup = supplier[i]
        lt_start = lt_off[sup]
        lt_n = (lt_off[sup + 1] - lt_start) >> 1
        lt_base = lt_lo[sup]
        pol = policy[i]
        s_i = s_lvl[i]
        S_i = S_lvl[i]
        Q_i = Q[i]
        R_i = R[i]
        open_total = 0.0
        for k in range(n_open):
            open_total += open_orders[i, k]
        acc = np.zeros(N_STAT)
        # review cycles [kR, (k+1)R) counted: those starting at or after burn_in (the same for every path)
        cycles = nb.float64((n_periods - 1) // R_i - (burn_in + R_i - 1) // R_i + 1)
        d_start = d_off[i]
        d_n = (d_off[i + 1] - d_start) >> 1
        d_base = d_lo[i]
        for p in range(n_paths):
            key = path_key(seed, i, p)
            # draws first, in a loop of their own: it vectorises (the draws are independent of the state),
            # which takes the hash off the serial inventory loop below
            for t in range(n_periods):
                xs[t] = draw(key, t, 0)
            # continuous demands also up front: the out-of-line sampler call (which clobbers every vector
            # register) then stays out of the inventory loop, whose sums can live in registers
            if kind > 1:
                for t in range(n_periods):
                    dv[t] = continuous_demand(
                        kind, key, xs[t] & _LOW32, t, i, p1, p2, qx, qtau, t if n_dper > 1 else 0
                    )
            for k in range(ring_cap):
                ring[k] = 0.0
            for k in range(n_open):
                ring[k] += open_orders[i, k]
            net = net0[i]
            ip = net + open_total  # inventory position = net inventory + on order
            dem = 0.0
            short_p = 0.0
            n_bad_per = 0.0  # counted periods with a stockout
            n_bad_cyc = 0.0  # counted cycles with a stockout (R > 1)
            cycle_bad = False
            on_hand_sum = 0.0
            net_sum = 0.0
            n_ord = 0.0
            q_sum = 0.0
            phase = 0
            for t in range(n_periods):
                x = xs[t]
                # 1. review (the policy sees the inventory position, which arrivals do not change, so
                # reviewing before receiving is the same; an order with L = 0 lands in this period's slot)
                if phase == 0:
                    q = 0.0
                    if pol == 0:
                        q = S_i - ip
                    elif pol == 1:
                        if ip <= s_i:
                            q = S_i - ip
                    elif pol == 2:
                        if ip <= s_i:
                            q = (np.floor((s_i - ip) / Q_i) + 1.0) * Q_i
                    elif ip < s_i:
                        q = S_i - ip
                    # branch-free: a zero order is placed and counted as none (demand-driven orders are
                    # zero after a period without demand, which a branch would mispredict)
                    q = max(q, 0.0)
                    ip += q
                    lt = lt_base + sample_table(lt_tab, lt_start, lt_n, x >> _S32)
                    ring[nb.uint64(t + lt) & mask] += q
                    if t >= burn_in:
                        n_ord += q > 0.0
                        q_sum += q
                # 2. receive (no branch: an empty slot adds zero)
                slot = nb.uint64(t) & mask
                net += ring[slot]
                ring[slot] = 0.0
                cur_phase = phase
                phase = 0 if phase == R_i - 1 else phase + 1
                # 3. demand
                d = period_demand(kind, x, t, i, n_dper, d_tab, d_off, d_lo, d_start, d_n, d_base, dv)
                avail = max(net, 0.0)
                served = min(d, avail)
                used = served if lost != 0 else d
                net -= used
                ip -= used
                # 4. count (branch-free sums; stockout = unserved demand or backorders outstanding)
                if t >= burn_in:
                    sh = d - served
                    dem += d
                    short_p += sh
                    bad = (sh > 0.0) | (net < 0.0)
                    n_bad_per += bad
                    net_sum += net
                    on_hand_sum += max(net, 0.0)
                    if R_i > 1:  # with R = 1 every counted period is a counted cycle: n_bad_per says it all
                        cycle_bad |= bad
                        if cur_phase == R_i - 1 or t == n_periods - 1:
                            if t - cur_phase >= burn_in:
                                n_bad_cyc += cycle_bad
                            cycle_bad = False
            ok = cycles - (n_bad_per if R_i == 1 else n_bad_cyc)
            acc[0] += dem
            acc[1] += short_p
            acc[2] += short_p * short_p
            acc[3] += dem * dem
            acc[4] += short_p * dem
            acc[5] += ok
            acc[6] += ok * ok
            acc[7] += cycles
            if n_bad_per > 0.0:
                acc[8] += 1.0
            acc[9] += on_hand_sum
            acc[10] += net if net > 0.0 else 0.0
            acc[11] += on_hand_sum - net_sum
            acc[12] += n_ord
            acc[13] += q_sum
        for k in range(N_STAT):
            out[i, k] = acc[k]
    return out
