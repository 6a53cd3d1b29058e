"""Exception detectors on data with planted problems, through the real plan stage; the demo before and after.

Issue 15, item 0 ("exceptions worth reading"). ``features.synth.generate`` weekly data (one channel, so a
series is a stocking point) is changed, with a fixed seed, on disjoint sets of stocking points, keeping the
labels:

* ``bias_drift``: the stored past forecasts of the unit are twice its level or 40% of it;
* ``forecast_anomaly``: the last period's actual is 4x the unit's level plus 6 (a spike) or 0 (a drop);
* ``late_po``: an open purchase order whose ETA lies 3 to 20 days before the date of the data;
* ``lead_time_drift``: the last 4 deliveries of a supplier x SKU term take 1.8 to 2.2x their time;
* ``stockout_risk``: nothing on hand, nothing on order (a coming stockout);
* ``overstock``: 30 periods of demand on hand;
* clean units: a healthy stock (their lead time plus review plus two periods of demand), unbiased forecasts,
  open orders not late.

Forecasts are written as the forecast stage writes them (``features.forecasts.write_forecasts``): one base
run per past week for the last 12 weeks (each 4 weeks ahead) and the current run the plan uses. A clean
forecast's p50 is the unit's centred 13-week mean of the actuals (unbiased by construction, Poisson-gamma
noise around it as real demand has), its quantiles a gamma with that mean and the spread of synth's demand
(variance ``m + 0.25 m^2``).
Bias and anomalies are planted only on units selling at least 3 a week (below, 8 weeks of counts cannot
tell a 50% bias from noise: said in ``docs/exceptions.md``).

The data is ingested into a real SQLite store and Parquet facts (a temp ``REPLENISH_HOME``) and
``planning.plan_stage`` runs on it; precision and recall are counted per detector over (unit, type), the
false-positive rate over the clean units. Then the demo (the bundled Stallion files, ingested as ``replenish
demo`` ingests them) is planned before the fix (a temp ``git worktree`` of ``--before``, default the commit
before the one that added ``planning/_forecast_checks.py``, or the newest ancestor that imports) and after
(this tree), and the exception count per type is printed for both. Last line: one JSON object.

The two plan runs on the same data are also taken into the exception lifecycle
(``workflow.exceptions.sync_plan_exceptions`` after each, as the planning -> workflow hand-off does): the
second must update the first's exceptions, leaving one active exception per unit and type.

Run: ``flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/exceptions.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
PLANTED = ("bias_drift", "forecast_anomaly", "late_po", "lead_time_drift", "stockout_risk", "overstock")
PAST_RUNS = 12
STEP = timedelta(days=7)


def _level(qty: np.ndarray, half: int = 6) -> np.ndarray:
    """Centred moving mean of each row over ``2 half + 1`` periods (shorter at the ends), (N, T)."""
    n, t = qty.shape
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(qty, axis=1)], axis=1)
    lo = np.maximum(np.arange(t) - half, 0)
    hi = np.minimum(np.arange(t) + half + 1, t)
    return (cs[:, hi] - cs[:, lo]) / (hi - lo)


def _quantiles(mean: np.ndarray) -> np.ndarray:
    from scipy.special import gammaincinv

    m = np.maximum(mean, 1e-6)
    sd = np.sqrt(m + 0.25 * m**2)  # Poisson x Gamma(5, 1/5) demand, plus the level's own error
    shape, scale = (m / sd) ** 2, sd * sd / m
    return np.stack([gammaincinv(shape, q) * scale for q in LEVELS], axis=-1)


def planted_data(n_series: int, seed: int):
    """Synth data with planted problems. Returns ``(data, truth, clean_units)``.

    ``truth``: set of (type, key) with key ``sku|location`` (``sku|supplier:<id>`` for lead-time drift);
    ``clean_units``: stocking points without any planted problem.
    """
    from features.synth import generate

    rng = np.random.default_rng(seed)
    data = generate(n_series, 104, freq="W", seed=seed, n_channels=1, promo_rate=0.05, open_po_share=0.3)
    sales = data.sales.sort("sku_id", "location_id", "date")
    keys = sales.select("sku_id", "location_id").unique(maintain_order=True)
    dates = sorted(sales["date"].unique().to_list())
    n, t = keys.height, len(dates)
    qty = sales["qty"].to_numpy().astype(np.float64).reshape(n, t)
    level = _level(qty)
    mean = qty[:, -26:].mean(axis=1)
    unit = [f"{s}|{loc}" for s, loc in keys.iter_rows()]
    order = rng.permutation(n)
    share = max(n // 12, 4)
    busy = [i for i in order if mean[i] >= 3.0]
    groups = {"bias_drift": busy[:share], "forecast_anomaly": busy[share : 2 * share]}
    rest = [i for i in order if i not in set(groups["bias_drift"]) | set(groups["forecast_anomaly"])]
    for k, kind in enumerate(("late_po", "stockout_risk", "overstock")):
        groups[kind] = rest[k * share : (k + 1) * share]
    truth = {(kind, unit[i]) for kind, idx in groups.items() for i in idx}

    # demand anomalies: the last actual spikes or drops (the forecasts keep the level without it)
    spike = qty.copy()
    for j, i in enumerate(groups["forecast_anomaly"]):
        spike[i, -1] = np.round(4 * level[i, -2] + 6) if j % 2 == 0 else 0.0
    sales = sales.with_columns(pl.Series("qty", spike.reshape(-1).astype(np.int64)))

    # lead-time drift: the last 4 deliveries of some supplier x SKU terms take about twice as long
    lt = data.lead_times.sort("supplier_id", "sku_id", "order_date")
    terms = (
        lt.select("supplier_id", "sku_id")
        .unique(maintain_order=True)
        .filter(pl.col("sku_id").is_in(keys["sku_id"].unique().to_list()))
    )
    pick = rng.choice(terms.height, size=max(terms.height // 5, 3), replace=False)
    drift = terms[np.sort(pick)]
    factor = pl.lit(1.8) + pl.lit(0.4) * pl.Series(rng.random(lt.height))
    last4 = pl.int_range(pl.len()).over("supplier_id", "sku_id") >= pl.len().over("supplier_id", "sku_id") - 4
    hit = last4 & pl.struct("supplier_id", "sku_id").is_in(drift.to_struct().implode())
    # received as before (ingest refuses receipts after the data), ordered that much earlier
    lt = lt.with_columns(
        pl.when(hit)
        .then((pl.col("lead_time_days") * factor).round(0))
        .otherwise(pl.col("lead_time_days"))
        .alias("lead_time_days")
    ).with_columns(
        (pl.col("receipt_date") - pl.duration(days=pl.col("lead_time_days").cast(pl.Int64))).alias(
            "order_date"
        )
    )
    truth |= {("lead_time_drift", f"{k}|supplier:{s}") for s, k in drift.iter_rows()}

    # inventory: healthy for clean units, nothing for coming stockouts, 30 periods for overstock
    data_date = max(dates)
    terms_lt = lt.group_by("sku_id").agg((pl.col("lead_time_days").max() / 7).ceil().alias("lt_periods"))
    inv = keys.join(terms_lt, on="sku_id", how="left").with_columns(pl.col("lt_periods").fill_null(2))
    cover = np.minimum(inv["lt_periods"].to_numpy() + 2 + 1, 10)  # lead time + review (1 week) + 2 periods
    on_hand = np.ceil(level[:, -2] * cover)  # on the level the forecasts carry
    stockout, over = set(groups["stockout_risk"]), set(groups["overstock"])
    on_hand[list(stockout)] = 0.0
    on_hand[list(over)] = np.ceil(np.maximum(mean[list(over)], 1.0) * 30)
    inventory = keys.with_columns(
        pl.lit(data_date).alias("date"),
        pl.Series("on_hand", on_hand),
        pl.lit(0.0).alias("on_order"),
        pl.lit(0.0).alias("backorders"),
    )

    # purchase orders: none open at stockout units, late ones planted, the others due after the data date
    po = data.purchase_orders.filter(pl.col("kind") == "purchase")
    po = po.join(keys.with_row_index("_i"), on=["sku_id", "location_id"], how="inner")
    po = po.filter(~pl.col("_i").is_in(list(stockout)))
    po = po.with_columns(pl.max_horizontal("eta", pl.lit(data_date + timedelta(days=1))).alias("eta"))
    late_rows = []
    sup = data.supplier_terms.group_by("sku_id").agg(pl.col("supplier_id").first())
    sup_of = dict(sup.iter_rows())
    for j, i in enumerate(groups["late_po"]):
        s, loc = keys.row(i)
        late_rows.append(
            {
                "po_id": f"PO_LATE_{j:04d}",
                "kind": "purchase",
                "supplier_id": sup_of.get(s, "SUP_001"),
                "from_location_id": None,
                "sku_id": s,
                "location_id": loc,
                "qty": float(max(round(mean[i] * 2), 1)),
                "order_date": data_date - timedelta(days=40),
                "eta": data_date - timedelta(days=int(rng.integers(3, 21))),
                "status": "open",
            }
        )
    po = pl.concat([po.drop("_i"), pl.DataFrame(late_rows, schema=po.drop("_i").schema)])
    inv_order = po.group_by("sku_id", "location_id").agg(pl.col("qty").sum().alias("_oo"))
    inventory = (
        inventory.join(inv_order, on=["sku_id", "location_id"], how="left")
        .with_columns(pl.col("_oo").fill_null(0.0).alias("on_order"))
        .drop("_oo")
    )
    inventory = inventory.select(data.inventory.columns)
    transfers = data.purchase_orders.filter(pl.col("kind") != "purchase").head(0)
    import dataclasses

    data = dataclasses.replace(
        data, sales=sales, lead_times=lt, inventory=inventory, purchase_orders=pl.concat([po, transfers])
    )
    clean = [unit[i] for i in range(n) if not any(i in set(g) for g in groups.values())]
    bias = np.ones(n)
    for j, i in enumerate(groups["bias_drift"]):
        bias[i] = 2.0 if j % 2 == 0 else 0.4
    info = {"level": level, "bias": bias, "keys": keys, "dates": dates, "n_terms": terms.height}
    return data, truth, clean, info


def write_forecasts_for(tenant: str, data, info, settings) -> None:
    """One base run per past week (4 weeks ahead each) and the current run (12 weeks), as stored facts."""
    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts

    keys, dates, level, bias = info["keys"], info["dates"], info["level"], info["bias"]
    n, t = level.shape
    channel = data.channels["channel_id"][0]
    uid = [f"{s}|{loc}|{channel}" for s, loc in keys.iter_rows()]
    watermark = sales_watermark(tenant, facts_dir=settings.facts_dir)
    for r, origin in enumerate(range(t - PAST_RUNS - 1, t)):
        horizon = 4 if origin < t - 1 else 12
        steps = [origin + h for h in range(1, horizon + 1)]
        lv = np.stack(
            [level[:, min(s, t - 2)] if s < t else level[:, t - 2] for s in steps], axis=1
        )  # the level without the last (possibly planted) actual
        q = _quantiles(lv * bias[:, None])  # (N, H, Q)
        day = [dates[s] if s < t else dates[-1] + STEP * (s - t + 1) for s in steps]
        frame = pl.DataFrame(
            {
                "unique_id": np.repeat(uid, horizon),
                "level": "bottom",
                "sku_id": np.repeat(keys["sku_id"].to_numpy(), horizon),
                "location_id": np.repeat(keys["location_id"].to_numpy(), horizon),
                "channel_id": data.channels["channel_id"][0],
                "date": np.tile(np.array(day, dtype="datetime64[D]"), n),
                "horizon": np.tile(np.arange(1, horizon + 1), n),
                "source": "model:bench",
                "model_version": "1",
                "cold_start": False,
                **{f"p{int(lv_ * 100):02d}": q[:, :, k].reshape(-1) for k, lv_ in enumerate(LEVELS)},
            }
        ).with_columns(pl.col("date").cast(pl.Date), pl.col("horizon").cast(pl.Int64))
        meta = ForecastRunMeta(
            run_id=f"fc-{r:03d}",
            tenant=tenant,
            stage="base",
            freq="W",
            horizon=horizon,
            levels=LEVELS,
            data_watermark=watermark,
            model_name="bench",
            model_version="1",
        )
        write_forecasts(tenant, frame, meta, facts_dir=settings.facts_dir)


def _key(row: dict) -> str:
    loc = row["location_id"] if row["location_id"] is not None else f"supplier:{row['supplier_id']}"
    return f"{row['sku_id']}|{loc}"


def score(exceptions: pl.DataFrame, truth: set, clean: list[str], n_terms: int) -> dict:
    """Precision, recall per planted type; false-positive rate on clean units (any planted type raised).

    Lead-time drift is about supplier x SKU terms: its clean population is the ``n_terms`` terms minus the
    drifted ones.
    """
    found = {(r["exception_type"], _key(r)) for r in exceptions.iter_rows(named=True)}
    out = {}
    clean_set = set(clean)
    for kind in PLANTED:
        f = {k for k in found if k[0] == kind}
        tr = {k for k in truth if k[0] == kind}
        tp = len(f & tr)
        wrong = {k[1] for k in f - tr}
        terms = kind == "lead_time_drift"
        n_clean = n_terms - len(tr) if terms else len(clean)
        by_group = {"clean": len(wrong) if terms else len(wrong & clean_set)}
        for other in PLANTED:
            m = len({u for u in wrong if (other, u) in truth})
            if m:
                by_group[other] = m
        out[kind] = {
            "false_positives_on": by_group,
            "planted": len(tr),
            "raised": len(f),
            "precision": round(tp / len(f), 3) if f else None,
            # raises on units carrying another planted problem left out (a biased forecast makes stock
            # look short or long and its band miss: consequences a planner reads beside the bias)
            "precision_excl_other_planted": round(tp / (tp + by_group["clean"]), 3) if f else None,
            "recall": round(tp / len(tr), 3) if tr else None,
            "fpr_clean": round(by_group["clean"] / max(n_clean, 1), 4),
        }
    any_fp = {k[1] for k in found if k[1] in clean_set and k[0] in PLANTED}
    out["clean_units"] = len(clean)
    out["clean_units_with_any_exception"] = len(any_fp)
    return out


_DEMO_SCRIPT = r"""
import json, os, sys
from features.settings import get_settings
from features.store._db import make_engine
from serving.migrations import migrate_store
from serving.cli._demo_data import load_into_store
s = get_settings(); s.ensure_home()
eng = make_engine(s.database_url); migrate_store(eng)
load_into_store(s, "demo", engine=eng)
from planning import plan_stage
r = plan_stage(eng, "demo", settings=s)
e = r.result.exceptions
out = {"counts": {k: n for k, n in e.group_by("exception_type").len().sort("exception_type").iter_rows()},
       "total": e.height, "units": r.counts["units"], "source": r.forecast_source}
print("RESULT " + json.dumps(out))
"""


def demo_counts(tree: Path, home: Path) -> dict:
    """The demo tenant planned by the code in ``tree`` (its own ``REPLENISH_HOME``): exceptions per type."""
    env = {**os.environ, "PYTHONPATH": str(tree), "REPLENISH_HOME": str(home), "RAY_AUTH_MODE": "disabled"}
    res = subprocess.run(
        [sys.executable, "-c", _DEMO_SCRIPT], cwd=tree, env=env, capture_output=True, text=True, timeout=900
    )
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if res.returncode or not line:
        raise RuntimeError(f"demo plan in {tree} failed:\n{res.stderr[-2000:]}")
    return json.loads(line[-1][len("RESULT ") :])


def _before_commit(asked: str | None) -> list[str]:
    if asked:
        return [asked]
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "planning/_forecast_checks.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    start = f"{added[-1]}^" if added else "HEAD"
    return subprocess.run(
        ["git", "rev-list", "--max-count=12", start], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()


def demo_before_after(asked: str | None) -> dict:
    """Demo exception counts on the commit before the fix (first ancestor that runs) and on this tree."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="exc-demo-") as tmp:
        out["after"] = demo_counts(ROOT, Path(tmp) / "home-after")
        wt = Path(tempfile.gettempdir()) / "wt-exc-before"
        tried = []
        for commit in _before_commit(asked):
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True)
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(wt), commit],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            try:
                out["before"] = demo_counts(wt, Path(tmp) / f"home-before-{commit[:8]}")
                out["before_commit"] = commit[:12]
                break
            except RuntimeError as exc:
                tried.append(f"{commit[:12]}: {str(exc).splitlines()[-1][:160]}")
            finally:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, capture_output=True
                )
        if tried:
            out["before_skipped"] = tried
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=480)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--before", default=None, help="commit to measure the demo before the fix on")
    ap.add_argument("--no-demo", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="exc-bench-") as tmp:
        os.environ["REPLENISH_HOME"] = tmp
        from features.ingest import ingest
        from features.settings import get_settings
        from features.store._db import make_engine
        from features.synth import SynthData
        from planning import load_run, plan_stage
        from serving.migrations import migrate_store

        settings = get_settings()
        settings.ensure_home()
        eng = make_engine(settings.database_url)
        migrate_store(eng)
        t0 = time.perf_counter()
        data, truth, clean, info = planted_data(args.series, args.seed)
        paths = data.write(Path(tmp) / "files", fmt="parquet")
        for kind in SynthData.INGEST_ORDER:
            if getattr(data, kind).height:
                r = ingest(kind, paths[kind], tenant="bench", engine=eng, settings=settings)
                assert r.status in ("stored", "partial"), (kind, r.status, r.message)
        write_forecasts_for("bench", data, info, settings)
        from features.store._db import session_scope
        from workflow.exceptions import list_exceptions, sync_plan_exceptions

        t1 = time.perf_counter()
        staged = plan_stage(eng, "bench", settings=settings)
        t2 = time.perf_counter()
        sync_one = sync_plan_exceptions(eng, "bench")  # the first cycle's exceptions into the lifecycle
        again = plan_stage(eng, "bench", settings=settings)
        sync_two = sync_plan_exceptions(eng, "bench")  # the second cycle on the same data
        with session_scope(eng) as s:
            active = list_exceptions(s, "bench", active=True, limit=100_000)
            every = list_exceptions(s, "bench", limit=100_000)
        stored = load_run(eng, "bench", staged.run_id)["exceptions"]
        eng.dispose()
    lifecycle = {
        "first_cycle": sync_one,
        "second_cycle": sync_two,
        "active": len(active),
        "rows": len(every),
        "active_keys": len({e.exception_key for e in active}),
        "max_occurrences": max((e.occurrences for e in active), default=0),
    }
    exc = staged.result.exceptions
    result = score(exc, truth, clean, info["n_terms"])
    keys_a, keys_b = sorted(exc["exception_key"].to_list()), sorted(again.result.exceptions["exception_key"])
    per_unit_type = exc.group_by("exception_key").len()["len"].max()
    print(
        f"synth: {args.series} weekly series, seed {args.seed}, {PAST_RUNS} past forecast runs + current; "
        f"data {t1 - t0:.1f} s, plan stage {t2 - t1:.1f} s; "
        f"forecast checks on {staged.counts['forecast_checks']}"
    )
    print(
        f"{'detector':<18}{'planted':>8}{'raised':>8}{'precision':>10}{'recall':>8}{'FPR clean':>10}"
        "   (precision without raises on units with another planted problem)"
    )
    for kind in PLANTED:
        r = result[kind]
        print(
            f"{kind:<18}{r['planted']:>8}{r['raised']:>8}{r['precision']!s:>10}{r['recall']!s:>8}"
            f"{r['fpr_clean']:>10}   ({r['precision_excl_other_planted']}) "
            f"wrong on: {r['false_positives_on']}"
        )
    print(
        f"clean units: {result['clean_units']}, "
        f"with any exception: {result['clean_units_with_any_exception']}"
    )
    print(
        f"dedup: at most {per_unit_type} exception per key; two runs give the same keys: {keys_a == keys_b}; "
        f"stored keys = frame keys: {sorted(stored['exception_key'].to_list()) == keys_a}"
    )
    print(
        f"lifecycle: first cycle {sync_one}, second cycle {sync_two}; {lifecycle['active']} active "
        f"exceptions for {lifecycle['active_keys']} unit x type keys ({lifecycle['rows']} rows in all)"
    )
    out = {
        "benchmark": "exceptions",
        "lifecycle": lifecycle,
        "series": args.series,
        "seed": args.seed,
        "detectors": result,
        "same_keys_two_runs": keys_a == keys_b,
        "max_per_key": int(per_unit_type),
        "forecast_checks": staged.counts["forecast_checks"],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if not args.no_demo:
        demo = demo_before_after(args.before)
        out["demo"] = demo
        print(
            f"demo ({demo['after']['units']} units) before [{demo.get('before_commit')}]: "
            f"{demo.get('before', {}).get('total')} exceptions {demo.get('before', {}).get('counts')}"
        )
        print(f"demo after: {demo['after']['total']} exceptions {demo['after']['counts']}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
