"""CPU and GPU simulations agree: bit-identical uniforms, equal discrete-demand results, close continuous."""

from __future__ import annotations

import numpy as np
import pytest

from kernels._rng import uniforms
from kernels.simulate import (
    gamma_demand,
    negative_binomial_demand,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    quantile_demand,
    s_Q_policy,
    s_S_policy,
    simulate,
    uniform_lead_times,
)

pytestmark = pytest.mark.gpu

FIELDS = ("fill_rate", "cycle_service_level", "p_stockout", "expected_on_hand", "expected_excess",
          "expected_stockout_units", "expected_orders", "expected_order_quantity")  # fmt: skip


def _cp():
    from kernels._backend import cupy_module

    return cupy_module()


def test_uniforms_bit_identical():
    from kernels._simulate_gpu import uniforms_gpu

    cpu = uniforms(123, 5, 300, 20)
    gpu = uniforms_gpu(123, 5, 300, 20).get()
    np.testing.assert_array_equal(cpu, gpu)


def _demands(n, xp):
    mean = xp.linspace(0.5, 25.0, n)
    return {
        "poisson": poisson_demand(mean),
        "negative_binomial": negative_binomial_demand(mean, xp.full(n, 1.5)),
        "normal": normal_demand(mean, 0.4 * mean),
        "gamma": gamma_demand(mean, 0.6 * mean),
        "quantile": quantile_demand(
            xp.stack([0.3 * mean, mean, 2.0 * mean], axis=1), xp.asarray([0.1, 0.5, 0.9])
        ),
    }


@pytest.mark.parametrize("kind", ["poisson", "negative_binomial", "normal", "gamma", "quantile"])
@pytest.mark.parametrize("lost", [False, True])
def test_cpu_and_gpu_agree(kind, lost):
    cp = _cp()
    n = 64
    res = {}
    for name, xp in (("cpu", np), ("gpu", cp)):
        mean = xp.linspace(0.5, 25.0, n)
        d = _demands(n, xp)[kind]
        lt = uniform_lead_times(1, 6, n)
        lt = type(lt)(lt.pmf, xp.asarray(lt.supplier))
        pol = s_S_policy(mean * 3, mean * 6) if lost else order_up_to_policy(mean * 5 + 3)
        res[name] = simulate(d, lt, pol, n_periods=40, n_paths=300, seed=77, lost_sales=lost, burn_in=2)
    tol = 1e-12 if kind in ("poisson", "negative_binomial") else 1e-8
    for f in FIELDS:
        np.testing.assert_allclose(getattr(res["gpu"], f).get(), getattr(res["cpu"], f), rtol=tol, atol=tol,
                                   err_msg=f)  # fmt: skip


def test_cpu_and_gpu_agree_s_Q_with_open_orders():
    cp = _cp()
    n = 32
    res = {}
    for name, xp in (("cpu", np), ("gpu", cp)):
        pol = s_Q_policy(xp.full(n, 10.0), xp.full(n, 7.0), review_period=2)
        lt = uniform_lead_times(0, 3, n)
        lt = type(lt)(lt.pmf, xp.asarray(lt.supplier))
        oo = xp.zeros((n, 3))
        oo[:, 2] = 5.0
        res[name] = simulate(
            poisson_demand(xp.full(n, 3.0)),
            lt,
            pol,
            n_periods=30,
            n_paths=200,
            seed=3,
            initial_net_inventory=xp.full(n, 4.0),
            open_orders=oo,
        )
    for f in FIELDS:
        np.testing.assert_allclose(
            getattr(res["gpu"], f).get(), getattr(res["cpu"], f), rtol=1e-12, err_msg=f
        )
