"""Benchmark: the policy simulation engine the planner ships (``kernels.policy_samples``), on the CPU.

The planner's model, at the scale of issue 6's simulation benchmark: 10,000 weekly units x 1,000 paths, with
both demand sources ``plan`` ships: ``quantiles`` (the plan stage on stored forecasts: 5 quantiles per unit
and future period, drawn by inversion with exponential tails) and ``history`` (the bootstrap of a unit's own
104 periods, half of the units intermittent, times a promotion factor per future period, with the sampling
error of the history's mean); supplier lead times of 1 to 8 weeks drawn per order (orders cross), each
path's lead-time distribution drawn from a Dirichlet posterior (26 deliveries plus pooled pseudo-deliveries,
a Polya urn); review every period (R = 1). Per path the engine
simulates the steady-state shortfall ``X_t``: the period's own demand and the demand of every earlier cycle
whose order is still outstanding (``L_c >= c``), i.e. about ``1 + E[L]`` periods of demand and up to 8 lead
times per path.

Work is counted in **SKU-path-periods**: the periods of demand each path actually simulates, counted exactly
by a run of the same seed on a demand of 1 per period (lead times do not depend on demand, so ``X_t`` is
then the number of periods). Reference: a vectorised NumPy implementation of the same model (the same urn,
crossing rule, bootstrap and mean error) with NumPy's own Generator, in the same run; the generators differ,
so per-unit means agree to Monte-Carlo noise (reported in standard errors). Also timed: the level search on
the same paths (``kernels.order_up_to_levels``: row sort + bisection for a 95% fill rate), what ``plan`` does
next.

On a machine shared with other work the wall-clock rate depends on the load (printed at the end); the rate per
CPU-second (all threads' CPU time) and the ratio to NumPy in the same run are the comparable figures.

Usage: flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/simulate.py [--quick]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import HistoryDemand, QuantileDemand, order_up_to_levels, policy_samples, warmup  # noqa: E402

K = 9  # lead-time bins 0..8 periods
W, H = 104, 12  # history pool, forecast horizon


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> int:
    """Reset the peak-RSS counter; return the current RSS in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status("VmRSS")


def make_units(n: int, seed: int = 20261207):
    """History pools, promotion factors and lead-time posteriors (Dirichlet counts) of ``n`` units."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(0.5, 20.0, n)
    intermittent = rng.random(n) < 0.5
    zero = np.where(intermittent, rng.uniform(0.5, 0.9, n), 0.0)
    size = np.where(intermittent, mean / np.maximum(1.0 - zero, 0.1), mean)
    pool = np.where(rng.random((n, W)) < zero[:, None], 0.0, rng.gamma(2.0, size[:, None] / 2.0, (n, W)))
    pool = np.round(pool)
    plen = np.full(n, W, dtype=np.int64)
    factor = np.where(rng.random((n, H)) < 0.1, 1.6, 1.0)
    base = rng.integers(1, 4, n)  # lead times: base 1..3 weeks plus a skewed delay, up to 8
    true = np.zeros((n, K))
    for d, p in enumerate([0.45, 0.25, 0.15, 0.1, 0.05]):
        true[np.arange(n), np.minimum(base + d, K - 1)] += p
    obs = np.stack([rng.multinomial(26, t) for t in true]).astype(np.float64)
    prior = true.mean(axis=0)
    counts = obs + 4.0 * prior  # 26 deliveries plus 4 pooled pseudo-deliveries
    levels = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    mean_h = mean[:, None] * factor
    values = np.stack([mean_h * f for f in (0.2, 0.55, 0.9, 1.35, 2.0)], axis=2).astype(np.float32)
    return pool, plen, factor, counts, levels, values


def _quantile_draw(levels, values, rows, j, u):
    """Period ``j``'s quantiles inverted at uniforms ``u`` (m, P): linear inside, exponential upper tail."""
    q = levels.shape[0]
    v = values[rows[:, 0], min(j, H - 1)].astype(np.float64)  # (m, Q)
    lo = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, q - 2)
    w = (u - levels[lo]) / (levels[lo + 1] - levels[lo])
    tail = 1.0 + (1.0 - levels[-1]) / (levels[-1] - levels[-2]) * np.log((1.0 - levels[-1]) / (1.0 - u))
    w = np.where(u > levels[-1], tail, w)
    a = np.take_along_axis(v, lo, axis=1)
    b = np.take_along_axis(v, lo + 1, axis=1)
    return np.maximum(a + w * (b - a), 0.0)


def numpy_reference(source, units, n_paths, rng, chunk=200):
    """The same model, vectorised NumPy: (N,) mean of X_t and (N,) its standard error over paths."""
    pool, plen, factor, counts, levels, values = units
    n = pool.shape[0]
    mean_x, se_x = np.zeros(n), np.zeros(n)
    mu = pool.mean(axis=1)
    cv2n = np.where(mu > 0, pool.var(axis=1, ddof=1) / np.maximum(mu, 1e-12) ** 2 / plen, 0.0)
    k_max = K - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        m = b - a
        rows = np.arange(a, b)[:, None]

        def demand(j, rows=rows, m=m):
            if source == "quantiles":
                u = (rng.integers(0, 4096, size=(m, n_paths)) + 0.5) / 4096  # the engine's uniform grid
                return _quantile_draw(levels, values, rows, j, u)
            e = rng.integers(0, plen[rows], size=(m, n_paths))
            return pool[rows, e] * factor[rows, min(j, H - 1)]

        x = demand(0)
        w = np.repeat(counts[a:b, None, :], n_paths, axis=1)  # each path's urn
        tot = w.sum(axis=2)
        for c in range(1, K):
            active = c <= k_max[a:b, None]
            u = rng.random((m, n_paths)) * tot
            lt = (np.cumsum(w, axis=2) < u[:, :, None]).sum(axis=2)
            lt = np.minimum(lt, k_max[a:b, None])
            np.put_along_axis(
                w, lt[:, :, None], np.take_along_axis(w, lt[:, :, None], 2) + active[:, :, None], 2
            )
            tot = tot + active
            x = x + np.where(active & (lt >= c), demand(c), 0.0)
        if source == "history":
            x = x * np.maximum(1.0 + np.sqrt(cv2n[a:b, None]) * rng.standard_normal((m, n_paths)), 0.0)
        mean_x[a:b] = x.mean(axis=1)
        se_x[a:b] = x.std(axis=1) / np.sqrt(n_paths)
    return mean_x, se_x


def run_case(source, units, n_paths, runs, work) -> dict:
    """Time the engine and the NumPy reference on one demand source; print and return the figures."""
    pool, plen, factor, counts, levels, values = units
    n = pool.shape[0]
    pmf = counts / counts.sum(axis=1, keepdims=True)
    if source == "quantiles":
        demand = QuantileDemand(levels, values)
    else:
        demand = HistoryDemand(pool, plen, factor)
    base = _reset_peak()
    ours_t, ours_cpu, lev_t = [], [], []
    for _ in range(runs + 2):
        t1, c1 = time.perf_counter(), time.process_time()
        smp = policy_samples(demand, pmf, 1, n_paths, 42, lead_time_counts=counts)
        ours_t.append(time.perf_counter() - t1)
        ours_cpu.append(time.process_time() - c1)
        x = smp.d_lr.astype(np.float64)
        t2 = time.perf_counter()
        order_up_to_levels(smp, 0.95, np.zeros(n), in_place=True)
        lev_t.append(time.perf_counter() - t2)
    ours_peak = max(_status("VmHWM") - base, 0)
    ours_s, lev_s = statistics.median(ours_t), statistics.median(lev_t)
    print(
        f"[{source}] engine : {n} units x {n_paths} paths, {work / n / n_paths:.2f} periods per path: median "
        f"{ours_s:.3f} s of {len(ours_t)} runs -> {work / ours_s / 1e6:.0f} million SKU-path-periods/s "
        f"({work / statistics.median(ours_cpu) / 1e6:.0f} million per CPU-second on "
        f"{numba.get_num_threads()} threads); peak +{ours_peak / 2**20:.0f} MiB"
    )
    print(
        f"[{source}] levels : sort + bisection to a 95% fill rate on the same paths: median {lev_s:.3f} s; "
        f"paths + levels {work / (ours_s + lev_s) / 1e6:.0f} million SKU-path-periods/s"
    )
    base = _reset_peak()
    ref_t, ref_cpu = [], []
    for r in range(runs):
        t1, c1 = time.perf_counter(), time.process_time()
        ref_mean, ref_se = numpy_reference(source, units, n_paths, np.random.default_rng(r))
        ref_t.append(time.perf_counter() - t1)
        ref_cpu.append(time.process_time() - c1)
    ref_peak = max(_status("VmHWM") - base, 0)
    ref_s = statistics.median(ref_t)
    print(
        f"[{source}] numpy  : median {ref_s:.3f} s of {len(ref_t)} runs -> {work / ref_s / 1e6:.1f} million "
        f"SKU-path-periods/s ({work / statistics.median(ref_cpu) / 1e6:.1f} million per CPU-second); "
        f"peak +{ref_peak / 2**20:.0f} MiB (chunks of 200 units)"
    )
    ours_mean = x.mean(axis=1)
    ours_se = x.std(axis=1) / np.sqrt(n_paths)
    z = np.abs(ours_mean - ref_mean) / np.sqrt(ours_se**2 + ref_se**2 + 1e-24)
    speedup = ref_s / ours_s
    cpu_ratio = statistics.median(ref_cpu) / statistics.median(ours_cpu)
    print(
        f"[{source}] speed-up vs numpy: {speedup:.1f}x wall-clock; {cpu_ratio:.1f}x in CPU-seconds; "
        f"per-unit mean X_t: engine {ours_mean.mean():.3f}, numpy {ref_mean.mean():.3f}; |diff| in standard "
        f"errors: median {np.median(z):.2f}, max {z.max():.2f} over {n} units (noise: median ~0.67, max "
        f"~{np.sqrt(2 * np.log(n)):.1f})"
    )
    return {
        f"{source}_seconds": round(ours_s, 4), f"{source}_levels_seconds": round(lev_s, 4),
        f"{source}_ref_seconds": round(ref_s, 4), f"{source}_speedup": round(speedup, 1),
        f"{source}_cpu_seconds_ratio": round(cpu_ratio, 1), f"{source}_rate_per_s": round(work / ours_s),
        f"{source}_rate_per_cpu_s": round(work / statistics.median(ours_cpu)),
        f"{source}_rate_with_levels_per_s": round(work / (ours_s + lev_s)),
        f"{source}_ref_rate_per_s": round(work / ref_s),
        f"{source}_mean_diff_se_median": round(float(np.median(z)), 2),
        f"{source}_mean_diff_se_max": round(float(z.max()), 2),
        f"{source}_peak_mib": round(ours_peak / 2**20, 1),
        f"{source}_ref_peak_mib": round(ref_peak / 2**20, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n, n_paths = (1_000, 200) if args.quick else (10_000, 1_000)
    t0 = time.perf_counter()
    warmup()
    print(f"warmup (compile or load cache): {time.perf_counter() - t0:.2f} s")
    units = make_units(n)
    counts = units[3]
    pmf = counts / counts.sum(axis=1, keepdims=True)
    ones = QuantileDemand(np.array([0.5]), np.ones((n, H, 1), np.float32))
    periods = policy_samples(ones, pmf, 1, n_paths, 42, lead_time_counts=counts).d_lr.astype(np.float64)
    work = float(periods.sum())  # periods of demand simulated, exactly (lead times do not depend on demand)
    k_max = K - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)
    draws = work + float(k_max.sum()) * n_paths  # + one lead time per earlier cycle looked at (R = 1)
    print(
        f"work: {work / n / n_paths:.2f} periods of demand and {k_max.mean():.2f} lead times drawn per path "
        f"({draws / work:.2f} random draws per period)"
    )
    figures = {"bench": "simulate", "engine": "kernels.policy_samples", "units": n, "paths": n_paths,
               "periods_per_path": round(work / n / n_paths, 3),
               "draws_per_period": round(draws / work, 3)}  # fmt: skip
    for source in ("quantiles", "history"):
        figures.update(run_case(source, units, n_paths, args.runs, work))
    figures.update(threads=numba.get_num_threads(), load_average=round(os.getloadavg()[0], 1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
