"""The policy's one simulation entry point: crossing maths against a NumPy replay, determinism, plan()."""

import dataclasses
from datetime import date

import numpy as np
import polars as pl
import pytest

from features.synth import generate
from kernels import (
    HistoryDemand,
    ProtectionSamples,
    QuantileDemand,
    effective_lot,
    order_up_to_levels,
    policy_samples,
)
from planning._bootstrap import history_pool
from planning._history import dirichlet_strength
from planning._inputs import LT_PRIOR, inputs_from_frames, lead_time_prior_strength
from planning._plan import Forecast, PlanConfig, plan

# Demand per period: the quantile function through these points is 20 u on [0, 0.9] (uniform 0..18 with mass
# 0.9) and an exponential tail above, 18 + 2 log(0.1 / (1 - u)) (the sampler's tail rule), mean 9.1 + 2.
LEVELS = np.array([0.1, 0.5, 0.9])
VALUES = np.array([2.0, 10.0, 18.0], dtype=np.float32)
LT_PMF = np.array([0.0, 0.4, 0.3, 0.0, 0.3])  # lead times 1, 2 or 4 periods, independent per order


def _inverse(u):
    return np.where(u <= 0.9, 20.0 * u, 18.0 + 2.0 * np.log(0.1 / (1.0 - u)))


def _reference_replay(review, n_periods, rng):
    """Plain NumPy replay of an order-up-to system whose orders each draw their own lead time.

    Orders are placed at reviews t = 0, R, 2R, ... for the demand of the cycle before (inventory position back
    to S) and arrive L periods later (serving from period t + L on). At each period t (from a review tau,
    t - tau < R) the demand S has to cover is X_t = D(tau..t) + the orders placed at tau, tau - R, ... still
    outstanding at t (tau_c + L_c > t). Returns (X_t - D_t, X_t) over the steady-state periods.
    """
    d = _inverse(rng.random(n_periods))
    cum = np.concatenate([[0.0], np.cumsum(d)])
    k = LT_PMF.shape[0]
    reviews = np.arange(0, n_periods, review)
    lead = rng.choice(k, size=reviews.shape[0], p=LT_PMF)
    qty = np.where(reviews >= review, cum[reviews] - cum[np.maximum(reviews - review, 0)], 0.0)
    t = np.arange(k + 2 * review, n_periods)
    tau_i = t // review  # index of the last review at or before t
    x = cum[t + 1] - cum[tau_i * review]  # demand since that review, D_t included
    for c in range(0, k // review + 2):  # orders placed c cycles back, outstanding while tau + L > t
        j = tau_i - c
        x = x + np.where(reviews[j] + lead[j] > t, qty[j], 0.0)
    return x - d[t], x


@pytest.mark.parametrize("review", [1, 2])
def test_crossing_quantile_sampler_matches_a_numpy_replay_of_crossing_orders(review):
    n, paths = 4, 50_000
    values = np.tile(VALUES, (n, 6, 1))
    pmf = np.tile(LT_PMF, (n, 1))
    smp = policy_samples(QuantileDemand(LEVELS, values), pmf, review, paths, 11, crossing=True)
    ref_l, ref_lr = _reference_replay(review, 400_000, np.random.default_rng(5))
    ours_lr = smp.d_lr.ravel().astype(np.float64)
    ours_l = smp.d_l.ravel().astype(np.float64)
    # same distribution of the demand to cover: moments and quantiles (MC error here is < 0.5% / 1%)
    assert ours_lr.mean() == pytest.approx(ref_lr.mean(), rel=0.015)
    assert ours_lr.std() == pytest.approx(ref_lr.std(), rel=0.03)
    assert ours_l.mean() == pytest.approx(ref_l.mean(), rel=0.02)
    qs = [0.1, 0.5, 0.9, 0.95, 0.99]
    assert np.allclose(np.quantile(ours_lr, qs), np.quantile(ref_lr, qs), rtol=0.03, atol=0.5)

    # the level meeting 90% fill from our paths gives ~90% in the replay (exact per-period fill rate)
    def replay_fill(smp):
        s = order_up_to_levels(smp, 0.9, np.zeros(n)).order_up_to[0]
        short = np.maximum(ref_lr - s, 0) - np.maximum(ref_l - s, 0)
        return 1 - short.sum() / (ref_lr - ref_l).sum()

    assert 0.89 <= replay_fill(smp) <= 0.915
    # the one-lead-time-per-path model over-stocks here: its level lands outside that window
    seq = policy_samples(QuantileDemand(LEVELS, values), pmf, review, paths, 11, crossing=False)
    assert replay_fill(seq) > 0.92


def test_quantile_draws_follow_the_period_of_their_distance():
    # demand 0 in period 0, 100 from period 1 on: the current period (distance 0) draws 0, earlier ones 100
    values = np.zeros((1, 3, 3), np.float32)
    values[0, 1:] = 100.0
    pmf = np.array([[0.0, 0.0, 1.0]])  # L = 2, R = 1: X = D_t + orders of distances 1 and 2
    smp = policy_samples(QuantileDemand(LEVELS, values), pmf, 1, 64, 0, crossing=True)
    assert np.allclose(smp.d_lr, 200.0) and np.allclose(smp.d_l, 200.0)


@pytest.mark.parametrize("source", ["quantiles", "history"])
def test_same_seed_same_samples_whatever_the_chunk(source):
    rng = np.random.default_rng(3)
    n = 9
    pmf = rng.dirichlet(np.ones(6), n)
    counts = 20 * pmf + 4 * pmf.mean(axis=0)
    if source == "quantiles":
        src = QuantileDemand(LEVELS, np.sort(rng.gamma(2.0, 3.0, (n, 4, 3)), axis=2).astype(np.float32))
    else:
        src = HistoryDemand(rng.poisson(3.0, (n, 30)).astype(float), rng.integers(0, 31, n), np.ones((n, 4)))
    whole = policy_samples(src, pmf, 2, 128, 42, lead_time_counts=counts)
    for chunk in (1, 4):
        for c0 in range(0, n, chunk):
            sl = slice(c0, min(c0 + chunk, n))
            ids = np.arange(sl.start, sl.stop)
            part = policy_samples(
                src.rows(sl), pmf[sl], 2, 128, 42, unit_ids=ids, lead_time_counts=counts[sl]
            )
            assert np.array_equal(part.d_lr, whole.d_lr[sl]) and np.array_equal(part.d_l, whole.d_l[sl])
    assert not np.array_equal(policy_samples(src, pmf, 2, 128, 43, lead_time_counts=counts).d_lr, whole.d_lr)


def _units(n, review=1, fill=0.95):
    return pl.DataFrame(
        {
            "sku_id": [f"S{i}" for i in range(n)],
            "location_id": ["L0"] * n,
            "supplier_id": ["V0"] * n,
            "on_hand": [0.0] * n,
            "on_order": [0.0] * n,
            "backorders": [0.0] * n,
            "committed": [0.0] * n,
            "fill_target": [fill] * n,
            "review_periods": [review] * n,
            "unit_cost": [1.0] * n,
            "pack_size": [1.0] * n,
            "moq": [0.0] * n,
            "max_order_qty": [None] * n,
            "lead_time_mean": [3.0] * n,
            "lead_time_std": [2.0] * n,
        },
        schema_overrides={"max_order_qty": pl.Float64},
    )


def _normal_forecast(n, mean=20.0, sd=5.0):
    from scipy.stats import norm

    lv = np.linspace(0.02, 0.98, 49)
    vals = np.tile(norm.ppf(lv, mean, sd).astype(np.float32), (n, 8, 1))
    return Forecast(levels=lv, values=vals, version="t", model_version=None, source="test")


def test_crossing_plan_gives_lower_levels_where_lead_times_vary():
    n = 20
    pmf = np.zeros((n, 8))
    pmf[:10, [1, 2, 4, 7]] = [0.3, 0.3, 0.2, 0.2]  # varying lead times (independent per order)
    pmf[10:, 3] = 1.0  # fixed lead time: orders cannot cross, both models agree
    fc = _normal_forecast(n)
    cfg = PlanConfig(n_paths=4000, seed=1)
    cross = plan(_units(n), fc, pmf, as_of=date(2026, 1, 5), config=cfg).units["order_up_to"].to_numpy()
    seq = (
        plan(_units(n), fc, pmf, as_of=date(2026, 1, 5), config=dataclasses.replace(cfg, crossing=False))
        .units["order_up_to"]
        .to_numpy()
    )
    assert np.all(cross[:10] < seq[:10]) and (seq[:10] - cross[:10]).mean() > 10
    assert np.allclose(cross[10:], seq[10:], atol=2.0)


def test_plan_with_a_history_source_is_the_backtests_policy():
    # plan() on a history source with lead-time counts gives exactly the levels of the backtest's call
    rng = np.random.default_rng(8)
    n = 12
    hist = rng.poisson(4.0, (n, 60)).astype(float)
    promo = rng.random((n, 60)) < 0.1
    pool, plen = history_pool(hist, promo, 52)
    src = HistoryDemand(pool, plen, np.ones((n, 6)))
    pmf = rng.dirichlet(np.ones(6), n)
    counts = 10 * pmf + LT_PRIOR / 6
    fc = Forecast(LEVELS, src.quantiles(LEVELS), "v", None, "baseline:bootstrap", history=src)
    units = _units(n)
    cfg = PlanConfig(n_paths=300, seed=5, chunk_size=5)
    got = plan(units, fc, pmf, as_of=date(2026, 1, 5), lead_time_counts=counts, config=cfg).units
    smp = policy_samples(src, pmf, 1, 300, 5, lead_time_counts=counts)
    lot = effective_lot(np.ones(n), np.zeros(n), src.mean()[:, 0])
    want = order_up_to_levels(smp, 0.95, np.zeros(n), lot).order_up_to
    assert got["order_up_to"].to_list() == want.tolist()
    assert got["mean_demand"].to_numpy() == pytest.approx(src.mean()[:, 0])


def test_history_quantiles_are_the_pools_empirical_quantiles():
    pool = np.array([[3.0, 1.0, 2.0, 9.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    src = HistoryDemand(pool, np.array([3, 1, 0]), np.array([[1.0, 2.0], [1.0, 1.0], [1.0, 1.0]]))
    q = src.quantiles(np.array([0.25, 0.5, 0.9]))
    assert q.shape == (3, 2, 3)
    assert np.allclose(q[0, 0], np.quantile([3.0, 1.0, 2.0], [0.25, 0.5, 0.9]))
    assert np.allclose(q[0, 1], 2 * q[0, 0])  # the factor scales the pool
    assert np.allclose(q[1], 5.0) and np.allclose(q[2], 0.0)
    assert np.allclose(src.mean(), [[2.0, 4.0], [5.0, 5.0], [0.0, 0.0]])


def test_bad_lead_time_counts_are_refused_naming_the_row():
    n = 4
    fc = _normal_forecast(n)
    pmf = np.tile([0.0, 0.5, 0.5], (n, 1))
    kw = dict(as_of=date(2026, 1, 5), config=PlanConfig(n_paths=16))
    with pytest.raises(ValueError, match=r"lead_time_counts: expected shape \(4, 3\).*got \(4, 2\)"):
        plan(_units(n), fc, pmf, lead_time_counts=np.ones((n, 2)), **kw)
    bad = np.ones((n, 3))
    bad[2, 1] = -1.0
    with pytest.raises(ValueError, match=r"lead_time_counts row 2: .*expected finite counts >= 0"):
        plan(_units(n), fc, pmf, lead_time_counts=bad, **kw)
    bad[2, 1], bad[3] = 1.0, 0.0
    with pytest.raises(ValueError, match="lead_time_counts row 3"):
        plan(_units(n), fc, pmf, lead_time_counts=bad, **kw)
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="lead_time_counts row 3"):
        plan(_units(n), fc, pmf, lead_time_counts=bad, **kw)
    with pytest.raises(ValueError, match="lead_time_pmf row 1"):
        plan(_units(n), fc, np.array([[0, 1, 0], [0.5, 0.4, 0], [1, 0, 0], [1, 0, 0]]), **kw)
    with pytest.raises(ValueError, match="history has 3 units but values has 4"):
        Forecast(
            LEVELS,
            fc.values[:, :, :3],
            "v",
            None,
            "s",
            history=HistoryDemand(np.ones((3, 2)), [2] * 3, np.ones((3, 1))),
        )
    with pytest.raises(TypeError, match="QuantileDemand or HistoryDemand"):
        policy_samples(ProtectionSamples(np.ones((1, 1)), np.ones((1, 1))), pmf[:1], 1, 8, 0)


def test_inputs_from_frames_give_the_history_source_and_lead_time_posterior():
    tables = generate(60, 40, freq="W", seed=2).tables()
    inputs = inputs_from_frames(**tables)
    fc, counts, pmf = inputs.forecast, inputs.lead_time_counts, inputs.lead_time_pmf
    assert fc.source == "baseline:bootstrap" and fc.history is not None
    assert counts.shape == pmf.shape and np.all(counts >= 0)
    assert np.allclose(pmf, counts / counts.sum(axis=1, keepdims=True))
    n_obs = inputs.units["lead_time_n"].fill_null(0).to_numpy()
    seen = n_obs > 0
    assert seen.any()
    # deliveries observed plus the pooled prior's pseudo-deliveries, its weight estimated from the terms
    strength = lead_time_prior_strength(tables["lead_times"], pmf.shape[1], 7)
    assert 0.5 <= strength <= 100.0
    assert np.allclose(counts.sum(axis=1)[seen], n_obs[seen] + strength)
    # the reported quantiles are the pool's own: unit 0's median is its non-promoted history's median
    h = fc.history
    assert np.isclose(fc.values[0, 0, 24], np.median(h.pool[0, : h.pool_len[0]]), atol=1e-4)  # level 0.5
    res = plan(
        inputs.units, fc, pmf, as_of=inputs.as_of, lead_time_counts=counts, config=PlanConfig(n_paths=64)
    )
    assert res.meta["lead_time_posterior"] and res.meta["crossing"]
    assert (res.units["fill_rate_at_level"] >= res.units["fill_target"] - 1e-9).all()


def test_lead_time_posterior_matches_explicit_dirichlet_draws():
    # Constant demand 1 per period, R = 1: X = 1 + #{c : L_c >= c + 1}. Reference: each path draws
    # theta ~ Dirichlet(counts) explicitly, then its orders' lead times iid from theta; the sampler integrates
    # theta out (Polya urn). The distributions of X must agree; the plain pmf (no posterior) must not.
    counts = np.array([0.0, 2.0, 1.0, 0.5, 0.0, 1.5])
    k, paths = counts.shape[0], 200_000
    values = np.ones((1, 8, 3), np.float32)
    pmf = (counts / counts.sum())[None, :]
    smp = policy_samples(QuantileDemand(LEVELS, values), pmf, 1, paths, 4, lead_time_counts=counts[None, :])
    rng = np.random.default_rng(9)
    theta = rng.dirichlet(counts[counts > 0], paths)
    support = np.flatnonzero(counts > 0)
    u = rng.random((paths, k - 1))
    lead = support[(u[:, :, None] > np.cumsum(theta, axis=1)[:, None, :]).sum(axis=2)]
    ref = 1 + (lead >= np.arange(1, k)[None, :]).sum(axis=1)
    bins = np.arange(1, k + 1)
    p_ours = np.array([(np.rint(smp.d_lr[0]) == b).mean() for b in bins])
    p_ref = np.array([(ref == b).mean() for b in bins])
    assert np.abs(p_ours - p_ref).sum() / 2 < 0.01  # total variation
    plain = policy_samples(QuantileDemand(LEVELS, values), pmf, 1, paths, 4)
    p_plain = np.array([(np.rint(plain.d_lr[0]) == b).mean() for b in bins])
    assert np.abs(p_plain - p_ref).sum() / 2 > 0.03


@pytest.mark.parametrize("alpha", [1.5, 8.0, 40.0])
def test_prior_strength_is_recovered_from_dirichlet_multinomial_terms(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    m, n = 600, 26
    centre = np.array([0.05, 0.3, 0.25, 0.15, 0.1, 0.08, 0.05, 0.02])
    theta = rng.dirichlet(alpha * centre, m)
    counts = np.stack([rng.multinomial(n, t) for t in theta]).astype(float)
    est = dirichlet_strength(counts)
    assert alpha / 1.6 <= est <= alpha * 1.6, est


def test_prior_strength_edge_cases():
    same = np.tile([0.0, 10.0, 10.0, 6.0], (20, 1))  # identical terms: no spread beyond noise
    assert dirichlet_strength(same) == 100.0
    assert dirichlet_strength(np.ones((3, 4)) * 5, default=4.0) == 4.0  # too few terms: the default
    one_bin = np.zeros((10, 4))
    one_bin[:, 2] = 7
    assert dirichlet_strength(one_bin) == 100.0
    apart = np.zeros((10, 4))
    apart[np.arange(10), np.arange(10) % 4] = 20  # each term always the same, terms differ: weak prior
    assert dirichlet_strength(apart) == 0.5
    with pytest.raises(ValueError, match="counts"):
        dirichlet_strength(-np.ones((6, 3)))
