"""Whole service curve of the (R, S) policy with backorders from one simulation (CPU backend, Numba).

Under an order-up-to policy with backorders and a full start (net inventory = inventory position = S at
period 0, nothing on order), every order equals the demand since the previous review, so neither orders nor
arrivals depend on ``S``: the net inventory is ``S - Z_t`` at the end of period ``t`` and ``S - Y_t`` before
its demand, with ``Z_t = Y_t + D_t`` independent of ``S``. One simulation in the frame ``S = 0`` therefore
gives, through histograms of ``Z``, ``Y``, the per-cycle maximum of ``Z`` and the per-path maximum of ``Z``,
every figure of :func:`kernels.simulate.simulate` at every level on a grid ``S = k h``:

* unserved demand ``B_t(S) = min(D_t, (Z_t - S)^+) = (Z_t - S)^+ - (Y_t - S)^+``;
* stockout in period ``t`` iff ``Z_t > S``; on-hand ``(S - Z_t)^+ = S - Z_t + (Z_t - S)^+``.

Bins are ``b = ceil(Z / h)`` so that ``Z > k h`` iff ``b > k``, and each bin keeps the count and the sum of
its values, so the figures are exact at grid levels (for integer demand with ``h = 1`` at every integer; the
division is a multiplication by ``1 / h``, exact for ``h`` a power of two, else off by at most one rounding
for values within an ulp of a grid point). Values beyond the last bin go to an overflow count and sum, still
exact. With the same seed these are the numbers :func:`simulate` returns for ``order_up_to_policy(S)`` (common
random numbers), and they are monotone in ``S`` sample by sample, so the smallest level meeting a target never
falls as the target rises.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from kernels._rng import draw, path_key
from kernels._sampling import sample_table
from kernels._simulate_cpu import continuous_demand, period_demand
from kernels._jit import lazy_njit

__all__ = ["CURVE", "N_CURVE", "curve_cpu", "scan_curve"]

#: Output columns of the curve kernels (per unit).
CURVE = {
    "level": 0,  # smallest grid level meeting the target
    "fill_rate": 1,
    "cycle_service_level": 2,
    "on_hand": 3,  # mean end-of-period on-hand
    "short": 4,  # mean unserved demand per period
    "p_stockout": 5,
    "cost_level": 6,  # grid level of least holding + shortage cost
    "cost": 7,  # that cost per period (holding + shortage)
    "cost_fill_rate": 8,
    "cost_cycle_service_level": 9,
    "orders": 10,  # orders per period (independent of S)
    "demand": 11,  # mean demand per period
}
N_CURVE = len(CURVE)

_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

# the tables and per-unit inputs are C-contiguous ([::1]): no stride multiply on every table load
_SIG = nb.float64[:, :](
    nb.uint64, nb.int64, nb.int64[::1], nb.int64[::1], nb.uint32[::1], nb.float64[:, ::1], nb.float64[:, ::1],
    nb.float64[:, :, ::1], nb.float64[::1], nb.int64[::1], nb.int64[::1], nb.uint32[::1], nb.int64[::1],
    nb.int64[::1], nb.float64[:], nb.int64[:], nb.int64, nb.int64, nb.int64, nb.int64, nb.int64, nb.int64,
    nb.float64[:], nb.float64[:], nb.float64[:],
)  # fmt: skip


@nb.njit(cache=True, nogil=True)
def scan_curve(h, cntZ, sumZ, cntY, sumY, cntC, cntP, over, tot, metric, target, hold, pen, out, i):
    """Evaluate the curve on the grid (descending) and write unit ``i``'s row of ``out``.

    ``over`` holds the overflow (count, sum) of Z, Y, C, P; ``tot`` holds (sum D, sum Z, n periods,
    n cycles, n paths, max Z, orders).
    """
    B = cntZ.shape[0]
    dem, sum_z, n_per, n_cyc, n_paths, max_z, n_ord = tot[0], tot[1], tot[2], tot[3], tot[4], tot[5], tot[6]
    tcz, tsz, tcy, tsy, tcc, tcp = over[0], over[1], over[2], over[3], over[4], over[6]
    best_cost = np.inf
    found = False
    for k in range(B - 1, -1, -1):
        S = k * h
        short = (tsz - S * tcz) - (tsy - S * tcy)
        fill = 1.0 - short / dem if dem > 0.0 else 1.0
        csl = 1.0 - tcc / n_cyc if n_cyc > 0.0 else 1.0
        on_hand = (S * n_per - sum_z + (tsz - S * tcz)) / n_per
        m = fill if metric == 0 else csl
        if m >= target:
            found = True
            out[i, 0] = S
            out[i, 1] = fill
            out[i, 2] = csl
            out[i, 3] = on_hand
            out[i, 4] = short / n_per
            out[i, 5] = tcp / n_paths
        cost = hold * on_hand + pen * short / n_per
        if cost <= best_cost:
            best_cost = cost
            out[i, 6] = S
            out[i, 7] = cost
            out[i, 8] = fill
            out[i, 9] = csl
        # move bin k into the tails before evaluating level k - 1
        tcz += cntZ[k]
        tsz += sumZ[k]
        tcy += cntY[k]
        tsy += sumY[k]
        tcc += cntC[k]
        tcp += cntP[k]
    if not found:  # target above the grid: the largest Z seen meets every target
        S = math.ceil(max_z / h) * h
        out[i, 0] = S
        out[i, 1] = 1.0
        out[i, 2] = 1.0
        out[i, 3] = (S * n_per - sum_z) / n_per
        out[i, 4] = 0.0
        out[i, 5] = 0.0
    out[i, 10] = n_ord / n_per
    out[i, 11] = dem / n_per


@nb.njit(cache=True, nogil=True, inline="always")
def _bin(v, inv_h, B, cnt, sm, over, j):
    b = int(math.ceil(v * inv_h)) if v > 0.0 else 0
    if b < B:
        cnt[b] += 1.0
        sm[b] += v
    else:
        over[j] += 1.0
        over[j + 1] += v


@nb.njit(cache=True, nogil=True, inline="always")
def _bin_int(v, B, cnt, over, j):
    # integer-valued v >= 0 with h = 1: the bin is v itself and its sum is b * count (filled in afterwards)
    b = int(v)
    if b < B:
        cnt[b] += 1.0
    else:
        over[j] += 1.0
        over[j + 1] += v


@nb.njit(cache=True, nogil=True, inline="always")
def _bin_count(v, inv_h, B, cnt, over, j):
    b = int(math.ceil(v * inv_h)) if v > 0.0 else 0
    if b < B:
        cnt[b] += 1.0
    else:
        over[j] += 1.0


@lazy_njit(_SIG, cache=True, parallel=True, nogil=True)
def curve_cpu(
    seed, kind, d_off, d_lo, d_tab, p1, p2, qx, qtau, lt_off, lt_lo, lt_tab, supplier, R, step, n_bins,
    n_paths, n_periods, burn_in, n_dper, ring_cap, metric, target, hold, pen,
):  # fmt: skip
    """Per-unit curve results, shape ``(n_units, N_CURVE)`` (see ``CURVE``)."""
    n_units = R.shape[0]
    mask = nb.uint64(ring_cap - 1)  # unsigned ring indices: no negative-index fix-up in the hot loop
    out = np.zeros((n_units, N_CURVE))
    for i in nb.prange(n_units):
        B = n_bins[i]
        h = step[i]
        cntZ = np.zeros(B)
        sumZ = np.zeros(B)
        cntY = np.zeros(B)
        sumY = np.zeros(B)
        cntC = np.zeros(B)
        cntP = np.zeros(B)
        over = np.zeros(8)
        tot = np.zeros(7)
        ring = np.zeros(ring_cap)
        xs = np.empty(n_periods, np.uint64)  # the path's stream-0 draws
        dv = np.empty(n_periods)  # the path's continuous demands (kind >= 2)
        sup = supplier[i]
        lt_start = lt_off[sup]
        lt_n = (lt_off[sup + 1] - lt_start) >> 1
        lt_base = lt_lo[sup]
        R_i = R[i]
        d_start = d_off[i]
        d_n = (d_off[i + 1] - d_start) >> 1
        d_base = d_lo[i]
        inv_h = 1.0 / h
        int_bins = kind <= 1 and h == 1.0  # discrete demand on the unit grid: counts suffice
        dem_s = 0.0
        z_s = 0.0
        max_z = 0.0
        n_ord = 0.0
        n_cyc = 0.0
        for p in range(n_paths):
            key = path_key(seed, i, p)
            # draws first, in a loop of their own: it vectorises (the draws are independent of the state),
            # which takes the hash off the serial inventory loop below
            for t in range(n_periods):
                xs[t] = draw(key, t, 0)
            if kind > 1:  # continuous demands up front too: no out-of-line call in the inventory loop
                for t in range(n_periods):
                    dv[t] = continuous_demand(
                        kind, key, xs[t] & _LOW32, t, i, p1, p2, qx, qtau, t if n_dper > 1 else 0
                    )
            for k in range(ring_cap):
                ring[k] = 0.0
            net = 0.0  # relative to S
            ip = 0.0
            phase = 0
            cmax = 0.0
            pmax = 0.0
            for t in range(n_periods):
                x = xs[t]
                if phase == 0:  # review first, then receive: as in simulate_cpu, branch-free orders
                    q = max(-ip, 0.0)
                    ip += q
                    lt = lt_base + sample_table(lt_tab, lt_start, lt_n, x >> _S32)
                    ring[nb.uint64(t + lt) & mask] += q
                    if t >= burn_in:
                        n_ord += q > 0.0
                slot = nb.uint64(t) & mask
                net += ring[slot]
                ring[slot] = 0.0
                cur_phase = phase
                phase = 0 if phase == R_i - 1 else phase + 1
                d = period_demand(kind, x, t, i, n_dper, d_tab, d_off, d_lo, d_start, d_n, d_base, dv)
                y = -net
                net -= d
                ip -= d
                if t >= burn_in:
                    z = -net
                    dem_s += d
                    z_s += z
                    if int_bins:
                        _bin_int(z, B, cntZ, over, 0)
                        _bin_int(y, B, cntY, over, 2)
                    else:
                        _bin(z, inv_h, B, cntZ, sumZ, over, 0)
                        _bin(y, inv_h, B, cntY, sumY, over, 2)
                    pmax = max(pmax, z)
                    if R_i > 1:  # with R = 1 a cycle is a period: the cycle maxima are the Z histogram
                        cmax = max(cmax, z)
                        if cur_phase == R_i - 1 or t == n_periods - 1:
                            if t - cur_phase >= burn_in:
                                n_cyc += 1.0
                                _bin_count(cmax, inv_h, B, cntC, over, 4)
                            cmax = 0.0
            _bin_count(pmax, inv_h, B, cntP, over, 6)
            max_z = max(max_z, pmax)
        if int_bins:
            for b in range(B):
                sumZ[b] = b * cntZ[b]
                sumY[b] = b * cntY[b]
        if R_i == 1:
            cntC[:] = cntZ
            over[4] = over[0]
            n_cyc = n_paths * (n_periods - burn_in)
        tot[0] = dem_s
        tot[1] = z_s
        tot[2] = n_paths * (n_periods - burn_in)
        tot[3] = n_cyc
        tot[4] = n_paths
        tot[5] = max_z
        tot[6] = n_ord
        scan_curve(
            h, cntZ, sumZ, cntY, sumY, cntC, cntP, over, tot, metric, target[i], hold[i], pen[i], out, i
        )
    return out
