"""Bootstrap protection samples: sums, lead-time coverage, order crossing against a replay, errors."""

import numpy as np
import pytest

from kernels import HistoryDemand, order_up_to_levels, policy_samples
from planning._bootstrap import history_pool
from planning._replay import replay_policy


def bootstrap_protection_samples(
    pool, pool_len, factor, pmf, review, n_paths, seed, *, crossing=False, mean_uncertainty=False, **kw
):
    """The history source through the policy's entry point (one lead time per path unless crossing)."""
    src = HistoryDemand(pool, pool_len, factor, mean_uncertainty=mean_uncertainty)
    return policy_samples(src, pmf, review, n_paths, seed, crossing=crossing, **kw)


def _pmf(n, probs):
    pmf = np.zeros((n, 10))
    for lt, p in probs.items():
        pmf[:, lt] = p
    return pmf


def test_history_pool_drops_promoted_periods_and_keeps_order():
    y = np.array([[1.0, 9.0, 2.0, 3.0], [5.0, 6.0, 7.0, 8.0]])
    promo = np.array([[False, True, False, False], [True, True, True, True]])
    pool, n = history_pool(y, promo, window=3)
    assert n.tolist() == [2, 3]  # last 3 periods; a unit promoted throughout keeps them all
    assert pool[0, :2].tolist() == [2.0, 3.0]
    assert pool[1].tolist() == [6.0, 7.0, 8.0]
    with pytest.raises(ValueError, match="unit 0, period 1"):
        history_pool(np.array([[1.0, -1.0]]), np.zeros((1, 2), bool), 2)


def test_fixed_lead_time_sums_resample_the_pool():
    # Pool {0, 10}: D over L + R = 3 periods is 10 x Binomial(3, 1/2); D_L over L = 2: 10 x Binomial(2, 1/2).
    n = 2
    pool = np.array([[0.0, 10.0], [4.0, 4.0]])
    smp = bootstrap_protection_samples(
        pool, np.array([2, 2]), np.ones((n, 1)), _pmf(n, {2: 1.0}), 1, 40000, 3
    )
    assert np.allclose(smp.d_lr[1], 12.0) and np.allclose(smp.d_l[1], 8.0)
    assert abs(smp.d_lr[0].mean() - 15.0) < 0.2 and abs(smp.d_l[0].mean() - 10.0) < 0.2
    assert set(np.unique(smp.d_lr[0])) <= {0.0, 10.0, 20.0, 30.0}
    assert abs((smp.d_lr[0] == 0).mean() - 1 / 8) < 0.01  # zero weeks of intermittent demand stay zeros
    # a promotion factor 2 on the first future period doubles its draw
    f = np.array([[2.0, 1.0, 1.0]] * n)
    smp2 = bootstrap_protection_samples(pool, np.array([2, 2]), f, _pmf(n, {2: 1.0}), 1, 1000, 3)
    assert np.allclose(smp2.d_lr[1], 16.0)


def test_same_seed_same_samples_whatever_the_subset():
    pool = np.arange(12, dtype=float).reshape(3, 4)
    pmf = _pmf(3, {1: 0.5, 3: 0.5})
    a = bootstrap_protection_samples(pool, np.full(3, 4), np.ones((3, 1)), pmf, 1, 64, 7, crossing=True)
    b = bootstrap_protection_samples(
        pool[2:], np.full(1, 4), np.ones((1, 1)), pmf[2:], 1, 64, 7, unit_ids=np.array([2]), crossing=True
    )
    assert np.array_equal(a.d_lr[2], b.d_lr[0])


@pytest.mark.parametrize("crossing, lo, hi", [(True, 0.94, 0.96), (False, 0.98, 1.0)])
def test_crossing_model_hits_the_target_in_a_replay_with_independent_lead_times(crossing, lo, hi):
    # Independent lead times per order (orders cross). The crossing model's level gives 95% in the replay; the
    # one-lead-time-per-path model overstates the spread and over-stocks.
    rng = np.random.default_rng(0)
    n, t = 150, 700
    pmf = _pmf(n, {1: 0.3, 2: 0.3, 4: 0.2, 7: 0.2})
    pool = rng.poisson(20, (n, 2000)).astype(float)
    smp = bootstrap_protection_samples(
        pool, np.full(n, 2000), np.ones((n, 1)), pmf, 1, 3000, 1, crossing=crossing
    )
    s = order_up_to_levels(smp, 0.95, np.zeros(n)).order_up_to
    demand = rng.poisson(20, (n, t)).astype(float)
    lead = (rng.random((n, t))[:, :, None] > pmf.cumsum(axis=1)[:, None, :]).sum(axis=2)
    res = replay_policy(
        demand, lead, lambda _: s, 0, 20, t - 20, np.ones(n), np.ones(n), np.full(n, 1e9), np.ones(n)
    )
    assert lo <= res.fill_rate <= hi


def test_mean_uncertainty_widens_the_spread_not_the_mean():
    rng = np.random.default_rng(1)
    pool = rng.poisson(10, (1, 20)).astype(float)
    pmf = _pmf(1, {3: 1.0})
    a = bootstrap_protection_samples(pool, np.array([20]), np.ones((1, 1)), pmf, 1, 40000, 5)
    b = bootstrap_protection_samples(
        pool, np.array([20]), np.ones((1, 1)), pmf, 1, 40000, 5, mean_uncertainty=True
    )
    assert abs(b.d_lr.mean() / a.d_lr.mean() - 1) < 0.01
    # var of a sum of k = 4 draws: k s^2 (plain) + k^2 mu^2 se^2 (mean error) = 4 s^2 (1 + 4 / 20)
    assert 1.12 < b.d_lr.var() / a.d_lr.var() < 1.28


def test_bad_inputs_are_refused_naming_the_field():
    pool = np.ones((2, 3))
    with pytest.raises(ValueError, match="pool_len"):
        bootstrap_protection_samples(pool, np.array([4, 1]), np.ones((2, 1)), _pmf(2, {1: 1.0}), 1, 8, 0)
    with pytest.raises(ValueError, match="lead_time_pmf"):
        bootstrap_protection_samples(pool, np.array([3, 3]), np.ones((2, 1)), np.full((2, 3), 0.5), 1, 8, 0)
    with pytest.raises(ValueError, match="factor"):
        bootstrap_protection_samples(pool, np.array([3, 3]), -np.ones((2, 1)), _pmf(2, {1: 1.0}), 1, 8, 0)
    with pytest.raises(ValueError, match="review"):
        bootstrap_protection_samples(pool, np.array([3, 3]), np.ones((2, 1)), _pmf(2, {1: 1.0}), 0, 8, 0)


def test_shrink_pmf_gives_unseen_tails_pooled_mass_and_keeps_well_observed_shapes():
    from planning._history import shrink_pmf

    pmf = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    prior = np.array([0.0, 0.5, 0.25, 0.25])
    out = shrink_pmf(pmf, np.array([4, 400]), prior, 4.0)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.isclose(out[0, 3], 0.125) and out[1, 3] < 0.003  # (0 + 4 x 0.25) / 8; (0 + 1) / 404
    with pytest.raises(ValueError, match="strength"):
        shrink_pmf(pmf, np.array([1, 1]), prior, -1.0)


def test_lead_time_posterior_draws_widen_the_pipeline_spread():
    # Few deliveries (3 and 3 at 1 and 5 periods): each path's own lead-time distribution varies, so the
    # pipeline's outstanding share varies between paths and D_LR spreads more than with the point estimate.
    n = 1
    pool = np.full((n, 10), 10.0)  # constant demand: all spread comes from lead times
    pmf = _pmf(n, {1: 0.5, 5: 0.5})
    counts = 6 * pmf
    a = bootstrap_protection_samples(pool, np.array([10]), np.ones((n, 1)), pmf, 1, 20000, 2, crossing=True)
    b = bootstrap_protection_samples(
        pool, np.array([10]), np.ones((n, 1)), pmf, 1, 20000, 2, crossing=True, lead_time_counts=counts
    )
    assert abs(b.d_lr.mean() / a.d_lr.mean() - 1) < 0.03  # same mean pipeline
    # outstanding orders 1 + Binomial(4, p): var 4 p (1 - p) = 1 at p = 1/2; with p ~ Beta(3, 3) (the
    # posterior share of 5-period lead times) 4 (E p - E p^2) + 16 var p = 0.857 + 0.571 = 1.43
    assert 1.3 < b.d_lr.var() / a.d_lr.var() < 1.6
    # one lead time per path: a draw of the distribution then one lead time from it is a draw from the
    # posterior predictive (the normalised counts), so the spread is the plain pmf's
    c = bootstrap_protection_samples(
        pool, np.array([10]), np.ones((n, 1)), pmf, 1, 20000, 2, lead_time_counts=counts
    )
    assert abs((c.d_l == 50).mean() - 0.5) < 0.015 and set(np.unique(c.d_l)) == {10.0, 50.0}
    with pytest.raises(ValueError, match="lead_time_counts row 0"):
        bootstrap_protection_samples(
            pool, np.array([10]), np.ones((n, 1)), pmf, 1, 8, 2, lead_time_counts=-counts
        )
