"""Numba (CPU) backend of the policy simulation engine: every compiled loop of :mod:`kernels.policy`.

Reached only through the public functions of :mod:`kernels.policy`, :mod:`kernels.levels` and
:mod:`kernels.allocate`, which pick this module for NumPy arrays (and :mod:`kernels._policy_gpu` for CuPy
arrays). The CUDA source in :mod:`kernels._policy_gpu` is a line-by-line twin of these loops (the paths'
loop there runs one path per thread; here :func:`protection_paths` runs :data:`LANES` paths of a unit side
by side, with the same draws in the same order per path); a change here is a change there
(``tests/kernels/test_policy_gpu_source.py`` compiles the CUDA source on the host and compares bit for bit).

The paths' kernel lives in :mod:`kernels._paths_cpu` (re-exported here). Explicit signatures (compiled on
first use or by :func:`kernels.warmup`, cached on disk); the helpers without one are typed and inlined when a
kernel compiles. Numba's cache is keyed on a kernel's own source file, which is why every helper a kernel
inlines lives in its file.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from kernels._paths_cpu import protection_paths  # noqa: F401 - the backend's paths kernel

_JIT = {"cache": True, "nogil": True}

N_LOT = 4  # points of the uniform position-after-ordering grid when orders come in lots


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
