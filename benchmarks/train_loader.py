"""Training windows per second: our pipeline vs a pytorch-forecasting ``TimeSeriesDataSet`` dataloader.

Data: ``features.synth.generate`` daily sales (M5-like: intermittent series, promotions, weekly and yearly
seasons), 10,000 series x 3 years (1,095 days) by default, generated in chunks of series (each chunk its own
seed
and store prefix) and written to Parquet; both pipelines then read the same files. Windows: 56-day encoder,
28-day decoder, batch 256. Both produce the identical TFT input (``EncoderNormalizer(log1p)`` target, scaled
price/promo, weekday and channel categoricals, relative time, target scales, encoder length): the reference is
``TimeSeriesDataSet(**training.tft._pf_compat.dataset_parameters(spec))`` with ``to_dataloader(train=True,
batch_size=256, num_workers=0)``.

Each side runs in its own child process, so the peak resident memory (``ru_maxrss``) of each is its own:
reading the Parquet files, building the data set / panel, then drawing batches.

``--epoch-series 30000`` additionally runs one training epoch (``--epoch-batches`` batches) of a TFT on 30,000
series x 3 years with our pipeline (panel built chunk by chunk) and reports its peak memory (target: 4 GB).

Usage: flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/train_loader.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENC, DEC, BATCH = 56, 28, 256
CHUNK = 2500


def _write_chunks(folder: Path, n_series: int, n_days: int) -> list[Path]:
    import polars as pl

    from features.synth import generate

    paths = []
    for k, start in enumerate(range(0, n_series, CHUNK)):
        n = min(CHUNK, n_series - start)
        sales = generate(n, n_days, "D", seed=k).sales
        sales = sales.with_columns((pl.lit(f"C{k:03d}-") + pl.col("location_id")).alias("location_id"))
        p = folder / f"sales-{k:03d}.parquet"
        sales.write_parquet(p)
        paths.append(p)
    return paths


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _panel(paths):
    import polars as pl

    from features.frames import SALES_SPEC, build_panel, concat_panels, sales_frame

    vocab = {"channel_id": ["online", "store", "wholesale"], "weekday": [str(i) for i in range(7)]}
    return concat_panels(
        [build_panel(sales_frame(pl.read_parquet(p)), SALES_SPEC, vocab=vocab) for p in paths]
    )


def _spec(panel):
    from training.windows import fit_input_spec

    return fit_input_spec(
        panel, panel.n_times - 1, ENC, DEC, [0.1, 0.5, 0.9], min_encoder_length=ENC, season=7
    )


def _ours(paths, batches, q):
    import numpy as np
    import torch

    from training.windows import PanelTensors, WindowLoader, enumerate_windows

    torch.set_num_threads(1)
    t = time.perf_counter()
    panel = _panel(paths)
    spec = _spec(panel)
    pt = PanelTensors.from_panel(panel, spec)
    s, t0 = enumerate_windows(panel.first, panel.last, ENC, DEC, panel.n_times - 1)
    build = time.perf_counter() - t
    loader = WindowLoader(pt, spec, s, t0, BATCH, batches, np.random.default_rng(0))
    it = iter(loader)
    next(it)  # first batch outside the timing
    t = time.perf_counter()
    n = sum(len(y) for _, y in it)
    dt = time.perf_counter() - t
    q.put(
        {
            "windows": int(len(s)),
            "build_s": build,
            "windows_per_s": n / dt,
            "peak_gb": _rss_gb(),
            "spec": spec.to_dict(),
        }
    )


def _reference(paths, batches, spec_dict, q):
    import pandas as pd
    import polars as pl
    import torch
    from pytorch_forecasting import TimeSeriesDataSet

    from features.frames import sales_frame
    from training.tft._pf_compat import dataset_parameters, reference_frame
    from training.windows import InputSpec

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    spec = InputSpec.from_dict(spec_dict)
    df = pd.concat([sales_frame(pl.read_parquet(p)) for p in paths], ignore_index=True)
    t = time.perf_counter()
    ds = TimeSeriesDataSet(reference_frame(df, spec), **dataset_parameters(spec))
    build = time.perf_counter() - t
    dl = ds.to_dataloader(train=True, batch_size=BATCH, num_workers=0)
    it = iter(dl)
    next(it)
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        x, (y, _w) = next(it)
        n += len(y)
    dt = time.perf_counter() - t
    q.put({"windows": int(len(ds)), "build_s": build, "windows_per_s": n / dt, "peak_gb": _rss_gb()})


def _epoch(paths, batches, q):
    import lightning as L
    import numpy as np
    import torch

    from training.tft.lightning_module import TFTLightningModule
    from training.tft.module import TFTModule
    from training.windows import PanelTensors, WindowLoader, enumerate_windows

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    t = time.perf_counter()
    panel = _panel(paths)
    spec = _spec(panel)
    pt = PanelTensors.from_panel(panel, spec)
    s, t0 = enumerate_windows(panel.first, panel.last, ENC, DEC, panel.n_times - 1)
    n_series = panel.n_series
    del panel
    build = time.perf_counter() - t
    cfg = dict(hidden_size=16, attention_head_size=2, dropout=0.1, hidden_continuous_size=8, lstm_layers=1)
    module = TFTLightningModule(TFTModule(spec, cfg), spec.quantiles, 0.01, 0.0, batches)
    loader = WindowLoader(pt, spec, s, t0, BATCH, batches, np.random.default_rng(0))
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=0.1,
    )
    t = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    q.put(
        {
            "series": n_series,
            "windows": int(len(s)),
            "build_s": build,
            "epoch_s": time.perf_counter() - t,
            "batches": batches,
            "train_loss": float(trainer.callback_metrics.get("train_loss", float("nan"))),
            "peak_gb": _rss_gb(),
        }
    )


def _run(target, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=3 * 365)
    ap.add_argument("--batches", type=int, default=400, help="timed batches of our loader")
    ap.add_argument("--ref-batches", type=int, default=40, help="timed batches of the reference loader")
    ap.add_argument("--epoch-series", type=int, default=30_000, help="0 skips the one-epoch memory run")
    ap.add_argument("--epoch-batches", type=int, default=20)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        paths = _write_chunks(folder, args.series, args.days)
        print(
            f"generated {args.series} series x {args.days} days in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        ours = _run(_ours, paths, args.batches)
        print(
            f"ours:      build {ours['build_s']:6.1f} s  {ours['windows']:,} windows  "
            f"{ours['windows_per_s']:10,.0f} windows/s  peak {ours['peak_gb']:.2f} GB",
            flush=True,
        )
        ref = None
        if not args.skip_reference:
            ref = _run(_reference, paths, args.ref_batches, ours["spec"])
            print(
                f"reference: build {ref['build_s']:6.1f} s  {ref['windows']:,} windows  "
                f"{ref['windows_per_s']:10,.0f} windows/s  peak {ref['peak_gb']:.2f} GB  (TimeSeriesDataSet, "
                f"num_workers=0)",
                flush=True,
            )
            print(
                f"speed-up {ours['windows_per_s'] / ref['windows_per_s']:.1f} x (target >= 10x); "
                f"build {ref['build_s'] / ours['build_s']:.1f} x faster; peak memory "
                f"{ref['peak_gb'] / ours['peak_gb']:.1f} x lower",
                flush=True,
            )
        epoch = None
        if args.epoch_series:
            for p in folder.glob("*.parquet"):
                p.unlink()
            paths = _write_chunks(folder, args.epoch_series, args.days)
            epoch = _run(_epoch, paths, args.epoch_batches)
            print(
                f"one epoch at {epoch['series']:,} series x {args.days} days ({epoch['windows']:,} windows): "
                f"build {epoch['build_s']:.1f} s, {epoch['batches']} batches in {epoch['epoch_s']:.1f} s, "
                f"train loss {epoch['train_loss']:.3f}, peak {epoch['peak_gb']:.2f} GB (target <= 4 GB)"
            )
    out = {
        "bench": "train_loader",
        "series": args.series,
        "days": args.days,
        "encoder": ENC,
        "decoder": DEC,
        "batch": BATCH,
        "ours_windows_per_s": round(ours["windows_per_s"]),
        "ours_build_s": round(ours["build_s"], 1),
        "ours_peak_gb": round(ours["peak_gb"], 2),
    }
    if ref:
        out.update(
            ref_windows_per_s=round(ref["windows_per_s"]),
            ref_build_s=round(ref["build_s"], 1),
            ref_peak_gb=round(ref["peak_gb"], 2),
            speedup=round(ours["windows_per_s"] / ref["windows_per_s"], 1),
        )
    if epoch:
        out.update(
            epoch_series=epoch["series"],
            epoch_batches=epoch["batches"],
            epoch_s=round(epoch["epoch_s"], 1),
            epoch_peak_gb=round(epoch["peak_gb"], 2),
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
