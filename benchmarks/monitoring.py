"""The monitoring job at scale: 1M forecast-actual pairs and 100k units' inventory snapshots (issue 15).

Target: ``workflow.monitoring.run_monitoring`` (the code the scheduler runs) <= 60 s on this machine, peak
memory reported. Data, written with a fixed seed through the data layer into a temp SQLite store and Parquet
facts: ``--units`` planning units (SKU x location x channel) with ``--days`` days of daily sales, one stored
forecast run of ``--horizon`` days ahead (p10..p90) made ``--horizon`` days before the last sales day, so
every one of its ``units x horizon`` rows has its actual; four inventory snapshots per unit.

Each timed run is a fresh process (its peak resident memory is the job's own, the data generation left out).
Reference, on the same pairs: the per-row grouping of ``workflow.telemetry.accuracy_by_group`` (WAPE, bias,
coverage by model version only, a Python loop over rows) that monitoring had before. Medians of ``--repeat``
runs; the last line printed is one JSON object.

    flock /tmp/replenish-bench.lock python benchmarks/monitoring.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

TENANT = "bench"


def _write(root: Path, units: int, days: int, horizon: int, seed: int) -> None:
    from features.facts import write_facts
    from features.forecasts import ForecastRunMeta, write_forecasts
    from features.store._db import make_engine, session_scope
    from features.store._migrate import migrate
    from workflow import access

    rng = np.random.default_rng(seed)
    d0 = date(2026, 1, 1)
    skus = np.array([f"S{i // 10}" for i in range(units)])
    locs = np.array([f"L{i % 10}" for i in range(units)])
    level = rng.gamma(2.0, 3.0, units)
    dates = pl.date_range(d0, d0 + timedelta(days=days - 1), "1d", eager=True)
    sales = pl.DataFrame(
        {
            "sku_id": np.repeat(skus, days),
            "location_id": np.repeat(locs, days),
            "channel_id": "store",
            "date": pl.concat([dates] * units),
            "qty": rng.poisson(np.repeat(level, days)).astype(float),
        }
    )
    write_facts("sales", TENANT, sales, "sales-1", facts_dir=root / "facts")
    snap_days = [d0 + timedelta(days=days - 1 - 7 * k) for k in range(4)]
    inv = pl.DataFrame(
        {
            "sku_id": np.repeat(skus, 4),
            "location_id": np.repeat(locs, 4),
            "date": snap_days * units,
            "on_hand": rng.poisson(np.repeat(level, 4) * 20).astype(float) * (rng.random(4 * units) > 0.05),
            "on_order": 0.0,
            "backorders": 0.0,
        }
    )
    write_facts("inventory", TENANT, inv, "inv-1", facts_dir=root / "facts")
    origin = d0 + timedelta(days=days - 1 - horizon)
    h = np.tile(np.arange(1, horizon + 1), units)
    p50 = np.repeat(level, horizon) * rng.lognormal(0, 0.2, units * horizon)
    fc = pl.DataFrame(
        {
            "unique_id": np.repeat(np.char.add(np.char.add(skus, "|"), np.char.add(locs, "|store")), horizon),
            "level": "bottom",
            "sku_id": np.repeat(skus, horizon),
            "location_id": np.repeat(locs, horizon),
            "channel_id": "store",
            "date": [origin + timedelta(days=int(x)) for x in h],
            "horizon": h,
            "source": "model:bench",
            "model_version": "7",
            "cold_start": False,
            **{f"p{q}": p50 * f for q, f in ((10, 0.4), (25, 0.7), (50, 1.0), (75, 1.3), (90, 1.7))},
        }
    )
    meta = ForecastRunMeta(
        run_id="fc-1",
        tenant=TENANT,
        stage="base",
        freq="D",
        horizon=horizon,
        levels=(0.1, 0.25, 0.5, 0.75, 0.9),
        data_watermark="w",
        model_name="bench",
        model_version="7",
    )
    write_forecasts(TENANT, fc, meta, facts_dir=root / "facts")
    engine = make_engine(f"sqlite:///{root / 'state.db'}")
    migrate(engine)
    with session_scope(engine) as s:
        access.ensure_tenant(s, TENANT)
    engine.dispose()


def _monitor(root: str, out) -> None:
    from features.store._db import make_engine
    from workflow.monitoring import run_monitoring

    engine = make_engine(f"sqlite:///{Path(root) / 'state.db'}")
    t0 = time.perf_counter()
    res = run_monitoring(engine, TENANT, facts_dir=Path(root) / "facts")
    sec = time.perf_counter() - t0
    out.put(
        {
            "seconds": sec,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "pairs": res.counts["pairs"],
            "units_with_snapshots": res.counts["units_with_snapshots"],
            "figures": res.counts["figures"],
        }
    )


def _reference(root: str, out) -> None:
    from features.forecasts import read_forecasts
    from workflow.telemetry import accuracy_by_group

    facts = Path(root) / "facts"
    fc = read_forecasts(TENANT, "base", "fc-1", facts_dir=facts)
    sales = pl.scan_parquet(str(facts / "sales" / f"tenant={TENANT}" / "**" / "*.parquet")).collect()
    pairs = fc.join(sales, on=["sku_id", "location_id", "channel_id", "date"], how="inner")
    t0 = time.perf_counter()
    accuracy_by_group(
        ["bottom"] * pairs.height,
        pairs["model_version"].to_list(),
        pairs["qty"].to_numpy(),
        pairs["p50"].to_numpy(),
        pairs["p10"].to_numpy(),
        pairs["p90"].to_numpy(),
    )
    out.put(
        {
            "seconds": time.perf_counter() - t0,
            "pairs": pairs.height,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def _in_child(fn, root: str) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(root, q))
    p.start()
    res = q.get(timeout=900)
    p.join()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--days", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _write(Path(tmp), a.units, a.days, a.horizon, a.seed)
        print(
            f"data: {a.units:,} units, {a.units * a.horizon:,} forecast rows, "
            f"{a.units * a.days:,} sales rows, "
            f"{4 * a.units:,} snapshots written in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        runs = [_in_child(_monitor, tmp) for _ in range(a.repeat)]
        for r in runs:
            print(
                f"monitoring: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"{r['pairs']:,} pairs, "
                f"{r['figures']} figures",
                flush=True,
            )
        refs = [_in_child(_reference, tmp) for _ in range(a.repeat)]
        for r in refs:
            print(
                f"reference accuracy_by_group (WAPE/bias/coverage only): {r['seconds']:.2f} s, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    med = statistics.median(r["seconds"] for r in runs)
    ref = statistics.median(r["seconds"] for r in refs)
    print(f"median monitoring {med:.2f} s (target <= 60 s); reference {ref:.2f} s; ratio {ref / med:.2f}x")
    print(
        json.dumps(
            {
                "pairs": runs[0]["pairs"],
                "units_with_snapshots": runs[0]["units_with_snapshots"],
                "monitoring_median_s": round(med, 3),
                "monitoring_runs_s": [round(r["seconds"], 3) for r in runs],
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
                "target_s": 60,
                "within_target": med <= 60,
                "reference_accuracy_by_group_median_s": round(ref, 3),
                "reference_over_monitoring": round(ref / med, 3),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
