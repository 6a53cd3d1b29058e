"""The simulation kernel against a plain-Python transcription of the model in docs/timing.md.

The reference below follows the written timing convention step by step (receive, review, demand, count) with
the same random draws (the counter-based uniforms and the same alias tables), so any difference is a bug in
the kernel's policies, lead times, lost sales, open orders, review cycles, burn-in or statistics.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels._rng import uniforms
from kernels._sampling import build_discrete_tables, build_pmf_tables, norm_ppf
from kernels.simulate import (
    lead_times_from_pmf,
    min_max_policy,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    s_Q_policy,
    s_S_policy,
    simulate,
)


def _alias(off, lo, tab, row, u32):
    start = int(off[row])
    n = (int(off[row + 1]) - start) // 2
    prod = u32 * n
    j = prod >> 32
    k = j if (prod & 0xFFFFFFFF) < int(tab[start + j]) else int(tab[start + n + j])
    return int(lo[row]) + k


def reference(kind, mean, sd, pmf, policy, s, S, Q, R, lost, net0, open_orders, T, P, burn, seed):
    """Per-unit figures of the model, written out plainly."""
    n = len(mean)
    u = uniforms(seed, n, P, T)
    to32 = lambda v: int(round(v * 2**32))  # noqa: E731 - exact: uniforms are multiples of 2**-32
    d_tab = build_discrete_tables(0, np.asarray(mean, float)) if kind == "poisson" else None
    lt_tab = build_pmf_tables(np.asarray(pmf, float)[None, :])
    out = {k: np.zeros(n) for k in ("dem", "short", "ok", "cyc", "out", "oh", "bo", "fin", "ord", "qty")}
    for i in range(n):
        for p in range(P):
            net = float(net0[i])
            pipeline = {j: float(q) for j, q in enumerate(open_orders[i]) if q}
            ip = net + sum(pipeline.values())
            any_out = False
            cycle_bad = {}
            for t in range(T):
                ud, ul = to32(u[i, p, 2 * t]), to32(u[i, p, 2 * t + 1])
                # 1. receive
                net += pipeline.pop(t, 0.0)
                # 2. review
                if t % R == 0:
                    q = 0.0
                    if policy == "order_up_to":
                        q = max(S[i] - ip, 0.0)
                    elif policy == "s_S" and ip <= s[i]:
                        q = S[i] - ip
                    elif policy == "s_Q" and ip <= s[i]:
                        q = (math.floor((s[i] - ip) / Q[i]) + 1) * Q[i]
                    elif policy == "min_max" and ip < s[i]:
                        q = S[i] - ip
                    if q > 0:
                        L = _alias(*lt_tab, 0, ul)
                        ip += q
                        if L == 0:
                            net += q
                        else:
                            pipeline[t + L] = pipeline.get(t + L, 0.0) + q
                        if t >= burn:
                            out["ord"][i] += 1
                            out["qty"][i] += q
                # 3. demand
                if kind == "poisson":
                    d = float(_alias(*d_tab, i, ud))
                else:
                    d = max(mean[i] + sd[i] * norm_ppf((ud + 0.5) * 2.0**-32), 0.0)
                served = min(d, max(net, 0.0))
                used = served if lost else d
                net -= used
                ip -= used
                # 4. count
                if t >= burn:
                    bad = (d - served > 0) or net < 0
                    any_out |= bad
                    out["dem"][i] += d
                    out["short"][i] += d - served
                    out["oh"][i] += max(net, 0.0)
                    out["bo"][i] += max(-net, 0.0)
                    k = t // R
                    if k * R >= burn:
                        cycle_bad[k] = cycle_bad.get(k, False) or bad
            out["ok"][i] += sum(not b for b in cycle_bad.values())
            out["cyc"][i] += len(cycle_bad)
            out["out"][i] += any_out
            out["fin"][i] += max(net, 0.0)
    return out


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["poisson", "normal"]),
    policy=st.sampled_from(["order_up_to", "s_S", "s_Q", "min_max"]),
    R=st.integers(1, 3),
    lost=st.booleans(),
    pmf=st.lists(st.floats(0, 1), min_size=1, max_size=5).filter(lambda v: sum(v) > 0.1),
    mean=st.floats(0.2, 12.0),
    level=st.floats(0.0, 40.0),
    gap=st.floats(1.0, 20.0),
    start=st.floats(0.0, 30.0),
    open_q=st.floats(0.0, 10.0),
    T=st.integers(4, 14),
    burn_frac=st.floats(0, 0.9),
    seed=st.integers(0, 2**40),
)
def test_kernel_matches_plain_reference(
    kind, policy, R, lost, pmf, mean, level, gap, start, open_q, T, burn_frac, seed
):
    n, P = 2, 3
    burn = int(burn_frac * T)
    means = np.array([mean, mean * 0.5 + 0.1])
    sds = 0.6 * means
    s_lv = np.round(np.array([level, level * 0.7]))
    S_lv = s_lv + np.round(gap)
    Q_lv = np.array([max(np.round(gap), 1.0), 3.0])
    net0 = np.array([np.round(start), 0.0])
    oo = np.zeros((n, 3))
    oo[0, 1] = np.round(open_q)
    oo[1, 2] = 2.0
    pmf = np.asarray(pmf)
    demand = poisson_demand(means) if kind == "poisson" else normal_demand(means, sds)
    pol = {
        "order_up_to": lambda: order_up_to_policy(S_lv, R),
        "s_S": lambda: s_S_policy(s_lv, S_lv, R),
        "s_Q": lambda: s_Q_policy(s_lv, Q_lv, R),
        "min_max": lambda: min_max_policy(s_lv, S_lv, R),
    }[policy]()
    res = simulate(
        demand, lead_times_from_pmf(pmf, n_units=n), pol, n_periods=T, n_paths=P, seed=seed, lost_sales=lost,
        initial_net_inventory=net0, open_orders=oo, burn_in=burn,
    )  # fmt: skip
    ref = reference(
        kind, means, sds, pmf / pmf.sum(), policy, s_lv, S_lv, Q_lv, R, lost, net0, oo, T, P, burn, seed
    )
    counted = T - burn
    close = dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.expected_demand, ref["dem"] / P, **close)
    np.testing.assert_allclose(res.expected_stockout_units, ref["short"] / P, **close)
    fill = np.where(ref["dem"] > 0, 1 - ref["short"] / np.where(ref["dem"] > 0, ref["dem"], 1), 1.0)
    np.testing.assert_allclose(res.fill_rate, fill, **close)
    csl = np.where(ref["cyc"] > 0, ref["ok"] / np.maximum(ref["cyc"], 1), 1.0)
    np.testing.assert_allclose(res.cycle_service_level, csl, **close)
    np.testing.assert_allclose(res.p_stockout, ref["out"] / P, **close)
    np.testing.assert_allclose(res.expected_on_hand, ref["oh"] / (P * counted), **close)
    np.testing.assert_allclose(res.expected_backorders, ref["bo"] / (P * counted), **close)
    np.testing.assert_allclose(res.expected_excess, ref["fin"] / P, **close)
    np.testing.assert_allclose(res.expected_orders, ref["ord"] / P, **close)
    np.testing.assert_allclose(res.expected_order_quantity, ref["qty"] / P, **close)
