"""The engine against inventory theory: exact fill rates, closed-form levels, monotone levels, determinism.

These are the properties the older simulator (``kernels.simulate``, removed in issue 16) was held to, now
asserted of the engine the planner ships (:func:`kernels.policy_samples` then
:func:`kernels.order_up_to_levels`), per period and with backorders, over the ``L + R`` protection interval of
a periodic review (docs/timing.md).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kernels import HistoryDemand, QuantileDemand, order_up_to_levels, policy_samples

POOL = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 8.0])  # one period's demand: each value with mass 1/8


def _pmf_of_pool(pool):
    pmf = np.zeros(int(pool.max()) + 1)
    np.add.at(pmf, pool.astype(int), 1.0 / pool.shape[0])
    return pmf


def _exact_periods(L, R):
    """Periods of demand in ``X_t`` (D_LR) per review position r (uniform on 0..R-1), fixed lead time L."""
    out = []
    for r in range(R):
        count = (L - r - 1) // R + 1 if L >= r + 1 else 0  # earlier cycles' orders still outstanding
        out.append(r + 1 + R * count)
    return out


def _exact_fill_and_stockout(L, R, S):
    """Exact per-period fill rate at order-up-to S and P(D_L > S) for iid POOL demand (a mixture over r)."""
    one = _pmf_of_pool(POOL)
    mu = POOL.mean()
    short, p_out = 0.0, 0.0
    for n_lr in _exact_periods(L, R):
        p_lr = np.array([1.0])
        for _ in range(n_lr):
            p_lr = np.convolve(p_lr, one)
        p_l = np.array([1.0])
        for _ in range(n_lr - 1):
            p_l = np.convolve(p_l, one)
        x_lr, x_l = np.arange(p_lr.shape[0]), np.arange(p_l.shape[0])
        short += (p_lr @ np.maximum(x_lr - S, 0) - p_l @ np.maximum(x_l - S, 0)) / R
        p_out += p_l[x_l > S].sum() / R
    return 1.0 - short / mu, p_out


@pytest.mark.parametrize(("L", "R"), [(0, 1), (1, 1), (3, 1), (2, 2), (4, 3)])
def test_fill_rate_and_stockout_probability_are_the_exact_ones(L, R):
    n_s, paths = 12, 40_000
    s_grid = np.arange(n_s, dtype=float) * (1.5 + L)
    demand = HistoryDemand(np.tile(POOL, (n_s, 1)), np.full(n_s, POOL.shape[0]), np.ones((n_s, 1)), False)
    pmf = np.tile(np.eye(L + 1)[L], (n_s, 1))
    for crossing in (True, False):
        smp = policy_samples(demand, pmf, R, paths, 5, crossing=crossing)
        lv = order_up_to_levels(smp, 0.9, s_grid)  # position = S: fill_rate_no_order is the fill at S
        for k, s in enumerate(s_grid):
            fill, p_out = _exact_fill_and_stockout(L, R, s)
            if crossing or R == 1:  # one lead time per path and R > 1 is the L + R convention, not this one
                assert lv.fill_rate_no_order[k] == pytest.approx(max(fill, 0.0), abs=0.012), (s, crossing)
                assert lv.stockout_probability[k] == pytest.approx(p_out, abs=0.012), (s, crossing)


@pytest.mark.parametrize("L", [0, 2, 5])
def test_level_is_the_exact_least_level_meeting_the_target(L):
    demand = HistoryDemand(POOL[None, :], np.array([8]), np.ones((1, 1)), False)
    pmf = np.eye(L + 1)[L][None, :]
    smp = policy_samples(demand, pmf, 1, 200_000, 9)
    for target in (0.8, 0.9, 0.95, 0.99):
        s = order_up_to_levels(smp, target, np.zeros(1)).order_up_to[0]
        exact = next(k for k in range(200) if _exact_fill_and_stockout(L, 1, k)[0] >= target)
        assert abs(s - exact) <= 1, (target, s, exact)


def test_deterministic_demand_is_exact():
    # demand 4 every period, lead time 2, R = 1: D_LR = 12 and D_L = 8 on every path
    demand = HistoryDemand(np.full((1, 3), 4.0), np.array([3]), np.ones((1, 1)))
    smp = policy_samples(demand, np.eye(3)[2][None, :], 1, 64, 0)
    assert np.all(smp.d_lr == 12.0) and np.all(smp.d_l == 8.0)
    lv = order_up_to_levels(smp, 0.95, np.array([7.0]))
    assert lv.order_up_to[0] == 12.0  # fill(S) = 1 - ((12 - S)^+ - (8 - S)^+) / 4 >= 0.95 first at S = 12
    assert lv.fill_rate_no_order[0] == pytest.approx(1 - (5 - 1) / 4)
    assert lv.stockout_probability[0] == 1.0
    assert lv.mean_review_demand[0] == 4.0 and lv.expected_on_hand_at_level[0] == 0.0


@pytest.mark.parametrize(("L", "R"), [(2, 1), (0, 1), (3, 1)])
def test_normal_demand_level_matches_the_closed_form(L, R):
    # normal demand per period through 199 quantiles; exact fill with the standard normal loss function
    mu, sigma = 50.0, 12.0
    levels = np.linspace(0.005, 0.995, 199)
    values = (mu + sigma * stats.norm.ppf(levels)).astype(np.float32)[None, None, :]
    smp = policy_samples(QuantileDemand(levels, values), np.eye(L + 1)[L][None, :], R, 200_000, 3)

    def loss(z):
        return stats.norm.pdf(z) - z * stats.norm.sf(z)

    def fill(s):
        m_lr, s_lr = mu * (L + R), sigma * np.sqrt(L + R)
        m_l, s_l = mu * L, sigma * np.sqrt(L) if L else 1e-12
        short = s_lr * loss((s - m_lr) / s_lr) - (s_l * loss((s - m_l) / s_l) if L else max(m_l - s, 0.0))
        return 1 - short / (mu * R)

    for target in (0.9, 0.95, 0.98):
        s = order_up_to_levels(smp, target, np.zeros(1)).order_up_to[0]
        exact = next(k for k in range(1000) if fill(k) >= target)
        assert abs(s - exact) <= max(1.0, 0.01 * exact), (target, s, exact)


@settings(max_examples=25, deadline=None)
@given(
    mean=st.floats(0.2, 40.0),
    zero_share=st.floats(0.0, 0.9),
    t1=st.floats(0.5, 0.97),
    dt=st.floats(0.0, 0.02),
    review=st.integers(1, 3),
)
def test_level_never_falls_as_the_target_rises(mean, zero_share, t1, dt, review):
    rng = np.random.default_rng(int(mean * 1000))
    pool = np.where(rng.random((1, 30)) < zero_share, 0.0, rng.gamma(1.2, mean, (1, 30)))
    smp = policy_samples(HistoryDemand(pool, np.array([30]), np.ones((1, 1))), np.full((1, 4), 0.25), review,
                         500, 1)  # fmt: skip
    lo = order_up_to_levels(smp, t1, np.zeros(1)).order_up_to[0]
    hi = order_up_to_levels(smp, t1 + dt, np.zeros(1)).order_up_to[0]
    assert hi >= lo


_DIGEST = (
    "import hashlib, numpy as np\n"
    "from kernels import HistoryDemand, policy_samples\n"
    "rng = np.random.default_rng(0)\n"
    "d = HistoryDemand(rng.gamma(1.0, 5.0, (64, 40)), np.full(64, 40), np.ones((64, 3)))\n"
    "s = policy_samples(d, np.full((64, 6), 1 / 6), 2, 300, 11, lead_time_counts=np.full((64, 6), 2.0))\n"
    "print(hashlib.sha256(s.d_l.tobytes() + s.d_lr.tobytes()).hexdigest())\n"
)


def test_thread_count_and_chunking_do_not_change_results():
    env = dict(os.environ)
    runs = []
    for threads in ("1", "2"):
        env["NUMBA_NUM_THREADS"] = threads
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST], env=env, capture_output=True, text=True, check=True
        )
        runs.append(out.stdout.strip())
    assert runs[0] == runs[1]
    # a unit's paths depend on its global id, not on its row in the call
    rng = np.random.default_rng(0)
    d = HistoryDemand(rng.gamma(1.0, 5.0, (10, 40)), np.full(10, 40), np.ones((10, 3)))
    pmf = np.full((10, 6), 1 / 6)
    whole = policy_samples(d, pmf, 1, 100, 3)
    part = policy_samples(d.rows(slice(4, 7)), pmf[4:7], 1, 100, 3, unit_ids=np.arange(4, 7))
    np.testing.assert_array_equal(part.d_lr, whole.d_lr[4:7])


def test_nothing_is_compiled_at_import_and_warmup_compiles():
    code = (
        "import sys, kernels, planning\n"
        "assert 'kernels._policy_cpu' not in sys.modules, 'engine kernels loaded at import time'\n"
        "assert 'numba' not in sys.modules, 'numba imported at import time'\n"
        "kernels.warmup()\n"
        "assert sys.modules['kernels._policy_cpu'].protection_paths._compiled is not None\n"
        "assert planning.warmup is kernels.warmup\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
