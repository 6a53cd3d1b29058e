"""GPU check of the serving path (run by benchmarks/gpu_check.sh on a CUDA machine).

Trains the tiny Stallion config into a temporary registry, loads the champion through the serving loader
(``serving.deploy.load_tft_predictor``) on CPU and on CUDA, and compares the forecasts of every unit (same
weights, fp32): max relative difference, and median time of one forward pass for 1 and 64 units on each.
Without CUDA it says so and exits 0 with {"skipped": true} as its last line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_s(fn, n=5) -> float:
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
    os.environ["REPLENISH_HOME"] = tempfile.mkdtemp(prefix="rp-gpu-serving-")
    from serving.deploy._predictors import load_tft_predictor
    from training.config import load_train_config
    from training.pipeline import promote, train_and_register

    root = Path(__file__).resolve().parent.parent
    cfg = load_train_config(root / "configs" / "train" / "tiny.yaml")
    result = train_and_register(cfg)
    if not result.promoted:
        promote(result.version, cfg.name)
    cpu = load_tft_predictor("champion", cfg.name, device="cpu")
    gpu = load_tft_predictor("champion", cfg.name, device="cuda")
    units = cpu.unit_ids()
    a, b = cpu.predict(units), gpu.predict(units)
    rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0)))
    figures = {"bench": "gpu_serving", "units": len(units), "max_rel_diff": rel, "ok": rel < 1e-3}
    for n in (1, 64):
        pick = (units * 64)[:n]
        figures[f"cpu_ms_{n}"] = 1e3 * _median_s(lambda p=pick: cpu.predict(p))
        figures[f"cuda_ms_{n}"] = 1e3 * _median_s(lambda p=pick: gpu.predict(p))
    print(f"gpu_serving: {len(units)} units, max relative CPU/CUDA difference {rel:.2e}")
    for n in (1, 64):
        print(f"  {n:>3} units: CPU {figures[f'cpu_ms_{n}']:.1f} ms, CUDA {figures[f'cuda_ms_{n}']:.1f} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
