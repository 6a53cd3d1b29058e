"""GPU checks for forecasting (run by benchmarks/gpu_check.sh on a CUDA machine).

1. Training throughput: TFT steps on synthetic daily data (2,000 series x 3 years, 56/28 windows, batch 256,
   hidden 32) with bf16 mixed precision on CUDA beside fp32 on CPU, same batches; windows/s for both.
2. Inference: the fast predictor on all 350 Stallion series on CUDA beside CPU, same weights: max relative
   difference (fp32 both) and median time of 5 calls each.

Prints both sides and ends with one JSON line. Without CUDA it says so and exits 0 with {"skipped": true}.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _steps_per_s(module, loader, steps, device, bf16):
    import torch

    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    q = module.q.to(device)
    it = iter(loader)
    from training.tft.lightning_module import pinball_loss

    def step():
        x, y = next(it)
        x = {k: v.to(device, non_blocking=True) for k, v in x.items()}
        y = y.to(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            out = module(x)
        loss = pinball_loss(out.float(), y, q)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * loader.batch_size / (time.perf_counter() - t)


def main() -> None:
    import pandas as pd
    import torch

    warnings.filterwarnings("ignore")
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        print(json.dumps({"bench": "gpu_training", "skipped": True}))
        return
    from benchmarks._stallion import STALLION_PATH, STALLION_SPEC, stallion_frame
    from features.frames import SALES_SPEC, build_panel, sales_frame
    from features.synth import generate
    from training.predict import Predictor
    from training.tft.lightning_module import TFTLightningModule
    from training.tft.module import TFTModule
    from training.windows import PanelTensors, WindowLoader, enumerate_windows, fit_input_spec

    vocab = {"channel_id": ["online", "store", "wholesale"], "weekday": [str(i) for i in range(7)]}
    panel = build_panel(sales_frame(generate(2000, 3 * 365, "D", seed=0).sales), SALES_SPEC, vocab=vocab)
    spec = fit_input_spec(panel, panel.n_times - 1, 56, 28, [0.1, 0.5, 0.9], min_encoder_length=56, season=7)
    pt = PanelTensors.from_panel(panel, spec)
    s, t0 = enumerate_windows(panel.first, panel.last, 56, 28, panel.n_times - 1)
    cfg = dict(hidden_size=32, attention_head_size=4, dropout=0.1, hidden_continuous_size=16, lstm_layers=1)
    rates = {}
    for device, bf16, steps in (("cuda", True, 50), ("cpu", False, 5)):
        torch.manual_seed(0)
        module = TFTLightningModule(TFTModule(spec, cfg), spec.quantiles, 1e-3, 0.0, 1).to(device)
        loader = WindowLoader(pt, spec, s, t0, 256, steps + 1, np.random.default_rng(0))
        rates[device] = _steps_per_s(module, loader, steps, device, bf16)
    print(
        f"training windows/s: cuda bf16 {rates['cuda']:,.0f}  cpu fp32 {rates['cpu']:,.0f}  "
        f"ratio {rates['cuda'] / rates['cpu']:.1f}x"
    )

    df = stallion_frame(pd.read_parquet(STALLION_PATH))
    sp = build_panel(df, STALLION_SPEC)
    sspec = fit_input_spec(sp, 53, 36, 6, [0.1, 0.25, 0.5, 0.75, 0.9], min_encoder_length=18)
    torch.manual_seed(0)
    state = TFTModule(sspec, cfg).state_dict()
    cpu, gpu = Predictor(sspec, cfg, state), Predictor(sspec, cfg, state)
    gpu.to("cuda")
    ptc = cpu.prepare(sp)
    idx, org = np.arange(sp.n_series), np.full(sp.n_series, 54)
    times = {}
    outs = {}
    for name, p in (("cpu", cpu), ("cuda", gpu)):
        p.forecast_tensors(ptc, idx, org)
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            outs[name] = p.forecast_tensors(ptc, idx, org)
            ts.append(time.perf_counter() - t)
        times[name] = statistics.median(ts)
    rel = float(np.max(np.abs(outs["cuda"] - outs["cpu"]) / np.maximum(np.abs(outs["cpu"]), 1e-3)))
    print(
        f"inference 350 series: cuda {times['cuda'] * 1e3:.1f} ms  cpu {times['cpu'] * 1e3:.1f} ms  "
        f"max rel diff {rel:.2e}"
    )
    print(
        json.dumps(
            {
                "bench": "gpu_training",
                "device": torch.cuda.get_device_name(0),
                "train_windows_per_s_cuda_bf16": round(rates["cuda"]),
                "train_windows_per_s_cpu": round(rates["cpu"]),
                "infer_ms_cuda": round(times["cuda"] * 1e3, 2),
                "infer_ms_cpu": round(times["cpu"] * 1e3, 2),
                "cpu_gpu_max_rel_diff": rel,
            }
        )
    )
    if rel > 1e-3:
        sys.exit(1)


if __name__ == "__main__":
    main()
