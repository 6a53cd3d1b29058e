"""Planning at scale: one review of N planning units (default 1,000,000) from given forecast quantiles.

Inputs are generated here with NumPy (fixed seed) rather than by the sales generator, since the forecasts are
given: 20,000 SKUs x 50 stores in 5 regions, 200 suppliers with empirical lead-time distributions, pack /
MOQ / max terms, 30% intermittent units, 9 forecast quantiles per unit for 8 weekly periods, a budget per
supplier.
The timed call is the whole ``planning.plan`` with the policy the backtest measures: Monte-Carlo levels (256
paths per unit, every order its own lead time so orders cross, each supplier's lead-time distribution drawn
from its Dirichlet posterior: 26 observed deliveries plus 4 pooled pseudo-deliveries), rounding, budget cuts,
transfers, exceptions, routing with ``configs/routing.yaml`` and PO drafts (writing to the store is not
included). ``--no-crossing`` / ``--no-posterior`` measure without them.
Reference in the same process: the classic closed-form order-up-to (normal approximation,
``planning._classic``) for the same units. Medians of ``--repeats`` runs; peak resident memory reported.

Usage: ``flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/plan_scale.py [--units 1000000]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import warmup  # noqa: E402
from planning._baseline import gamma_quantiles  # noqa: E402
from planning._classic import classic_order_up_to  # noqa: E402
from planning._plan import Budget, Forecast, PlanConfig, plan  # noqa: E402
from planning._routing import load_rules  # noqa: E402

LEVELS = np.array([0.05, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.95])
H = 8


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(n: int, seed: int):
    rng = np.random.default_rng(seed)
    n_loc = 50
    n_sku = int(np.ceil(n / n_loc))
    n_sup = 200
    i = np.arange(n)
    sku = i // n_loc
    loc = i % n_loc
    sup_of_sku = rng.integers(0, n_sup, n_sku)
    sup = sup_of_sku[sku]
    intermittent = rng.random(n) < 0.3
    mean = np.where(intermittent, rng.uniform(0.1, 1.0, n), rng.lognormal(np.log(20), 1.0, n))
    cv = np.where(intermittent, rng.uniform(1.0, 2.5, n), rng.uniform(0.3, 0.8, n))
    # Quantile shapes per CV class (a gamma with mean 1), scaled by each unit's mean: cheap for a million
    # units.
    classes = np.linspace(0.3, 2.5, 23)
    cls = np.clip(np.searchsorted(classes, cv), 0, classes.size - 1)
    shapes = gamma_quantiles(np.ones((classes.size, 1)), classes[:, None], LEVELS)[:, 0, :]  # (C, Q)
    season = 1.0 + 0.2 * np.sin(np.arange(H) / 8.0 * np.pi)[None, :]
    values = (mean[:, None, None] * season[:, :, None] * shapes[cls][:, None, :]).astype(np.float32)
    pmf_sup = rng.dirichlet(np.array([0.2, 2.0, 4.0, 2.0, 0.6, 0.3]), n_sup)
    pmf = pmf_sup[sup]
    lt_mean = pmf @ np.arange(6)
    lt_std = np.sqrt(pmf @ np.arange(6) ** 2 - lt_mean**2)
    pack = rng.choice(np.array([1.0, 6.0, 12.0, 24.0]), n_sku)[sku]
    moq = pack * rng.choice(np.array([1.0, 2.0, 4.0]), n_sku)[sku]
    cost = np.round(rng.lognormal(np.log(3.0), 0.6, n_sku), 2)[sku]
    on_hand = rng.poisson(mean * rng.uniform(0.0, 5.0, n)).astype(float)
    units = (
        pl.DataFrame(
            {
                "sku": sku,
                "loc": loc,
                "sup": sup,
                "on_hand": on_hand,
                "on_order": np.where(rng.random(n) < 0.2, moq, 0.0),
                "backorders": np.zeros(n),
                "committed": np.where(rng.random(n) < 0.02, np.ceil(mean), 0.0),
                "fill_target": rng.choice(np.array([0.9, 0.95, 0.98]), n),
                "review_periods": np.ones(n, dtype=np.int64),
                "unit_cost": cost,
                "pack_size": pack,
                "moq": moq,
                "max_order_qty": moq * 100,
                "lead_time_mean": lt_mean,
                "lead_time_std": lt_std,
            }
        )
        .with_columns(
            pl.format("SKU_{}", pl.col("sku")).alias("sku_id"),
            pl.format("STORE_{}", pl.col("loc")).alias("location_id"),
            pl.format("SUP_{}", pl.col("sup")).alias("supplier_id"),
            pl.format("REGION_{}", pl.col("loc") // 10).alias("region"),
            pl.lit("observed").alias("lead_time_source"),
        )
        .drop("sku", "loc", "sup")
    )
    spend = units.group_by("supplier_id").agg(
        (pl.col("unit_cost") * pl.col("lead_time_mean") * 0.0 + pl.col("unit_cost")).sum()
    )
    weekly = (
        pl.DataFrame({"supplier_id": units["supplier_id"], "v": mean * cost})
        .group_by("supplier_id")
        .agg(pl.col("v").sum())
    )
    budget = Budget("supplier_id", {s: 1.5 * v for s, v in weekly.iter_rows()})  # about 1.5 weeks of spend
    del spend
    forecast = Forecast(
        levels=LEVELS, values=values, version="bench", model_version="bench-model", source="model:given"
    )
    # Dirichlet posterior of each supplier's lead times: 26 deliveries seen plus 4 pooled pseudo-deliveries.
    counts = 26.0 * pmf + 4.0 * pmf_sup.mean(axis=0)[None, :]
    return units, forecast, pmf, budget, mean, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paths", type=int, default=256)
    ap.add_argument("--no-crossing", action="store_true", help="one lead time per path (orders in sequence)")
    ap.add_argument("--no-posterior", action="store_true", help="lead-time pmf taken as known (no counts)")
    ap.add_argument(
        "--service-group",
        default=None,
        help="group fill targets (PlanConfig.service_group): a unit column such as location_id, or 'all'",
    )
    a = ap.parse_args()
    t0 = time.perf_counter()
    units, forecast, pmf, budget, mean, counts = build(a.units, 0)
    counts = None if a.no_posterior else counts
    rss_inputs = _rss_mb()
    print(
        f"inputs: {units.height:,} units, forecast {forecast.values.shape} float32 "
        f"({forecast.values.nbytes / 2**20:.0f} MiB), built in {time.perf_counter() - t0:.1f}s; "
        f"peak RSS so far {rss_inputs:.0f} MiB"
    )
    rules = load_rules(Path(__file__).resolve().parents[1] / "configs" / "routing.yaml")
    warmup()
    times, ref_times = [], []
    res = None
    for r in range(a.repeats):
        t = time.perf_counter()
        res = plan(
            units,
            forecast,
            pmf,
            as_of=date(2026, 1, 5),
            lead_time_counts=counts,
            config=PlanConfig(
                n_paths=a.paths, seed=r, crossing=not a.no_crossing, service_group=a.service_group
            ),
            rules=rules,
            budgets=(budget,),
        )
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        mean_h = forecast.values.mean(axis=2)
        rmse = (forecast.values[:, 0, -1] - forecast.values[:, 0, 0]) / 3.29  # P95 - P5 of a normal = 3.29 sd
        classic_order_up_to(mean_h, rmse, units["lead_time_mean"].to_numpy(), 1, 0.95, method="fill_rate")
        ref_times.append(time.perf_counter() - t)
        print(
            f"run {r + 1}: plan {times[-1]:.1f}s (classic closed form {ref_times[-1]:.2f}s), "
            f"peak RSS {_rss_mb():.0f} MiB"
        )
    assert res is not None
    recs = res.recommendations
    kinds = dict(recs.group_by("kind").len().iter_rows())
    bound = dict(res.units.group_by("bound_by").len().iter_rows())
    print(
        f"result: {kinds} recommendations, {res.exceptions.height:,} exceptions, {res.po_drafts.height:,} PO "
        f"drafts; routed {int((recs['action'] == 'route').sum()):,}; bound by {bound}"
    )
    # a digest of every figure of the last run's decisions: "the same figures" checked to the last bit
    digest = hashlib.sha256()
    for frame in (recs, res.units, res.exceptions, res.po_drafts):
        digest.update(frame.write_json().encode())  # JSON: some columns are lists
    print(f"result digest (recommendations, units, exceptions, PO drafts of run {a.repeats}): "
          f"{digest.hexdigest()[:16]}")
    med = float(np.median(times))
    ref = float(np.median(ref_times))
    print(
        f"median plan time for {a.units:,} units: {med:.1f}s (target <= 60 s); {a.units / med:,.0f} units/s; "
        f"classic closed form {ref:.2f}s (no simulation, no constraints); peak RSS {_rss_mb():.0f} MiB"
    )
    print(
        json.dumps(
            {
                "bench": "plan_scale",
                "n": a.units,
                "paths": a.paths,
                "crossing": not a.no_crossing,
                "lead_time_posterior": counts is not None,
                "service_group": a.service_group,
                "seconds": round(med, 2),
                "runs": [round(x, 2) for x in times],
                "ref_seconds": round(ref, 3),
                "ref": "classic closed-form order-up-to",
                "peak_rss_mib": round(_rss_mb()),
                "inputs_rss_mib": round(rss_inputs),
                "recommendations": recs.height,
                "exceptions": res.exceptions.height,
                "result_digest": digest.hexdigest()[:16],
                "meets_60s": med <= 60.0,
            }
        )
    )


if __name__ == "__main__":
    main()
