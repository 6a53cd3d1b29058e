"""Simulated order-up-to levels from forecast quantiles and lead-time distributions (Monte-Carlo, Numba).

For each unit the *protection interval* of an order placed now is the lead time ``L`` (drawn from the unit's
lead-time distribution) plus the review period ``R``. Each Monte-Carlo path draws ``L`` and then the demand of
every period ``t < L + R`` independently by inversion of that period's forecast quantile function (linear
between the given quantiles, an exponential upper tail matched to the last segment's density, zero floor;
uniforms on a 4096-point grid so that inversion is one table lookup), giving paired samples of the demand
until the order arrives, ``D_L``, and until the next order arrives, ``D_LR``.

With a periodic-review order-up-to policy and backorders, the units short in the cycle that the order covers
are ``(D_LR - S)^+ - (D_L - S)^+`` (Hadley & Whitin 1963; Silver, Pyke & Thomas 2017, ch. 7), so the fill rate
at level ``S`` is

    beta(S) = 1 - (E[(D_LR - S)^+] - E[(D_L - S)^+]) / E[D_LR - D_L]

estimated from the paths, and the order-up-to level is the least whole ``S`` with ``beta(S) >= target`` (found
by bisection; ``beta`` is non-decreasing in ``S``). Nothing here assumes normal demand or a fixed lead time,
which is where the classic ``z * RMSE * sqrt(L + R)`` rule goes wrong on intermittent demand and late
suppliers.

The fill rate only needs the two marginal distributions, so :func:`order_up_to_levels` may sort each row of
the samples in place (``in_place=True``, what the planner does to save memory and time); sorted samples then
also give ``E[min(D_LR, y)]`` for budget allocation by binary search.

Randomness: a counter-based SplitMix64 keyed by ``(seed, unit, path, period)``, so results do not depend on
the thread count or chunking; the seed comes from the caller's ``numpy.random.Generator`` (or is given).
"""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from kernels._rng import GOLDEN, fmix64

__all__ = [
    "ProtectionSamples",
    "UnitLevels",
    "effective_lot",
    "expected_served",
    "order_up_to_levels",
    "protection_samples",
    "warmup",
]

# The counter-based generator is the kernels' SplitMix64 finaliser (one implementation for the project);
# _M1/_M2 are its multipliers, reused here as salts for path keys.
_GOLDEN = GOLDEN
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_fmix = fmix64
_JIT = {"cache": True, "nogil": True}


_LUT_BITS = 12
_LUT_SIZE = 1 << _LUT_BITS  # uniforms are drawn on a 4096-point grid (midpoints): a table lookup, no search


def _inverse_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment and weight of each grid uniform for the quantile function through levels ``p``.

    Every case is ``v[lo] + w (v[lo + 1] - v[lo])``: inside, linear interpolation (0 <= w <= 1); below
    ``p[0]`` the first segment extended (w < 0, floored at zero demand later); above ``p[-1]`` an exponential
    tail whose density matches the last segment's, ``v[-1] + (v[-1] - v[-2]) (1 - p[-1]) / (p[-1] - p[-2])
    log((1 - p[-1]) / (1 - u))``, i.e. ``lo = Q - 2`` and ``w = 1 + that factor``.

    Returns:
        ``(lo, w)``, each (4096,).
    """
    u = (np.arange(_LUT_SIZE) + 0.5) / _LUT_SIZE
    q = p.shape[0]
    if q == 1:
        return np.zeros(_LUT_SIZE, dtype=np.int64), np.zeros(_LUT_SIZE)
    lo = np.clip(np.searchsorted(p, u, side="right") - 1, 0, q - 2).astype(np.int64)
    w = (u - p[lo]) / (p[lo + 1] - p[lo])
    top = u > p[-1]
    w[top] = 1.0 + (1.0 - p[-1]) / (p[-1] - p[-2]) * np.log((1.0 - p[-1]) / (1.0 - u[top]))
    return lo, w


@nb.njit(
    nb.void(
        nb.int64[:],
        nb.float64[:],
        nb.float32[:, :, :],
        nb.float64[:, :],
        nb.int64[:],
        nb.uint64,
        nb.int64[:],
        nb.float32[:, :],
        nb.float32[:, :],
    ),
    parallel=True,
    **_JIT,
)
def _sample(
    lut_lo, lut_w, values, lt_cdf, review, seed, unit_ids, out_l, out_lr
):  # pragma: no cover - compiled
    n, h, q = values.shape
    n_paths = out_l.shape[1]
    k = lt_cdf.shape[1]
    mask = np.uint64(_LUT_SIZE - 1)
    for i in nb.prange(n):
        ukey = _fmix(seed ^ _fmix(np.uint64(unit_ids[i]) + _GOLDEN))
        vi = values[i]
        cdf = lt_cdf[i]
        r = review[i]
        for path in range(n_paths):
            key = _fmix(ukey + np.uint64(path) * _M2)
            # lead time: from the path key's own bits (periods use counters 1, 2, ...)
            u = ((key >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
            lt = 0
            while lt < k - 1 and cdf[lt] < u:
                lt += 1
            d_l = 0.0
            d_lr = 0.0
            bits = np.uint64(0)
            for t in range(lt + r):
                slot = t % 5  # one 64-bit draw gives five 12-bit grid uniforms (counters 1, 2, ...)
                if slot == 0:
                    bits = _fmix(key + np.uint64(t // 5 + 1) * _GOLDEN)
                j = (bits >> np.uint64(12 * slot)) & mask
                lo = lut_lo[j]
                row = vi[min(t, h - 1)]
                d = row[lo] + lut_w[j] * (row[lo + 1] - row[lo])
                if d < 0.0:
                    d = 0.0
                if t < lt:
                    d_l += d
                d_lr += d
            out_l[i, path] = d_l
            out_lr[i, path] = d_lr


@nb.njit(nb.float64(nb.float32[:], nb.float64[:], nb.float64), **_JIT)
def _excess(sorted_d, csum_rev, y):  # pragma: no cover - compiled
    """E[(D - y)^+] from sorted samples and reverse cumulative sums (csum_rev[j] = sum of sorted_d[j:])."""
    n = sorted_d.shape[0]
    j = np.searchsorted(sorted_d, y, side="right")
    return (csum_rev[j] - y * (n - j)) / n


_N_LOT = 4  # points of the uniform position-after-ordering grid when orders come in lots


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
    for g in range(_N_LOT):
        yy = y + (g + 0.5) / _N_LOT * lot
        acc += _excess(b, cb, yy) - _excess(a, ca, yy)
    return 1.0 - acc / _N_LOT / mean_r


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
def _levels(
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
        ca = np.zeros(m + 1)
        cb = np.zeros(m + 1)
        for j in range(m - 1, -1, -1):
            ca[j] = ca[j + 1] + a[j]
            cb[j] = cb[j + 1] + b[j]
        mean_r = (cb[0] - ca[0]) / m
        out_mean_lr[i] = cb[0] / m
        out_mean_r[i] = mean_r
        if mean_r <= 0.0:
            out_s[i] = 0.0
            out_fill_s[i] = 1.0
            out_fill_ip[i] = 1.0
        else:
            lo = 0.0
            hi = np.ceil(b[m - 1]) + 1.0
            while hi - lo > 1.0:  # least whole S with fill >= target; fill(hi) = 1 >= target always
                mid = np.floor((lo + hi) / 2.0)
                if _fill(a, ca, b, cb, mean_r, mid, lot[i]) >= target[i]:
                    hi = mid
                else:
                    lo = mid
            s = hi
            if _fill(a, ca, b, cb, mean_r, 0.0, lot[i]) >= target[i]:
                s = 0.0
            out_s[i] = s
            out_fill_s[i] = _fill(a, ca, b, cb, mean_r, s, lot[i])
            out_fill_ip[i] = min(max(_fill(a, ca, b, cb, mean_r, position[i], 0.0), 0.0), 1.0)
        out_onhand_s[i] = out_s[i] - cb[0] / m + _excess(b, cb, out_s[i])  # E[(S - D_LR)^+]
        cnt = m - np.searchsorted(a, position[i], side="right")
        out_p_stockout[i] = cnt / m


@dataclasses.dataclass(frozen=True)
class ProtectionSamples:
    """Paired Monte-Carlo samples of demand over the lead time and over lead time plus review.

    Attributes:
        d_l: (N, P) float32 demand until an order placed now arrives.
        d_lr: (N, P) float32 demand until the following order arrives.
        is_sorted: each row of both arrays is ascending (the pairing of paths is then gone).
    """

    d_l: np.ndarray
    d_lr: np.ndarray
    is_sorted: bool = False


@dataclasses.dataclass(frozen=True)
class UnitLevels:
    """Simulated policy levels and risks per unit, all (N,) float64.

    Attributes:
        order_up_to: least whole ``S`` whose simulated fill rate meets the target.
        fill_rate_at_level: simulated fill rate at ``S``.
        fill_rate_no_order: simulated fill rate if nothing is ordered (inventory position stays).
        stockout_probability: P(D_L > inventory position): a stockout before an order placed now can arrive.
        mean_protection_demand: E[D_LR].
        mean_review_demand: E[D_LR - D_L], demand per review cycle.
        expected_on_hand_at_level: E[(S - D_LR)^+], stock left when the next order arrives.
        quantile_levels: (K,) levels of the two quantile arrays below.
        protection_quantiles: (N, K) quantiles of D_LR.
        lead_time_quantiles: (N, K) quantiles of D_L (demand before an order placed now arrives).
    """

    order_up_to: np.ndarray
    fill_rate_at_level: np.ndarray
    fill_rate_no_order: np.ndarray
    stockout_probability: np.ndarray
    mean_protection_demand: np.ndarray
    mean_review_demand: np.ndarray
    expected_on_hand_at_level: np.ndarray
    quantile_levels: np.ndarray
    protection_quantiles: np.ndarray
    lead_time_quantiles: np.ndarray


def _check_quantiles(levels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.ascontiguousarray(levels, dtype=np.float64)
    v = np.asarray(values)
    if v.ndim != 3 or v.shape[2] != p.shape[0]:
        raise ValueError(f"quantile values: expected shape (N, H, {p.shape[0]}), got {v.shape}")
    if p.ndim != 1 or np.any(p <= 0) or np.any(p >= 1) or np.any(np.diff(p) <= 0):
        raise ValueError(f"quantile levels: expected increasing levels in (0, 1), got {p.tolist()}")
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not np.all(np.isfinite(v)):
        bad = np.argwhere(~np.isfinite(v))[0]
        raise ValueError(f"quantile values: non-finite value at unit {bad[0]}, period {bad[1]}")
    if np.any(np.diff(v, axis=2) < 0):
        v = np.maximum.accumulate(v, axis=2)  # crossing quantiles (common in raw model output) are sorted out
    return p, v


def protection_samples(
    levels: np.ndarray,
    values: np.ndarray,
    lead_time_pmf: np.ndarray,
    review: np.ndarray,
    n_paths: int,
    rng: np.random.Generator | int,
    *,
    unit_ids: np.ndarray | None = None,
) -> ProtectionSamples:
    """Draw paired demand samples over the lead time and over lead time plus review, per unit.

    Args:
        levels: (Q,) quantile levels in (0, 1), increasing.
        values: (N, H, Q) forecast quantiles per unit and future period (period 0 is the current one); periods
            beyond H reuse period H-1.
        lead_time_pmf: (N, K) probability of a lead time of 0..K-1 periods (rows sum to 1).
        review: (N,) review period in periods (>= 1).
        n_paths: P, Monte-Carlo paths per unit.
        rng: source of the seed (a Generator), or the seed itself (an int).
        unit_ids: (N,) global ids of the units (default 0..N-1): with the same seed a unit draws the same
            numbers whichever chunk or subset it is planned in.

    Returns:
        :class:`ProtectionSamples`.
    """
    p, v = _check_quantiles(levels, values)
    n = v.shape[0]
    pmf = np.asarray(lead_time_pmf, dtype=np.float64)
    if pmf.ndim != 2 or pmf.shape[0] != n:
        raise ValueError(f"lead_time_pmf: expected shape ({n}, K), got {pmf.shape}")
    if np.any(pmf < 0) or not np.allclose(pmf.sum(axis=1), 1.0, atol=1e-6):
        bad = int(np.flatnonzero((pmf < 0).any(axis=1) | ~np.isclose(pmf.sum(axis=1), 1.0, atol=1e-6))[0])
        raise ValueError(f"lead_time_pmf row {bad}: expected probabilities >= 0 summing to 1")
    review = np.array(np.broadcast_to(np.asarray(review, dtype=np.int64), (n,)))
    if np.any(review < 1):
        raise ValueError("review: expected review periods >= 1")
    cdf = np.ascontiguousarray(np.cumsum(pmf, axis=1))
    cdf[:, -1] = 1.0
    seed = np.uint64(rng if isinstance(rng, int | np.integer) else rng.integers(0, 2**63 - 1))
    ids = np.arange(n, dtype=np.int64) if unit_ids is None else np.ascontiguousarray(unit_ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"unit_ids: expected shape ({n},), got {ids.shape}")
    d_l = np.empty((n, n_paths), dtype=np.float32)
    d_lr = np.empty((n, n_paths), dtype=np.float32)
    lut_lo, lut_w = _inverse_table(p)
    _sample(lut_lo, lut_w, v, cdf, review, seed, ids, d_l, d_lr)
    return ProtectionSamples(d_l=d_l, d_lr=d_lr)


def order_up_to_levels(
    samples: ProtectionSamples,
    fill_target: np.ndarray,
    position: np.ndarray,
    lot_size: np.ndarray | None = None,
    quantile_levels: tuple[float, ...] = (0.05, 0.5, 0.9, 0.95),
    in_place: bool = False,
) -> UnitLevels:
    """Least order-up-to level meeting the fill-rate target, and risks at the current inventory position.

    Orders rounded up to packs and raised to an MOQ leave the inventory position after ordering above ``S``:
    with ``lot_size`` ``Q`` it is taken as uniform on ``[S, S + Q)`` (Hadley & Whitin's steady state for lot
    orders), so the lot's own cover counts towards the fill rate and ``S`` is not padded twice.

    Args:
        samples: from :func:`protection_samples`, (N, P) each.
        fill_target: (N,) or scalar fill-rate target in (0, 1).
        position: (N,) inventory position (on hand + on order - backorders - committed).
        lot_size: (N,) effective lot ``Q`` >= 0 (0: orders exactly reach ``S``); see :func:`effective_lot`.
        quantile_levels: levels of the demand quantiles reported (evidence, transfer shortfalls).
        in_place: sort the rows of ``samples`` in place instead of copying them; afterwards use
            ``dataclasses.replace(samples, is_sorted=True)``.

    Returns:
        :class:`UnitLevels`.
    """
    n = samples.d_l.shape[0]
    target = np.array(np.broadcast_to(np.asarray(fill_target, dtype=np.float64), (n,)))
    if np.any(target <= 0) or np.any(target >= 1):
        raise ValueError("fill_target: expected targets in (0, 1)")
    pos = np.ascontiguousarray(np.asarray(position, dtype=np.float64))
    lot = (
        np.zeros(n) if lot_size is None else np.array(np.broadcast_to(np.asarray(lot_size, np.float64), (n,)))
    )
    if np.any(lot < 0):
        raise ValueError("lot_size: expected lots >= 0")
    out = [np.empty(n) for _ in range(7)]
    ql = np.asarray(quantile_levels, dtype=np.float64)
    if np.any(ql < 0) or np.any(ql > 1):
        raise ValueError("quantile_levels: expected levels in [0, 1]")
    q_lr = np.empty((n, ql.shape[0]))
    q_l = np.empty((n, ql.shape[0]))
    if samples.is_sorted:
        d_l, d_lr = samples.d_l, samples.d_lr
    elif in_place:
        samples.d_l.sort(axis=1)
        samples.d_lr.sort(axis=1)
        d_l, d_lr = samples.d_l, samples.d_lr
    else:
        d_l, d_lr = np.sort(samples.d_l, axis=1), np.sort(samples.d_lr, axis=1)
    _levels(d_l, d_lr, target, pos, lot, *out, ql, q_lr, q_l)
    s, fill_s, fill_ip, p_so, mean_lr, mean_r, onhand = out
    return UnitLevels(
        order_up_to=s,
        fill_rate_at_level=fill_s,
        fill_rate_no_order=fill_ip,
        stockout_probability=p_so,
        mean_protection_demand=mean_lr,
        mean_review_demand=mean_r,
        expected_on_hand_at_level=onhand,
        quantile_levels=ql,
        protection_quantiles=q_lr,
        lead_time_quantiles=q_l,
    )


def effective_lot(pack: np.ndarray, moq: np.ndarray, mean_review_demand: np.ndarray) -> np.ndarray:
    """Effective lot ``Q`` of orders rounded to packs and raised to the MOQ, (N,).

    A review orders the demand since the last one (about ``mu_R``) rounded up to a pack, or the MOQ when that
    is more; the position after ordering then exceeds ``S`` by up to ``max(pack, MOQ - mu_R)``.
    """
    pack = np.asarray(pack, dtype=np.float64)
    return np.maximum(
        pack, np.asarray(moq, dtype=np.float64) - np.asarray(mean_review_demand, dtype=np.float64)
    )


@nb.njit(nb.void(nb.float32[:, :], nb.int64[:], nb.float64[:], nb.float64[:]), parallel=True, **_JIT)
def _served(d_lr, unit_of, y, out):  # pragma: no cover - compiled
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
def _served_sorted(d_lr, units, starts, y, out):  # pragma: no cover - compiled
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


def expected_served(samples: ProtectionSamples, unit_of: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Expected units served over the protection interval, ``E[min(D_LR, y)]``, concave in ``y``.

    Args:
        samples: (N, P) protection samples (sorted rows make it O(log P) per query).
        unit_of: (M,) unit of each query.
        y: (M,) stock level (inventory position after the order).

    Returns:
        (M,) float64.
    """
    unit_of = np.ascontiguousarray(unit_of, dtype=np.int64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    out = np.empty(unit_of.shape[0])
    if samples.is_sorted and unit_of.shape[0]:
        grouped = bool(np.all(unit_of[1:] >= unit_of[:-1]))  # the planner's increments already are
        order = np.arange(unit_of.shape[0]) if grouped else np.argsort(unit_of, kind="stable")
        uo = unit_of[order]
        starts = np.flatnonzero(np.concatenate(([True], uo[1:] != uo[:-1])))
        units = uo[starts]
        starts = np.append(starts, uo.shape[0]).astype(np.int64)
        tmp = np.empty_like(out)
        _served_sorted(samples.d_lr, units.astype(np.int64), starts, y[order], tmp)
        out[order] = tmp
    else:
        _served(samples.d_lr, unit_of, y, out)
    return out


def warmup() -> None:
    """Compile the kernels on a tiny problem (call once at start-up, not on a user's first request)."""
    rng = np.random.default_rng(0)
    vals = np.ones((2, 2, 3), dtype=np.float32) * np.array([0.0, 1.0, 2.0], dtype=np.float32)
    smp = protection_samples(
        np.array([0.1, 0.5, 0.9]), vals, np.array([[0.0, 1.0], [0.5, 0.5]]), np.array([1, 1]), 8, rng
    )
    order_up_to_levels(smp, 0.9, np.zeros(2))
    expected_served(smp, np.array([0, 1]), np.array([1.0, 2.0]))
