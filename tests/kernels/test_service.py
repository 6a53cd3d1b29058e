"""Group fill targets: menus of levels per unit and their allocation (kernels.service_menu and friends)."""

import dataclasses
import itertools

import numpy as np
import pytest

from kernels import (
    ProtectionSamples,
    ServiceMenu,
    allocate_group_fill,
    fill_grid,
    order_up_to_levels,
    service_menu,
)


def _samples(rng, n, paths=4000):
    """Paired samples of the crossing model's form (d_l = Y, d_lr = X = D_t + Y), units of three kinds."""
    kind = np.arange(n) % 3
    mean = np.where(kind == 0, 20.0, np.where(kind == 1, 2.0, 6.0))
    y = np.empty((n, paths))
    d = np.empty((n, paths))
    for i in range(n):
        if kind[i] == 1:  # intermittent, lumpy: 80% zero periods
            per = lambda k: (rng.random(k) < 0.2) * rng.geometric(0.1, k)  # noqa: E731
        else:
            per = lambda k, m=mean[i]: rng.poisson(m, k).astype(float)  # noqa: E731
        span = rng.integers(1, 6, paths)  # lead time of the pipeline, 1..5 periods
        y[i] = [per(s).sum() for s in span]
        d[i] = per(paths)
    smp = ProtectionSamples(d_l=y.astype(np.float32), d_lr=(y + d).astype(np.float32))
    return smp, kind


def _sorted(smp, target=0.95, lot=None):
    n = smp.d_l.shape[0]
    lv = order_up_to_levels(smp, target, np.zeros(n), lot, in_place=True)
    return dataclasses.replace(smp, is_sorted=True), lv


def test_menu_levels_match_the_unit_policy_and_rise_with_the_target():
    rng = np.random.default_rng(1)
    smp, _ = _samples(rng, 6)
    lot = np.array([0.0, 5.0, 12.0, 0.0, 1.0, 30.0])
    taus = fill_grid(0.5)
    sorted_smp, _ = _sorted(smp, lot=lot)
    menu = service_menu(sorted_smp, lot, taus)
    assert np.all(np.diff(menu.order_up_to, axis=1) >= 0)
    assert np.all(np.diff(menu.on_hand, axis=1) >= -1e-9)
    assert np.all(menu.fill_rate >= taus[None, :] - 1e-12)
    for k in (0, len(taus) // 2, len(taus) - 1):  # the menu's level for tau is the unit policy's level at tau
        lv = order_up_to_levels(sorted_smp, taus[k], np.zeros(6), lot)
        assert np.array_equal(menu.order_up_to[:, k], lv.order_up_to)
        assert np.allclose(menu.fill_rate[:, k], lv.fill_rate_at_level)
    # weight = expected demand per period E[X - Y]
    assert np.allclose(menu.weight, (smp.d_lr - smp.d_l).mean(axis=1), rtol=1e-6)


def _brute_force(menu, target):
    n, k = menu.fill_rate.shape
    best = np.inf
    need = target * menu.weight.sum()
    for combo in itertools.product(range(k), repeat=n):
        idx = np.array(combo)
        rows = np.arange(n)
        if (menu.weight * menu.fill_rate[rows, idx]).sum() >= need - 1e-9:
            best = min(best, menu.on_hand[rows, idx].sum())
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_allocation_meets_the_group_target_near_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    n, k = 5, 5
    weight = rng.uniform(0.5, 20.0, n)
    # concave-ish exchange curves: fill rises with diminishing returns as on-hand rises
    cost_scale = rng.uniform(0.5, 8.0, n)[:, None]
    fills = np.sort(rng.uniform(0.6, 0.999, (n, k)), axis=1)
    fills[:, -1] = rng.uniform(0.95, 0.999, n)  # the target is reachable
    on_hand = cost_scale * -np.log(1.0 - fills) * weight[:, None] ** 0.5
    menu = ServiceMenu(
        taus=np.linspace(0.6, 0.99, k),
        order_up_to=np.cumsum(np.ones((n, k)), axis=1),
        fill_rate=fills,
        on_hand=on_hand,
        weight=weight,
    )
    target = 0.9
    alloc = allocate_group_fill(menu, np.zeros(n, np.int64), np.array([target]))
    rows = np.arange(n)
    achieved = (weight * fills[rows, alloc.choice]).sum() / weight.sum()
    assert achieved >= target - 1e-9
    assert np.isclose(alloc.group_fill[0], achieved)
    cost = on_hand[rows, alloc.choice].sum()
    opt = _brute_force(menu, target)
    # Lagrangian allocation: optimal over the convex hull; the discrete gap is at most one unit's step
    step = np.diff(on_hand, axis=1).max()
    assert opt - 1e-9 <= cost <= opt + step
    # and never worse than giving every unit the target itself (a feasible choice)
    uniform_k = np.argmax(fills >= target, axis=1)
    feasible = np.all(fills[rows, uniform_k] >= target)
    if feasible:
        assert cost <= on_hand[rows, uniform_k].sum() + step


def test_group_targets_hold_less_stock_than_the_same_target_in_every_unit():
    rng = np.random.default_rng(5)
    n = 30
    smp, kind = _samples(rng, n, paths=2000)
    lot = np.zeros(n)
    sorted_smp, lv = _sorted(smp, 0.95, lot)
    menu = service_menu(sorted_smp, lot, fill_grid(0.8))
    groups = (np.arange(n) >= 15).astype(np.int64)
    alloc = allocate_group_fill(menu, groups, np.array([0.95, 0.9]))
    w = menu.weight
    for g, t in ((0, 0.95), (1, 0.9)):
        m = groups == g
        assert (w[m] * alloc.fill_rate[m]).sum() / w[m].sum() >= t - 1e-9
        assert alloc.group_fill[g] >= t - 1e-9
    assert np.all(alloc.fill_rate >= 0.8 - 1e-12)  # the floor holds for every unit
    m0 = groups == 0
    rows = np.arange(n)
    per_unit_95 = menu.on_hand[m0, np.searchsorted(menu.taus, 0.95)].sum()
    assert menu.on_hand[rows, alloc.choice][m0].sum() < per_unit_95
    # the stock moves to where it buys most: the lumpy slow units get lower fill rates than the fast ones
    assert alloc.fill_rate[m0 & (kind == 1)].mean() < alloc.fill_rate[m0 & (kind == 0)].mean()


def test_unreachable_group_target_gives_every_unit_its_top_level():
    menu = ServiceMenu(
        taus=np.array([0.5, 0.9]),
        order_up_to=np.array([[1.0, 2.0], [1.0, 3.0]]),
        fill_rate=np.array([[0.5, 0.9], [0.6, 0.92]]),
        on_hand=np.array([[1.0, 2.0], [1.0, 3.0]]),
        weight=np.array([1.0, 1.0]),
    )
    alloc = allocate_group_fill(menu, np.zeros(2, np.int64), np.array([0.99]))
    assert alloc.choice.tolist() == [1, 1]
    assert alloc.group_fill[0] == pytest.approx(0.91)


def test_bad_inputs_are_refused_with_the_reason():
    rng = np.random.default_rng(0)
    smp, _ = _samples(rng, 3, paths=100)
    with pytest.raises(ValueError, match="sorted samples"):
        service_menu(smp, np.zeros(3), fill_grid(0.8))
    sorted_smp, _ = _sorted(smp)
    with pytest.raises(ValueError, match="taus"):
        service_menu(sorted_smp, np.zeros(3), np.array([0.9, 0.8]))
    with pytest.raises(ValueError, match="fill floor"):
        fill_grid(1.0)
    menu = service_menu(sorted_smp, np.zeros(3), fill_grid(0.8))
    with pytest.raises(ValueError, match="group"):
        allocate_group_fill(menu, np.array([0, 1, 2]), np.array([0.95]))
    with pytest.raises(ValueError, match="target"):
        allocate_group_fill(menu, np.zeros(3, np.int64), np.array([1.0]))
