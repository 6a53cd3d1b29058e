"""Counter-based generator and samplers: uniformity, independence, goodness of fit, exact quantiles."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from scipy import special, stats

from kernels._rng import path_key, uniforms
from kernels._sampling import (
    build_discrete_tables,
    build_pmf_tables,
    gamma_draw,
    norm_ppf,
    quantile_inverse,
    sample_table,
)


@nb.njit(cache=False)
def _draw_table(off, lo, tab, row, u32):
    out = np.empty(u32.shape[0], np.int64)
    start = off[row]
    n = (off[row + 1] - start) >> 1
    for k in range(u32.shape[0]):
        out[k] = lo[row] + sample_table(tab, start, n, u32[k])
    return out


@nb.njit(cache=False)
def _gamma_many(shape, scale, n):
    out = np.empty(n)
    for p in range(n):
        key = path_key(np.uint64(5), 0, p)
        out[p] = gamma_draw(key, 3, shape, scale, np.uint64((p * 2654435761) % 4294967296))
    return out


def _u32(n, seed=1):
    u = uniforms(seed, 1, n, 1)[0, :, 0]
    return (u * 2**32).astype(np.uint64)


def test_uniforms_are_uniform_and_independent():
    u = uniforms(2026, 4, 2000, 10)
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    lo, hi = u[..., 0::2].ravel(), u[..., 1::2].ravel()
    assert abs(np.corrcoef(lo, hi)[0, 1]) < 0.01  # the two halves of a draw
    assert abs(np.corrcoef(u[:, :, 0].ravel(), u[:, :, 2].ravel())[0, 1]) < 0.02  # consecutive periods
    assert abs(np.corrcoef(u[0].ravel(), u[1].ravel())[0, 1]) < 0.02  # neighbouring units
    assert not np.array_equal(uniforms(1, 1, 10, 5), uniforms(2, 1, 10, 5))
    np.testing.assert_array_equal(uniforms(7, 3, 10, 5)[2], uniforms(7, 5, 10, 5)[2])  # counter-based


@pytest.mark.parametrize(
    ("kind", "mean", "size"), [(0, 0.3, 1.0), (0, 7.0, 1.0), (0, 500.0, 1.0), (1, 5.0, 0.5)]
)
def test_discrete_tables_fit_their_distribution(kind, mean, size):
    off, lo, tab = build_discrete_tables(kind, np.array([mean]), np.array([size]))
    x = _draw_table(off, lo, tab, 0, _u32(200_000))
    dist = stats.poisson(mean) if kind == 0 else stats.nbinom(size, size / (size + mean))
    values, counts = np.unique(x, return_counts=True)
    expected = dist.pmf(values) * x.size
    keep = expected >= 5
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    assert abs(x.mean() - dist.mean()) < 4 * dist.std() / np.sqrt(x.size)


def test_zero_mean_and_pmf_tables():
    off, lo, tab = build_discrete_tables(0, np.array([0.0]))
    assert set(_draw_table(off, lo, tab, 0, _u32(1000))) == {0}
    pmf = np.array([[0, 0, 0.25, 0.75], [1.0, 0, 0, 0]])
    off, lo, tab = build_pmf_tables(pmf)
    x = _draw_table(off, lo, tab, 0, _u32(40_000))
    assert set(np.unique(x)) == {2, 3}
    assert abs((x == 3).mean() - 0.75) < 0.01
    assert set(_draw_table(off, lo, tab, 1, _u32(100))) == {0}


def test_norm_ppf_matches_scipy():
    p = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 20001), [1e-12, 0.02425, 0.97575, 1 - 1e-12]])
    ours = np.array([norm_ppf(v) for v in p])
    assert np.max(np.abs(ours - special.ndtri(p)) / np.maximum(1, np.abs(special.ndtri(p)))) < 2e-9


@pytest.mark.parametrize("shape", [0.4, 2.0, 15.0])
def test_gamma_draws_fit(shape):
    x = _gamma_many(shape, 3.0, 20_000)
    assert stats.kstest(x, stats.gamma(shape, scale=3.0).cdf).pvalue > 1e-3


def test_quantile_inverse_hits_quantiles_and_has_exponential_tails():
    tau = np.array([0.1, 0.5, 0.9])
    x = np.array([2.0, 5.0, 9.0])
    for t, v in zip(tau, x, strict=True):
        assert quantile_inverse(t, tau, x) == pytest.approx(v)
    grid = np.linspace(1e-6, 1 - 1e-6, 5001)
    vals = np.array([quantile_inverse(u, tau, x) for u in grid])
    assert np.all(np.diff(vals) >= 0)  # an inverse CDF
    # right tail: each tenfold fall of 1 - u adds theta * log(10), theta from the last segment
    theta = (9.0 - 5.0) / np.log(0.5 / 0.1)
    assert quantile_inverse(0.99, tau, x) - 9.0 == pytest.approx(theta * np.log(10))
    assert quantile_inverse(1e-9, tau, x) == 0.0  # clipped at zero, not negative
