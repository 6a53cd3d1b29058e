"""The policy simulation engine: protection-interval demand paths for every demand source, CPU or GPU.

:func:`policy_samples` gives, per planning unit, paired Monte-Carlo samples of the demand that an order-up-to
level has to cover (:class:`ProtectionSamples`), which :func:`kernels.levels.order_up_to_levels` turns into
the least level meeting a fill-rate target. The planner (``planning.plan``), the policy backtest
(``benchmarks/policy_backtest.py``), the throughput benchmarks (``benchmarks/simulate.py``,
``benchmarks/gpu_simulate.py``) and the GPU path all call it: the policy that is shipped is the one measured.

Backends: NumPy arrays run the Numba kernels of :mod:`kernels._policy_cpu`, CuPy arrays the CUDA kernels of
:mod:`kernels._policy_gpu` (the same loops, the same counter-based random numbers, so a seed gives the same
paths on both up to the last bit of a ``log``/``cos``); the backend is chosen from the arrays of the call
(:func:`kernels._backend.get_array_module`), mixed devices raise.

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

Randomness: a counter-based SplitMix64 keyed by ``(seed, unit, path)`` with one counter per draw (see
:mod:`kernels._policy_cpu`), so results do not depend on the thread count, the chunking or the device; the
seed comes from the caller's ``numpy.random.Generator`` (or is given). A unit's numbers depend on its global
id, not its row.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import numpy as np

from kernels._backend import engine_backend, get_array_module, to_host

__all__ = [
    "HistoryDemand",
    "ProtectionSamples",
    "QuantileDemand",
    "check_lead_times",
    "policy_samples",
    "protection_samples",
]

_LUT_BITS = 12
_LUT_SIZE = 1 << _LUT_BITS  # quantile draws use a 4096-point uniform grid (midpoints): a lookup, no search
_HISTORY = 0  # kernel mode: bootstrap of a history pool x factor
_QUANTILES = 1  # kernel mode: inversion of forecast quantiles


@dataclasses.dataclass(frozen=True)
class ProtectionSamples:
    """Paired Monte-Carlo samples of demand over the lead time and over lead time plus review.

    Both arrays live on one device: NumPy (host) or CuPy (GPU); what reads them runs there.

    Attributes:
        d_l: (N, P) float32 demand until an order placed now arrives (crossing model: ``X_t - D_t``).
        d_lr: (N, P) float32 demand until the following order arrives (crossing model: ``X_t``).
        is_sorted: each row of both arrays is ascending (the pairing of paths is then gone).
    """

    d_l: Any
    d_lr: Any
    is_sorted: bool = False


@dataclasses.dataclass(frozen=True)
class QuantileDemand:
    """Forecast distribution per unit and future period, as quantiles.

    Attributes:
        levels: (Q,) increasing levels in (0, 1) (host array: they build the inversion table).
        values: (N, H, Q) quantiles per unit and future period (period 0 is the current one); periods beyond
            H reuse period H-1. NumPy or CuPy: it decides the backend.
    """

    levels: np.ndarray
    values: Any

    @property
    def n_units(self) -> int:
        """N."""
        return int(self.values.shape[0]) if hasattr(self.values, "shape") else len(self.values)

    def rows(self, idx: slice | np.ndarray) -> QuantileDemand:
        """The units ``idx`` (a slice or an index array)."""
        xp = get_array_module(self.values)
        return QuantileDemand(self.levels, xp.asarray(self.values)[idx])

    def mean(self) -> Any:
        """(N, H) mean demand per period: the mean of the quantiles (midpoint rule)."""
        xp = get_array_module(self.values)
        return xp.asarray(self.values).mean(axis=2)


@dataclasses.dataclass(frozen=True)
class HistoryDemand:
    """A unit's own recent history as its demand distribution (bootstrap).

    Attributes:
        pool: (N, W) past demand per unit; the first ``pool_len[i]`` entries of row i are drawn from (see
            ``planning._bootstrap.history_pool``).
        pool_len: (N,) usable entries per row, 0..W (0: the unit has no demand).
        factor: (N, H) multiplier per future period (promotion lift; 1 for a normal period); periods beyond
            H reuse period H-1.
        mean_uncertainty: carry the sampling error of the pool's mean into the paths: each path scales its
            draws by ``max(1 + e, 0)``, ``e ~ N(0, CV^2 / n)`` (``CV`` and ``n`` of the unit's pool), so the
            level protects against the mean being misjudged as well as against demand noise (a plain
            bootstrap of ~100 periods treats the sample mean as the truth and misses a fill-rate target by
            about half a point on smooth demand).
    """

    pool: Any
    pool_len: Any
    factor: Any
    mean_uncertainty: bool = True

    @property
    def n_units(self) -> int:
        """N."""
        return int(self.pool.shape[0]) if hasattr(self.pool, "shape") else len(self.pool)

    def _xp(self) -> ModuleType:
        return get_array_module(self.pool, self.pool_len, self.factor)

    def rows(self, idx: slice | np.ndarray) -> HistoryDemand:
        """The units ``idx`` (a slice or an index array)."""
        xp = self._xp()
        return HistoryDemand(
            xp.asarray(self.pool)[idx],
            xp.asarray(self.pool_len)[idx],
            xp.asarray(self.factor)[idx],
            self.mean_uncertainty,
        )

    def _pool_moments(self) -> tuple[Any, Any]:
        xp = self._xp()
        pool = xp.asarray(self.pool, dtype=xp.float64)
        plen = xp.asarray(self.pool_len, dtype=xp.int64)
        cols = xp.arange(pool.shape[1])[None, :] < plen[:, None]
        cnt = xp.maximum(plen, 1)
        mu = xp.where(cols, pool, 0.0).sum(axis=1) / cnt
        var = xp.where(cols, (pool - mu[:, None]) ** 2, 0.0).sum(axis=1) / xp.maximum(cnt - 1, 1)
        return mu, var

    def mean(self) -> Any:
        """(N, H) mean demand per period: the pool's mean times each period's factor."""
        xp = self._xp()
        return self._pool_moments()[0][:, None] * xp.asarray(self.factor, dtype=xp.float64)

    def mean_standard_error(self) -> Any:
        """(N,) relative standard error of the pool's mean, ``CV / sqrt(n)`` (0 for n < 2 or a zero mean)."""
        xp = self._xp()
        plen = xp.asarray(self.pool_len, dtype=xp.int64)
        mu, var = self._pool_moments()
        cnt = xp.maximum(plen, 1)
        return xp.where((plen > 1) & (mu > 0), xp.sqrt(var / cnt) / xp.maximum(mu, 1e-12), 0.0)

    def quantiles(self, levels: np.ndarray) -> Any:
        """Empirical quantiles of pool x factor per unit and period (linear interpolation), (N, H, Q) float32.

        What a history source reports as its "forecast" (evidence, anomaly bands): the factor scales the
        pool, so period ``h``'s quantiles are the pool's times ``factor[:, h]``; a unit with an empty pool
        reports zeros.
        """
        xp = self._xp()
        pool = xp.asarray(self.pool, dtype=xp.float64)
        plen = xp.asarray(self.pool_len, dtype=xp.int64)
        p = xp.asarray(levels, dtype=xp.float64)
        srt = xp.sort(xp.where(xp.arange(pool.shape[1])[None, :] < plen[:, None], pool, xp.inf), axis=1)
        srt[xp.isinf(srt)] = 0.0  # padding (only reached by empty pools)
        pos = p[None, :] * xp.maximum(plen - 1, 0)[:, None]  # (N, Q)
        lo = xp.floor(pos).astype(xp.int64)
        hi = xp.minimum(lo + 1, xp.maximum(plen - 1, 0)[:, None])
        a = xp.take_along_axis(srt, lo, axis=1)
        b = xp.take_along_axis(srt, hi, axis=1)
        q = xp.where(plen[:, None] > 0, a + (pos - lo) * (b - a), 0.0)
        return (q[:, None, :] * xp.asarray(self.factor, dtype=xp.float64)[:, :, None]).astype(xp.float32)


def _inverse_table(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment and weight of each grid uniform for the quantile function through levels ``p``.

    Every case is ``v[lo] + w (v[lo + 1] - v[lo])``: inside, linear interpolation (0 <= w <= 1); below
    ``p[0]`` the first segment extended (w < 0, floored at zero demand later); above ``p[-1]`` an exponential
    tail whose density matches the last segment's, ``v[-1] + (v[-1] - v[-2]) (1 - p[-1]) / (p[-1] - p[-2])
    log((1 - p[-1]) / (1 - u))``, i.e. ``lo = Q - 2`` and ``w = 1 + that factor``. One level: ``w = 0``.
    Built on the host (4096 entries) for either backend.

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


def _first_bad(xp: ModuleType, mask: Any) -> int:
    return int(xp.flatnonzero(mask)[0])


def _check_quantiles(xp: ModuleType, levels: Any, values: Any) -> tuple[np.ndarray, Any]:
    p = np.ascontiguousarray(to_host(levels), dtype=np.float64)
    v = values if hasattr(values, "ndim") else xp.asarray(values)
    if v.ndim != 3 or p.ndim != 1 or v.shape[2] != p.shape[0]:
        raise ValueError(f"quantile values: expected shape (N, H, {p.shape[0]}), got {v.shape}")
    if np.any(p <= 0) or np.any(p >= 1) or np.any(np.diff(p) <= 0):
        raise ValueError(f"quantile levels: expected increasing levels in (0, 1), got {p.tolist()}")
    v = xp.ascontiguousarray(v, dtype=xp.float32)
    if not bool(xp.all(xp.isfinite(v))):
        bad = xp.argwhere(~xp.isfinite(v))[0]
        raise ValueError(f"quantile values: non-finite value at unit {int(bad[0])}, period {int(bad[1])}")
    if bool(xp.any(xp.diff(v, axis=2) < 0)):
        # crossing quantiles (common in raw model output) are sorted out: a running maximum (exact either way)
        if xp is np:
            v = np.maximum.accumulate(v, axis=2)
        else:
            v = v.copy()
            for k in range(1, v.shape[2]):
                v[:, :, k] = xp.maximum(v[:, :, k], v[:, :, k - 1])
    return p, v


def _check_history(xp: ModuleType, src: HistoryDemand) -> tuple[Any, Any, Any]:
    pool = xp.ascontiguousarray(xp.asarray(src.pool), dtype=xp.float64)
    n = pool.shape[0]
    plen = xp.ascontiguousarray(xp.asarray(src.pool_len), dtype=xp.int64)
    if pool.ndim != 2 or plen.shape != (n,) or bool(xp.any(plen < 0)) or bool(xp.any(plen > pool.shape[1])):
        raise ValueError(f"pool {pool.shape}, pool_len {plen.shape}: expected (N, W) and (N,) in 0..W")
    if bool(xp.any(pool < 0)) or not bool(xp.all(xp.isfinite(pool))):
        bad = xp.argwhere((pool < 0) | ~xp.isfinite(pool))[0]
        raise ValueError(f"pool: unit {int(bad[0])}, entry {int(bad[1])}: expected finite demand >= 0")
    factor = xp.ascontiguousarray(xp.asarray(src.factor), dtype=xp.float64)
    if factor.ndim != 2 or factor.shape[0] != n or factor.shape[1] < 1 or not bool(xp.all(factor >= 0)):
        raise ValueError(f"factor: expected shape ({n}, H >= 1) with finite values >= 0, got {factor.shape}")
    return pool, plen, factor


def check_lead_times(lead_time_pmf: Any, lead_time_counts: Any | None, n: int) -> tuple[Any, Any | None]:
    """Validate a lead-time distribution and optional Dirichlet counts, naming the first bad row.

    Args:
        lead_time_pmf: (N, K) probability of a lead time of 0..K-1 periods (rows sum to 1).
        lead_time_counts: (N, K) Dirichlet parameters (finite, >= 0, each row's sum > 0), or None.
        n: N.

    Returns:
        ``(pmf, counts)`` as contiguous float64 arrays on the inputs' device (counts None when not given).

    Raises:
        ValueError: a shape or a row out of range, naming the row.
    """
    xp = get_array_module(lead_time_pmf, lead_time_counts)
    pmf = xp.ascontiguousarray(xp.asarray(lead_time_pmf), dtype=xp.float64)
    if pmf.ndim != 2 or pmf.shape[0] != n or pmf.shape[1] < 1:
        raise ValueError(f"lead_time_pmf: expected shape ({n}, K), got {pmf.shape}")
    bad = (pmf < 0).any(axis=1) | ~xp.isclose(pmf.sum(axis=1), 1.0, atol=1e-6)
    if bool(bad.any()):
        i = _first_bad(xp, bad)
        raise ValueError(f"lead_time_pmf row {i}: expected probabilities >= 0 summing to 1")
    if lead_time_counts is None:
        return pmf, None
    counts = xp.ascontiguousarray(xp.asarray(lead_time_counts), dtype=xp.float64)
    if counts.shape != pmf.shape:
        raise ValueError(
            f"lead_time_counts: expected shape {pmf.shape} (units x lead-time bins, as lead_time_pmf), "
            f"got {counts.shape}"
        )
    bad = ~xp.isfinite(counts).all(axis=1) | (counts < 0).any(axis=1) | ~(counts.sum(axis=1) > 0)
    if bool(bad.any()):
        i = _first_bad(xp, bad)
        raise ValueError(
            f"lead_time_counts row {i}: {to_host(counts[i]).tolist()}, expected finite counts >= 0 with a "
            "positive sum (deliveries per lead-time bin plus prior pseudo-deliveries)"
        )
    return pmf, counts


def policy_samples(
    demand: QuantileDemand | HistoryDemand,
    lead_time_pmf: Any,
    review: Any,
    n_paths: int,
    rng: np.random.Generator | int,
    *,
    unit_ids: Any | None = None,
    crossing: bool = True,
    lead_time_counts: Any | None = None,
) -> ProtectionSamples:
    """Paired protection-interval demand samples per unit: the engine's one simulation entry point.

    Every array argument is NumPy (Numba backend) or every one is CuPy (CUDA backend).

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
        :class:`ProtectionSamples` with (N, P) float32 arrays on the inputs' device.

    Raises:
        ValueError: an input of the wrong shape or out of range, naming it (and the first bad row).
        kernels.BackendError: arrays on different devices, or CuPy arrays without a usable CuPy.
    """
    if not isinstance(demand, QuantileDemand | HistoryDemand):
        raise TypeError(f"demand: expected QuantileDemand or HistoryDemand, got {type(demand).__name__}")
    if isinstance(demand, HistoryDemand):
        xp = get_array_module(demand.pool, demand.pool_len, demand.factor, lead_time_pmf, lead_time_counts,
                              unit_ids, review)  # fmt: skip
    else:
        xp = get_array_module(demand.values, lead_time_pmf, lead_time_counts, unit_ids, review)
    n = demand.n_units
    pmf, counts = check_lead_times(lead_time_pmf, lead_time_counts, n)
    review = xp.array(xp.broadcast_to(xp.asarray(review, dtype=xp.int64), (n,)))
    if bool(xp.any(review < 1)):
        raise ValueError(f"review row {_first_bad(xp, review < 1)}: expected a review period >= 1")
    if n_paths < 1:
        raise ValueError(f"n_paths={n_paths}: expected >= 1")
    ids = xp.arange(n, dtype=xp.int64) if unit_ids is None else xp.ascontiguousarray(unit_ids, dtype=xp.int64)
    if ids.shape != (n,):
        raise ValueError(f"unit_ids: expected shape ({n},), got {ids.shape}")
    seed = np.uint64(rng if isinstance(rng, int | np.integer) else rng.integers(0, 2**63 - 1))
    weight = counts if counts is not None else pmf
    k_max = (weight.shape[1] - 1 - xp.argmax(weight[:, ::-1] > 0, axis=1)).astype(xp.int64)
    if isinstance(demand, HistoryDemand):
        pool, plen, factor = _check_history(xp, demand)
        mean_se = demand.mean_standard_error() if demand.mean_uncertainty else xp.zeros(n)
        kind, values = _HISTORY, xp.zeros((1, 1, 1), xp.float32)
        lut_lo, lut_w = xp.zeros(1, xp.int64), xp.zeros(1)
    else:
        p, values = _check_quantiles(xp, demand.levels, demand.values)
        lut_lo, lut_w = (xp.asarray(a) for a in _inverse_table(p))
        kind, mean_se = _QUANTILES, xp.zeros(n)
        pool, plen, factor = xp.zeros((1, 1)), xp.ones(n, xp.int64), xp.ones((1, 1))
    d_l = xp.empty((n, n_paths), dtype=xp.float32)
    d_lr = xp.empty((n, n_paths), dtype=xp.float32)
    mean_se = xp.ascontiguousarray(mean_se, dtype=xp.float64)
    args = (pool, plen, factor, lut_lo, lut_w, values, weight, k_max, counts is not None, review, seed, ids)
    engine_backend(xp).protection_paths(kind, *args, mean_se, bool(crossing), d_l, d_lr)
    return ProtectionSamples(d_l=d_l, d_lr=d_lr)


def protection_samples(
    levels: np.ndarray,
    values: Any,
    lead_time_pmf: Any,
    review: Any,
    n_paths: int,
    rng: np.random.Generator | int,
    *,
    unit_ids: Any | None = None,
    crossing: bool = False,
    lead_time_counts: Any | None = None,
) -> ProtectionSamples:
    """:func:`policy_samples` on forecast quantiles (:class:`QuantileDemand`).

    ``levels`` (Q,) and ``values`` (N, H, Q) are the quantiles; the other arguments are ``policy_samples``',
    except that ``crossing`` defaults to one lead time per path here.
    """
    return policy_samples(
        QuantileDemand(levels, values),
        lead_time_pmf,
        review,
        n_paths,
        rng,
        unit_ids=unit_ids,
        crossing=crossing,
        lead_time_counts=lead_time_counts,
    )
