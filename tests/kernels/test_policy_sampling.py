"""Goodness of fit of the engine's samplers: quantile inversion, bootstrap, lead times, Polya urn, mean error.

One period's draw is isolated by a zero lead time and one period of review without crossing orders
(``d_lr`` is then period 0's demand), and a lead time by a demand of exactly 1 per period (``d_l`` is then
the lead time). Each sampler is tested against its exact distribution (Kolmogorov-Smirnov or chi-square).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from kernels import HistoryDemand, QuantileDemand, policy_samples

PATHS = 40_000


def _one_period(demand, n=1):
    return policy_samples(demand, np.tile([1.0], (n, 1)), 1, PATHS, 17, crossing=False).d_lr


def test_quantile_sampler_follows_the_interpolated_quantile_function_and_its_exponential_tail():
    # quantiles 2, 10, 18 at 0.1, 0.5, 0.9: 20 u on [0, 0.9] (the first segment extended down to 0) and the
    # exponential tail 18 + 2 log(0.1 / (1 - u)) above 0.9 (its density matching the last segment's)
    levels = np.array([0.1, 0.5, 0.9])
    draws = _one_period(QuantileDemand(levels, np.array([[[2.0, 10.0, 18.0]]], dtype=np.float32)))[0]

    def cdf(x):
        x = np.asarray(x, dtype=float)
        return np.where(x <= 18.0, x / 20.0, 1.0 - 0.1 * np.exp(-(x - 18.0) / 2.0))

    res = stats.kstest(draws.astype(float), cdf)
    assert res.pvalue > 0.001, res
    assert np.mean(draws > 18.0) == pytest.approx(0.1, abs=0.006)
    assert np.mean(draws[draws > 18.0] - 18.0) == pytest.approx(2.0, rel=0.05)  # exponential, mean 2


def test_quantile_draws_at_each_level_hit_the_levels():
    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    values = np.array([[[1.0, 4.0, 6.0, 9.0, 20.0]]], dtype=np.float32)
    draws = _one_period(QuantileDemand(levels, values))[0]
    for p, v in zip(levels, values[0, 0], strict=True):
        assert np.mean(draws <= v) == pytest.approx(p, abs=0.008)


def test_bootstrap_draws_each_pool_entry_equally_often_times_the_factor():
    pool = np.array([[1.0, 2.0, 3.0, 5.0, 7.0, 0.0, 0.0]])  # the last two entries are padding
    demand = HistoryDemand(pool, np.array([5]), np.full((1, 1), 2.0), mean_uncertainty=False)
    draws = _one_period(demand)[0]
    counts = np.array([(draws == 2.0 * v).sum() for v in pool[0, :5]])
    assert counts.sum() == PATHS  # nothing outside the pool x factor
    assert stats.chisquare(counts).pvalue > 0.001


def test_history_mean_error_scales_paths_by_a_truncated_normal_factor():
    # pool {0.5, 1.5}: mean 1, CV^2 / n = 0.25, so each path is scaled by max(1 + 0.5 Z, 0)
    demand = HistoryDemand(np.array([[0.5, 1.5]]), np.array([2]), np.ones((1, 1)))
    draws = _one_period(demand)[0].astype(float)
    m1 = integrate.quad(lambda z: max(1 + 0.5 * z, 0.0) * stats.norm.pdf(z), -np.inf, np.inf)[0]
    m2 = integrate.quad(lambda z: max(1 + 0.5 * z, 0.0) ** 2 * stats.norm.pdf(z), -np.inf, np.inf)[0]
    assert draws.mean() == pytest.approx(1.0 * m1, rel=0.01)
    assert (draws**2).mean() == pytest.approx(1.25 * m2, rel=0.02)
    assert (draws == 0).mean() == pytest.approx(stats.norm.cdf(-2.0), abs=0.003)


def _lead_times(pmf, counts=None):
    k = pmf.shape[0]
    ones = QuantileDemand(np.array([0.5]), np.ones((1, k + 1, 1), np.float32))  # demand 1 every period
    smp = policy_samples(ones, pmf[None, :], 1, PATHS, 23, crossing=False,
                         lead_time_counts=None if counts is None else counts[None, :])  # fmt: skip
    return np.rint(smp.d_l[0]).astype(int)


def test_lead_times_follow_their_pmf():
    pmf = np.array([0.1, 0.0, 0.35, 0.25, 0.0, 0.3])
    lt = _lead_times(pmf)
    seen = np.bincount(lt, minlength=pmf.shape[0])
    assert seen[pmf == 0].sum() == 0
    assert stats.chisquare(seen[pmf > 0], PATHS * pmf[pmf > 0]).pvalue > 0.001


def test_one_lead_time_per_path_under_the_posterior_is_its_predictive():
    # the Polya urn's first draw is the posterior predictive: the normalised Dirichlet parameters
    counts = np.array([0.0, 3.0, 1.5, 0.5, 0.0, 2.0])
    lt = _lead_times(counts / counts.sum(), counts)
    seen = np.bincount(lt, minlength=counts.shape[0])
    p = counts / counts.sum()
    assert seen[p == 0].sum() == 0
    assert stats.chisquare(seen[p > 0], PATHS * p[p > 0]).pvalue > 0.001


def test_device_arrays_without_cupy_name_the_install_command():
    from kernels._backend import BackendError, cupy_module, gpu_available

    if gpu_available():
        pytest.skip("CuPy and a CUDA device are present")
    with pytest.raises(BackendError, match=r'pip install -e "\.\[gpu\]"'):
        cupy_module()
