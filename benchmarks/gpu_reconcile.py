"""GPU check for reconciliation: CuPy vs CPU parity (1e-8 relative) and N = 1,000,000 timings on the GPU.

Run by ``benchmarks/gpu_check.sh`` on a machine with a CUDA GPU; without one it says so and exits with status
2. Same synthetic hierarchy as ``benchmarks/reconcile.py`` (Total -> 100 regions -> 1,000 stores -> N series,
h = 28, T = 100). Parity: every method at N = 100,000 (CPU and GPU on the same arrays). Timing: N = 1,000,000
mint_shrink (target <= 1 s), wls_struct and bottom_up with the data already on the device, median of several
runs after a warm-up, against the CPU on the same machine. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import statistics
import sys
import time

import numpy as np

from kernels._backend import cupy_module, gpu_available
from kernels.reconcile import METHODS, reconcile, warmup


def _load_builder():
    path = pathlib.Path(__file__).with_name("reconcile.py")
    spec = importlib.util.spec_from_file_location("_bench_reconcile", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build


def _gpu_median(cp, fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        cp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        out = fn()
        cp.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-parity", type=int, default=100_000)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if not gpu_available():
        print(
            "gpu_reconcile: no CUDA GPU with CuPy is visible on this machine; nothing was measured. "
            "Install the gpu extra (pip install 'replenish[gpu]') on a GPU machine and run "
            "benchmarks/gpu_check.sh"
        )
        print(json.dumps({"bench": "gpu_reconcile", "skipped": "no GPU"}))
        return 2
    cp = cupy_module()
    name = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    print(f"device: {name}")
    build = _load_builder()
    t0 = time.perf_counter()
    warmup(gpu=True)
    print(f"warmup (CPU and GPU kernels): {time.perf_counter() - t0:.2f} s")
    result: dict = {"bench": "gpu_reconcile", "device": name, "parity": {}, "timing": {}}

    S, hier, y_hat, R, *_ = build(args.n_parity, 28, 100, 0)
    y_d, R_d = cp.asarray(y_hat), cp.asarray(R)
    worst = 0.0
    for method in METHODS:
        cpu = reconcile(hier, y_hat, method, residuals=R, level=2)
        gpu = cp.asnumpy(reconcile(hier, y_d, method, residuals=R_d, level=2))
        err = float(np.abs(gpu - cpu).max() / np.abs(cpu).max())
        worst = max(worst, err)
        result["parity"][method] = err
        print(
            f"parity N={args.n_parity:,} {method:12s} max rel. diff GPU vs CPU {err:.1e}"
            + ("" if err <= 1e-8 else "  FAIL (> 1e-8)")
        )
    del y_d, R_d

    S, hier, y_hat, R, *_ = build(args.n, 28, 100, 1)
    y_d, R_d = cp.asarray(y_hat), cp.asarray(R)
    for method in ("bottom_up", "wls_struct", "mint_shrink"):
        reconcile(hier, y_d, method, residuals=R_d)  # device copies of C and C' are made once per hierarchy
        gpu_s, out_d = _gpu_median(
            cp, lambda method=method: reconcile(hier, y_d, method, residuals=R_d), args.repeats
        )
        t0 = time.perf_counter()
        cpu = reconcile(hier, y_hat, method, residuals=R, blas_threads=None)
        cpu_s = time.perf_counter() - t0
        err = float(np.abs(cp.asnumpy(out_d) - cpu).max() / np.abs(cpu).max())
        worst = max(worst, err)
        result["timing"][method] = {
            "gpu_seconds": gpu_s,
            "cpu_seconds": cpu_s,
            "speedup": cpu_s / gpu_s,
            "max_rel_diff": err,
        }
        target = "  (target <= 1 s)" if method == "mint_shrink" else ""
        print(
            f"N={args.n:,} {method:12s} GPU {gpu_s * 1e3:8.1f} ms (median of {args.repeats}){target}; "
            f"CPU on this "
            f"machine {cpu_s * 1e3:8.1f} ms (one run, all BLAS threads) -> {cpu_s / gpu_s:.1f}x; max "
            f"rel. diff "
            f"{err:.1e}"
        )
    result["max_rel_diff"] = worst
    result["parity_ok"] = worst <= 1e-8
    print(json.dumps(result))
    return 0 if worst <= 1e-8 else 1


if __name__ == "__main__":
    sys.exit(main())
