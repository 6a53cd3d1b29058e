"""Benchmark: Monte-Carlo inventory simulation and order-up-to optimisation on the CPU.

Part 1 (issue 6): 10,000 SKUs x 1,000 paths x 52 periods, Poisson demand (means 0.5-20), lead times uniform
on 2..8 periods (orders cross), (R=1, S) policy, backorders. Ours (``kernels.simulate.simulate``, Numba,
counter-based random numbers) beside a vectorised NumPy implementation of the same model and timing
convention (NumPy's own Generator for Poisson demand and lead times), in the same run. Prints
SKU-path-periods per second for both (medians), the speed-up, the agreement of per-SKU fill rates (the
generators differ, so the difference is Monte-Carlo noise: reported also in standard errors) and the peak
resident memory of each (VmHWM after a reset of /proc/self/clear_refs).

Part 2: ``optimize_order_up_to`` for 100,000 units to a 95% fill-rate target (500 paths x 60 periods, 9
burn-in; ``--opt-paths``), with the bisection optimiser ``optimize_level`` on 2,000 of the units as the
reference (same seed: the levels must be identical).

Usage: flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/simulate.py [--quick]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numba
import numpy as np

from kernels.optimize import optimize_level, optimize_order_up_to
from kernels.optimize import warmup as optimize_warmup
from kernels.simulate import order_up_to_policy, poisson_demand, simulate, uniform_lead_times
from kernels.simulate import warmup as simulate_warmup

LT_LO, LT_HI = 2, 8


def _reset_peak() -> int:
    """Reset the peak-RSS counter; return the current RSS in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status("VmRSS")


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def numpy_reference(mean, S, n_paths, n_periods, rng, chunk=500):
    """Vectorised NumPy simulation of the same model; returns per-SKU (demand, unserved) totals over paths."""
    n = mean.shape[0]
    cap = 16
    dem_tot = np.zeros(n)
    short_tot = np.zeros(n)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        m = b - a
        mu = mean[a:b, None]
        S_c = np.broadcast_to(S[a:b, None], (m, n_paths))
        net = S_c.copy()
        ip = S_c.copy()
        ring = np.zeros(cap * m * n_paths)  # flat (slot, SKU, path) ring of arrivals
        cell = np.arange(m * n_paths).reshape(m, n_paths)
        dem = np.zeros((m, n_paths))
        short = np.zeros((m, n_paths))
        for t in range(n_periods):
            q = S_c - ip  # (R = 1, S): every period, up to S; ip <= S always from a full start
            L = rng.integers(LT_LO, LT_HI + 1, size=(m, n_paths))
            ring[((t + L) % cap) * (m * n_paths) + cell] += q  # one order per (SKU, path): no repeated index
            ip = ip + q
            slot = ring[(t % cap) * m * n_paths : (t % cap + 1) * m * n_paths].reshape(m, n_paths)
            net += slot
            slot[:] = 0.0
            d = rng.poisson(mu, size=(m, n_paths)).astype(np.float64)
            served = np.minimum(d, np.maximum(net, 0.0))
            net -= d
            ip -= d
            dem += d
            short += d - served
        dem_tot[a:b] = dem.sum(axis=1)
        short_tot[a:b] = short.sum(axis=1)
    return dem_tot, short_tot


def part_simulate(args) -> dict:
    """Part 1: ours beside the NumPy reference on the same model."""
    n_sku, n_paths, n_periods = (1000, 200, 52) if args.quick else (10_000, 1_000, 52)
    rng = np.random.default_rng(20261128)
    mean = rng.uniform(0.5, 20.0, n_sku)
    window = (LT_LO + LT_HI) / 2 + 1
    S = np.round(mean * window + 1.5 * np.sqrt(mean * window))
    demand = poisson_demand(mean)
    lead = uniform_lead_times(LT_LO, LT_HI, n_sku)
    policy = order_up_to_policy(S)
    work = n_sku * n_paths * n_periods

    base = _reset_peak()
    ours_t, ours_cpu = [], []
    for _ in range(args.runs + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate(demand, lead, policy, n_periods=n_periods, n_paths=n_paths, seed=42)
        ours_t.append(time.perf_counter() - t0)
        ours_cpu.append(time.process_time() - c0)
    ours_peak = max(_status("VmHWM") - base, 0)
    ours_s = statistics.median(ours_t)
    print(
        f"ours   : {n_sku} SKUs x {n_paths} paths x {n_periods} periods: median {ours_s:.3f} s of "
        f"{len(ours_t)} runs -> {work / ours_s / 1e6:.0f} million SKU-path-periods/s "
        f"({work / statistics.median(ours_cpu) / 1e6:.0f} million per CPU-second); "
        f"peak +{ours_peak / 2**20:.0f} MiB"
    )

    base = _reset_peak()
    ref_t, ref_cpu = [], []
    for r in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        dem_tot, short_tot = numpy_reference(mean, S, n_paths, n_periods, np.random.default_rng(r))
        ref_t.append(time.perf_counter() - t0)
        ref_cpu.append(time.process_time() - c0)
    ref_peak = max(_status("VmHWM") - base, 0)
    ref_s = statistics.median(ref_t)
    ref_fill = 1.0 - short_tot / dem_tot
    print(
        f"numpy  : median {ref_s:.3f} s of {len(ref_t)} runs -> {work / ref_s / 1e6:.1f} million "
        f"SKU-path-periods/s ({work / statistics.median(ref_cpu) / 1e6:.1f} million per CPU-second); "
        f"peak +{ref_peak / 2**20:.0f} MiB (chunks of 500 SKUs)"
    )
    diff = np.abs(res.fill_rate - ref_fill)
    z = diff / np.sqrt(2.0) / np.maximum(res.fill_rate_se, 1e-12)
    speedup = ref_s / ours_s
    cpu_ratio = statistics.median(ref_cpu) / statistics.median(ours_cpu)
    print(
        f"speed-up vs numpy: {speedup:.1f}x wall-clock; {cpu_ratio:.1f}x in CPU-seconds (ours "
        f"{statistics.median(ours_cpu):.2f} CPU-s on {numba.get_num_threads()} threads, numpy "
        f"{statistics.median(ref_cpu):.2f} CPU-s on 1); load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    print(
        f"per-SKU fill rate: ours mean {res.fill_rate.mean():.5f}, numpy mean {ref_fill.mean():.5f}; "
        f"max |diff| {diff.max():.5f} ({z.max():.2f} standard errors of the difference over {n_sku} SKUs; "
        f"mean |diff| {diff.mean():.5f})"
    )
    return {
        "skus": n_sku, "paths": n_paths, "periods": n_periods,
        "seconds": round(ours_s, 4), "ref_seconds": round(ref_s, 4), "speedup": round(speedup, 1),
        "cpu_seconds": round(statistics.median(ours_cpu), 3),
        "ref_cpu_seconds": round(statistics.median(ref_cpu), 3),
        "cpu_seconds_ratio": round(cpu_ratio, 1),
        "rate_per_s": round(work / ours_s), "ref_rate_per_s": round(work / ref_s),
        "fill_rate_max_abs_diff": round(float(diff.max()), 6),
        "fill_rate_max_diff_se": round(float(z.max()), 2),
        "peak_mib": round(ours_peak / 2**20, 1), "ref_peak_mib": round(ref_peak / 2**20, 1),
    }  # fmt: skip


def part_optimize(args) -> dict:
    """Part 2: order-up-to levels for 100,000 units to a 95% fill rate; bisection on a subset as reference."""
    n_opt, n_opt_ref = (5_000, 200) if args.quick else (100_000, 2_000)
    n_p2, T2, burn = (200, 60, 9) if args.quick else (args.opt_paths, 60, 9)
    mean2 = np.random.default_rng(7).uniform(0.5, 20.0, n_opt)
    d2, lt2 = poisson_demand(mean2), uniform_lead_times(LT_LO, LT_HI, n_opt)
    t0, c0 = time.perf_counter(), time.process_time()
    opt = optimize_order_up_to(d2, lt2, target=0.95, n_periods=T2, n_paths=n_p2, seed=5, burn_in=burn)
    opt_s = time.perf_counter() - t0
    opt_cpu = time.process_time() - c0
    print(
        f"optimize_order_up_to: {n_opt} units x {n_p2} paths x {T2} periods ({burn} burn-in) to a 95% fill "
        f"rate: {opt_s:.2f} s ({opt_cpu:.1f} CPU-s on {numba.get_num_threads()} threads; load average "
        f"{os.getloadavg()[0]:.1f}); achieved fill rate min {opt.fill_rate.min():.4f}, "
        f"mean safety stock {opt.safety_stock.mean():.2f}"
    )
    sub = slice(0, n_opt_ref)
    d3, lt3 = poisson_demand(mean2[sub]), uniform_lead_times(LT_LO, LT_HI, n_opt_ref)
    t0 = time.perf_counter()
    ref = optimize_level(
        d3, lt3, order_up_to_policy(np.zeros(n_opt_ref)), target=0.95, n_periods=T2, n_paths=n_p2, seed=5,
        burn_in=burn,
    )  # fmt: skip
    bis_s = time.perf_counter() - t0
    same = bool(np.array_equal(ref.level, opt.level[sub]))
    per_unit_ratio = (bis_s / n_opt_ref) / (opt_s / n_opt)
    print(
        f"reference bisection (optimize_level) on {n_opt_ref} units: {bis_s:.2f} s; "
        f"identical levels: {same}; "
        f"per-unit speed-up of the one-pass curve: {per_unit_ratio:.1f}x"
    )
    return {
        "optimize_units": n_opt, "optimize_paths": n_p2, "optimize_periods": T2,
        "optimize_seconds": round(opt_s, 3), "optimize_cpu_seconds": round(opt_cpu, 2),
        "optimize_ref_units": n_opt_ref, "optimize_ref_seconds": round(bis_s, 3),
        "optimize_levels_identical": same,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--opt-paths", type=int, default=500, help="paths per unit in the optimisation part")
    ap.add_argument("--part", choices=("all", "simulate", "optimize"), default="all")
    args = ap.parse_args()
    t0 = time.perf_counter()
    simulate_warmup()
    optimize_warmup()
    print(f"warmup (compile or load cache): {time.perf_counter() - t0:.2f} s")
    figures = {"bench": "simulate"}
    if args.part in ("all", "simulate"):
        figures.update(part_simulate(args))
    if args.part in ("all", "optimize"):
        figures.update(part_optimize(args))
    figures["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
