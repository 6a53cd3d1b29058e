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
* ``recommendation``: one recommendation page (evidence, history, forms; no forecast stored, so no charts),
  the stand-in for the item page, which is not built yet.

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
