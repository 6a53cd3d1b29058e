import numpy as np
import pytest
from scipy.stats import norm

from kernels import effective_lot, expected_served, order_up_to_levels, protection_samples
from planning._classic import classic_order_up_to, normal_loss_inverse

LEVELS = np.linspace(0.01, 0.99, 99)


def _normal(n, mean, sd, h=6):
    return np.tile(norm.ppf(LEVELS, mean, sd).astype(np.float32), (n, h, 1))


def _fixed_lt(n, lt, k=6):
    pmf = np.zeros((n, k))
    pmf[:, lt] = 1.0
    return pmf


def test_level_matches_normal_loss_formula():
    # Normal demand (mean 20, sd 4 per period), L = 2, R = 1: sigma_LR = 4 sqrt(3), mu_R = 20.
    n = 3
    smp = protection_samples(
        LEVELS, _normal(n, 20, 4), _fixed_lt(n, 2), np.ones(n, int), 20000, np.random.default_rng(0)
    )
    lv = order_up_to_levels(smp, np.array([0.9, 0.95, 0.99]), np.full(n, 60.0))
    sigma = 4 * np.sqrt(3)
    z = normal_loss_inverse((1 - np.array([0.9, 0.95, 0.99])) * 20 / sigma)
    # with L a multiple of R and backorders, the cycle shortage is E(D_LR - S)^+ - E(D_L - S)^+; the second
    # term is negligible here, so S ~ 60 + z sigma
    assert np.allclose(lv.order_up_to, 60 + z * sigma, atol=1.5)
    assert np.all(lv.fill_rate_at_level >= [0.9, 0.95, 0.99])
    assert np.allclose(lv.mean_protection_demand, 60, rtol=0.02)
    assert np.allclose(lv.mean_review_demand, 20, rtol=0.03)
    # stockout before the order arrives: P(D_L > 60) with D_L ~ N(40, 4 sqrt 2)
    assert np.allclose(lv.stockout_probability, 1 - norm.cdf(60, 40, 4 * np.sqrt(2)), atol=0.01)


def test_level_never_falls_as_target_rises_and_lead_time_spread_raises_it():
    n = 1
    targets = [0.5, 0.8, 0.9, 0.95, 0.98, 0.995]
    fixed = [
        order_up_to_levels(
            protection_samples(LEVELS, _normal(n, 5, 3), _fixed_lt(n, 2), 1, 4000, 1), t, np.zeros(n)
        ).order_up_to[0]
        for t in targets
    ]
    assert fixed == sorted(fixed)
    spread = np.array([[0.0, 0.3, 0.2, 0.2, 0.3, 0.0]])  # same-ish mean (2.5) but wide
    wide = order_up_to_levels(
        protection_samples(LEVELS, _normal(n, 5, 3), spread, 1, 4000, 1), 0.95, np.zeros(n)
    ).order_up_to[0]
    assert wide > fixed[targets.index(0.95)]


def test_intermittent_demand_is_not_normal():
    # 90% zeros, else 10 units: P(D_LR = 0) is large, the level is far from a normal approximation's.
    q = np.where(LEVELS < 0.9, 0.0, 10.0).astype(np.float32)
    vals = np.tile(q, (1, 4, 1))
    smp = protection_samples(LEVELS, vals, _fixed_lt(1, 1, 3), 1, 20000, 3)
    assert np.mean(smp.d_lr[0] == 0) == pytest.approx(0.81, abs=0.02)
    lv = order_up_to_levels(smp, 0.95, np.zeros(1))
    assert lv.fill_rate_at_level[0] >= 0.95


def test_same_seed_same_samples_whatever_the_chunking():
    vals = _normal(10, 8, 2)
    pmf = np.tile([0.0, 0.5, 0.5, 0.0], (10, 1))
    whole = protection_samples(LEVELS, vals, pmf, 1, 64, 42)
    part = protection_samples(LEVELS, vals[4:7], pmf[4:7], 1, 64, 42, unit_ids=np.arange(4, 7))
    assert np.array_equal(whole.d_lr[4:7], part.d_lr)
    other = protection_samples(LEVELS, vals, pmf, 1, 64, 43)
    assert not np.array_equal(whole.d_lr, other.d_lr)


def test_lot_counts_towards_fill_and_expected_served_is_concave():
    smp = protection_samples(LEVELS, _normal(1, 5, 2), _fixed_lt(1, 1), 1, 4000, 5)
    s0 = order_up_to_levels(smp, 0.95, np.zeros(1)).order_up_to[0]
    lot = effective_lot(np.array([1.0]), np.array([40.0]), np.array([5.0]))
    assert lot[0] == 35.0
    s_lot = order_up_to_levels(smp, 0.95, np.zeros(1), lot).order_up_to[0]
    assert s_lot < s0  # a 35-unit lot already covers most of the risk
    ys = np.arange(0, 30, dtype=float)
    served = expected_served(smp, np.zeros(ys.size, int), ys)
    d = np.diff(served)
    assert np.all(d >= -1e-9) and np.all(np.diff(d) <= 1e-9)


def test_bad_inputs_named():
    with pytest.raises(ValueError, match="lead_time_pmf row 0"):
        protection_samples(LEVELS, _normal(1, 5, 1), np.array([[0.5, 0.4]]), 1, 16, 0)
    with pytest.raises(ValueError, match="quantile values"):
        protection_samples(LEVELS, np.zeros((1, 2, 3), np.float32), _fixed_lt(1, 1), 1, 16, 0)
    with pytest.raises(ValueError, match="fill_target"):
        order_up_to_levels(
            protection_samples(LEVELS, _normal(1, 5, 1), _fixed_lt(1, 1), 1, 16, 0), 1.0, [0.0]
        )


def test_classic_rule():
    mean = np.full((2, 8), 10.0)
    s = classic_order_up_to(mean, np.array([3.0, 3.0]), np.array([2.0, 2.5]), 1, 0.95, method="cycle_service")
    assert s[0] == pytest.approx(30 + 1.6449 * 3 * np.sqrt(3), abs=1e-3)
    assert s[1] == pytest.approx(35 + 1.6449 * 3 * np.sqrt(3.5), abs=1e-3)  # fractional mean lead time
    f = classic_order_up_to(mean, np.array([3.0, 3.0]), np.array([2.0, 2.0]), 1, 0.95)
    z = normal_loss_inverse(np.array([0.05 * 10 / (3 * np.sqrt(3))]))[0]
    assert f[0] == pytest.approx(30 + z * 3 * np.sqrt(3))
