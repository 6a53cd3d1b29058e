"""The simulated replenishment policy's demand samples: one entry point for every demand source.

:func:`policy_samples` gives, per planning unit, paired Monte-Carlo samples of the demand that an order-up-to
level has to cover (:class:`ProtectionSamples`), which :func:`planning._levels.order_up_to_levels` turns into
the least level meeting a fill-rate target. The planner (:func:`planning._plan.plan`) and the policy backtest
(``benchmarks/policy_backtest.py``) both call it, so the policy that is shipped is the one that is measured.

Demand sources (what differs is only how *one period's* demand is drawn):

* :class:`QuantileDemand`: forecast quantiles per unit and future period; a period's demand is drawn by
  inversion of that period's quantile function (linear between the given quantiles, an exponential upper
  tail matched to the last segment's density, zero floor; uniforms on a 4096-point grid so that inversion is
  one table lookup);
* :class:`HistoryDemand`: a bootstrap of the unit's own recent non-promoted periods times the future
  period's known factor (promotion lift), with optional sampling error of the pool's mean. For intermittent
  and lumpy units the history *is* the distribution: a resample keeps the share of zero periods and the size
  distribution that a gamma or normal fit blurs.

Lead times (``crossing``):

* ``crossing=True`` (the default; what suppliers whose deliveries are independent per order do): every order
  draws its own lead time, so a later order may arrive first. The shortfall seen by a period ``t``, ``r``
  periods after a review (``r`` uniform on 0..R-1 per path), is exact in steady state::

      X_t = D_t + D(review..t-1) + sum_c C_c 1[L_c >= r + c R + 1]

  (cycle ``c`` back ordered ``C_c``, the demand of its ``R`` periods, still outstanding unless its own lead
  time ``L_c`` has elapsed), returned as ``d_l = X_t - D_t`` and ``d_lr = X_t``, which makes
  ``order_up_to_levels``' fill rate ``1 - E[(X_t - S)^+ - (X_t - D_t - S)^+] / E[D_t]`` the exact
  per-period fill rate. The demand ``j`` periods back is drawn with forecast period ``j``'s distribution
  (a promotion ahead weighs as much as its chance of falling before the replenishment).
* ``crossing=False``: one lead time ``L`` per path, ``d_l`` and ``d_lr`` summed over ``L`` and ``L + R``
  periods (orders assumed to arrive in sequence; the ``L + R`` convention of docs/timing.md). When lead
  times are independent per order this overstates the spread (the whole pipeline late at once) and
  over-stocks.

Lead-time uncertainty (``lead_time_counts``): each path has its own lead-time distribution ``theta`` drawn
from the Dirichlet posterior with those parameters ``alpha`` (observed deliveries per period bin plus prior
pseudo-deliveries, see :func:`planning._history.shrink_pmf`), its orders' lead times independent given
``theta``, so that the uncertainty about a term's delay tail, which every order in the pipeline shares,
counts. ``theta`` is integrated out exactly rather than drawn: the lead times of one path are then a Polya urn
(Blackwell & MacQueen 1973), ``P(L_c = b | L_0..L_c-1) = (alpha_b + #{L = b so far}) / (sum alpha + c)``, one
uniform per lead time and no gamma variates, the same joint distribution at a fraction of the cost. With one
lead time per path this is a draw from the posterior predictive (the normalised counts).

Randomness: a counter-based SplitMix64 (:func:`kernels._rng.fmix64`) keyed by ``(seed, unit, path)`` with one
counter per draw, so results do not depend on the thread count or chunking; the seed comes from the caller's
``numpy.random.Generator`` (or is given). A unit's numbers depend on its global id, not its row.
"""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from kernels._rng import GOLDEN, fmix64
from kernels._simulate_jit import lazy_njit

__all__ = ["HistoryDemand", "ProtectionSamples", "QuantileDemand", "check_lead_times", "policy_samples"]

# _M2 is one of SplitMix64's multipliers, reused as the salt of path keys.
_GOLDEN = GOLDEN
_M2 = np.uint64(0x94D049BB133111EB)
_fmix = fmix64
_JIT = {"cache": True, "nogil": True}

_LUT_BITS = 12
_LUT_SIZE = 1 << _LUT_BITS  # quantile draws use a 4096-point uniform grid (midpoints): a lookup, no search
_HISTORY = 0  # kernel mode: bootstrap of a history pool x factor
_QUANTILES = 1  # kernel mode: inversion of forecast quantiles


@dataclasses.dataclass(frozen=True)
class ProtectionSamples:
    """Paired Monte-Carlo samples of demand over the lead time and over lead time plus review.

    Attributes:
        d_l: (N, P) float32 demand until an order placed now arrives (crossing model: ``X_t - D_t``).
        d_lr: (N, P) float32 demand until the following order arrives (crossing model: ``X_t``).
        is_sorted: each row of both arrays is ascending (the pairing of paths is then gone).
    """

    d_l: np.ndarray
    d_lr: np.ndarray
    is_sorted: bool = False


@dataclasses.dataclass(frozen=True)
class QuantileDemand:
    """Forecast distribution per unit and future period, as quantiles.

    Attributes:
        levels: (Q,) increasing levels in (0, 1).
        values: (N, H, Q) quantiles per unit and future period (period 0 is the current one); periods beyond
            H reuse period H-1.
    """

    levels: np.ndarray
    values: np.ndarray

    @property
    def n_units(self) -> int:
        """N."""
        return int(np.shape(self.values)[0])

    def rows(self, idx: slice | np.ndarray) -> QuantileDemand:
        """The units ``idx`` (a slice or an index array)."""
        return QuantileDemand(self.levels, np.asarray(self.values)[idx])

    def mean(self) -> np.ndarray:
        """(N, H) mean demand per period: the mean of the quantiles (midpoint rule)."""
        return np.asarray(self.values).mean(axis=2)


@dataclasses.dataclass(frozen=True)
class HistoryDemand:
    """A unit's own recent history as its demand distribution (bootstrap).

    Attributes:
        pool: (N, W) past demand per unit; the first ``pool_len[i]`` entries of row i are drawn from (see
            :func:`planning._bootstrap.history_pool`).
        pool_len: (N,) usable entries per row, 0..W (0: the unit has no demand).
        factor: (N, H) multiplier per future period (promotion lift; 1 for a normal period); periods beyond
            H reuse period H-1.
        mean_uncertainty: carry the sampling error of the pool's mean into the paths: each path scales its
            draws by ``max(1 + e, 0)``, ``e ~ N(0, CV^2 / n)`` (``CV`` and ``n`` of the unit's pool), so the
            level protects against the mean being misjudged as well as against demand noise (a plain
            bootstrap of ~100 periods treats the sample mean as the truth and misses a fill-rate target by
            about half a point on smooth demand).
    """

    pool: np.ndarray
    pool_len: np.ndarray
    factor: np.ndarray
    mean_uncertainty: bool = True

    @property
    def n_units(self) -> int:
        """N."""
        return int(np.shape(self.pool)[0])

    def rows(self, idx: slice | np.ndarray) -> HistoryDemand:
        """The units ``idx`` (a slice or an index array)."""
        return HistoryDemand(
            np.asarray(self.pool)[idx],
            np.asarray(self.pool_len)[idx],
            np.asarray(self.factor)[idx],
            self.mean_uncertainty,
        )

    def _pool_moments(self) -> tuple[np.ndarray, np.ndarray]:
        pool = np.asarray(self.pool, dtype=np.float64)
        plen = np.asarray(self.pool_len, dtype=np.int64)
        cols = np.arange(pool.shape[1])[None, :] < plen[:, None]
        cnt = np.maximum(plen, 1)
        mu = np.where(cols, pool, 0.0).sum(axis=1) / cnt
        var = np.where(cols, (pool - mu[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(cnt - 1, 1)
        return mu, var

    def mean(self) -> np.ndarray:
        """(N, H) mean demand per period: the pool's mean times each period's factor."""
        return self._pool_moments()[0][:, None] * np.asarray(self.factor, dtype=np.float64)

    def mean_standard_error(self) -> np.ndarray:
        """(N,) relative standard error of the pool's mean, ``CV / sqrt(n)`` (0 for n < 2 or a zero mean)."""
        plen = np.asarray(self.pool_len, dtype=np.int64)
        mu, var = self._pool_moments()
        cnt = np.maximum(plen, 1)
        return np.where((plen > 1) & (mu > 0), np.sqrt(var / cnt) / np.maximum(mu, 1e-12), 0.0)

    def quantiles(self, levels: np.ndarray) -> np.ndarray:
        """Empirical quantiles of pool x factor per unit and period (linear interpolation), (N, H, Q) float32.

        What a history source reports as its "forecast" (evidence, anomaly bands): the factor scales the
        pool, so period ``h``'s quantiles are the pool's times ``factor[:, h]``; a unit with an empty pool
        reports zeros.
        """
        pool = np.asarray(self.pool, dtype=np.float64)
        plen = np.asarray(self.pool_len, dtype=np.int64)
        p = np.asarray(levels, dtype=np.float64)
        srt = np.sort(np.where(np.arange(pool.shape[1])[None, :] < plen[:, None], pool, np.inf), axis=1)
        srt[np.isinf(srt)] = 0.0  # padding (only reached by empty pools)
        pos = p[None, :] * np.maximum(plen - 1, 0)[:, None]  # (N, Q)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(plen - 1, 0)[:, None])
        a = np.take_along_axis(srt, lo, axis=1)
        b = np.take_along_axis(srt, hi, axis=1)
        q = np.where(plen[:, None] > 0, a + (pos - lo) * (b - a), 0.0)
        return (q[:, None, :] * np.asarray(self.factor, dtype=np.float64)[:, :, None]).astype(np.float32)


def _inverse_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment and weight of each grid uniform for the quantile function through levels ``p``.

    Every case is ``v[lo] + w (v[lo + 1] - v[lo])``: inside, linear interpolation (0 <= w <= 1); below
    ``p[0]`` the first segment extended (w < 0, floored at zero demand later); above ``p[-1]`` an exponential
    tail whose density matches the last segment's, ``v[-1] + (v[-1] - v[-2]) (1 - p[-1]) / (p[-1] - p[-2])
    log((1 - p[-1]) / (1 - u))``, i.e. ``lo = Q - 2`` and ``w = 1 + that factor``. One level: ``w = 0``.

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


def _check_quantiles(levels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.ascontiguousarray(levels, dtype=np.float64)
    v = np.asarray(values)
    if v.ndim != 3 or p.ndim != 1 or v.shape[2] != p.shape[0]:
        raise ValueError(f"quantile values: expected shape (N, H, {p.shape[0]}), got {v.shape}")
    if np.any(p <= 0) or np.any(p >= 1) or np.any(np.diff(p) <= 0):
        raise ValueError(f"quantile levels: expected increasing levels in (0, 1), got {p.tolist()}")
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not np.all(np.isfinite(v)):
        bad = np.argwhere(~np.isfinite(v))[0]
        raise ValueError(f"quantile values: non-finite value at unit {bad[0]}, period {bad[1]}")
    if np.any(np.diff(v, axis=2) < 0):
        v = np.maximum.accumulate(v, axis=2)  # crossing quantiles (common in raw model output) are sorted out
    return p, v


def _check_history(src: HistoryDemand) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pool = np.ascontiguousarray(src.pool, dtype=np.float64)
    n = pool.shape[0]
    plen = np.ascontiguousarray(src.pool_len, dtype=np.int64)
    if pool.ndim != 2 or plen.shape != (n,) or np.any(plen < 0) or np.any(plen > pool.shape[1]):
        raise ValueError(f"pool {pool.shape}, pool_len {plen.shape}: expected (N, W) and (N,) in 0..W")
    if np.any(pool < 0) or not np.all(np.isfinite(pool)):
        bad = np.argwhere((pool < 0) | ~np.isfinite(pool))[0]
        raise ValueError(f"pool: unit {bad[0]}, entry {bad[1]}: expected finite demand >= 0")
    factor = np.ascontiguousarray(src.factor, dtype=np.float64)
    if factor.ndim != 2 or factor.shape[0] != n or factor.shape[1] < 1 or not np.all(factor >= 0):
        raise ValueError(f"factor: expected shape ({n}, H >= 1) with finite values >= 0, got {factor.shape}")
    return pool, plen, factor


def check_lead_times(
    lead_time_pmf: np.ndarray, lead_time_counts: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a lead-time distribution and optional Dirichlet counts, naming the first bad row.

    Args:
        lead_time_pmf: (N, K) probability of a lead time of 0..K-1 periods (rows sum to 1).
        lead_time_counts: (N, K) Dirichlet parameters (finite, >= 0, each row's sum > 0), or None.
        n: N.

    Returns:
        ``(pmf, counts)`` as contiguous float64 arrays (counts None when not given).
    """
    pmf = np.ascontiguousarray(lead_time_pmf, dtype=np.float64)
    if pmf.ndim != 2 or pmf.shape[0] != n or pmf.shape[1] < 1:
        raise ValueError(f"lead_time_pmf: expected shape ({n}, K), got {pmf.shape}")
    bad = (pmf < 0).any(axis=1) | ~np.isclose(pmf.sum(axis=1), 1.0, atol=1e-6)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"lead_time_pmf row {i}: expected probabilities >= 0 summing to 1")
    if lead_time_counts is None:
        return pmf, None
    counts = np.ascontiguousarray(lead_time_counts, dtype=np.float64)
    if counts.shape != pmf.shape:
        raise ValueError(
            f"lead_time_counts: expected shape {pmf.shape} (units x lead-time bins, as lead_time_pmf), "
            f"got {counts.shape}"
        )
    bad = ~np.isfinite(counts).all(axis=1) | (counts < 0).any(axis=1) | ~(counts.sum(axis=1) > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"lead_time_counts row {i}: {counts[i].tolist()}, expected finite counts >= 0 with a positive "
            "sum (deliveries per lead-time bin plus prior pseudo-deliveries)"
        )
    return pmf, counts


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


@nb.njit(nb.int64(nb.float64[:], nb.float64, nb.int64), **_JIT)
def _lead_time(weight, target, k_max):  # pragma: no cover - compiled
    """The first bin whose cumulative weight reaches ``target`` (a uniform times the total weight)."""
    acc = 0.0
    for lt in range(k_max):
        acc += weight[lt]
        if acc >= target:
            return lt
    return k_max


@nb.njit(
    nb.float64(
        nb.int64,
        nb.uint64,
        nb.int64,
        nb.int64,
        nb.float64[:, :],
        nb.uint64,
        nb.float64[:, :],
        nb.int64[:],
        nb.float64[:],
        nb.float32[:, :, :],
    ),
    **_JIT,
)
def _period_demand(kind, bits, i, j, pool, m, factor, lut_lo, lut_w, values):  # pragma: no cover - compiled
    """Unit ``i``'s demand in a period distributed as future period ``j``'s, from the 64 random ``bits``.

    History: pool entry ``(bits_hi * m) >> 32`` (Lemire's multiply-shift, < m) times ``factor[i, j]``.
    Quantiles: the top 12 bits pick a grid uniform, inverted through period ``j``'s quantiles.
    """
    if kind == _HISTORY:
        e = ((bits >> np.uint64(32)) * m) >> np.uint64(32)
        return pool[i, e] * factor[i, min(j, factor.shape[1] - 1)]
    g = bits >> np.uint64(64 - _LUT_BITS)
    lo = lut_lo[g]
    w = lut_w[g]
    row = values[i, min(j, values.shape[1] - 1)]
    d = np.float64(row[lo])
    if w != 0.0:
        d += w * (row[lo + 1] - row[lo])
    return d if d > 0.0 else 0.0


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
def _protection_paths(
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
    """
    n = out_l.shape[0]
    n_paths = out_l.shape[1]
    for i in nb.prange(n):
        ukey = _fmix(seed ^ _fmix(np.uint64(unit_ids[i]) + _GOLDEN))
        m = np.uint64(pool_len[i]) if kind == _HISTORY else np.uint64(1)
        r_len = review[i]
        k_max = lt_k_max[i]  # no lead time beyond this bin (an urn only adds balls where there are some)
        w0 = lt_weight[i]
        w = w0.copy()
        w0_sum = w0.sum()
        for path in range(n_paths):
            if m == 0:  # an empty history pool: no demand
                out_l[i, path] = 0.0
                out_lr[i, path] = 0.0
                continue
            key = _fmix(ukey + np.uint64(path) * _M2)
            if urn:  # this path's urn starts from the posterior's parameters
                w[:] = w0
            tot = w0_sum
            d_l = 0.0
            d_lr = 0.0
            if crossing:
                r = int((key >> np.uint64(32)) % np.uint64(r_len))  # period of the cycle this path looks at
                c = np.uint64(1)
                # own demand (distance 0) and the r earlier periods of the current cycle (always counted)
                for j in range(r + 1):
                    bits = _fmix(key + c * _GOLDEN)
                    d = _period_demand(kind, bits, i, j, pool, m, factor, lut_lo, lut_w, values)
                    c += np.uint64(1)
                    if j == 0:
                        d_lr = d
                    else:
                        d_l += d
                # earlier cycles: outstanding when their order's own lead time L >= r + cycle * R + 1
                first = r + 1
                while first <= k_max:
                    lt = _lead_time(w, _unit_uniform(_fmix(key + c * _GOLDEN)) * tot, k_max)
                    c += np.uint64(1)
                    if urn:
                        w[lt] += 1.0
                        tot += 1.0
                    if lt >= first:
                        for j in range(first, first + r_len):
                            bits = _fmix(key + c * _GOLDEN)
                            d_l += _period_demand(kind, bits, i, j, pool, m, factor, lut_lo, lut_w, values)
                            c += np.uint64(1)
                    first += r_len
                d_lr += d_l
            else:
                lt = _lead_time(w, _unit_uniform(key) * tot, k_max)
                for t in range(lt + r_len):
                    bits = _fmix(key + np.uint64(t + 1) * _GOLDEN)
                    d = _period_demand(kind, bits, i, t, pool, m, factor, lut_lo, lut_w, values)
                    if t < lt:
                        d_l += d
                    d_lr += d
            mult = _mean_multiplier(key, mean_se[i])
            out_l[i, path] = d_l * mult
            out_lr[i, path] = d_lr * mult


def policy_samples(
    demand: QuantileDemand | HistoryDemand,
    lead_time_pmf: np.ndarray,
    review: np.ndarray | int,
    n_paths: int,
    rng: np.random.Generator | int,
    *,
    unit_ids: np.ndarray | None = None,
    crossing: bool = True,
    lead_time_counts: np.ndarray | None = None,
) -> ProtectionSamples:
    """Paired protection-interval demand samples per unit: the policy's one simulation entry point.

    Args:
        demand: the demand source, :class:`QuantileDemand` (N units) or :class:`HistoryDemand`.
        lead_time_pmf: (N, K) probability of a lead time of 0..K-1 periods (rows sum to 1); with
            ``lead_time_counts`` only its shape is used.
        review: (N,) or scalar review period R in periods (>= 1).
        n_paths: P, Monte-Carlo paths per unit.
        rng: source of the seed (a Generator), or the seed itself (an int).
        unit_ids: (N,) global ids of the units (default 0..N-1): with the same seed a unit draws the same
            numbers whichever chunk or subset it is planned in.
        crossing: every order draws its own lead time (orders cross; see the module docstring), or one lead
            time per path.
        lead_time_counts: (N, K) Dirichlet parameters of each unit's lead-time distribution (deliveries per
            bin plus prior pseudo-deliveries): each path draws its own distribution from that posterior.

    Returns:
        :class:`ProtectionSamples` with (N, P) float32 arrays.

    Raises:
        ValueError: an input of the wrong shape or out of range, naming it (and the first bad row).
    """
    if not isinstance(demand, QuantileDemand | HistoryDemand):
        raise TypeError(f"demand: expected QuantileDemand or HistoryDemand, got {type(demand).__name__}")
    n = demand.n_units
    pmf, counts = check_lead_times(lead_time_pmf, lead_time_counts, n)
    review = np.array(np.broadcast_to(np.asarray(review, dtype=np.int64), (n,)))
    if np.any(review < 1):
        raise ValueError(f"review row {int(np.flatnonzero(review < 1)[0])}: expected a review period >= 1")
    if n_paths < 1:
        raise ValueError(f"n_paths={n_paths}: expected >= 1")
    ids = np.arange(n, dtype=np.int64) if unit_ids is None else np.ascontiguousarray(unit_ids, dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"unit_ids: expected shape ({n},), got {ids.shape}")
    seed = np.uint64(rng if isinstance(rng, int | np.integer) else rng.integers(0, 2**63 - 1))
    weight = counts if counts is not None else pmf
    k_max = (weight.shape[1] - 1 - np.argmax(weight[:, ::-1] > 0, axis=1)).astype(np.int64)
    if isinstance(demand, HistoryDemand):
        pool, plen, factor = _check_history(demand)
        mean_se = demand.mean_standard_error() if demand.mean_uncertainty else np.zeros(n)
        kind, values = _HISTORY, np.zeros((1, 1, 1), np.float32)
        lut_lo, lut_w = np.zeros(1, np.int64), np.zeros(1)
    else:
        p, values = _check_quantiles(demand.levels, demand.values)
        lut_lo, lut_w = _inverse_table(p)
        kind, mean_se = _QUANTILES, np.zeros(n)
        pool, plen, factor = np.zeros((1, 1)), np.ones(n, np.int64), np.ones((1, 1))
    d_l = np.empty((n, n_paths), dtype=np.float32)
    d_lr = np.empty((n, n_paths), dtype=np.float32)
    mean_se = np.ascontiguousarray(mean_se, dtype=np.float64)
    args = (pool, plen, factor, lut_lo, lut_w, values, weight, k_max, counts is not None, review, seed, ids)
    _protection_paths(kind, *args, mean_se, bool(crossing), d_l, d_lr)
    return ProtectionSamples(d_l=d_l, d_lr=d_lr)
