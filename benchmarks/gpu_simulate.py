"""GPU check for the inventory simulation: CPU/GPU parity, 1,000,000 SKUs x 1,000 paths x 52 periods timing.

Run by ``benchmarks/gpu_check.sh`` on a machine with a CUDA GPU; without one it says so and exits with 0.

Parity: the 64-bit random draws must be bit-identical; every demand kind (Poisson, negative binomial,
normal, gamma, quantile) under (R, S) with backorders and (s, S) with lost sales, 2,000 SKUs x 500 paths x
52 periods: discrete demand must agree to 1e-12 relative, continuous to 1e-8.
Timing: the issue's workload scaled to 1,000,000 SKUs x 1,000 paths x 52 periods, Poisson demand (means
0.5-20), lead times uniform 2..8, (R = 1, S), backorders, inputs already on the device: ``simulate`` end to
end (host-side alias tables included) and the kernel alone, medians of 3 after a warm-up (target <= 3 s),
beside the CPU backend on 10,000 of the SKUs on the same machine (rate per second compared).
The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from kernels._backend import cupy_module, gpu_available
from kernels._rng import uniforms
from kernels.simulate import (
    gamma_demand,
    negative_binomial_demand,
    normal_demand,
    order_up_to_policy,
    poisson_demand,
    prepare,
    quantile_demand,
    s_S_policy,
    simulate,
    uniform_lead_times,
    warmup,
)

FIELDS = ("fill_rate", "cycle_service_level", "p_stockout", "expected_on_hand", "expected_excess",
          "expected_stockout_units", "expected_orders", "expected_order_quantity")  # fmt: skip


def _demand(kind, xp, mean):
    n = mean.shape[0]
    if kind == "poisson":
        return poisson_demand(mean)
    if kind == "negative_binomial":
        return negative_binomial_demand(mean, xp.full(n, 1.5))
    if kind == "normal":
        return normal_demand(mean, 0.4 * mean)
    if kind == "gamma":
        return gamma_demand(mean, 0.6 * mean)
    return quantile_demand(xp.stack([0.3 * mean, mean, 2.0 * mean], axis=1), xp.asarray([0.1, 0.5, 0.9]))


def _lead(xp, n, lo=2, hi=8):
    lt = uniform_lead_times(lo, hi, n)
    return type(lt)(lt.pmf, xp.asarray(lt.supplier))


def parity(cp) -> tuple[bool, float]:
    from kernels._simulate_gpu import uniforms_gpu

    ok = bool(np.array_equal(uniforms(9, 7, 333, 13), uniforms_gpu(9, 7, 333, 13).get()))
    print(f"parity: uniforms bit-identical: {ok}")
    worst = 0.0
    n = 2000
    for kind in ("poisson", "negative_binomial", "normal", "gamma", "quantile"):
        for lost in (False, True):
            res = {}
            for name, xp in (("cpu", np), ("gpu", cp)):
                mean = xp.linspace(0.5, 20.0, n)
                pol = s_S_policy(mean * 3, mean * 6) if lost else order_up_to_policy(xp.round(mean * 6 + 3))
                res[name] = simulate(_demand(kind, xp, mean), _lead(xp, n), pol, n_periods=52, n_paths=500,
                                     seed=11, lost_sales=lost)  # fmt: skip
            tol = 1e-12 if kind in ("poisson", "negative_binomial") else 1e-8
            rel = 0.0
            for f in FIELDS:
                g, c = getattr(res["gpu"], f).get(), getattr(res["cpu"], f)
                rel = max(rel, float(np.max(np.abs(g - c) / np.maximum(np.abs(c), 1.0))))
            good = rel <= tol
            ok &= good
            worst = max(worst, rel)
            print(
                f"parity: {kind:17s} {'lost sales' if lost else 'backorders'}: max rel diff {rel:.2e} "
                f"(tolerance {tol:.0e}) {'ok' if good else 'FAIL'}"
            )
    return ok, worst


def main() -> int:
    if not gpu_available():
        print(
            "gpu_simulate: no CUDA GPU / CuPy on this machine - nothing to check (install with "
            'pip install "replenish[gpu]" on a GPU machine and run benchmarks/gpu_check.sh)'
        )
        print(json.dumps({"bench": "gpu_simulate", "skipped": "no GPU"}))
        return 0
    cp = cupy_module()
    print("device:", cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
    warmup()
    ok, worst = parity(cp)

    n, P, T = 1_000_000, 1_000, 52
    rng = np.random.default_rng(20261128)
    mean_h = rng.uniform(0.5, 20.0, n)
    S_h = np.round(mean_h * 6 + 1.5 * np.sqrt(mean_h * 6))
    mean, S = cp.asarray(mean_h), cp.asarray(S_h)
    args = (poisson_demand(mean), _lead(cp, n), order_up_to_policy(S))
    small = (poisson_demand(mean[:1000]), _lead(cp, 1000), order_up_to_policy(S[:1000]))
    simulate(*small, n_periods=T, n_paths=P, seed=1)
    cp.cuda.Device().synchronize()
    times = []
    for r in range(3):
        t0 = time.perf_counter()
        res = simulate(*args, n_periods=T, n_paths=P, seed=r)
        cp.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    e2e = statistics.median(times)
    from kernels._simulate_gpu import simulate_gpu

    _, a = prepare(*args, n_periods=T, n_paths=P, seed=0)
    ktimes = []
    for _ in range(3):
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        simulate_gpu(a)
        cp.cuda.Device().synchronize()
        ktimes.append(time.perf_counter() - t0)
    kern = statistics.median(ktimes)
    work = n * P * T
    print(
        f"gpu: {n} SKUs x {P} paths x {T} periods: simulate median {e2e:.3f} s end to end "
        f"({work / e2e / 1e9:.1f} billion SKU-path-periods/s), kernel alone {kern:.3f} s; target <= 3 s; "
        f"mean fill rate {float(res.fill_rate.mean()):.4f}"
    )
    n_cpu = 10_000
    c_args = (
        poisson_demand(mean_h[:n_cpu]),
        uniform_lead_times(2, 8, n_cpu),
        order_up_to_policy(S_h[:n_cpu]),
    )
    ctimes = []
    for r in range(3):
        t0 = time.perf_counter()
        simulate(*c_args, n_periods=T, n_paths=P, seed=r)
        ctimes.append(time.perf_counter() - t0)
    cpu_rate = n_cpu * P * T / statistics.median(ctimes)
    print(
        f"cpu (same machine, Numba): {n_cpu} SKUs: {cpu_rate / 1e6:.0f} million SKU-path-periods/s; "
        f"gpu/cpu rate ratio {work / e2e / cpu_rate:.1f}x"
    )
    print(json.dumps({
        "bench": "gpu_simulate", "skus": n, "paths": P, "periods": T, "seconds": round(e2e, 4),
        "kernel_seconds": round(kern, 4), "target_seconds": 3.0, "cpu_rate_per_s": round(cpu_rate),
        "gpu_rate_per_s": round(work / e2e), "parity_ok": ok, "parity_max_rel_diff": worst,
    }))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
