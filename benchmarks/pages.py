"""Planner pages under load: the review queue with 10,000 routed recommendations, server time per page.

One tenant, a real SQLite state store, 10,000 routed purchase orders proposed
through planning's hand-off (``lifecycle.propose_many``), a planner signed in through the page form. Each page
is requested ``--repeats`` times through an in-process ASGI client (``fastapi.testclient``: the whole app,
middleware, session check, SQL and template rendering; no network), and the median server time is reported:

* ``queue_default``: the routed queue, most urgent first, 50 a page;
* ``queue_filter_sort``: filtered (queue, SKU, need-by on or before a date, min value) and sorted by value
  descending, page 3;
* ``queue_search_deep``: a search over id / SKU / location / supplier / reason, sorted by location, page 100
  of 200 jumped to by its number (OFFSET 4,950 over the narrow id sort);
* ``queue_search_deep_next``: the same page 100 reached by page 99's "next" link (keyset: after page 99's
  last item, no rows skipped);
* ``recommendation``: one recommendation page (evidence, history, forms; no forecast stored, so no charts);
* ``item_page``: one SKU x location page (``/ui/items``) of the same tenant, with 3 years of daily sales and
  inventory snapshots for 500 units (1.1 M fact rows, written straight to the fact store), 10 stored forecast
  runs (two model versions, 28 daily steps, P10..P90) and its share of the 10,000 routed recommendations:
  sales and forecast plot, inventory plot, open orders, exceptions, decisions with audit (:func:`_item_page`).

Reference in the same run: the bare JSON list endpoint ``GET /v1/recommendations?state=routed&limit=50``
(same rows, no template). Targets (issue 18): queue <= 200 ms, item page <= 300 ms (median).

    flock /tmp/replenish-bench.lock .venv/bin/python benchmarks/pages.py [--n 10000] [--repeats 15]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [
    p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"
]  # benchmarks/serving.py
sys.path.insert(0, str(ROOT))


def _seed(engine, tenant: str, n: int) -> list:
    from features.store._db import session_scope
    from workflow import access, lifecycle
    from workflow.schemas import RecommendationIn, Route

    skus = [f"SKU-{i:04d}" for i in range(200)]
    with session_scope(engine) as s:
        access.ensure_tenant(s, tenant)
        from features.store._schema import Sku, Supplier, SupplierTerm

        s.add(Supplier(tenant_id=tenant, supplier_id="SUP-1"))
        s.add_all(Sku(tenant_id=tenant, sku_id=k) for k in skus)
        s.flush()
        s.add_all(
            SupplierTerm(
                tenant_id=tenant,
                supplier_id="SUP-1",
                sku_id=k,
                unit_cost=1.0 + i % 17,
                moq=0,
                pack_size=1,
                promised_lead_time_days=14,
            )
            for i, k in enumerate(skus)
        )
        key = access.create_key(s, tenant, ["planner"], actor="bench")[1]
    start = date(2027, 1, 1)
    for lo in range(0, n, 2000):
        recs = [
            RecommendationIn(
                kind="purchase_order",
                sku_id=skus[i % len(skus)],
                location_id=f"DC-{i % 25:02d}",
                supplier_id="SUP-1",
                quantity=float(10 + (i * 37) % 900),
                need_by=start + timedelta(days=(i * 11) % 120),
                route=Route(
                    queue=("buyers", "transfers", "new-items")[i % 3],
                    role="planner",
                    rule=("value>100", "new_sku", "volatile")[i % 3],
                    reason=f"line {i} needs review",
                ),
                evidence={"model_version": "7", "inventory_position": 100.0 + i % 50},
                proposal_key=f"bench-{i}",
            )
            for i in range(lo, min(n, lo + 2000))
        ]
        with session_scope(engine) as s:
            lifecycle.propose_many(s, tenant, recs, actor="planning:bench")
    return key


def _time(client, url: str, repeats: int, headers: dict | None = None) -> dict:
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        r = client.get(url, headers=headers or {})
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times = times[1:]  # the first is a warm-up
    return {
        "median_ms": round(1e3 * statistics.median(times), 1),
        "p90_ms": round(1e3 * sorted(times)[int(0.9 * len(times))], 1),
        "rows": len(re.findall(r'href="/ui/recommendations/', r.text)) if "/ui/" in url else len(r.json()),
    }


def _item_page(client, settings, tenant: str, repeats: int) -> dict:
    """Seed 3 years of daily facts and 10 forecast runs for ``tenant``; time its item page (docstring)."""
    import numpy as np
    import polars as pl

    from features.facts import fact_schema, write_facts
    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts

    rng = np.random.default_rng(0)
    skus, locs = [f"SKU-{i:04d}" for i in range(20)], [f"DC-{i:02d}" for i in range(25)]
    days = pl.date_range(date(2024, 1, 1), date(2026, 12, 31), "1d", eager=True)
    units = pl.DataFrame({"sku_id": skus}).join(pl.DataFrame({"location_id": locs}), how="cross")
    grid = units.join(pl.DataFrame({"date": days}), how="cross")
    n = grid.height
    t0 = time.perf_counter()
    sales = grid.with_columns(
        pl.lit("store").alias("channel_id"),
        pl.Series("qty", rng.poisson(20, n).astype(float)),
        pl.lit(2.5).alias("price"),
        pl.lit(False).alias("promo"),
    )
    write_facts(
        "sales", tenant, sales.select(list(fact_schema("sales"))), "bench-sales", facts_dir=settings.facts_dir
    )
    inv = grid.with_columns(
        pl.Series("on_hand", rng.integers(0, 400, n).astype(float)),
        pl.lit(0.0).alias("on_order"),
        pl.lit(0.0).alias("backorders"),
    )
    write_facts(
        "inventory",
        tenant,
        inv.select(list(fact_schema("inventory"))),
        "bench-inv",
        facts_dir=settings.facts_dir,
    )
    levels, h = (0.1, 0.25, 0.5, 0.75, 0.9), 28
    for k in range(10):  # one run a month, the newest last
        origin = date(2026, 3, 1) + timedelta(days=30 * k)
        fc = units.join(pl.DataFrame({"horizon": list(range(1, h + 1))}), how="cross").with_columns(
            (pl.col("sku_id") + "|" + pl.col("location_id") + "|store").alias("unique_id"),
            pl.lit("bottom").alias("level"),
            pl.lit("store").alias("channel_id"),
            (pl.lit(origin) + pl.duration(days=pl.col("horizon"))).alias("date"),
            pl.lit("model:bench").alias("source"),
            pl.lit(str(6 + k // 5)).alias("model_version"),
            pl.lit(False).alias("cold_start"),
            *[pl.lit(20.0 * (0.5 + q)).alias(f"p{round(q * 100)}") for q in levels],
        )
        meta = ForecastRunMeta(
            run_id=f"bench-{k}",
            tenant=tenant,
            stage="base",
            freq="D",
            horizon=h,
            levels=levels,
            data_watermark=sales_watermark(tenant, facts_dir=settings.facts_dir),
            model_name="bench",
            model_version=str(6 + k // 5),
        )
        write_forecasts(tenant, fc, meta, facts_dir=settings.facts_dir)
    seed_s = time.perf_counter() - t0
    url = "/ui/items?sku_id=SKU-0003&location_id=DC-03"
    html = client.get(url).text
    assert html.count("<svg") >= 2 and "bench-9" in html, "the item page does not show the seeded facts"
    m = _time(client, url, repeats)
    print(
        f"{'item_page':24s} median {m['median_ms']:7.1f} ms  p90 {m['p90_ms']:7.1f} ms  rows {m['rows']}  "
        f"{url}  ({n:,} sales and {n:,} inventory rows, 10 forecast runs; seeded in {seed_s:.0f} s)"
    )
    return {
        "item_page": m,
        "item_facts_rows": 2 * n,
        "item_forecast_runs": 10,
        "item_ok": m["median_ms"] <= 300,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="rp-bench-pages-")
    os.environ["REPLENISH_HOME"] = home
    from fastapi.testclient import TestClient

    from features.settings import load_settings
    from features.store._migrate import migrate
    from serving.api.main import build_decision_app

    settings = load_settings(home=home)
    app = build_decision_app(settings, None)
    migrate(app.state.engine)
    t0 = time.perf_counter()
    key = _seed(app.state.engine, "bench", args.n)
    seed_s = time.perf_counter() - t0
    out: dict = {
        "n_routed": args.n,
        "repeats": args.repeats,
        "store": app.state.engine.dialect.name,
        "seed_s": round(seed_s, 1),
    }
    with TestClient(app) as c:
        token = re.search(r'name="csrf_token" value="([^"]*)"', c.get("/ui/login").text).group(1)
        r = c.post("/ui/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303, r.text
        html = c.get("/ui/queue").text
        assert f"of {args.n:,}" in html, "queue does not show the seeded items"
        rec_id = re.search(r'href="/ui/recommendations/([^"]+)"', html).group(1)
        pages = {
            "queue_default": "/ui/queue",
            "queue_filter_sort": "/ui/queue?queue=buyers&sku_id=SKU-0003&due_by=2027-03-31&min_value=50"
            "&sort=value&dir=desc&page=1",
            "queue_filter_sort_wide": "/ui/queue?queue=buyers&due_by=2027-02-15&min_value=100"
            "&sort=value&dir=desc&page=3",
            "queue_search_deep": "/ui/queue?q=needs+review&sort=location&page=100",
            "recommendation": f"/ui/recommendations/{rec_id}",
        }
        # page 100 of the same search reached by page 99's "next" link (keyset: after its last item)
        prev = c.get("/ui/queue?q=needs+review&sort=location&page=99").text
        nxt = re.search(r'<a href="([^"]+)" rel="next">', prev).group(1).replace("&amp;", "&")
        order = list(pages.items())
        pages = {**dict(order[:4]), "queue_search_deep_next": nxt, **dict(order[4:])}
        for name, url in pages.items():
            out[name] = _time(c, url, args.repeats)
            m = out[name]
            print(
                f"{name:24s} median {m['median_ms']:7.1f} ms  p90 {m['p90_ms']:7.1f} ms  rows {m['rows']}  "
                f"{url}"
            )
        out.update(_item_page(c, settings, "bench", args.repeats))
        ref = _time(c, "/v1/recommendations?state=routed&limit=50", args.repeats, {"X-API-Key": key})
        out["reference_list_endpoint"] = ref
        print(f"{'reference: JSON list':24s} median {ref['median_ms']:7.1f} ms  p90 {ref['p90_ms']:7.1f} ms")
    queue_worst = max(out[k]["median_ms"] for k in pages if k.startswith("queue"))
    out["queue_worst_median_ms"] = queue_worst
    out["queue_target_ms"], out["item_target_ms"] = 200, 300
    out["queue_ok"] = queue_worst <= 200
    out["recommendation_ok"] = out["recommendation"]["median_ms"] <= 300
    out["queue_vs_list_endpoint"] = round(queue_worst / max(ref["median_ms"], 1e-3), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
