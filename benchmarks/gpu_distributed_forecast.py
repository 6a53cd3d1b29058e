"""GPU: the distributed forecast stage (Ray Data actors holding the model on the GPU) vs in-process.

A weekly synthetic tenant (``--units`` series, 60 weeks) is ingested and a small TFT trained; then the
forecast stage runs in-process (the model on the CPU, the default path) and as
``training.distributed.forecast_stage_distributed`` on a local Ray instance with one actor per GPU
(``num_gpus=1``). Printed: both times (median of ``--repeats``), units/s, and the largest difference of the
two runs' quantiles relative to each row's scale (float32 on both devices; TF32 on the GPU where enabled).
The last line is one JSON object. Run by ``benchmarks/gpu_check.sh`` on a machine with a CUDA GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

sys.path.append(str(ROOT / "benchmarks"))  # after the project: benchmarks/serving.py must not shadow it
from _scale_tenant import tenant  # noqa: E402

QCOLS = ["p10", "p25", "p50", "p75", "p90"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import numpy as np
    import ray
    import torch

    from features.forecasts import read_forecasts
    from training.distributed import forecast_stage_distributed
    from training.stage import forecast_stage

    if not torch.cuda.is_available():
        raise SystemExit("gpu_distributed_forecast: no CUDA device")
    settings, engine = tenant(Path(tempfile.mkdtemp(prefix="replenish-gpu-dist-")), a.units)
    ray.init(num_cpus=4, num_gpus=torch.cuda.device_count(), object_store_memory=500 * 2**20)
    local, dist = [], []
    for k in range(a.repeats):
        t = time.perf_counter()
        meta = forecast_stage("bench", run_id=f"l{k}", settings=settings, engine=engine)
        local.append(time.perf_counter() - t)
        t = time.perf_counter()
        forecast_stage_distributed(
            "bench",
            run_id=f"g{k}",
            settings=settings,
            engine=engine,
            num_gpus=1,
            partition_units=-(-meta.extra["units"] // a.partitions),
        )
        dist.append(time.perf_counter() - t)
    ray.shutdown()
    read = lambda r: read_forecasts("bench", "base", r, level=None, facts_dir=settings.facts_dir).sort(  # noqa: E731
        "unique_id", "horizon"
    )
    x, y = read("l0").select(QCOLS).to_numpy(), read("g0").select(QCOLS).to_numpy()
    err = float((np.abs(y - x) / np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-9)).max())
    n = meta.extra["units"]
    lm, dm = statistics.median(local), statistics.median(dist)
    print(
        f"in-process (CPU): {lm:.1f}s, {n / lm:,.0f} units/s; distributed on the GPU: {dm:.1f}s, "
        f"{n / dm:,.0f} units/s; max difference {err:.1e} of a forecast's scale"
    )
    print(
        json.dumps(
            {
                "bench": "gpu_distributed_forecast",
                "device": torch.cuda.get_device_name(0),
                "units": n,
                "inprocess_cpu_s": round(lm, 2),
                "distributed_gpu_s": round(dm, 2),
                "speedup": round(lm / dm, 2),
                "max_rel_scale_diff": err,
            }
        )
    )


if __name__ == "__main__":
    main()
