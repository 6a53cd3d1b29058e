"""Numba (CPU) backend of the policy simulation engine: every compiled loop of :mod:`kernels.policy`.

Reached only through the public functions of :mod:`kernels.policy`, :mod:`kernels.levels` and
:mod:`kernels.allocate`, which pick this module for NumPy arrays (and :mod:`kernels._policy_gpu` for CuPy
arrays). The CUDA source in :mod:`kernels._policy_gpu` is a line-by-line twin of these loops (the paths'
loop there runs one path per thread; here :func:`protection_paths` runs :data:`LANES` paths of a unit side
by side, with the same draws in the same order per path); a change here is a change there
(``tests/kernels/test_policy_gpu_source.py`` compiles the CUDA source on the host and compares bit for bit).

Random numbers: SplitMix64 (Steele, Lea & Flood 2014) used counter-based: a unit key
``fmix(seed ^ fmix(unit_id + GOLDEN))``, a path key ``fmix(unit_key + path * M2)``, and draw ``c`` of a path
``fmix(path_key + c * GOLDEN)``, so results do not depend on the thread count, the chunking or the backend.

Explicit signatures (compiled on first use or by :func:`kernels.policy.warmup`, cached on disk); the helpers
without one are typed and inlined when a kernel compiles. Numba's cache is keyed on this file's source, which
is why every helper a kernel inlines lives here.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from kernels._jit import lazy_njit

#: Weyl increment of SplitMix64 (2**64 / golden ratio, odd).
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
# _M2 is one of SplitMix64's multipliers, reused as the salt of path keys.
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_JIT = {"cache": True, "nogil": True}

LUT_BITS = 12
LUT_SIZE = 1 << LUT_BITS  # quantile draws use a 4096-point uniform grid (midpoints): a lookup, no search
HISTORY = 0  # kernel mode: bootstrap of a history pool x factor
QUANTILES = 1  # kernel mode: inversion of forecast quantiles
N_LOT = 4  # points of the uniform position-after-ordering grid when orders come in lots


@nb.njit(**_JIT)
def _fmix(z):  # pragma: no cover - compiled
    """SplitMix64 finaliser (Stafford's variant 13): a bijective 64-bit mixer."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


# ---- protection-interval paths (kernels.policy.policy_samples) ----


@nb.njit(nb.float64(nb.uint64), **_JIT)
def _unit_uniform(bits):  # pragma: no cover - compiled
    return ((bits >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@nb.njit(nb.float64(nb.uint64, nb.float64), **_JIT)
def _mean_multiplier(key, se):  # pragma: no cover - compiled
    """``max(1 + se * z, 0)`` with ``z`` standard normal (Box-Muller from the path key's counter 0 draw)."""
    if se <= 0.0:
        return 1.0
    bits = _fmix(key)
    u1 = ((bits >> np.uint64(32)) + 0.5) * (1.0 / 4294967296.0)
    u2 = ((bits & np.uint64(0xFFFFFFFF)) + 0.5) * (1.0 / 4294967296.0)
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return max(1.0 + se * z, 0.0)


#: Paths simulated side by side per unit: the lanes of the loops below, which compile to vector code.
LANES = 64


@nb.njit(inline="always", **_JIT)
def _period_demand(kind, bits, i, j, src):  # pragma: no cover - compiled
    """Unit ``i``'s demand in a period distributed as future period ``j``'s, from the 64 random ``bits``.

    ``src`` is ``(pool, m, factor, lut_lo, lut_w, values)``. History: pool entry ``(bits_hi * m) >> 32``
    (Lemire's multiply-shift, < m) times ``factor[i, j]``. Quantiles: the top 12 bits pick a grid uniform,
    inverted through period ``j``'s quantiles, ``v[lo] + w (v[lo + 1] - v[lo])`` floored at zero (one level:
    ``w`` is 0 and the upper neighbour is ``v[lo]`` itself, so the sum is ``v[lo]`` exactly).
    """
    pool, m, factor, lut_lo, lut_w, values = src
    if kind == HISTORY:
        e = ((bits >> np.uint64(32)) * m) >> np.uint64(32)
        return pool[i, e] * factor[i, min(j, factor.shape[1] - 1)]
    g = bits >> np.uint64(64 - LUT_BITS)
    lo = lut_lo[g]
    jj = min(j, values.shape[1] - 1)
    v0 = values[i, jj, lo]
    d = np.float64(v0) + lut_w[g] * (values[i, jj, min(lo + 1, values.shape[2] - 1)] - v0)
    return d if d > 0.0 else 0.0


@nb.njit(**_JIT)
def _lead_times(weight, target, k_max, n_lanes, acc, out):  # pragma: no cover - compiled
    """Per lane the first bin whose cumulative weight reaches ``target[p]``, or ``k_max``: the shared scan.

    ``weight`` is (K, LANES), each lane's urn (or its pmf). The cumulative weight is summed in bin order, as
    a scan that stops at the bin would sum it, and never falls, so the first bin reaching the target is the
    number of bins below it: the same lead time without a data-dependent branch.
    """
    for p in range(n_lanes):
        acc[p] = 0.0
        out[p] = 0
    for b in range(k_max):
        for p in range(n_lanes):
            acc[p] += weight[b, p]
            out[p] += np.int64(acc[p] < target[p])


@nb.njit(**_JIT)
def _cycle_lead_times(lanes, w, offset, k_max, urn, n_lanes):  # pragma: no cover - compiled
    """One earlier cycle of every lane: its order's lead time, a ball in the urn, whether it is still out.

    A lane whose cycle starts after ``k_max`` draws nothing (its counter and urn stay). Leaves ``take[p]``:
    the order is still out, so the lane draws the cycle's demand.
    """
    keys, cnt, r, first, idx, lt, take, tot, tgt, acc, d_l, d_lr = lanes
    for p in range(n_lanes):
        first[p] = r[p] + offset
        tgt[p] = _unit_uniform(_fmix(keys[p] + cnt[p] * _GOLDEN)) * tot[p]
    _lead_times(w, tgt, k_max, n_lanes, acc, lt)
    for p in range(n_lanes):
        live = first[p] <= k_max
        cnt[p] += np.uint64(1) if live else np.uint64(0)
        take[p] = live and lt[p] >= first[p]
        lt[p] = lt[p] if live else -1  # no draw: no ball added
    if urn:
        for p in range(n_lanes):
            tot[p] += 1.0 if lt[p] >= 0 else 0.0
        for b in range(k_max + 1):
            for p in range(n_lanes):
                w[b, p] += 1.0 if lt[p] == b else 0.0


@nb.njit(inline="always", **_JIT)
def _crossing_lanes(kind, i, src, lanes, w, r_len, k_max, urn, n_lanes):  # pragma: no cover - compiled
    """``X_t`` of each lane when every order draws its own lead time (see :func:`protection_paths`)."""
    keys, cnt, r, first, idx, lt, take, tot, tgt, acc, d_l, d_lr = lanes
    for p in range(n_lanes):  # the cycle's period looked at (a division only when R > 1)
        r[p] = np.int64((keys[p] >> np.uint64(32)) % np.uint64(r_len)) if r_len > 1 else 0
        d_lr[p] = _period_demand(kind, _fmix(keys[p] + _GOLDEN), i, 0, src)  # own demand, counter 1
        d_l[p] = 0.0
        cnt[p] = np.uint64(2)
    for j in range(1, r_len):  # the r earlier periods of the current cycle (always counted)
        for p in range(n_lanes):
            d = _period_demand(kind, _fmix(keys[p] + cnt[p] * _GOLDEN), i, j, src)
            own = j <= r[p]
            d_l[p] += d if own else 0.0
            cnt[p] += np.uint64(1) if own else np.uint64(0)
    # earlier cycles: outstanding when their order's own lead time L >= r + cycle * R + 1
    for q in range((k_max - 1) // r_len + 1):
        _cycle_lead_times(lanes, w, 1 + q * r_len, k_max, urn, n_lanes)
        n_take = 0  # only the lanes whose order is still out draw the cycle's demand
        for p in range(n_lanes):
            idx[n_take] = p
            n_take += take[p]
        for k in range(n_take):
            p = idx[k]
            c = cnt[p]
            x = d_l[p]
            for j in range(first[p], first[p] + r_len):
                x += _period_demand(kind, _fmix(keys[p] + c * _GOLDEN), i, j, src)
                c += np.uint64(1)
            d_l[p] = x
            cnt[p] = c
    for p in range(n_lanes):
        d_lr[p] += d_l[p]


@nb.njit(inline="always", **_JIT)
def _sequential_lanes(kind, i, src, lanes, w, r_len, k_max, n_lanes):  # pragma: no cover - compiled
    """``D_L`` and ``D_LR`` of each lane with one lead time per path (orders arrive in sequence)."""
    keys, cnt, r, first, idx, lt, take, tot, tgt, acc, d_l, d_lr = lanes
    for p in range(n_lanes):
        tgt[p] = _unit_uniform(keys[p]) * tot[p]
        d_l[p] = 0.0
        d_lr[p] = 0.0
    _lead_times(w, tgt, k_max, n_lanes, acc, lt)
    t_max = 0
    for p in range(n_lanes):
        t_max = max(t_max, lt[p])
    for t in range(t_max + r_len):
        step = np.uint64(t + 1) * _GOLDEN
        for p in range(n_lanes):
            d = _period_demand(kind, _fmix(keys[p] + step), i, t, src)
            d_l[p] += d if t < lt[p] else 0.0
            d_lr[p] += d if t < lt[p] + r_len else 0.0


@lazy_njit(
    nb.void(
        nb.int64,
        nb.float64[:, :],
        nb.int64[:],
        nb.float64[:, :],
        nb.int64[:],
        nb.float64[:],
        nb.float32[:, :, :],
        nb.float64[:, :],
        nb.int64[:],
        nb.boolean,
        nb.int64[:],
        nb.uint64,
        nb.int64[:],
        nb.float64[:],
        nb.boolean,
        nb.float32[:, :],
        nb.float32[:, :],
    ),
    parallel=True,
    **_JIT,
)
def protection_paths(
    kind,
    pool,
    pool_len,
    factor,
    lut_lo,
    lut_w,
    values,
    lt_weight,
    lt_k_max,
    urn,
    review,
    seed,
    unit_ids,
    mean_se,
    crossing,
    out_l,
    out_lr,
):  # pragma: no cover - compiled
    """The one Monte-Carlo loop of the protection interval; ``kind`` picks how a period's demand is drawn.

    Lead times are drawn from the weights ``lt_weight[i]`` (a pmf, or with ``urn`` Dirichlet parameters whose
    Polya urn gains one ball per lead time drawn in the path). Counters of a path key: the key itself gives
    the cycle position ``r`` (crossing) or the lead time (one per path); ``fmix(key)`` the mean multiplier;
    draws 1, 2, ... the periods' demands and (crossing) the earlier orders' lead times, in loop order.

    The paths of a unit run :data:`LANES` at a time, one per lane, step by step: a lane with no draw at a
    step adds 0.0 (exact: the sums are never -0.0) and keeps its counter, so each path is bit for bit the
    one a loop over a single path draws (the CUDA twin's), with no branch on a path's own lead times.
    """
    n, n_paths = out_l.shape
    for i in nb.prange(n):
        m = np.uint64(pool_len[i]) if kind == HISTORY else np.uint64(1)
        if m == 0:  # an empty history pool: no demand
            out_l[i, :] = 0.0
            out_lr[i, :] = 0.0
            continue
        src = (pool, m, factor, lut_lo, lut_w, values)
        ukey = _fmix(seed ^ _fmix(np.uint64(unit_ids[i]) + _GOLDEN))
        k_max = lt_k_max[i]  # no lead time beyond this bin (an urn only adds balls where there are some)
        w0 = lt_weight[i]
        w0_sum = w0.sum()
        w = np.empty((w0.shape[0], LANES))  # each lane's urn
        ints = np.empty((5, LANES), np.int64)
        floats = np.empty((5, LANES))
        keys = np.empty(LANES, np.uint64)
        cnt = np.empty(LANES, np.uint64)  # each lane's next counter
        take = np.empty(LANES, np.bool_)
        d_l, d_lr = floats[3], floats[4]
        tot, tgt, acc = floats[0], floats[1], floats[2]
        lanes = (keys, cnt, ints[0], ints[1], ints[2], ints[3], take, tot, tgt, acc, d_l, d_lr)
        for path0 in range(0, n_paths, LANES):
            n_lanes = min(LANES, n_paths - path0)
            for b in range(w0.shape[0]):
                for p in range(n_lanes):
                    w[b, p] = w0[b]
            for p in range(n_lanes):
                keys[p] = _fmix(ukey + np.uint64(path0 + p) * _M2)
                tot[p] = w0_sum
            if crossing:
                _crossing_lanes(kind, i, src, lanes, w, review[i], k_max, urn, n_lanes)
            else:
                _sequential_lanes(kind, i, src, lanes, w, review[i], k_max, n_lanes)
            se = mean_se[i]
            for p in range(n_lanes):  # a multiplier of 1 (no mean error) is left out: exact
                mult = _mean_multiplier(keys[p], se) if not se <= 0.0 else 1.0
                out_l[i, path0 + p] = d_l[p] * mult
                out_lr[i, path0 + p] = d_lr[p] * mult


# ---- levels and risks (kernels.levels) ----


@nb.njit(nb.float64(nb.float32[:], nb.float64[:], nb.float64), **_JIT)
def _excess(sorted_d, csum_rev, y):  # pragma: no cover - compiled
    """E[(D - y)^+] from sorted samples and reverse cumulative sums (csum_rev[j] = sum of sorted_d[j:])."""
    n = sorted_d.shape[0]
    j = np.searchsorted(sorted_d, y, side="right")
    return (csum_rev[j] - y * (n - j)) / n


@nb.njit(
    nb.float64(
        nb.float32[:], nb.float64[:], nb.float32[:], nb.float64[:], nb.float64, nb.float64, nb.float64
    ),
    **_JIT,
)
def _fill(a, ca, b, cb, mean_r, y, lot):  # pragma: no cover - compiled
    """Fill rate when the position after ordering is ``y`` (lot = 0) or uniform on [y, y + lot)."""
    if lot <= 0.0:
        return 1.0 - (_excess(b, cb, y) - _excess(a, ca, y)) / mean_r
    acc = 0.0
    for g in range(N_LOT):
        yy = y + (g + 0.5) / N_LOT * lot
        acc += _excess(b, cb, yy) - _excess(a, ca, yy)
    return 1.0 - acc / N_LOT / mean_r


@nb.njit(**_JIT)
def _suffix_sums(a, b):  # pragma: no cover - compiled
    """Reverse cumulative sums of two sorted sample rows: ``ca[j] = sum(a[j:])`` (length m + 1)."""
    m = a.shape[0]
    ca = np.zeros(m + 1)
    cb = np.zeros(m + 1)
    for j in range(m - 1, -1, -1):
        ca[j] = ca[j + 1] + a[j]
        cb[j] = cb[j + 1] + b[j]
    return ca, cb


@nb.njit(
    nb.float64(
        nb.float32[:], nb.float64[:], nb.float32[:], nb.float64[:], nb.float64, nb.float64, nb.float64
    ),
    **_JIT,
)
def _least_level(a, ca, b, cb, mean_r, lot, target):  # pragma: no cover - compiled
    """Least whole ``S >= 0`` whose fill rate (position uniform on [S, S + lot)) meets ``target``."""
    if _fill(a, ca, b, cb, mean_r, 0.0, lot) >= target:
        return 0.0
    lo = 0.0
    hi = np.ceil(b[b.shape[0] - 1]) + 1.0  # fill(hi) = 1 >= target always
    while hi - lo > 1.0:
        mid = np.floor((lo + hi) / 2.0)
        if _fill(a, ca, b, cb, mean_r, mid, lot) >= target:
            hi = mid
        else:
            lo = mid
    return hi


@nb.njit(nb.float64(nb.float32[:], nb.float64), **_JIT)
def _sorted_quantile(x, q):  # pragma: no cover - compiled
    pos = q * (x.shape[0] - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, x.shape[0] - 1)
    return x[lo] + (pos - lo) * (x[hi] - x[lo])


@nb.njit(
    nb.void(
        nb.float32[:, :],
        nb.float32[:, :],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:],
        nb.float64[:, :],
        nb.float64[:, :],
    ),
    parallel=True,
    **_JIT,
)
def levels(
    d_l,
    d_lr,
    target,
    position,
    lot,
    out_s,
    out_fill_s,
    out_fill_ip,
    out_p_stockout,
    out_mean_lr,
    out_mean_r,
    out_onhand_s,
    q_levels,
    out_q_lr,
    out_q_l,
):  # pragma: no cover - compiled
    """Rows of d_l and d_lr must be ascending (NumPy's vectorised sort is ~30x faster than Numba's here)."""
    n, m = d_l.shape
    for i in nb.prange(n):
        a = d_l[i]
        b = d_lr[i]
        for k in range(q_levels.shape[0]):
            out_q_lr[i, k] = _sorted_quantile(b, q_levels[k])
            out_q_l[i, k] = _sorted_quantile(a, q_levels[k])
        ca, cb = _suffix_sums(a, b)
        mean_r = (cb[0] - ca[0]) / m
        out_mean_lr[i] = cb[0] / m
        out_mean_r[i] = mean_r
        if mean_r <= 0.0:
            out_s[i] = 0.0
            out_fill_s[i] = 1.0
            out_fill_ip[i] = 1.0
        else:
            s = _least_level(a, ca, b, cb, mean_r, lot[i], target[i])
            out_s[i] = s
            out_fill_s[i] = _fill(a, ca, b, cb, mean_r, s, lot[i])
            out_fill_ip[i] = min(max(_fill(a, ca, b, cb, mean_r, position[i], 0.0), 0.0), 1.0)
        out_onhand_s[i] = out_s[i] - cb[0] / m + _excess(b, cb, out_s[i])  # E[(S - D_LR)^+]
        cnt = m - np.searchsorted(a, position[i], side="right")
        out_p_stockout[i] = cnt / m


@nb.njit(nb.void(nb.float32[:, :], nb.int64[:], nb.float64[:], nb.float64[:]), parallel=True, **_JIT)
def served(d_lr, unit_of, y, out):  # pragma: no cover - compiled
    m = unit_of.shape[0]
    n_paths = d_lr.shape[1]
    for j in nb.prange(m):
        row = d_lr[unit_of[j]]
        acc = 0.0
        for k in range(n_paths):
            acc += min(row[k], y[j])
        out[j] = acc / n_paths


@nb.njit(
    nb.void(nb.float32[:, :], nb.int64[:], nb.int64[:], nb.float64[:], nb.float64[:]), parallel=True, **_JIT
)
def served_sorted(d_lr, units, starts, y, out):  # pragma: no cover - compiled
    """Queries grouped by unit (``starts``: offsets into y per entry of ``units``); rows of d_lr ascending."""
    n_paths = d_lr.shape[1]
    csum = np.zeros(n_paths + 1)
    for g in nb.prange(units.shape[0]):
        row = d_lr[units[g]]
        csum = np.zeros(n_paths + 1)
        for k in range(n_paths):
            csum[k + 1] = csum[k] + row[k]
        for j in range(starts[g], starts[g + 1]):
            c = np.searchsorted(row, y[j], side="left")  # paths with demand below y are served in full
            out[j] = (csum[c] + y[j] * (n_paths - c)) / n_paths


# ---- service menus and group fill (kernels.levels) ----


@nb.njit(nb.float64(nb.float32[:], nb.float64[:], nb.float64, nb.float64), **_JIT)
def _on_hand(b, cb, s, lot):  # pragma: no cover - compiled
    """Expected stock left after the period's demand, ``E[(y - X)^+]`` with ``y`` uniform on [S, S + lot)."""
    m = b.shape[0]
    mean_b = cb[0] / m
    if lot <= 0.0:
        return s - mean_b + _excess(b, cb, s)
    acc = 0.0
    for g in range(N_LOT):
        y = s + (g + 0.5) / N_LOT * lot
        acc += y - mean_b + _excess(b, cb, y)
    return acc / N_LOT


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
def menu(d_l, d_lr, lot, taus, out_s, out_fill, out_onhand, out_mean_r):  # pragma: no cover - compiled
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
def choose(fill, on_hand, weight, group, lam, out_k, out_served):  # pragma: no cover - compiled
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


# ---- greedy allocation of increments (kernels.allocate) ----


@nb.njit("float64[:](int64[:], int64[:], float64[:])", cache=True)
def monotone_ratio(unit_of, step, ratio):  # pragma: no cover - compiled
    out = ratio.copy()
    for m in range(1, out.shape[0]):
        if unit_of[m] == unit_of[m - 1] and step[m] == step[m - 1] + 1 and out[m] > out[m - 1]:
            out[m] = out[m - 1]
    return out


@nb.njit(
    "int64(int64[:], int64[:], int64[:], float64[:,:], int64[:,:], float64[:], int64[:], int64[:])",
    cache=True,
)
def greedy(order, unit_of, step, weight, group, remaining, taken, blocked_by):  # pragma: no cover - compiled
    n_con = weight.shape[0]
    n_taken = 0
    for idx in order:
        i = unit_of[idx]
        if step[idx] != taken[i] or blocked_by[i] >= 0:
            continue
        refused = -1
        for c in range(n_con):
            g = group[c, idx]
            if g >= 0 and weight[c, idx] > remaining[g] + 1e-9:
                refused = c
                break
        if refused >= 0:
            blocked_by[i] = refused
            continue
        for c in range(n_con):
            g = group[c, idx]
            if g >= 0:
                remaining[g] -= weight[c, idx]
        taken[i] += 1
        n_taken += 1
    return n_taken
