"""Inventory simulation: closed forms within Monte-Carlo error, exact deterministic cases, invariants."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from kernels.simulate import (
    empirical_lead_times,
    fixed_lead_time,
    lead_times_from_pmf,
    min_max_policy,
    negative_binomial_demand,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    quantile_demand,
    s_Q_policy,
    s_S_policy,
    simulate,
    uniform_lead_times,
    warmup,
)


def setup_module():
    warmup()


def pooled(est, se):
    """Mean of independent per-unit estimates and its standard error."""
    return float(np.mean(est)), float(np.sqrt(np.sum(np.asarray(se) ** 2)) / len(est))


@pytest.mark.parametrize(("L", "R"), [(2, 1), (2, 2), (0, 1)])
def test_normal_demand_order_up_to_closed_form(L, R):
    # S* = mu (L + R) + z sigma sqrt(L + R) gives cycle service alpha (timing convention: L + R periods)
    n, mu, sigma, alpha = 16, 100.0, 20.0, 0.9
    S = mu * (L + R) + stats.norm.ppf(alpha) * sigma * np.sqrt(L + R)
    res = simulate(
        normal_demand(np.full(n, mu), np.full(n, sigma)),
        fixed_lead_time(L, n),
        order_up_to_policy(np.full(n, S), review_period=R),
        n_periods=80,
        n_paths=600,
        seed=11,
        burn_in=8,
    )
    csl, se = pooled(res.cycle_service_level, res.cycle_service_level_se)
    assert abs(csl - alpha) < 3 * se, (csl, se)
    # and the L (not L + R) convention would be far off
    S_wrong = mu * L + stats.norm.ppf(alpha) * sigma * np.sqrt(max(L, 1))
    res_wrong = simulate(
        normal_demand(np.full(n, mu), np.full(n, sigma)),
        fixed_lead_time(L, n),
        order_up_to_policy(np.full(n, S_wrong), review_period=R),
        n_periods=80,
        n_paths=200,
        seed=11,
        burn_in=8,
    )
    assert res_wrong.cycle_service_level.mean() < alpha - 0.2


@pytest.mark.parametrize("S", [6, 9, 12, 15])
def test_poisson_exact_cycle_service_and_fill_rate(S):
    n, mu, L = 12, 3.0, 2
    res = simulate(
        poisson_demand(np.full(n, mu)),
        fixed_lead_time(L, n),
        order_up_to_policy(np.full(n, float(S))),
        n_periods=60,
        n_paths=800,
        seed=5,
        burn_in=4,
    )
    exact_csl = stats.poisson.cdf(S, mu * (L + 1))
    csl, se = pooled(res.cycle_service_level, res.cycle_service_level_se)
    assert abs(csl - exact_csl) < 3 * se + 1e-12, (csl, exact_csl, se)
    # fill rate: E[short] = E(Z - S)+ - E(Y - S)+ with Z ~ Poisson(mu (L + 1)), Y ~ Poisson(mu L)
    k = np.arange(0, 200)

    def tail(m):
        return float(np.sum(np.maximum(k - S, 0) * stats.poisson.pmf(k, m)))

    exact_fill = 1 - (tail(mu * (L + 1)) - tail(mu * L)) / mu
    fill, fse = pooled(res.fill_rate, res.fill_rate_se)
    assert abs(fill - exact_fill) < 3 * fse + 1e-12, (fill, exact_fill, fse)


def test_deterministic_demand_is_exact():
    n, d, L = 3, 5.0, 2
    dem = normal_demand(np.full(n, d), np.zeros(n))
    lt = fixed_lead_time(L, n)
    exact = simulate(
        dem, lt, order_up_to_policy(np.full(n, 15.0)), n_periods=20, n_paths=3, seed=0, burn_in=3
    )
    np.testing.assert_array_equal(exact.fill_rate, 1.0)
    np.testing.assert_array_equal(exact.cycle_service_level, 1.0)
    np.testing.assert_array_equal(exact.expected_on_hand, 0.0)
    np.testing.assert_array_equal(exact.expected_orders, 17.0)  # one order a counted period
    np.testing.assert_array_equal(exact.expected_order_quantity, 85.0)
    short = simulate(
        dem, lt, order_up_to_policy(np.full(n, 14.0)), n_periods=20, n_paths=3, seed=0, burn_in=3
    )
    np.testing.assert_allclose(short.fill_rate, 0.8)  # one unit of five short every period
    np.testing.assert_array_equal(short.cycle_service_level, 0.0)
    np.testing.assert_array_equal(short.p_stockout, 1.0)
    np.testing.assert_allclose(short.expected_backorders, 1.0)
    np.testing.assert_allclose(short.expected_stockout_units, 17.0)
    extra = simulate(
        dem, lt, order_up_to_policy(np.full(n, 20.0)), n_periods=20, n_paths=3, seed=0, burn_in=3
    )
    np.testing.assert_allclose(extra.expected_on_hand, 5.0)
    np.testing.assert_allclose(extra.expected_excess, 5.0)


def test_open_orders_and_starting_stock_deterministic():
    # a policy that never orders: net 10 at start, 20 arriving at the start of period 2, demand 6 a period
    n = 2
    never = s_S_policy(np.full(n, -1e9), np.zeros(n))
    open_orders = np.zeros((n, 3))
    open_orders[:, 2] = 20.0
    res = simulate(
        normal_demand(np.full(n, 6.0), np.zeros(n)),
        fixed_lead_time(1, n),
        never,
        n_periods=6,
        n_paths=2,
        seed=1,
        initial_net_inventory=np.full(n, 10.0),
        open_orders=open_orders,
    )
    # net after each period: 4, -2, 12, 6, 0, -6 -> unserved 2 and 6 of 36
    np.testing.assert_allclose(res.fill_rate, 1 - 8 / 36)
    np.testing.assert_allclose(res.expected_on_hand, (4 + 12 + 6) / 6)
    np.testing.assert_allclose(res.expected_backorders, (2 + 6) / 6)
    np.testing.assert_allclose(res.expected_excess, 0.0)
    np.testing.assert_array_equal(res.expected_orders, 0.0)
    lost = simulate(
        normal_demand(np.full(n, 6.0), np.zeros(n)),
        fixed_lead_time(1, n),
        never,
        n_periods=6,
        n_paths=2,
        seed=1,
        initial_net_inventory=np.full(n, 10.0),
        open_orders=open_orders,
        lost_sales=True,
    )
    # lost sales: 4, 0 (2 lost), 14, 8, 2, 0 (4 lost)
    np.testing.assert_allclose(lost.fill_rate, 1 - 6 / 36)
    np.testing.assert_allclose(lost.expected_on_hand, (4 + 14 + 8 + 2) / 6)
    np.testing.assert_array_equal(lost.expected_backorders, 0.0)


def test_policies_follow_their_rules_deterministic():
    n, d = 1, 4.0
    dem = normal_demand(np.full(n, d), np.zeros(n))
    lt = fixed_lead_time(0, n)  # L = 0: an order serves the demand of its own period
    # (s, S) = (5, 12): IP 12 -> 8 -> 4 -> order 8 at t = 2, 4, 6, 8
    ss = simulate(dem, lt, s_S_policy(np.full(n, 5.0), np.full(n, 12.0)), n_periods=10, n_paths=1, seed=0)
    np.testing.assert_array_equal(ss.expected_orders, 4.0)
    np.testing.assert_allclose(ss.expected_order_quantity, 32.0)
    np.testing.assert_allclose(ss.fill_rate, 1.0)
    # (s, nQ) with s = 6, Q = 3, start 6: IP 6 -> order 3 (9), 5 -> 3, 4 -> 3, 3 -> 6 (two lots), 5 -> ...
    sq = simulate(dem, lt, s_Q_policy(np.full(n, 6.0), np.full(n, 3.0)), n_periods=12, n_paths=1, seed=0)
    np.testing.assert_allclose(sq.expected_order_quantity, 45.0)
    np.testing.assert_allclose(sq.fill_rate, 1.0)
    # min/max orders only strictly below min: min = 8 with IP hitting exactly 8 does not order
    mm = simulate(dem, lt, min_max_policy(np.full(n, 8.0), np.full(n, 12.0)), n_periods=3, n_paths=1, seed=0)
    ss8 = simulate(dem, lt, s_S_policy(np.full(n, 8.0), np.full(n, 12.0)), n_periods=3, n_paths=1, seed=0)
    assert mm.expected_orders[0] < ss8.expected_orders[0]


def test_time_varying_demand_and_crossing_orders():
    n, T = 40, 30
    mean = np.zeros((n, T))
    mean[:, ::2] = 5.0  # demand only in even periods
    lt = lead_times_from_pmf(np.array([0, 0.5, 0, 0, 0, 0.5]), n_units=n)  # 1 or 5: orders cross
    res = simulate(
        poisson_demand(mean), lt, order_up_to_policy(np.full(n, 40.0)), n_periods=T, n_paths=500, seed=3
    )
    assert abs(res.expected_demand.mean() - 5.0 * 15) < 0.5
    # (R, S), backorders, full start: what is ordered by period T-1 is the demand of periods 0 .. T-2
    ordered = res.expected_order_quantity
    demand_before_last = res.expected_demand  # the last period (odd) has no demand
    np.testing.assert_allclose(ordered, demand_before_last)


def test_thread_count_does_not_change_results():
    n = 64
    args = (
        negative_binomial_demand(np.linspace(0.5, 30, n), np.full(n, 2.0)),
        uniform_lead_times(1, 6, n),
        order_up_to_policy(np.linspace(5, 150, n)),
    )
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate(*args, n_periods=40, n_paths=200, seed=9)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = simulate(*args, n_periods=40, n_paths=200, seed=9)
    finally:
        numba.set_num_threads(before)
    for field in ("fill_rate", "cycle_service_level", "expected_on_hand", "p_stockout"):
        np.testing.assert_array_equal(getattr(one, field), getattr(many, field))
    other_seed = simulate(*args, n_periods=40, n_paths=200, seed=10)
    assert not np.array_equal(one.fill_rate, other_seed.fill_rate)


def test_empirical_lead_times_and_quantile_demand_run():
    n = 10
    lt = empirical_lead_times([[2, 3, 3, 4], [1, 1, 9]], np.arange(n) % 2)
    assert lt.max_lead_time == 9
    q = quantile_demand(np.tile([2.0, 5.0, 9.0], (n, 1)), [0.1, 0.5, 0.9])
    res = simulate(q, lt, order_up_to_policy(np.full(n, 60.0)), n_periods=30, n_paths=200, seed=2)
    assert np.all((res.fill_rate > 0.5) & (res.fill_rate <= 1.0))
    # the median of the simulated demand is the forecast median (5 a period)
    assert abs(np.median(res.expected_demand) / 30 - q.moments()[0].mean()) < 0.3


def test_lost_sales_has_no_backorders_and_worse_service_than_backorders_is_not_assumed():
    n = 8
    args = (
        poisson_demand(np.full(n, 4.0)),
        uniform_lead_times(2, 5, n),
        order_up_to_policy(np.full(n, 20.0)),
    )
    lost = simulate(*args, n_periods=40, n_paths=300, seed=4, lost_sales=True)
    np.testing.assert_array_equal(lost.expected_backorders, 0.0)
    assert np.all(lost.fill_rate < 1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda n: poisson_demand(np.full(n, -1.0)), "mean: every entry must be >= 0"),
        (lambda n: poisson_demand(np.full((n, 2, 2), 1.0)), "mean: expected shape"),
        (lambda n: quantile_demand(np.tile([3.0, 2.0], (n, 1)), [0.1, 0.9]), "values: quantiles"),
        (lambda n: quantile_demand(np.tile([1.0, 2.0], (n, 1)), [0.9, 0.1]), "levels"),
        (lambda n: lead_times_from_pmf(np.array([[0.0, 0.0]]), n_units=n), "pmf: row 0"),
        (lambda n: uniform_lead_times(3, 2, n), "low, high"),
        (lambda n: order_up_to_policy(np.ones(n), review_period=0), "review_period"),
        (lambda n: s_Q_policy(np.ones(n), np.zeros(n)), "order_quantity"),
    ],
)
def test_bad_input_names_the_field(call, match):
    with pytest.raises(ValueError, match=match):
        call(3)


def test_mismatched_units_and_bad_run_arguments():
    d, lt = poisson_demand(np.ones(3)), fixed_lead_time(1, 3)
    with pytest.raises(ValueError, match="policy: has 2 units"):
        simulate(d, lt, order_up_to_policy(np.ones(2)), n_periods=5, n_paths=5, seed=0)
    with pytest.raises(ValueError, match="burn_in"):
        simulate(d, lt, order_up_to_policy(np.ones(3)), n_periods=5, n_paths=5, seed=0, burn_in=5)
    with pytest.raises(ValueError, match="open_orders"):
        simulate(
            d,
            lt,
            order_up_to_policy(np.ones(3)),
            n_periods=5,
            n_paths=5,
            seed=0,
            open_orders=-np.ones((3, 1)),
        )
    with pytest.raises(ValueError, match="seed"):
        simulate(d, lt, order_up_to_policy(np.ones(3)), n_periods=5, n_paths=5, seed=-1)


def test_nothing_is_compiled_at_import_and_warmup_compiles():
    import subprocess
    import sys

    code = (
        "import sys, kernels.optimize\n"
        "cpu = sys.modules['kernels._simulate_cpu'].simulate_cpu\n"
        "curve = sys.modules['kernels._simulate_curve'].curve_cpu\n"
        "assert cpu._compiled is None and curve._compiled is None, 'compiled at import'\n"
        "kernels.optimize.warmup()\n"
        "assert cpu._compiled is not None and curve._compiled is not None, 'warmup did not compile'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
