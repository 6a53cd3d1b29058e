"""Protection-interval demand by bootstrap of each unit's own history (no distribution assumed).

Where no forecast distribution is given, a unit's recent demand history *is* its demand distribution: for
intermittent and lumpy units (most weeks zero, skewed sizes) a resample of the observed periods keeps the
share of zero periods and the size distribution that a gamma or normal fit blurs. Each Monte-Carlo path draws
the lead time ``L`` from the unit's lead-time distribution, then the demand of every period ``t < L + R`` as
one period drawn with replacement from the unit's pool of past (non-promoted) periods, multiplied by that
future period's known factor (the promotion lift in promoted periods, 1 otherwise). The output is the same
paired :class:`planning._levels.ProtectionSamples` (demand until the order arrives, ``D_L``, and until the
next order arrives, ``D_LR``, the ``L + R`` convention of docs/timing.md), so
:func:`planning._levels.order_up_to_levels` turns it into the least order-up-to level meeting a fill-rate
target.

Randomness: the counter-based SplitMix64 of :mod:`planning._levels`, keyed by ``(seed, unit, path,
period)``, so results do not depend on the thread count or chunking.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from planning._levels import _GOLDEN, _M1, _M2, ProtectionSamples, _fmix

__all__ = ["bootstrap_protection_samples", "history_pool"]

_JIT = {"cache": True, "nogil": True}


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


@nb.njit(nb.float64(nb.uint64), **_JIT)
def _unit_uniform(bits):  # pragma: no cover - compiled
    return ((bits >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@nb.njit(nb.float64(nb.uint64, nb.float64), **_JIT)
def _gamma(key, a):  # pragma: no cover - compiled
    """Gamma(a, 1) from the counter stream ``key`` (Marsaglia & Tsang 2000; a < 1 boosted by U^(1/a))."""
    boost = 1.0
    c0 = np.uint64(1)
    if a < 1.0:
        boost = _unit_uniform(_fmix(key + c0 * _GOLDEN)) ** (1.0 / a)
        c0 += np.uint64(1)
        a += 1.0
    d = a - 1.0 / 3.0
    cc = 1.0 / np.sqrt(9.0 * d)
    for it in range(64):
        u1 = _unit_uniform(_fmix(key + (c0 + np.uint64(3 * it)) * _GOLDEN))
        u2 = _unit_uniform(_fmix(key + (c0 + np.uint64(3 * it + 1)) * _GOLDEN))
        x = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        v = (1.0 + cc * x) ** 3
        if v <= 0.0:
            continue
        u = _unit_uniform(_fmix(key + (c0 + np.uint64(3 * it + 2)) * _GOLDEN))
        if np.log(u) < 0.5 * x * x + d - d * v + d * np.log(v):
            return d * v * boost
    return d * boost  # not reached in practice (acceptance > 95% per try)


@nb.njit(
    nb.void(
        nb.float64[:, :],
        nb.int64[:],
        nb.float64[:, :],
        nb.float64[:, :],
        nb.int64[:],
        nb.uint64,
        nb.int64[:],
        nb.float64[:],
        nb.float32[:, :],
        nb.float32[:, :],
    ),
    parallel=True,
    **_JIT,
)
def _bootstrap(
    pool, pool_len, factor, lt_cdf, review, seed, unit_ids, mean_se, out_l, out_lr
):  # pragma: no cover
    n = pool.shape[0]
    h = factor.shape[1]
    k = lt_cdf.shape[1]
    n_paths = out_l.shape[1]
    for i in nb.prange(n):
        ukey = _fmix(seed ^ _fmix(np.uint64(unit_ids[i]) + _GOLDEN))
        m = np.uint64(pool_len[i])
        cdf = lt_cdf[i]
        r = review[i]
        for path in range(n_paths):
            key = _fmix(ukey + np.uint64(path) * _M2)
            u = ((key >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
            lt = 0
            while lt < k - 1 and cdf[lt] < u:
                lt += 1
            mult = _mean_multiplier(key, mean_se[i])
            d_l = 0.0
            d_lr = 0.0
            if m > 0:
                for t in range(lt + r):
                    bits = _fmix(key + np.uint64(t + 1) * _GOLDEN)
                    j = ((bits >> np.uint64(32)) * m) >> np.uint64(32)  # Lemire's multiply-shift, < m
                    d = pool[i, j] * factor[i, min(t, h - 1)] * mult
                    if t < lt:
                        d_l += d
                    d_lr += d
            out_l[i, path] = d_l
            out_lr[i, path] = d_lr


@nb.njit(
    nb.void(
        nb.float64[:, :],
        nb.int64[:],
        nb.float64[:, :],
        nb.float64[:, :],
        nb.int64[:],
        nb.uint64,
        nb.int64[:],
        nb.float64[:],
        nb.float64[:, :],
        nb.float32[:, :],
        nb.float32[:, :],
    ),
    parallel=True,
    **_JIT,
)
def _bootstrap_crossing(
    pool, pool_len, factor, lt_cdf, review, seed, unit_ids, mean_se, lt_alpha, out_y, out_x
):  # pragma: no cover
    n = pool.shape[0]
    h = factor.shape[1]
    k = lt_cdf.shape[1]
    n_paths = out_y.shape[1]
    for i in nb.prange(n):
        ukey = _fmix(seed ^ _fmix(np.uint64(unit_ids[i]) + _GOLDEN))
        m = np.uint64(pool_len[i])
        cdf = lt_cdf[i].copy()
        alpha = lt_alpha[i]
        draw_pmf = alpha.shape[0] == k
        r_len = review[i]
        for path in range(n_paths):
            key = _fmix(ukey + np.uint64(path) * _M2)
            if draw_pmf:  # this path's lead-time distribution: a draw from its Dirichlet posterior
                gkey = _fmix(key ^ _M1)
                acc = 0.0
                for b in range(k):
                    g = _gamma(gkey + np.uint64(b) * _M2, alpha[b]) if alpha[b] > 0.0 else 0.0
                    acc += g
                    cdf[b] = acc
                for b in range(k):
                    cdf[b] /= acc
                cdf[k - 1] = 1.0
            r = int((key >> np.uint64(32)) % np.uint64(r_len))  # period of the cycle this path looks at
            mult = _mean_multiplier(key, mean_se[i])
            c = np.uint64(1)
            y = 0.0
            d_t = 0.0
            if m > 0:
                # own demand (distance 0) and the r earlier periods of the current cycle (always counted)
                for j in range(r + 1):
                    bits = _fmix(key + c * _GOLDEN)
                    c += np.uint64(1)
                    d = pool[i, ((bits >> np.uint64(32)) * m) >> np.uint64(32)] * factor[i, min(j, h - 1)]
                    if j == 0:
                        d_t = d
                    else:
                        y += d
                # earlier cycles: outstanding when their order's own lead time L >= r + cycle * R + 1
                cyc = 0
                while r + cyc * r_len + 1 <= k - 1:
                    bits = _fmix(key + c * _GOLDEN)
                    c += np.uint64(1)
                    u = ((bits >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
                    lt = 0
                    while lt < k - 1 and cdf[lt] < u:
                        lt += 1
                    first = r + cyc * r_len + 1
                    if lt >= first:
                        for j in range(first, first + r_len):
                            bits = _fmix(key + c * _GOLDEN)
                            c += np.uint64(1)
                            y += (
                                pool[i, ((bits >> np.uint64(32)) * m) >> np.uint64(32)]
                                * factor[i, min(j, h - 1)]
                            )
                    cyc += 1
            out_y[i, path] = y * mult
            out_x[i, path] = (y + d_t) * mult


def history_pool(
    history: np.ndarray, promo_history: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """The last ``window`` non-promoted periods of each unit, left-aligned, and their count.

    Args:
        history: (N, T) demand per period, oldest first, finite and >= 0.
        promo_history: (N, T) bool, period was promoted (left out of the pool: its demand is not the base).
        window: periods of history looked at (>= 1).

    Returns:
        ``(pool, pool_len)``: (N, W) float64 with the kept values first, (N,) int64 counts. A unit with no
        non-promoted period keeps all its periods.
    """
    y = np.asarray(history, dtype=np.float64)
    p = np.asarray(promo_history, dtype=bool)
    if y.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"history {y.shape}, promo_history {p.shape}: expected two (N, T) arrays")
    if window < 1:
        raise ValueError(f"window={window}: expected >= 1")
    if np.any(y < 0) or not np.all(np.isfinite(y)):
        bad = np.argwhere((y < 0) | ~np.isfinite(y))[0]
        raise ValueError(f"history: unit {bad[0]}, period {bad[1]}: expected finite demand >= 0")
    y = y[:, -window:]
    keep = ~p[:, -window:]
    keep[~keep.any(axis=1)] = True
    order = np.argsort(~keep, axis=1, kind="stable")  # kept periods first, in time order
    pool = np.ascontiguousarray(np.take_along_axis(y, order, axis=1))
    return pool, keep.sum(axis=1).astype(np.int64)


def bootstrap_protection_samples(
    pool: np.ndarray,
    pool_len: np.ndarray,
    factor: np.ndarray,
    lead_time_pmf: np.ndarray,
    review: np.ndarray | int,
    n_paths: int,
    rng: np.random.Generator | int,
    *,
    unit_ids: np.ndarray | None = None,
    crossing: bool = False,
    mean_uncertainty: bool = False,
    lead_time_counts: np.ndarray | None = None,
) -> ProtectionSamples:
    """Paired demand samples over the lead time and over lead time plus review, resampled from history.

    Args:
        pool: (N, W) past demand per unit; the first ``pool_len[i]`` entries of row i are drawn from.
        pool_len: (N,) number of usable entries per row, 0..W (0: the unit has no demand).
        factor: (N, H) multiplier per future period (promotion lift; 1 for a normal period); periods beyond H
            reuse period H-1.
        lead_time_pmf: (N, K) probability of a lead time of 0..K-1 periods (rows sum to 1).
        review: (N,) or scalar review period in periods (>= 1).
        n_paths: P, Monte-Carlo paths per unit.
        rng: source of the seed (a Generator), or the seed itself (an int).
        unit_ids: (N,) global ids of the units (default 0..N-1).
        crossing: orders cross. ``False``: one lead time per path, ``D_L`` and ``D_LR`` summed over ``L`` and
            ``L + R`` periods (orders arrive in sequence). ``True``: every order draws its own lead time
            independently, as a supplier whose deliveries are independent does, so a later order may arrive
            first; then the shortfall seen by a period ``t`` (``r`` periods after a review, ``r`` uniform on
            0..R-1 per path) is exact in steady state: ``X_t = D_t + D(review..t-1) + sum_c C_c 1[L_c >= r + c
            R + 1]`` (cycle ``c`` back ordered ``C_c``, still outstanding unless its own ``L_c`` has elapsed),
            returned as ``d_l = X_t - D_t`` and ``d_lr = X_t``, which makes ``order_up_to_levels``' fill rate
            ``1 - E[(X_t - S)^+ - (X_t - D_t - S)^+] / E[D_t]`` the exact per-period fill rate. The demand
            ``j`` periods back is drawn with ``factor[:, j]`` (promotions ahead weigh as much as their chance
            of falling before the replenishment). Assuming one lead time per path when lead times are
            independent overstates the spread (the whole pipeline late at once) and over-stocks.
        mean_uncertainty: carry the sampling error of the pool's mean into the paths: each path scales its
            draws by ``max(1 + e, 0)``, ``e ~ N(0, CV^2 / n)`` (``CV`` and ``n`` of the unit's pool; the
            standard error of a mean of ``n`` periods), so that the level protects against the mean being
            misjudged as well as against demand noise (a plain bootstrap of ~100 periods treats the sample
            mean as the truth and misses a fill-rate target by about half a point on smooth demand).
        lead_time_counts: (N, K) Dirichlet parameters of each unit's lead-time distribution (observed
            deliveries per bin plus prior pseudo-counts), crossing model only: each path then draws its own
            lead-time distribution from that posterior, so that the uncertainty about a term's delay tail,
            which every order in the pipeline shares, counts (``lead_time_pmf`` is then only checked for
            shape).

    Returns:
        :class:`planning._levels.ProtectionSamples` with (N, P) float32 arrays.
    """
    pool = np.ascontiguousarray(pool, dtype=np.float64)
    n = pool.shape[0]
    pool_len = np.ascontiguousarray(pool_len, dtype=np.int64)
    if pool.ndim != 2 or pool_len.shape != (n,) or np.any(pool_len < 0) or np.any(pool_len > pool.shape[1]):
        raise ValueError(f"pool {pool.shape}, pool_len {pool_len.shape}: expected (N, W) and (N,) in 0..W")
    if np.any(pool < 0) or not np.all(np.isfinite(pool)):
        raise ValueError("pool: expected finite demand >= 0")
    factor = np.ascontiguousarray(factor, dtype=np.float64)
    if factor.ndim != 2 or factor.shape[0] != n or factor.shape[1] < 1 or np.any(factor < 0):
        raise ValueError(f"factor: expected shape ({n}, H >= 1) with values >= 0, got {factor.shape}")
    pmf = np.asarray(lead_time_pmf, dtype=np.float64)
    if pmf.ndim != 2 or pmf.shape[0] != n:
        raise ValueError(f"lead_time_pmf: expected shape ({n}, K), got {pmf.shape}")
    if np.any(pmf < 0) or not np.allclose(pmf.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("lead_time_pmf: expected rows of probabilities >= 0 summing to 1")
    review = np.array(np.broadcast_to(np.asarray(review, dtype=np.int64), (n,)))
    if np.any(review < 1):
        raise ValueError("review: expected review periods >= 1")
    if n_paths < 1:
        raise ValueError(f"n_paths={n_paths}: expected >= 1")
    cdf = np.ascontiguousarray(np.cumsum(pmf, axis=1))
    cdf[:, -1] = 1.0
    seed = np.uint64(rng if isinstance(rng, int | np.integer) else rng.integers(0, 2**63 - 1))
    ids = np.arange(n, dtype=np.int64) if unit_ids is None else np.ascontiguousarray(unit_ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"unit_ids: expected shape ({n},), got {ids.shape}")
    mean_se = np.zeros(n)
    if mean_uncertainty:
        cols = np.arange(pool.shape[1])[None, :] < pool_len[:, None]
        cnt = np.maximum(pool_len, 1)
        mu = np.where(cols, pool, 0.0).sum(axis=1) / cnt
        var = np.where(cols, (pool - mu[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(cnt - 1, 1)
        mean_se = np.where((pool_len > 1) & (mu > 0), np.sqrt(var / cnt) / np.maximum(mu, 1e-12), 0.0)
    d_l = np.empty((n, n_paths), dtype=np.float32)
    d_lr = np.empty((n, n_paths), dtype=np.float32)
    if lead_time_counts is not None:
        alpha = np.ascontiguousarray(lead_time_counts, dtype=np.float64)
        if not crossing or alpha.shape != pmf.shape or np.any(alpha < 0) or np.any(alpha.sum(axis=1) <= 0):
            raise ValueError(
                f"lead_time_counts: expected crossing=True and shape {pmf.shape} with counts >= 0, some > 0"
            )
    else:
        alpha = np.zeros((n, 0))
    if crossing:
        _bootstrap_crossing(pool, pool_len, factor, cdf, review, seed, ids, mean_se, alpha, d_l, d_lr)
    else:
        _bootstrap(pool, pool_len, factor, cdf, review, seed, ids, mean_se, d_l, d_lr)
    return ProtectionSamples(d_l=d_l, d_lr=d_lr)
