"""The champion as the product builds it, for the accuracy benchmarks: ingest, train_tenant, forecast_stage.

At each origin the benchmark hands over (the number of periods of history), :func:`product_champion`'s
callable ingests the tenant's master data and the sales before the origin (plus the whole promotions
calendar: planned promotions are known in advance, as in production) into a fresh tenant of one temporary
``REPLENISH_HOME`` (real SQLite store, Parquet facts, MLflow file backend), trains it with
``training.stage.train_tenant`` (the TFT, then the served selection over the TFT and the statsforecast
models on the validation window before the holdout, gated on the holdout: ``training.served``), makes the
first version champion by hand where the gate refuses it (as ``replenish cycle --train`` does for a
tenant's first model), runs ``training.stage.forecast_stage`` and returns the stored P10..P90 in the
benchmark's series order. Nothing after the origin is read except the promotions calendar.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

KEYS = ["sku_id", "location_id", "channel_id"]
#: The TFT budget of the benchmarks (2 shared cores): a small network, a few epochs of a few batches; the
#: rest as the product's defaults (``refit``: retrained on train + validation with the chosen epochs).
BUDGET = {
    "model": {"hidden_size": 16, "attention_head_size": 2, "hidden_continuous_size": 8},
    "fit": {"batch_size": 64, "batches_per_epoch": 20, "max_epochs": 6, "patience": 2, "seed": 7},
}
#: ``--no-refit``: the TFT trained on the windows before its validation window only (half the time).
NO_REFIT = {"fit": {"refit": False}}


def _budget(epochs: int | None, batches: int | None, refit: bool = True) -> dict:
    fit = {**BUDGET["fit"], **({} if refit else NO_REFIT["fit"])}
    if epochs:
        fit["max_epochs"] = epochs
    if batches:
        fit["batches_per_epoch"] = batches
    return {**BUDGET, "fit": fit}


def product_champion(data, y_rows: pl.DataFrame, dates: Sequence, *, horizon: int, log=print,
                     epochs: int | None = None, batches: int | None = None, threads: int = 2,
                     info: dict | None = None, refit: bool = True):
    """A benchmark champion ``(history (N, T), H, levels) -> (N, H, Q)`` running the product end to end.

    Args:
        data: ``features.synth.SynthData`` whose master data and promotions are ingested; its ``sales`` are
            the benchmark's panel in long form (NaN-free rows only).
        y_rows: (N, 3) keys of the benchmark's rows, in their order.
        dates: (T,) the period start of each column of the benchmark's panel.
        horizon: H.
        log: progress printer.
        epochs, batches: TFT budget (default :data:`BUDGET`).
        refit: the product's default refit of the TFT on train + validation (False: skipped).
        threads: torch threads.
        info: filled per origin with the gate's outcome (served, promoted, seconds).
    """
    from features.forecasts import quantile_columns, read_forecasts
    from features.ingest import ingest
    from training.pipeline import promote
    from training.quiet import quiet
    from training.registry import list_versions
    from training.stage import _merge, forecast_stage, train_tenant

    root = Path(tempfile.mkdtemp(prefix="replenish-bench-champion-"))
    os.environ["REPLENISH_HOME"] = str(root / "home")
    budget = _budget(epochs, batches, refit)
    budget["fit"]["threads"] = threads
    ids = y_rows.select(pl.concat_str(KEYS, separator="|").alias("unique_id"))["unique_id"].to_list()
    info = info if info is not None else {}

    def champion(history: np.ndarray, H: int, levels) -> np.ndarray:
        o = history.shape[1]
        tenant = f"o{o}"
        t0 = time.perf_counter()
        folder = root / tenant
        folder.mkdir()
        tables = {k: getattr(data, k) for k in ("channels", "locations", "skus", "planning_units")}
        tables["sales"] = data.sales.filter(pl.col("date") < dates[o])
        if data.promotions.height:
            tables["promotions"] = data.promotions
        with quiet():
            for kind, frame in tables.items():
                path = folder / f"{kind}.parquet"
                frame.write_parquet(path)
                r = ingest(kind, path, tenant=tenant)
                if r.status not in ("stored", "partial"):
                    raise RuntimeError(f"ingest {kind} for {tenant}: {r.status} {r.message}")
            windows = {"fit": {"horizon": H}, "holdout": H, "backtest": {"origins": 1, "step": H}}
            res = train_tenant(tenant, overrides=_merge(budget, windows))
            first = not any("champion" in v["aliases"] for v in list_versions(res.model_name))
            if not res.promoted and first:
                promote(res.version, res.model_name)
            meta = forecast_stage(tenant, run_id=f"bench-{o}")
        rows = read_forecasts(tenant, "base", meta.run_id)
        rows = rows.filter(pl.col("horizon") <= H).sort("unique_id", "horizon")
        by_id = {u: i for i, u in enumerate(rows["unique_id"].unique(maintain_order=True).to_list())}
        q = rows.select(quantile_columns(levels)).to_numpy().reshape(len(by_id), H, len(levels))
        missing = [u for u in ids if u not in by_id]
        if missing:
            raise RuntimeError(f"origin {o}: the forecast stage served no forecast for {len(missing)} units, "
                               f"e.g. {missing[:3]}")
        out = q[[by_id[u] for u in ids]]
        info[o] = {"served": res.served, "promoted_by_gate": res.promoted, "reason": res.reason,
                   "served_tft_units": meta.extra.get("served_tft_units"), "units": meta.extra["units"],
                   "seconds": round(time.perf_counter() - t0, 1)}
        log(f"  champion at origin {o}: {info[o]}")
        return out

    return champion
