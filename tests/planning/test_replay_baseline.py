import numpy as np
import pytest

from planning._baseline import history_baseline
from planning._replay import replay_policy


def test_replay_constant_demand_fixed_lead_time():
    n, t = 2, 40
    demand = np.full((n, t), 10.0)
    lead = np.full((n, t), 2)
    ones, zeros, inf = np.ones(n), np.zeros(n), np.full(n, np.inf)
    # S = 30 covers L + R = 3 periods exactly: never short; S = 20 leaves 10 short each period in steady state
    res = replay_policy(demand, lead, lambda _t: np.array([30.0, 20.0]), 0, 5, 20, ones, zeros, inf, ones)
    assert res.unit_fill_rate[0] == 1.0
    # S = 20: the position after ordering (20) is exactly eaten by the 2 periods of lead time, so every period
    # starts with nothing on hand in steady state
    assert res.unit_fill_rate[1] == pytest.approx(0.0, abs=1e-9)
    assert res.order_count == 40  # one order per unit and measured period
    assert res.stockout_units == pytest.approx(20 * 10 * (1 - res.unit_fill_rate[1]))


def test_replay_moq_lowers_order_count():
    n, t = 1, 40
    demand = np.full((n, t), 3.0)
    lead = np.full((n, t), 1)
    one = np.ones(n)
    a = replay_policy(
        demand, lead, lambda _t: np.array([6.0]), 0, 5, 30, one, np.zeros(n), np.full(n, np.inf), one
    )
    b = replay_policy(
        demand, lead, lambda _t: np.array([6.0]), 0, 5, 30, one, np.full(n, 30.0), np.full(n, np.inf), one
    )
    assert b.order_count < a.order_count / 5
    assert b.avg_on_hand > a.avg_on_hand
    assert a.fill_rate == 1.0 and b.fill_rate == 1.0


def test_baseline_lift_interval_rmse_and_intermittency():
    rng = np.random.default_rng(0)
    t = 104
    promo = rng.random((3, t)) < 0.15
    lam = np.array([[20.0], [20.0], [0.3]]) * np.where(promo, 2.0, 1.0)
    y = rng.poisson(lam).astype(float)
    # unit 1: a level shift half-way through the last year -> persistent errors
    y[1, -26:] += 15
    pf = np.zeros((3, 4), dtype=bool)
    pf[:, 2] = True
    b = history_baseline(y, promo, pf, interval=3)
    assert b.lift[0] == pytest.approx(2.0, rel=0.2)
    assert b.mean[0, 2] == pytest.approx(b.mean[0, 0] * b.lift[0])
    # a level shift makes errors persist: the interval-measured spread grows beyond the one-step RMSE
    assert b.interval_rmse[1] / b.rmse[1] > 1.2 * b.interval_rmse[0] / b.rmse[0]
    assert b.values.shape == (3, 4, len(b.levels))
    assert np.all(np.diff(b.values, axis=2) >= 0)
    assert b.values[2, 0, 0] == pytest.approx(0.0, abs=1e-3)  # intermittent: lowest quantile is zero
    with pytest.raises(ValueError, match="history"):
        history_baseline(-np.ones((1, 5)), np.zeros((1, 5), bool), np.zeros((1, 2), bool))
