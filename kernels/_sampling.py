"""Demand and lead-time samplers driven by 32-bit uniforms (CPU side, Numba).

Discrete distributions (Poisson, negative binomial, empirical lead times) are sampled from alias *tables*
(Walker 1977; Vose 1991, "A linear algorithm for generating random numbers with a given distribution"): a
draw costs one multiply, two loads and a select, with no data-dependent branch (an inverse-CDF search with a
guide table measured 6 ns a draw here, mostly branch misses). The support is ``lo .. lo + K - 1`` with
``P(X > lo + K - 1) < 1e-13`` (renormalised) and ``P(X < lo)`` below 1e-30. Tables are ragged:
``offsets[i]`` is the start of table ``i`` in a flat ``uint32`` array holding its ``K`` acceptance thresholds
followed by its ``K`` aliases, and ``lo[i]`` is the value of entry 0. The tables are built
once on the host and shared by the CPU and GPU kernels, so both backends turn the same 32-bit integer into
the same sample.

Continuous demand: normal by inversion (Acklam's rational approximation, relative error below 1.2e-9),
gamma by Marsaglia & Tsang (2000) with spare counter streams for rejections, and forecast quantiles by
linear interpolation between the given quantiles with exponential tails (see :func:`quantile_inverse`).
Negative continuous draws are set to zero (demand is not negative).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from kernels._rng import INV_2_32, N_STREAMS, draw
from kernels._jit import lazy_njit

__all__ = [
    "DEMAND_GAMMA",
    "DEMAND_NEGBIN",
    "DEMAND_NORMAL",
    "DEMAND_POISSON",
    "DEMAND_QUANTILE",
    "build_discrete_tables",
    "build_pmf_tables",
    "gamma_draw",
    "norm_ppf",
    "quantile_inverse",
    "sample_table",
]

DEMAND_POISSON = 0
DEMAND_NEGBIN = 1
DEMAND_NORMAL = 2
DEMAND_GAMMA = 3
DEMAND_QUANTILE = 4

#: Probability mass left out of the right tail of a discrete table (the rest is renormalised).
TAIL_EPS = 1e-13
_MAX_TABLE = 1 << 24
_TWO32 = 4294967296.0
_U32_MAX = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

_JIT = {"cache": True, "nogil": True}


# ---------------------------------------------------------------------------------------------------------
# discrete tables
# ---------------------------------------------------------------------------------------------------------
@nb.njit(**_JIT)
def _support_start(kind, mean, size):
    """Lowest tabulated value and its log-probability for Poisson (kind 0) or NB(mean, size) (kind 1)."""
    if kind == 0:
        var = mean
    else:
        var = mean + mean * mean / size
    lo = max(0, int(math.floor(mean - 12.0 * math.sqrt(var) - 5.0)))
    if mean <= 0.0:
        return 0, 0.0
    if kind == 0:
        logp = lo * math.log(mean) - mean - math.lgamma(lo + 1.0)
    else:
        logp = (
            math.lgamma(lo + size)
            - math.lgamma(size)
            - math.lgamma(lo + 1.0)
            + size * math.log(size / (size + mean))
            + lo * math.log(mean / (size + mean))
        )
    return lo, logp


@nb.njit(**_JIT)
def _pmf_ratio(kind, mean, size, x):
    """P(X = x + 1) / P(X = x)."""
    if kind == 0:
        return mean / (x + 1.0)
    return (x + size) / (x + 1.0) * (mean / (size + mean))


@nb.njit(**_JIT)
def _table_len(kind, mean, size):
    if mean <= 0.0:
        return 1
    lo, logp = _support_start(kind, mean, size)
    p = math.exp(logp)
    c = p
    k = 0
    while (c < 1.0 - TAIL_EPS or lo + k < mean) and k < _MAX_TABLE - 1:
        p *= _pmf_ratio(kind, mean, size, lo + k)
        c += p
        k += 1
        if p == 0.0 and lo + k > mean:
            break
    return k + 1


@nb.njit(**_JIT)
def _fill_alias(cum, tab, start, n):
    """Write the alias table (Walker 1977; Vose 1991) of the masses with cumulative sums ``cum[:n]``.

    ``tab[start + j]`` is the 32-bit acceptance threshold of bucket ``j`` and ``tab[start + n + j]`` its
    alias; a draw keeps ``j`` when the 32-bit fraction is below the threshold, else takes the alias.
    """
    total = cum[n - 1]
    w = np.empty(n)
    prev = 0.0
    for k in range(n):
        w[k] = (cum[k] - prev) / total * n
        prev = cum[k]
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    ns = 0
    nl = 0
    for k in range(n):
        if w[k] < 1.0:
            small[ns] = k
            ns += 1
        else:
            large[nl] = k
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        a = small[ns]
        b = large[nl - 1]
        v = math.floor(w[a] * _TWO32 + 0.5)
        tab[start + a] = nb.uint32(v if v < 4294967295.0 else 4294967295.0)
        tab[start + n + a] = nb.uint32(b)
        w[b] = (w[b] + w[a]) - 1.0
        if w[b] < 1.0:
            nl -= 1
            small[ns] = b
            ns += 1
    for r in range(nl):
        k = large[r]
        tab[start + k] = nb.uint32(0xFFFFFFFF)
        tab[start + n + k] = nb.uint32(k)
    for r in range(ns):  # rounding leftovers: full buckets
        k = small[r]
        tab[start + k] = nb.uint32(0xFFFFFFFF)
        tab[start + n + k] = nb.uint32(k)


@lazy_njit(
    nb.types.Tuple((nb.int64[:], nb.int64[:], nb.uint32[:]))(nb.int64, nb.float64[:], nb.float64[:]),
    cache=True,
    parallel=True,
)
def _build_discrete(kind, mean, size):
    n = mean.shape[0]
    lens = np.empty(n, np.int64)
    for i in nb.prange(n):
        lens[i] = _table_len(kind, mean[i], size[i])
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + 2 * lens[i]
    lo = np.zeros(n, np.int64)
    tab = np.empty(offsets[n], np.uint32)
    for i in nb.prange(n):
        m = lens[i]
        cum = np.empty(m)
        if mean[i] <= 0.0:
            cum[0] = 1.0
            lo[i] = 0
        else:
            lo_i, logp = _support_start(kind, mean[i], size[i])
            lo[i] = lo_i
            p = math.exp(logp)
            c = p
            cum[0] = c
            for k in range(1, m):
                p *= _pmf_ratio(kind, mean[i], size[i], lo_i + k - 1)
                c += p
                cum[k] = c
        _fill_alias(cum, tab, offsets[i], m)
    return offsets, lo, tab


def build_discrete_tables(kind: int, mean: np.ndarray, size: np.ndarray | None = None):
    """Inversion tables for Poisson or negative-binomial demand, one per entry of ``mean``.

    Args:
        kind: ``DEMAND_POISSON`` or ``DEMAND_NEGBIN``.
        mean: float64 array of shape ``(n,)``, the means (>= 0).
        size: float64 array of shape ``(n,)``, the NB size ``k`` (variance ``mean + mean**2 / k``);
            ignored for Poisson.

    Returns:
        ``(offsets, lo, table)``: int64 ``(n + 1,)``, int64 ``(n,)``, uint32 flat table.
    """
    mean = np.array(mean, dtype=np.float64).ravel()
    size = np.ones_like(mean) if size is None else np.array(size, dtype=np.float64).ravel()
    return _build_discrete(kind, mean, size)


@lazy_njit(nb.types.Tuple((nb.int64[:], nb.int64[:], nb.uint32[:]))(nb.float64[:, :]), cache=True)
def _build_pmf(pmf):
    n, m = pmf.shape
    lo = np.zeros(n, np.int64)
    lens = np.zeros(n, np.int64)
    for i in range(n):
        first = 0
        while first < m - 1 and pmf[i, first] <= 0.0:
            first += 1
        last = m - 1
        while last > first and pmf[i, last] <= 0.0:
            last -= 1
        lo[i] = first
        lens[i] = last - first + 1
    offsets = np.zeros(n + 1, np.int64)
    for i in range(n):
        offsets[i + 1] = offsets[i] + 2 * lens[i]
    tab = np.empty(offsets[n], np.uint32)
    for i in range(n):
        cum = np.cumsum(pmf[i, lo[i] : lo[i] + lens[i]])
        _fill_alias(cum, tab, offsets[i], lens[i])
    return offsets, lo, tab


def build_pmf_tables(pmf: np.ndarray):
    """Inversion tables for explicit probability mass functions over ``0 .. m-1`` (lead times).

    Args:
        pmf: float64 array of shape ``(n, m)``, non-negative rows with positive sums.

    Returns:
        ``(offsets, lo, table)`` as in :func:`build_discrete_tables`.
    """
    return _build_pmf(np.array(pmf, dtype=np.float64))


@nb.njit(**_JIT)
def sample_table(tab, start, n, u):
    """Alias-method draw from the table of length ``n`` at ``start`` given a 32-bit integer ``u``.

    ``u * n`` splits into the bucket (its high 32 bits) and a 32-bit uniform fraction (its low 32 bits);
    branch-free, two loads. Returns the table index ``k`` (the value is ``lo + k``).
    """
    prod = u * nb.uint64(n)
    j = prod >> _S32
    at = nb.uint64(start) + j  # unsigned indices: no negative-index fix-up in the hot loop
    keep = nb.int64((prod & _U32_MAX) < nb.uint64(tab[at]))
    alias = nb.int64(tab[at + nb.uint64(n)])
    j = nb.int64(j)
    return alias + keep * (j - alias)  # arithmetic select: no branch to mispredict


# ---------------------------------------------------------------------------------------------------------
# continuous demand
# ---------------------------------------------------------------------------------------------------------
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
      -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
      -1.328068155288572e01)  # fmt: skip
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
      4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


@nb.njit(**_JIT)
def norm_ppf(p):
    """Standard normal quantile for ``0 < p < 1`` (Acklam's algorithm, relative error < 1.2e-9)."""
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    if p > 1.0 - _P_LOW:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        return -(((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    q = p - 0.5
    r = q * q
    return (
        (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
        * q
        / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    )


@nb.njit(**_JIT)
def open_uniform(u32):
    """Map a 32-bit integer to the open interval (0, 1)."""
    return (nb.float64(u32) + 0.5) * INV_2_32


@nb.njit(**_JIT)
def gamma_draw(key, period, shape, scale, u_boost):
    """Gamma(shape, scale) draw by Marsaglia & Tsang (2000), "A simple method for generating gamma variables".

    Attempt ``i`` uses counter stream ``1 + i`` (low half: the normal, high half: the acceptance uniform);
    after ``N_STREAMS - 1`` rejections (probability below 1e-9) it returns the mean. For ``shape < 1`` the
    draw for ``shape + 1`` is multiplied by ``U ** (1 / shape)`` with ``U`` from ``u_boost``.
    """
    if shape <= 0.0 or scale <= 0.0:
        return 0.0
    a = shape if shape >= 1.0 else shape + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    g = -1.0
    for i in range(N_STREAMS - 1):
        x = draw(key, period, 1 + i)
        z = norm_ppf(open_uniform(x & _U32_MAX))
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        w = open_uniform(x >> _S32)
        if math.log(w) < 0.5 * z * z + d - d * v + d * math.log(v):
            g = d * v
            break
    if g < 0.0:
        return shape * scale
    if shape < 1.0:
        g *= open_uniform(u_boost) ** (1.0 / shape)
    return g * scale


@nb.njit(**_JIT)
def quantile_inverse(u, tau, x):
    """Inverse CDF through forecast quantiles ``x`` at levels ``tau`` (both shape ``(m,)``, ``m >= 2``).

    Linear between the given quantiles. Beyond them the tails are exponential with the slope of the outer
    segment in log-probability: below ``tau[0]`` ``x0 - theta_L * log(tau0 / u)`` with
    ``theta_L = (x1 - x0) / log(tau1 / tau0)``, above ``tau[-1]``
    ``x_m + theta_R * log((1 - tau_m) / (1 - u))``, ``theta_R`` from the last two quantiles alike.
    The result is clipped at zero.
    """
    m = tau.shape[0]
    if u <= tau[0]:
        theta = (x[1] - x[0]) / math.log(tau[1] / tau[0])
        v = x[0] - theta * math.log(tau[0] / u)
    elif u >= tau[m - 1]:
        theta = (x[m - 1] - x[m - 2]) / math.log((1.0 - tau[m - 2]) / (1.0 - tau[m - 1]))
        v = x[m - 1] + theta * math.log((1.0 - tau[m - 1]) / (1.0 - u))
    else:
        j = 0
        while u > tau[j + 1]:
            j += 1
        w = (u - tau[j]) / (tau[j + 1] - tau[j])
        v = x[j] + w * (x[j + 1] - x[j])
    return v if v > 0.0 else 0.0
