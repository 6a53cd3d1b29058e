"""Numba (CPU) kernel of the engine's protection-interval paths (:func:`kernels.policy.policy_samples`).

Part of the CPU backend (:mod:`kernels._policy_cpu` re-exports :func:`protection_paths`); the CUDA source in
:mod:`kernels._policy_gpu` runs the same paths one per thread, with the same draws in the same order per
path (``tests/kernels/test_policy_gpu_source.py`` compiles it on the host and compares bit for bit).

Random numbers: SplitMix64 (Steele, Lea & Flood 2014) used counter-based: a unit key
``fmix(seed ^ fmix(unit_id + GOLDEN))``, a path key ``fmix(unit_key + path * M2)``, and draw ``c`` of a path
``fmix(path_key + c * GOLDEN)``, so results do not depend on the thread count, the chunking or the backend.

Speed (``benchmarks/simulate.py``): the paths of a unit run in lanes whose loops compile to vector code
(AVX-512 / AVX2: the mixer's 64-bit products, the uniform, the urn scan, the masked sums); only the demand
tables' reads are scalar (LLVM emits no gathers for this target). With R = 1 (the common review) every
earlier cycle is one fused loop (lead time, urn ball, still-out flag, next draw's index), the urn scan runs
over a fixed 8 or 16 bins so it unrolls and its running sums stay in registers, and with fixed lead-time
weights the scan is one comparison with the unit's cumulative weights. Every change keeps each path's
floating-point operations and their order, so the outputs are bit for bit those of a single-path loop.

The compiled entry point has an explicit signature (compiled on first use or by :func:`kernels.warmup`,
cached on disk); helpers are inlined when it compiles. Numba's cache is keyed on this file's source, which
is why every helper the kernel inlines lives here.
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


@nb.njit(**_JIT)
def _fmix(z):  # pragma: no cover - compiled
    """SplitMix64 finaliser (Stafford's variant 13): a bijective 64-bit mixer."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


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
#: Units per task of the parallel loop: a task allocates its scratch once; tasks are handed out dynamically
#: (``chunksize=1``), so a thread descheduled on a shared machine does not hold back the others.
UNITS_PER_TASK = 8
#: Urn scans run over a fixed number of bins (8 or 16, the bins past ``k_max`` masked out) when ``k_max``
#: allows: a loop of constant length is unrolled, so each lane's running sum stays in a vector register.
_SCAN_BINS = (8, 16)
_S32 = np.uint64(32)
_S_LUT = np.uint64(64 - LUT_BITS)


@nb.njit(inline="always", **_JIT)
def _draw_index(kind, bits, m):  # pragma: no cover - compiled
    """A draw's table index from its 64 random ``bits``.

    History: pool entry ``(bits_hi * m) >> 32`` (Lemire's multiply-shift, < m); quantiles: the top 12 bits
    (a point of the 4096-point uniform grid).
    """
    if kind == HISTORY:
        return ((bits >> _S32) * m) >> _S32
    return bits >> _S_LUT


@nb.njit(inline="always", **_JIT)
def _next_indices(kind, keys, cnt, m, idx, n_lanes):  # pragma: no cover - compiled
    """Each lane's draw at its counter ``cnt[p]``, as a table index (vector code)."""
    for p in range(n_lanes):
        idx[p] = _draw_index(kind, _fmix(keys[p] + cnt[p] * _GOLDEN), m)


@nb.njit(inline="always", **_JIT)
def _demand_at(kind, i, j, tabs, idx, out, n_lanes):  # pragma: no cover - compiled
    """Unit ``i``'s demand in a period distributed as future period ``j`` (the same for every lane).

    ``tabs`` is ``(pool, factor, lut_lo, lut_w, qa, qs)``. History: pool entry ``idx[p]`` times
    ``factor[i, j]``. Quantiles: grid point ``g = idx[p]`` inverted through period ``j``'s quantiles,
    ``v[lo] + w (v[lo + 1] - v[lo])`` floored at zero, with ``qa[j, lo] = v[lo]`` and ``qs[j, lo]`` the
    float32 step (0 past the last level, so one level gives ``v[lo]`` exactly). The table reads are
    scalar code (no gathers on this target); the loops around them are vector code.
    """
    pool, factor, lut_lo, lut_w, qa, qs = tabs
    if kind == HISTORY:
        fac = factor[i, min(j, factor.shape[1] - 1)]
        row = pool[i]
        for p in range(n_lanes):
            out[p] = row[idx[p]] * fac
    else:
        jj = min(j, qa.shape[0] - 1)
        a = qa[jj]
        s = qs[jj]
        for p in range(n_lanes):
            g = idx[p]
            lo = lut_lo[g]
            d = a[lo] + lut_w[g] * s[lo]
            out[p] = d if d > 0.0 else 0.0


@nb.njit(inline="always", **_JIT)
def _demand_by_lane(kind, i, j0, r, tabs, idx, out, n_lanes):  # pragma: no cover - compiled
    """As :func:`_demand_at` for period ``j0 + r[p]`` in lane ``p`` (R > 1: lanes at different positions)."""
    pool, factor, lut_lo, lut_w, qa, qs = tabs
    if kind == HISTORY:
        hf = factor.shape[1] - 1
        for p in range(n_lanes):
            out[p] = pool[i, idx[p]] * factor[i, min(j0 + r[p], hf)]
    else:
        hq = qa.shape[0] - 1
        for p in range(n_lanes):
            g = idx[p]
            jj = min(j0 + r[p], hq)
            lo = lut_lo[g]
            d = qa[jj, lo] + lut_w[g] * qs[jj, lo]
            out[p] = d if d > 0.0 else 0.0


@nb.njit(inline="always", **_JIT)
def _add_taken(acc, d, take, cnt, n_lanes):  # pragma: no cover - compiled
    """``acc[p] += d[p]`` and one counter step where ``take[p]`` (adding 0.0 elsewhere is exact)."""
    for p in range(n_lanes):
        t = take[p]
        acc[p] += d[p] if t else 0.0
        cnt[p] += np.uint64(1) if t else np.uint64(0)


@nb.njit(inline="always", **_JIT)
def _urn_scan(w, prev, tgt, k_max, n_bins, p):  # pragma: no cover - compiled
    """Lane ``p``'s lead time: the number of bins ``b < k_max`` whose cumulative weight is below ``tgt``.

    First adds the ball of the lane's previous draw (``prev[p]``, -1 for none) to its urn ``w`` (K, LANES).
    The cumulative weight is summed in bin order, as a scan that stops at the bin would sum it, and never
    falls, so the first bin reaching the target is the number of bins below it: the same lead time without
    a data-dependent branch. ``n_bins`` >= ``k_max`` bins are summed (a constant count unrolls).
    """
    acc = 0.0
    lt = 0
    pv = prev[p]
    for b in range(n_bins):
        wb = w[b, p] + (1.0 if pv == b else 0.0)
        w[b, p] = wb
        acc += wb
        lt += np.int64(acc < tgt and b < k_max)
    return lt


@nb.njit(inline="always", **_JIT)
def _cycle_r1(kind, m, q, lanes, w, c_q, k_max, urn, n_bins, n_lanes):  # pragma: no cover - compiled
    """Cycle ``q + 1`` back (R = 1) of every lane, in one vector loop.

    Adds the previous cycle's demand ``dd`` where that order was still out, draws this cycle's order's lead
    time (a ball in the urn; with fixed weights ``L >= q + 1`` exactly when ``c_q``, the cumulative weight
    of bins ``0..q``, is below the target), marks whether it is still out (``take``) and leaves the index of
    this cycle's demand draw in ``idx`` (the caller draws it for every lane).
    """
    keys, cnt, idx, r, lt, prev, take, tot, tgt, dd, d_l, d_lr = lanes
    first = q + 1
    for p in range(n_lanes):
        t = take[p]
        d_l[p] += dd[p] if t else 0.0
        c = cnt[p] + (np.uint64(1) if t else np.uint64(0))
        target = _unit_uniform(_fmix(keys[p] + c * _GOLDEN)) * tot[p]
        if urn:
            l_p = _urn_scan(w, prev, target, k_max, n_bins, p)
            prev[p] = l_p
            tot[p] += 1.0
            take[p] = l_p >= first
        else:
            take[p] = c_q < target
        c += np.uint64(1)
        cnt[p] = c
        idx[p] = _draw_index(kind, _fmix(keys[p] + c * _GOLDEN), m)


@nb.njit(inline="always", **_JIT)
def _crossing_r1(kind, i, tabs, m, lanes, w, cum, k_max, urn, n_lanes):  # pragma: no cover - compiled
    """``X_t`` of each lane with R = 1 (the common case): the cycles' loops fused (see _crossing_lanes)."""
    keys, cnt, idx, r, lt, prev, take, tot, tgt, dd, d_l, d_lr = lanes
    for p in range(n_lanes):
        cnt[p] = np.uint64(1)
    _next_indices(kind, keys, cnt, m, idx, n_lanes)
    _demand_at(kind, i, 0, tabs, idx, d_lr, n_lanes)  # own demand, counter 1
    for p in range(n_lanes):
        cnt[p] = np.uint64(2)
        d_l[p] = 0.0
        dd[p] = 0.0
        prev[p] = -1
        take[p] = False
    for q in range(k_max):
        if not urn:
            _cycle_r1(kind, m, q, lanes, w, cum[q], k_max, False, 0, n_lanes)
        elif k_max <= _SCAN_BINS[0]:
            _cycle_r1(kind, m, q, lanes, w, 0.0, k_max, True, _SCAN_BINS[0], n_lanes)
        elif k_max <= _SCAN_BINS[1]:
            _cycle_r1(kind, m, q, lanes, w, 0.0, k_max, True, _SCAN_BINS[1], n_lanes)
        else:
            _cycle_r1(kind, m, q, lanes, w, 0.0, k_max, True, k_max, n_lanes)
        _demand_at(kind, i, q + 1, tabs, idx, dd, n_lanes)
    for p in range(n_lanes):
        d_l[p] += dd[p] if take[p] else 0.0
        d_lr[p] += d_l[p]


@nb.njit(inline="always", **_JIT)
def _cycle_lead_times(lanes, w, cum, offset, k_max, urn, n_bins, n_lanes):  # pragma: no cover - compiled
    """One earlier cycle of every lane (any R): its order's lead time, a ball in the urn, whether it is out.

    Leaves ``take[p]``: the order is still out, so the lane draws the cycle's demand. A lane whose cycle
    starts after ``k_max`` draws nothing (its counter and urn stay).
    """
    keys, cnt, idx, r, lt, prev, take, tot, tgt, dd, d_l, d_lr = lanes
    for p in range(n_lanes):
        target = _unit_uniform(_fmix(keys[p] + cnt[p] * _GOLDEN)) * tot[p]
        first = r[p] + offset
        live = first <= k_max
        if urn:
            l_p = _urn_scan(w, prev, target, k_max, n_bins, p)
            prev[p] = l_p if live else -1
            tot[p] += 1.0 if live else 0.0
            take[p] = live and l_p >= first
        else:
            take[p] = live and cum[min(first, k_max) - 1] < target
        cnt[p] += np.uint64(1) if live else np.uint64(0)


@nb.njit(inline="always", **_JIT)
def _crossing_lanes(
    kind, i, tabs, m, lanes, w, cum, r_len, k_max, urn, n_lanes
):  # pragma: no cover - compiled
    """``X_t`` of each lane when every order draws its own lead time (see :func:`protection_paths`)."""
    keys, cnt, idx, r, lt, prev, take, tot, tgt, dd, d_l, d_lr = lanes
    for p in range(n_lanes):  # the cycle's period looked at
        r[p] = np.int64((keys[p] >> _S32) % np.uint64(r_len))
        cnt[p] = np.uint64(1)
        d_l[p] = 0.0
        prev[p] = -1
    _next_indices(kind, keys, cnt, m, idx, n_lanes)
    _demand_at(kind, i, 0, tabs, idx, d_lr, n_lanes)  # own demand, counter 1
    for p in range(n_lanes):
        cnt[p] = np.uint64(2)
    for j in range(1, r_len):  # the r earlier periods of the current cycle (always counted)
        for p in range(n_lanes):
            take[p] = j <= r[p]
        _next_indices(kind, keys, cnt, m, idx, n_lanes)
        _demand_at(kind, i, j, tabs, idx, dd, n_lanes)
        _add_taken(d_l, dd, take, cnt, n_lanes)
    # earlier cycles: outstanding when their order's own lead time L >= r + cycle * R + 1
    for q in range((k_max - 1) // r_len + 1):
        offset = 1 + q * r_len
        if not urn:
            _cycle_lead_times(lanes, w, cum, offset, k_max, False, 0, n_lanes)
        elif k_max <= _SCAN_BINS[0]:
            _cycle_lead_times(lanes, w, cum, offset, k_max, True, _SCAN_BINS[0], n_lanes)
        elif k_max <= _SCAN_BINS[1]:
            _cycle_lead_times(lanes, w, cum, offset, k_max, True, _SCAN_BINS[1], n_lanes)
        else:
            _cycle_lead_times(lanes, w, cum, offset, k_max, True, k_max, n_lanes)
        for jj in range(r_len):  # the cycle's R periods, drawn where its order is still out
            _next_indices(kind, keys, cnt, m, idx, n_lanes)
            _demand_by_lane(kind, i, offset + jj, r, tabs, idx, dd, n_lanes)
            _add_taken(d_l, dd, take, cnt, n_lanes)
    for p in range(n_lanes):
        d_lr[p] += d_l[p]


@nb.njit(inline="always", **_JIT)
def _sequential_lanes(kind, i, tabs, m, lanes, cum, r_len, k_max, n_lanes):  # pragma: no cover - compiled
    """``D_L`` and ``D_LR`` of each lane with one lead time per path (orders arrive in sequence)."""
    keys, cnt, idx, r, lt, prev, take, tot, tgt, dd, d_l, d_lr = lanes
    for p in range(n_lanes):
        tgt[p] = _unit_uniform(keys[p]) * tot[p]
        lt[p] = 0
        d_l[p] = 0.0
        d_lr[p] = 0.0
    for b in range(k_max):  # the lead time: bins whose cumulative weight is below the target
        c_b = cum[b]
        for p in range(n_lanes):
            lt[p] += np.int64(c_b < tgt[p])
    t_max = 0
    for p in range(n_lanes):
        t_max = max(t_max, lt[p])
    for t in range(t_max + r_len):
        step = np.uint64(t + 1) * _GOLDEN
        for p in range(n_lanes):
            idx[p] = _draw_index(kind, _fmix(keys[p] + step), m)
        _demand_at(kind, i, t, tabs, idx, dd, n_lanes)
        for p in range(n_lanes):
            d = dd[p]
            d_l[p] += d if t < lt[p] else 0.0
            d_lr[p] += d if t < lt[p] + r_len else 0.0


@nb.njit(inline="always", **_JIT)
def _quantile_steps(values, i, n_rows, qa, qs):  # pragma: no cover - compiled
    """Unit ``i``'s first ``n_rows`` periods of quantiles as ``qa = v[lo]`` and ``qs = v[lo + 1] - v[lo]``.

    The step is float32 arithmetic, as the inversion has always done it (``qs`` is 0 past the last level).
    """
    n_q = values.shape[2]
    for j in range(n_rows):
        for k in range(n_q):
            v0 = values[i, j, k]
            qa[j, k] = np.float64(v0)
            qs[j, k] = np.float64(values[i, j, min(k + 1, n_q - 1)] - v0)


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
    chunksize=1,
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
    one a loop over a single path draws (the CUDA twin's), with no branch on a path's own lead times. With
    fixed lead-time weights (no urn) the cumulative weights are summed once per unit, in the order a lane's
    scan sums them.
    """
    n, n_paths = out_l.shape
    n_k = lt_weight.shape[1]
    n_rows_q = values.shape[1] if kind != HISTORY else 1
    lut16 = lut_lo.astype(np.uint16) if kind != HISTORY else np.zeros(1, np.uint16)  # 8 KiB, not 32
    for task in nb.prange((n + UNITS_PER_TASK - 1) // UNITS_PER_TASK):
        w = np.zeros((max(n_k, _SCAN_BINS[1]), LANES))  # each lane's urn
        cum = np.empty(n_k)
        qa = np.empty((n_rows_q, values.shape[2]))
        qs = np.empty((n_rows_q, values.shape[2]))
        ints = np.empty((3, LANES), np.int64)
        uints = np.empty((3, LANES), np.uint64)
        floats = np.empty((5, LANES))
        take = np.empty(LANES, np.bool_)
        keys, cnt, idx = uints[0], uints[1], uints[2]  # path keys, next counters, draws' table indices
        tot, tgt, dd, d_l, d_lr = floats[0], floats[1], floats[2], floats[3], floats[4]
        lanes = (keys, cnt, idx, ints[0], ints[1], ints[2], take, tot, tgt, dd, d_l, d_lr)  # r, lt, prev
        for i in range(task * UNITS_PER_TASK, min(n, (task + 1) * UNITS_PER_TASK)):
            m = np.uint64(pool_len[i]) if kind == HISTORY else np.uint64(1)
            if m == 0:  # an empty history pool: no demand
                out_l[i, :] = 0.0
                out_lr[i, :] = 0.0
                continue
            ukey = _fmix(seed ^ _fmix(np.uint64(unit_ids[i]) + _GOLDEN))
            k_max = lt_k_max[i]  # no lead time beyond this bin (an urn only adds balls where there are some)
            w0 = lt_weight[i]
            w0_sum = w0.sum()
            acc = 0.0
            for b in range(n_k):  # in the order a lane's scan sums them
                acc += w0[b]
                cum[b] = acc
            r_len = review[i]
            n_rows = 1
            if kind != HISTORY:  # the periods a path can reach: k_max + R at most
                n_rows = min(n_rows_q, k_max + r_len + 1)
                _quantile_steps(values, i, n_rows, qa, qs)
            tabs = (pool, factor, lut16, lut_w, qa[:n_rows], qs[:n_rows])
            for path0 in range(0, n_paths, LANES):
                n_lanes = min(LANES, n_paths - path0)
                for p in range(n_lanes):
                    keys[p] = _fmix(ukey + np.uint64(path0 + p) * _M2)
                    tot[p] = w0_sum
                if crossing and urn:
                    for b in range(n_k):
                        for p in range(n_lanes):
                            w[b, p] = w0[b]
                if crossing and r_len == 1:
                    _crossing_r1(kind, i, tabs, m, lanes, w, cum, k_max, urn, n_lanes)
                elif crossing:
                    _crossing_lanes(kind, i, tabs, m, lanes, w, cum, r_len, k_max, urn, n_lanes)
                else:
                    _sequential_lanes(kind, i, tabs, m, lanes, cum, r_len, k_max, n_lanes)
                se = mean_se[i]
                for p in range(n_lanes):  # a multiplier of 1 (no mean error) is left out: exact
                    mult = _mean_multiplier(keys[p], se) if not se <= 0.0 else 1.0
                    out_l[i, path0 + p] = d_l[p] * mult
                    out_lr[i, path0 + p] = d_lr[p] * mult
