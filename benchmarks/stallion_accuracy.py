"""Stallion accuracy under the pytorch-forecasting tutorial protocol.

Data: the bundled Stallion file (350 agency x SKU monthly series, 60 months). The last 6 months (54-59) are
held
out. Per seed: train on windows whose decoders end by month 47 (36-month encoder, down to 18), early-stop
and select
the epoch on months 48-53, fit the baseline blend and the conformal P10..P90 calibration on months 48-53,
refit on
windows ending by month 53 for the chosen number of epochs, then forecast months 54-59 from month 53. The
held-out
months are never read by training, early stopping or model selection.

Prints the last-value and seasonal-naive baseline MAE (the tutorial's references: 293.0 and 325.4), our TFT's
MAE (its own P50), the champion's MAE (the served forecast: TFT blended with the baselines by validation
weights)
and the P10..P90 coverage, each the median over the seeds, with training time on this machine.

Usage: flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/stallion_accuracy.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._stallion import STALLION_PATH, stallion_frame, stallion_spec  # noqa: E402
from features.frames import build_panel  # noqa: E402
from training.baselines import last_value, seasonal_naive  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.metrics import coverage, mae  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--no-refit", action="store_true")
    ap.add_argument("--lags", type=int, nargs="*", default=[])
    ap.add_argument("--swa", type=int, default=1)
    ap.add_argument("--keep-early", action="store_true")
    ap.add_argument("--save", type=str, default="")
    args = ap.parse_args()

    import torch

    from training.predict import Predictor
    from training.tft.estimator import TFTEstimator

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    df = stallion_frame(pd.read_parquet(STALLION_PATH), tuple(args.lags))
    panel = build_panel(df, stallion_spec(tuple(args.lags)))
    origin, H = 54, 6
    y_test = panel.y[:, origin : origin + H].astype(float)
    hist = panel.y[:, :origin].astype(float)
    mae_lv = mae(y_test, last_value(hist, H))
    mae_sn = mae(y_test, seasonal_naive(hist, H, 12))
    print(f"last-value baseline MAE      {mae_lv:8.1f}   (tutorial reference 293.0)")
    print(f"seasonal-naive baseline MAE  {mae_sn:8.1f}   (tutorial reference 325.4)")

    rows = []
    for k in range(args.seeds):
        cfg = TrainConfig(
            model=dict(hidden_size=args.hidden, hidden_continuous_size=max(8, args.hidden // 2)),
            fit=dict(
                encoder_length=36,
                min_encoder_length=18,
                horizon=H,
                season=12,
                batch_size=64,
                batches_per_epoch=args.batches,
                max_epochs=args.epochs,
                patience=6,
                learning_rate=args.lr,
                refit=not args.no_refit,
                swa_epochs=args.swa,
                keep_early_model=args.keep_early,
                seed=42 + k,
                progress=False,
            ),
            holdout=6,
        )
        fitted = TFTEstimator(cfg).fit(panel, cutoff=origin - 1)
        fc = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict).forecast(panel, origin)
        lv = fc.levels
        row = {
            "seed": 42 + k,
            "tft_mae": mae(y_test, fc.raw[..., lv.index(0.5)]),
            "champion_mae": mae(y_test, fc.median),
            "coverage_p10_p90": coverage(
                y_test, fc.quantiles[..., lv.index(0.1)], fc.quantiles[..., lv.index(0.9)]
            ),
            "raw_coverage_p10_p90": coverage(y_test, fc.raw[..., lv.index(0.1)], fc.raw[..., lv.index(0.9)]),
            "val_mae_tft": fitted.validation["val_mae_tft"],
            "best_epoch": fitted.best_epoch,
            "blend": fitted.spec.blend,
            "train_seconds": fitted.train_seconds,
        }
        rows.append(row)
        if args.save:
            np.savez(f"{args.save}-{row['seed']}.npz", raw=fc.raw, q=fc.quantiles, y=y_test)
        print(
            f"seed {row['seed']}: TFT MAE {row['tft_mae']:.1f}  champion MAE {row['champion_mae']:.1f}  "
            f"coverage {row['coverage_p10_p90']:.3f} (raw {row['raw_coverage_p10_p90']:.3f})  "
            f"best epoch {row['best_epoch']}  blend {row['blend']}  train {row['train_seconds']:.0f} s",
            flush=True,
        )

    med = {
        k: float(np.median([r[k] for r in rows]))
        for k in ("tft_mae", "champion_mae", "coverage_p10_p90", "raw_coverage_p10_p90", "train_seconds")
    }
    print(f"TFT MAE (median of {len(rows)} seeds)       {med['tft_mae']:8.1f}   target <= 260")
    print(f"champion MAE (median)               {med['champion_mae']:8.1f}   target <= 250")
    print(
        f"P10..P90 coverage (median)          {med['coverage_p10_p90']:8.3f}   target 0.75-0.88 "
        f"(raw {med['raw_coverage_p10_p90']:.3f})"
    )
    print(
        f"training time per seed (median)     {med['train_seconds']:8.1f} s "
        f"on {torch.get_num_threads()} CPU threads"
    )
    print(
        json.dumps(
            {
                "bench": "stallion_accuracy",
                "seeds": len(rows),
                "last_value_mae": round(mae_lv, 1),
                "seasonal_naive_mae": round(mae_sn, 1),
                "tft_mae": round(med["tft_mae"], 1),
                "champion_mae": round(med["champion_mae"], 1),
                "coverage_p10_p90": round(med["coverage_p10_p90"], 3),
                "raw_coverage_p10_p90": round(med["raw_coverage_p10_p90"], 3),
                "train_seconds": round(med["train_seconds"], 1),
                "per_seed_tft_mae": [round(r["tft_mae"], 1) for r in rows],
                "per_seed_champion_mae": [round(r["champion_mae"], 1) for r in rows],
            }
        )
    )


if __name__ == "__main__":
    main()
