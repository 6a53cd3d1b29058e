"""The engine on a GPU agrees with the CPU: the same seed gives the same paths, levels, menus and allocations.

``gpu``-marked (skipped without a CUDA device, decided once in ``tests/conftest.py``); the same comparisons
run everywhere on the host-compiled CUDA source in ``test_policy_gpu_source.py``. Paths from forecast
quantiles and from a history without its mean error are bit-identical (integer generator, the same float
operations, ``--fmad=false``); with the mean error the Box-Muller ``log``/``cos`` of the device may differ
from the host's in the last bit, hence a relative tolerance of a few float32 ulps there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kernels import (
    BackendError,
    Constraint,
    HistoryDemand,
    QuantileDemand,
    allocate_group_fill,
    allocate_increments,
    expected_served,
    fill_grid,
    order_up_to_levels,
    policy_samples,
    service_menu,
)

pytestmark = pytest.mark.gpu

N = 300


def _cp():
    from kernels._backend import cupy_module

    return cupy_module()


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    pool = np.where(rng.random((N, 52)) < 0.5, 0.0, rng.gamma(1.3, 6.0, (N, 52)))
    plen = rng.integers(0, 53, N)
    factor = 1.0 + 0.6 * (rng.random((N, 8)) < 0.2)
    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    values = (rng.gamma(2.0, 5.0, (N, 8, 1)) * np.array([0.2, 0.6, 1.0, 1.5, 2.5])).astype(np.float32)
    pmf = rng.dirichlet(np.ones(10), N) * (rng.random((N, 10)) < 0.6)
    pmf[:, 1] += 1e-3
    pmf /= pmf.sum(axis=1, keepdims=True)
    counts = pmf * 26 + 0.3
    return pool, plen, factor, levels, values, pmf, counts


def _on(xp, *arrays):
    return [xp.asarray(a) for a in arrays]


@pytest.mark.parametrize("source", ["quantiles", "history", "history_mean_error"])
@pytest.mark.parametrize("crossing", [True, False])
@pytest.mark.parametrize("urn", [True, False])
@pytest.mark.parametrize("review", [1, 2])
def test_paths_agree(source, crossing, urn, review):
    cp = _cp()
    pool, plen, factor, levels, values, pmf, counts = _inputs()
    out = {}
    for xp in (np, cp):
        p, pl_, f, v, pm, c = _on(xp, pool, plen, factor, values, pmf, counts)
        if source == "quantiles":
            demand = QuantileDemand(levels, v)
        else:
            demand = HistoryDemand(p, pl_, f, mean_uncertainty=source == "history_mean_error")
        kw = {
            "crossing": crossing,
            "lead_time_counts": c if urn else None,
            "unit_ids": xp.arange(1000, 1000 + N),
        }
        smp = policy_samples(demand, pm, review, 256, 99, **kw)
        out[xp.__name__] = (smp.d_l, smp.d_lr)
    for k in range(2):
        got, want = out["cupy"][k].get(), out["numpy"][k]
        if source == "history_mean_error":
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)


def test_levels_menus_served_and_allocations_agree():
    cp = _cp()
    pool, plen, factor, _, _, pmf, counts = _inputs(1)
    target = np.linspace(0.8, 0.99, N)
    position = np.linspace(-5.0, 60.0, N)
    lot = np.where(np.arange(N) % 3 == 0, 6.0, 0.0)
    res = {}
    for xp in (np, cp):
        p, pl_, f, pm, c, t, pos, lt = _on(xp, pool, plen, factor, pmf, counts, target, position, lot)
        smp = policy_samples(HistoryDemand(p, pl_, f, False), pm, 1, 512, 5, lead_time_counts=c)
        lv = order_up_to_levels(smp, t, pos, lt, in_place=True)
        smp = dataclasses.replace(smp, is_sorted=True)
        menu = service_menu(smp, lt, fill_grid(0.8))
        group = xp.asarray(np.arange(N) % 4)
        alloc = allocate_group_fill(menu, group, xp.asarray([0.9, 0.95, 0.97, 0.85]))
        unit_of = xp.asarray(np.repeat(np.arange(N), 2))
        y = xp.asarray(np.tile([3.0, 25.0], N))
        served = expected_served(smp, unit_of, y)
        res[xp.__name__] = (lv, menu, alloc, served)
    (lv_c, menu_c, alloc_c, served_c), (lv_g, menu_g, alloc_g, served_g) = res["numpy"], res["cupy"]
    for name in ("order_up_to", "fill_rate_at_level", "fill_rate_no_order", "stockout_probability",
                 "mean_protection_demand", "mean_review_demand", "expected_on_hand_at_level",
                 "protection_quantiles", "lead_time_quantiles"):  # fmt: skip
        np.testing.assert_array_equal(getattr(lv_g, name).get(), getattr(lv_c, name), err_msg=name)
    for name in ("order_up_to", "fill_rate", "on_hand", "weight"):
        np.testing.assert_array_equal(getattr(menu_g, name).get(), getattr(menu_c, name), err_msg=name)
    np.testing.assert_array_equal(served_g.get(), served_c)
    # group sums are reduced in another order: the allocation agrees on all but rounding ties
    assert (alloc_g.choice.get() == alloc_c.choice).mean() > 0.99
    np.testing.assert_allclose(alloc_g.group_fill.get(), alloc_c.group_fill, atol=1e-3)


def test_allocation_on_device_arrays_returns_device_arrays():
    cp = _cp()
    unit_of, step, gain = np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([3.0, 1.0, 2.0])
    con = Constraint("budget", np.array([2.0, 2.0, 2.0]), np.zeros(3, np.int64), np.array([4.0]))
    cpu = allocate_increments(unit_of, step, gain, [con], 2)
    gcon = Constraint("budget", *(cp.asarray(a) for a in (con.weight, con.group, con.limit)))
    gpu = allocate_increments(cp.asarray(unit_of), cp.asarray(step), cp.asarray(gain), [gcon], 2)
    np.testing.assert_array_equal(gpu.taken.get(), cpu.taken)
    assert gpu.value == cpu.value


def test_mixed_devices_raise():
    cp = _cp()
    _, _, _, levels, values, pmf, _ = _inputs()
    with pytest.raises(BackendError, match="mixed devices"):
        policy_samples(QuantileDemand(levels, cp.asarray(values)), pmf, 1, 8, 0)
