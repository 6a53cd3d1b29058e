"""Optimisers: closed forms, agreement with the simulator, monotone safety stock, cost optimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from kernels.optimize import optimize_cost, optimize_level, optimize_order_up_to
from kernels.simulate import (
    fixed_lead_time,
    negative_binomial_demand,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    s_S_policy,
    simulate,
    uniform_lead_times,
    warmup,
)


def setup_module():
    warmup()


def test_normal_order_up_to_matches_closed_form():
    # S* = mu (L + R) + z sigma sqrt(L + R) for a target cycle service level
    n, mu, sigma, L, R, alpha = 12, 100.0, 20.0, 2, 1, 0.9
    res = optimize_order_up_to(
        normal_demand(np.full(n, mu), np.full(n, sigma)), fixed_lead_time(L, n), target=alpha,
        metric="cycle_service_level", review_period=R, n_periods=70, n_paths=500, seed=1, burn_in=6, step=0.5,
    )  # fmt: skip
    s_star = mu * (L + R) + stats.norm.ppf(alpha) * sigma * np.sqrt(L + R)
    # Monte-Carlo error of the level: error of the service level over the density at S*
    dem = normal_demand(np.full(n, mu), np.full(n, sigma))
    sim = simulate(
        dem,
        fixed_lead_time(L, n),
        order_up_to_policy(res.level),
        n_periods=70,
        n_paths=500,
        seed=1,
        burn_in=6,
    )
    density = stats.norm.pdf(stats.norm.ppf(alpha)) / (sigma * np.sqrt(L + R))
    se_level = np.sqrt(np.sum(sim.cycle_service_level_se**2)) / n / density
    assert abs(res.level.mean() - s_star) < 3 * se_level + 0.5, (res.level.mean(), s_star, se_level)
    np.testing.assert_allclose(res.safety_stock, res.level - mu * (L + R))


def test_poisson_level_is_the_exact_quantile_within_error():
    n, mu, L, alpha = 20, 4.0, 3, 0.9
    res = optimize_order_up_to(
        poisson_demand(np.full(n, mu)), fixed_lead_time(L, n), target=alpha, metric="cycle_service_level",
        n_periods=60, n_paths=400, seed=2, burn_in=5,
    )  # fmt: skip
    exact = stats.poisson.ppf(alpha, mu * (L + 1))  # smallest S with P(D over L + 1 <= S) >= alpha
    # the MC level may sit one unit either side where the exact CDF is within noise of the target
    se = np.sqrt(alpha * (1 - alpha) / (400 * 55 / (L + 1)))
    for lvl in res.level:
        assert stats.poisson.cdf(lvl, mu * (L + 1)) >= alpha - 4 * se
        assert stats.poisson.cdf(lvl - 1, mu * (L + 1)) <= alpha + 4 * se
    assert abs(np.median(res.level) - exact) <= 1


def test_curve_equals_simulator_and_bisection():
    n = 30
    mean = np.linspace(0.5, 15, n)
    d, lt = negative_binomial_demand(mean, np.full(n, 2.0)), uniform_lead_times(1, 5, n)
    res = optimize_order_up_to(d, lt, target=0.95, n_periods=40, n_paths=300, seed=4, burn_in=6)
    sim = simulate(d, lt, order_up_to_policy(res.level), n_periods=40, n_paths=300, seed=4, burn_in=6)
    np.testing.assert_allclose(res.fill_rate, sim.fill_rate, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.cycle_service_level, sim.cycle_service_level, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.expected_on_hand, sim.expected_on_hand, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.p_stockout, sim.p_stockout, rtol=0, atol=1e-12)
    assert np.all(sim.fill_rate >= 0.95)
    below = simulate(d, lt, order_up_to_policy(res.level - 1), n_periods=40, n_paths=300, seed=4, burn_in=6)
    assert np.all(below.fill_rate < 0.95)  # smallest
    bis = optimize_level(
        d, lt, order_up_to_policy(np.zeros(n)), target=0.95, n_periods=40, n_paths=300, seed=4, burn_in=6
    )
    np.testing.assert_array_equal(bis.level, res.level)


@pytest.mark.parametrize("metric", ["fill_rate", "cycle_service_level"])
def test_safety_stock_never_falls_as_target_rises(metric):
    n = 25
    mean = np.linspace(0.2, 40, n)
    d, lt = poisson_demand(mean), uniform_lead_times(2, 8, n)
    levels = [
        optimize_order_up_to(d, lt, target=t, metric=metric, n_periods=40, n_paths=200, seed=9).safety_stock
        for t in (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)
    ]
    assert np.all(np.diff(np.stack(levels), axis=0) >= 0)
    assert np.all(levels[-1] > levels[0])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mean=st.floats(0.05, 60.0),
    cv=st.floats(0.2, 1.5),
    t1=st.floats(0.3, 0.999),
    t2=st.floats(0.3, 0.999),
    R=st.integers(1, 3),
)
def test_monotone_in_target_property(mean, cv, t1, t2, R):
    lo, hi = sorted((t1, t2))
    d = normal_demand(np.full(2, mean), np.full(2, cv * mean))
    lt = uniform_lead_times(0, 4, 2)
    kw = dict(review_period=R, n_periods=30, n_paths=100, seed=3)
    a = optimize_order_up_to(d, lt, target=lo, **kw)
    b = optimize_order_up_to(d, lt, target=hi, **kw)
    assert np.all(b.level >= a.level)
    assert np.all(a.fill_rate >= lo) and np.all(b.fill_rate >= hi)


def test_bisection_for_s_S_with_lost_sales():
    n = 10
    mean = np.linspace(1, 10, n)
    d, lt = poisson_demand(mean), uniform_lead_times(1, 4, n)
    pol = s_S_policy(np.zeros(n), np.round(mean * 3))  # S - s = 3 mean is kept while shifting
    kw = dict(n_periods=40, n_paths=200, seed=6, lost_sales=True)
    res = optimize_level(d, lt, pol, target=0.9, parameter="shift", **kw)
    gap = np.round(mean * 3)
    ok = simulate(d, lt, s_S_policy(res.level - gap, res.level), **kw)
    worse = simulate(d, lt, s_S_policy(res.level - gap - 1, res.level - 1), **kw)
    assert np.all(ok.fill_rate >= 0.9) and np.all(worse.fill_rate < 0.9)
    np.testing.assert_allclose(ok.fill_rate, res.fill_rate)
    # reorder point alone, S fixed high
    res_s = optimize_level(
        d, lt, s_S_policy(np.zeros(n), mean * 12), target=0.9, parameter="reorder_point", **kw
    )
    assert np.all(res_s.fill_rate >= 0.9)


def test_cost_optimum_is_the_brute_force_minimum():
    n = 6
    mean = np.linspace(2, 12, n)
    d, lt = poisson_demand(mean), uniform_lead_times(1, 3, n)
    h, p = 1.0, 9.0
    res = optimize_cost(d, lt, holding_cost=h, shortage_cost=p, n_periods=40, n_paths=200, seed=8)
    burn = 3 + 1
    grid = np.arange(0, 80)
    costs = []
    for S in grid:
        sim = simulate(d, lt, order_up_to_policy(np.full(n, float(S))), n_periods=40, n_paths=200, seed=8,
                       burn_in=burn)  # fmt: skip
        costs.append(h * sim.expected_on_hand + p * sim.expected_stockout_units / (40 - burn))
    costs = np.stack(costs)
    np.testing.assert_allclose(res.cost, costs.min(axis=0), rtol=1e-9)
    np.testing.assert_allclose(res.holding + res.shortage + res.ordering, res.cost, rtol=1e-9)
    # ordering costs push towards reviewing less often
    cheap = optimize_cost(d, lt, holding_cost=h, shortage_cost=p, ordering_cost=0.0, review_periods=(1, 4),
                          n_periods=40, n_paths=200, seed=8)  # fmt: skip
    dear = optimize_cost(d, lt, holding_cost=h, shortage_cost=p, ordering_cost=500.0, review_periods=(1, 4),
                         n_periods=40, n_paths=200, seed=8)  # fmt: skip
    assert np.all(cheap.review_period == 1) and np.all(dear.review_period == 4)
    # per-unit costs: a dearer shortage never lowers the level
    per_unit = optimize_cost(d, lt, holding_cost=np.full(n, h), shortage_cost=np.full(n, p), n_periods=40,
                             n_paths=200, seed=8)  # fmt: skip
    np.testing.assert_array_equal(per_unit.level, res.level)
    dearer = optimize_cost(d, lt, holding_cost=h, shortage_cost=np.full(n, 4 * p), n_periods=40, n_paths=200,
                           seed=8)  # fmt: skip
    assert np.all(dearer.level >= res.level)


def test_optimizer_input_errors():
    d, lt = poisson_demand(np.ones(3)), fixed_lead_time(1, 3)
    with pytest.raises(ValueError, match="metric"):
        optimize_order_up_to(d, lt, target=0.9, metric="service", seed=0)
    with pytest.raises(ValueError, match="target"):
        optimize_order_up_to(d, lt, target=1.5, seed=0)
    with pytest.raises(ValueError, match="target"):
        optimize_order_up_to(d, lt, target=np.ones(2) * 0.9, seed=0)
    with pytest.raises(ValueError, match="parameter"):
        optimize_level(
            d, lt, order_up_to_policy(np.ones(3)), target=0.9, parameter="x", n_periods=5, n_paths=5, seed=0
        )
    with pytest.raises(ValueError, match="review_periods"):
        optimize_cost(d, lt, holding_cost=1, shortage_cost=1, review_periods=(0,), seed=0)
