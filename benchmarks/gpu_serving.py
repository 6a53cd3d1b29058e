"""GPU check of the serving path's optional model deployment (run by benchmarks/gpu_check.sh with CUDA).

The decision API answers tenants from stored forecasts (no model pass; the cycle's forecast stage runs the
TFT, checked on the GPU by benchmarks/gpu_training.py). What runs a model inside Serve is the optional batched
model deployment (``configs/serve*.yaml`` ``model:`` section, ``ray_actor_options: {num_gpus: 1}``); this
script loads its predictor (the stand-in ``tests.serving._mlp_predictor.make_mlp_predictor``, the same
weights) on CPU and on CUDA, compares the forecasts of every unit (fp32) and times one forward pass of 1, 64
and 256 units on each. Without CUDA it says so and exits 0 with {"skipped": true} as its last line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_s(fn, n=7) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        print("gpu_serving: no CUDA device visible to torch; nothing to check")
        print(json.dumps({"bench": "gpu_serving", "skipped": True}))
        return
    from tests.serving._mlp_predictor import make_mlp_predictor

    spec = {"n_units": 2048, "lookback": 52, "horizon": 13, "hidden": 256, "depth": 3}
    cpu = make_mlp_predictor(spec, seed=0, version="check", device="cpu")
    gpu = make_mlp_predictor(spec, seed=0, version="check", device="cuda")
    units = cpu.unit_ids()
    a, b = cpu.predict(units), gpu.predict(units)
    rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0)))
    figures = {
        "bench": "gpu_serving",
        "device": torch.cuda.get_device_name(0),
        "units": len(units),
        "max_rel_diff": rel,
        "ok": rel < 1e-3,
    }

    def timed(p, pick):
        def run():
            p.predict(pick)
            if p.device == "cuda":
                torch.cuda.synchronize()

        return run

    for n in (1, 64, 256):
        pick = units[:n]
        figures[f"cpu_ms_{n}"] = round(1e3 * _median_s(timed(cpu, pick)), 3)
        figures[f"cuda_ms_{n}"] = round(1e3 * _median_s(timed(gpu, pick)), 3)
    print(f"gpu_serving: {len(units)} units, max relative CPU/CUDA difference {rel:.2e}")
    for n in (1, 64, 256):
        print(f"  {n:>3} units: CPU {figures[f'cpu_ms_{n}']:.2f} ms, CUDA {figures[f'cuda_ms_{n}']:.2f} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
