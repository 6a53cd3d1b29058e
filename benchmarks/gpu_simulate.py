"""GPU check of the simulation engine: CPU/GPU parity, then 1,000,000 units x 1,000 paths on the device.

Run by ``benchmarks/gpu_check.sh`` on a machine with a CUDA GPU; without one it says so and exits with 0.
The engine is the one the planner ships (``kernels.policy_samples`` -> ``kernels.order_up_to_levels``), on
the model of ``benchmarks/simulate.py`` (weekly units, lead times of 1 to 8 weeks crossing, each path's
lead-time distribution from its Dirichlet posterior, R = 1).

Parity (2,000 units x 500 paths, same seed): forecast quantiles and a history without its mean error must give
bit-identical paths, levels, fill rates and quantiles on both backends; a history with its mean error agrees
to float32 rounding (the device's ``log``/``cos`` may differ from the host's in the last bit).
Timing: 1,000,000 units x 1,000 paths of forecast quantiles, inputs on the device: the paths, then the level
search (CuPy row sort + the level kernel), medians of 3 after a warm-up, beside the CPU backend on 10,000 of
the units on the same machine (rate compared). SKU-path-periods are counted as in ``simulate.py``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulate import H, make_units  # noqa: E402

from kernels import (  # noqa: E402
    HistoryDemand,
    QuantileDemand,
    gpu_available,
    order_up_to_levels,
    policy_samples,
    warmup,
)

LEVEL_FIELDS = ("order_up_to", "fill_rate_at_level", "fill_rate_no_order", "stockout_probability",
                "expected_on_hand_at_level", "protection_quantiles")  # fmt: skip


def _run(xp, source, units, n_paths, seed=7):
    pool, plen, factor, counts, levels, values = units
    if source == "quantiles":
        demand = QuantileDemand(levels, xp.asarray(values))
    else:
        demand = HistoryDemand(xp.asarray(pool), xp.asarray(plen), xp.asarray(factor), source == "history_se")
    c = xp.asarray(counts)
    smp = policy_samples(demand, c / c.sum(axis=1, keepdims=True), 1, n_paths, seed, lead_time_counts=c)
    paths = (smp.d_l.copy(), smp.d_lr.copy())
    lv = order_up_to_levels(smp, 0.95, xp.zeros(pool.shape[0]), in_place=True)
    return paths, lv


def parity(cp) -> tuple[bool, dict]:
    units = make_units(2_000, seed=11)
    ok, report = True, {}
    for source in ("quantiles", "history", "history_se"):
        (cl, clr), clv = _run(np, source, units, 500)
        (gl, glr), glv = _run(cp, source, units, 500)
        gl, glr = gl.get(), glr.get()
        if source == "history_se":
            diff = max(float(np.max(np.abs(gl - cl) / np.maximum(np.abs(cl), 1e-6))),
                       float(np.max(np.abs(glr - clr) / np.maximum(np.abs(clr), 1e-6))))  # fmt: skip
            good = diff <= 1e-6
            share = float(np.mean(glr == clr))
        else:
            good = bool(np.array_equal(gl, cl) and np.array_equal(glr, clr))
            for f in LEVEL_FIELDS:
                good &= bool(np.array_equal(getattr(glv, f).get(), getattr(clv, f)))
            diff, share = 0.0 if good else float("nan"), float(np.mean(glr == clr))
        ok &= good
        report[source] = {"ok": good, "max_rel_diff": diff, "identical_share": round(share, 6)}
        print(
            f"parity: {source:10s}: {'ok' if good else 'FAIL'} (identical paths {share:.4%}, "
            f"max rel diff {diff})"
        )
    return ok, report


def main() -> int:
    if not gpu_available():
        print(
            "gpu_simulate: no CUDA GPU / CuPy on this machine - nothing to check (install with "
            'pip install -e ".[gpu]" on a GPU machine and run benchmarks/gpu_check.sh)'
        )
        print(json.dumps({"bench": "gpu_simulate", "skipped": "no GPU"}))
        return 0
    from kernels._backend import cupy_module

    cp = cupy_module()
    print("device:", cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
    t0 = time.perf_counter()
    warmup(gpu=True)
    print(f"warmup (CPU + GPU kernels): {time.perf_counter() - t0:.2f} s")
    ok, report = parity(cp)

    n, P = 1_000_000, 1_000
    pool, plen, factor, counts, levels, values = make_units(n)
    c = cp.asarray(counts)
    pmf = c / c.sum(axis=1, keepdims=True)
    v = cp.asarray(values)
    ones = QuantileDemand(np.array([0.5]), cp.ones((n, H, 1), cp.float32))
    work = float(policy_samples(ones, pmf, 1, P, 42, lead_time_counts=c).d_lr.sum(dtype=cp.float64))
    del ones
    cp.get_default_memory_pool().free_all_blocks()
    times, ltimes = [], []
    for r in range(4):
        cp.cuda.Device().synchronize()
        t1 = time.perf_counter()
        smp = policy_samples(QuantileDemand(levels, v), pmf, 1, P, r, lead_time_counts=c)
        cp.cuda.Device().synchronize()
        t2 = time.perf_counter()
        lv = order_up_to_levels(smp, 0.95, cp.zeros(n), in_place=True)
        cp.cuda.Device().synchronize()
        times.append(t2 - t1)
        ltimes.append(time.perf_counter() - t2)
        del smp
    g_s, g_lev = statistics.median(times[1:]), statistics.median(ltimes[1:])
    print(
        f"gpu: {n} units x {P} paths, {work / n / P:.2f} periods per path: paths median {g_s:.3f} s "
        f"({work / g_s / 1e9:.2f} billion SKU-path-periods/s), levels {g_lev:.3f} s; mean level "
        f"{float(lv.order_up_to.mean()):.2f}"
    )
    n_cpu = 10_000
    cl = counts[:n_cpu]
    cpm = cl / cl.sum(axis=1, keepdims=True)
    cwork = work * n_cpu / n  # same units' mix: the rate is per simulated period
    ctimes, cltimes = [], []
    for r in range(3):
        t1 = time.perf_counter()
        smp = policy_samples(QuantileDemand(levels, values[:n_cpu]), cpm, 1, P, r, lead_time_counts=cl)
        t2 = time.perf_counter()
        order_up_to_levels(smp, 0.95, np.zeros(n_cpu), in_place=True)
        ctimes.append(t2 - t1)
        cltimes.append(time.perf_counter() - t2)
    cpu_rate = cwork / statistics.median(ctimes)
    print(
        f"cpu (same machine, Numba): {n_cpu} units: {cpu_rate / 1e6:.0f} million SKU-path-periods/s; "
        f"gpu/cpu rate ratio {work / g_s / cpu_rate:.1f}x (paths), levels per unit "
        f"{(statistics.median(cltimes) / n_cpu) / (g_lev / n):.1f}x"
    )
    print(json.dumps({
        "bench": "gpu_simulate", "engine": "kernels.policy_samples", "units": n, "paths": P,
        "periods_per_path": round(work / n / P, 3), "seconds": round(g_s, 4),
        "levels_seconds": round(g_lev, 4),
        "gpu_rate_per_s": round(work / g_s), "cpu_rate_per_s": round(cpu_rate), "parity_ok": ok,
        "parity": report,
    }))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
