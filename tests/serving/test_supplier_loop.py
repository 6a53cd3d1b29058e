"""The supplier loop end to end on real stores (SQLite and PostgreSQL), the real API and real receivers.

ingest -> cycle (plan, propose) -> approve -> dispatch (PO to the ERP, transfer to the WMS, the order
document to the supplier) -> the supplier confirms 60% -> a short-shipment exception row, the purchase-order
fact, and a re-plan of the affected unit that allocates the confirmed supply; bad responses get 4xx naming the
field and store nothing.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.serving import _cycle_data
from tests.serving._cycle_data import TENANT, store_forecast
from tests.workflow._helpers import Receiver

settings, ingested = _cycle_data.settings, _cycle_data.ingested  # the shared fixtures

ERP, WMS, SUP = "e" * 40, "w" * 40, "s" * 40


@pytest.fixture
def receivers():
    rs = {
        "erp": Receiver(secret=ERP).start(),
        "wms": Receiver(secret=WMS).start(),
        "sup": Receiver(secret=SUP).start(),
    }
    yield rs
    for r in rs.values():
        r.stop()


def _client(settings, engine):
    from features.store._db import session_scope
    from serving.api.main import create_app
    from workflow import access

    with session_scope(engine) as s:
        access.ensure_tenant(s, TENANT)
        keys = {r: access.create_key(s, TENANT, [r], name=r)[1] for r in ("admin", "approver", "service")}
    client = TestClient(create_app(settings, engine=engine))
    client.h = lambda role: {"X-API-Key": keys[role]}
    return client


def _first(recs, kind):
    """A recommendation of ``kind`` that still needs a decision, or one planning auto-approved."""
    pick = [r for r in recs if r.kind == kind and r.state in ("routed", "proposed", "approved")]
    assert pick, f"the plan made no {kind}"
    return sorted(pick, key=lambda r: (r.state != "routed", -(r.quantity or 0)))[0]


def test_approve_dispatch_supplier_confirms_60_percent_and_the_replan_allocates_it(
    settings, ingested, receivers
):
    from features.store._db import session_scope
    from features.tables import read_table
    from planning import load_run
    from serving.cycle import run_cycle
    from workflow import lifecycle
    from workflow._models import Event, SupplierResponse
    from workflow.dispatcher import Dispatcher
    from workflow.webhooks import WritebackRouter

    engine, data = ingested
    store_forecast(settings, data)
    run = run_cycle(TENANT, stages=["plan", "propose"], settings=settings, engine=engine)
    assert run.status == "succeeded", run.error
    with session_scope(engine) as s:
        recs = lifecycle.list_recommendations(s, TENANT, limit=10_000)
    po, tr = _first(recs, "purchase_order"), _first(recs, "transfer")

    with _client(settings, engine) as api:
        admin = api.h("admin")
        for system, r, secret in (("erp", receivers["erp"], ERP), ("wms", receivers["wms"], WMS)):
            assert (
                api.put(
                    f"/v1/webhooks/{system}", json={"url": r.url, "secret": secret}, headers=admin
                ).status_code
                == 200
            )
        ch = {"channel": "webhook", "url": receivers["sup"].url, "secret": SUP}
        assert api.put(f"/v1/suppliers/{po.supplier_id}/channel", json=ch, headers=admin).status_code == 200
        for rec in (po, tr):
            if rec.state != "approved":
                res = api.post(
                    f"/v1/recommendations/{rec.id}/approve", json={"version": rec.version}, headers=admin
                )
                assert res.status_code == 200, res.text

        router = WritebackRouter(engine)
        try:
            stats = Dispatcher(engine, router, rng=np.random.default_rng(0)).run(until_idle=True)
        finally:
            router.close()
        assert stats.dead == 0
        erp_ids = {b["recommendation_id"]: b for b in receivers["erp"].bodies.values()}
        wms_ids = {b["recommendation_id"]: b for b in receivers["wms"].bodies.values()}
        assert po.id in erp_ids and erp_ids[po.id]["kind"] == "purchase_order" and po.id not in wms_ids
        assert tr.id in wms_ids and wms_ids[tr.id]["kind"] == "transfer" and tr.id not in erp_ids
        orders = [b for b in receivers["sup"].bodies.values() if b["order_number"] == po.id]
        assert len(orders) == 1 and orders[0]["message_type"] == "ORDERS"
        ordered = orders[0]["quantity"]
        assert ordered == erp_ids[po.id]["quantity"] > 0

        # Bad responses: 4xx naming the field, nothing stored.
        with session_scope(engine) as s:
            n_before = s.scalar(select(func.count()).select_from(SupplierResponse))
        svc = api.h("service")
        bad = [
            ({"order_number": "PO-NOPE", "status": "confirmed"}, 404, "order_number"),
            ({"order_number": po.id, "status": "partial", "quantity": -3}, 422, "quantity"),
            ({"order_number": po.id, "status": "confirmed", "quantity": ordered + 1}, 422, "quantity"),
            ({"order_number": po.id, "status": "new_date", "on_date": "2026-02-30"}, 422, "on_date"),
            ({"order_number": po.id, "status": "new_date", "on_date": "1999-01-01"}, 422, "on_date"),
        ]
        for body, code, field in bad:
            res = api.post("/v1/suppliers/responses", json={"responses": [body]}, headers=svc)
            assert res.status_code == code, (body, res.text)
            assert field in res.text, res.text
        with session_scope(engine) as s:
            assert s.scalar(select(func.count()).select_from(SupplierResponse)) == n_before

        # The supplier confirms 60%.
        confirmed = float(np.floor(0.6 * ordered))
        t0 = time.perf_counter()
        res = api.post(
            "/v1/suppliers/responses",
            json={"responses": [{"order_number": po.id, "status": "partial", "quantity": confirmed}]},
            headers=svc,
        )
        assert res.status_code == 201, res.text
        seconds = time.perf_counter() - t0
        out = res.json()
    (rec,) = out["recorded"]
    assert rec["confirmed_quantity"] == confirmed and rec["state"] in ("sent", "acknowledged")
    loop = out["loop"]
    assert loop["facts"]["purchase_orders"] in ("stored", "partial"), loop
    assert loop["confirmed_supply"] == {po.sku_id: confirmed}
    assert loop["replan_run_id"], loop["notes"]

    # The short-shipment exception: a planning exception row of the re-plan, keyed for the exception workflow.
    stored = load_run(engine, TENANT, loop["replan_run_id"])
    exc = stored["exceptions"].filter(pl.col("exception_type") == "short_shipment")
    assert exc.height == 1
    row = exc.row(0, named=True)
    assert row["po_id"] == po.id and row["sku_id"] == po.sku_id and row["location_id"] == po.location_id
    assert row["exception_key"] == f"{TENANT}|{po.sku_id}|{po.location_id}|short_shipment"
    assert row["value"] == pytest.approx(1 - confirmed / ordered)

    # The planner works it in the exception workflow: opened from the re-plan's row, assigned, acknowledged.
    with _client(settings, engine) as api:
        approver = api.h("approver")
        found = api.get(
            "/v1/exceptions", params={"exception_type": "short_shipment", "active": True}, headers=approver
        )
        assert found.status_code == 200, found.text
        (opened,) = [e for e in found.json() if e["exception_key"] == row["exception_key"]]
        assert opened["state"] == "open" and opened["po_id"] == po.id
        url = f"/v1/exceptions/{opened['id']}"
        res = api.post(
            f"{url}/assign", json={"assignee": "pat", "version": opened["version"]}, headers=approver
        )
        assert res.status_code == 200 and res.json()["state"] == "assigned", res.text
        res = api.post(f"{url}/acknowledge", json={"version": res.json()["version"]}, headers=approver)
        assert res.status_code == 200 and res.json()["state"] == "acknowledged", res.text

    # The re-plan of the affected unit allocates the confirmed supply: no more than confirmed, whole packs.
    allocs = stored["recommendations"].filter(pl.col("kind") == "allocation")
    assert set(zip(allocs["sku_id"], allocs["location_id"], strict=True)) == {(po.sku_id, po.location_id)}
    a = allocs.row(0, named=True)
    plain = stored["recommendations"].filter(pl.col("kind") == "purchase").row(0, named=True)
    asked = plain["order_qty"]
    assert a["order_qty"] <= min(confirmed, asked) + 1e-9
    terms = read_table("supplier_terms", TENANT, engine=engine, settings=settings)
    pack = terms.filter((pl.col("sku_id") == po.sku_id) & (pl.col("supplier_id") == po.supplier_id))[
        "pack_size"
    ][0]
    assert a["order_qty"] > min(confirmed, asked) - pack  # all of it, to the last whole pack
    assert a["order_qty"] % pack == 0
    print(
        f"ordered {ordered} confirmed {confirmed} re-plan asked {asked} "
        f"allocated {a['order_qty']} pack {pack}; response with facts and re-plan took {seconds:.2f} s"
    )
    assert [x["order_qty"] for x in loop["allocations"]] == [a["order_qty"]]
    assert loop["proposed"] == 1
    with session_scope(engine) as s:
        proposed = [
            r for r in lifecycle.list_recommendations(s, TENANT, limit=10_000) if r.kind == "allocation"
        ]
    assert [(r.sku_id, r.location_id, r.quantity) for r in proposed] == [
        (po.sku_id, po.location_id, a["order_qty"])
    ]

    # The same confirmation again (no response id) re-plans to the same allocation: not proposed twice.
    with _client(settings, engine) as api:
        res = api.post(
            "/v1/suppliers/responses",
            json={"responses": [{"order_number": po.id, "status": "partial", "quantity": confirmed}]},
            headers=api.h("service"),
        )
    assert res.status_code == 201 and res.json()["loop"]["replan_run_id"] != loop["replan_run_id"]
    with session_scope(engine) as s:
        again = [r for r in lifecycle.list_recommendations(s, TENANT, limit=10_000) if r.kind == "allocation"]
    assert [r.id for r in again] == [r.id for r in proposed]

    # The purchase-order fact planning reads carries the confirmed quantity.
    pos = read_table("purchase_orders", TENANT, engine=engine, settings=settings).filter(
        pl.col("po_id") == po.id
    )
    assert pos.height == 1 and pos["qty"][0] == confirmed and pos["status"][0] == "open"

    # The goods arrive 9 days after the order left: the observed lead time becomes a lead-time fact that
    # planning learns from (one more delivery of this supplier x SKU in its lead-time statistics).
    from planning import load_plan_inputs

    def deliveries():
        units = load_plan_inputs(engine, TENANT, settings=settings).units
        hit = units.filter((pl.col("sku_id") == po.sku_id) & (pl.col("supplier_id") == po.supplier_id))
        return hit["lead_time_n"].max() if hit.height else None

    n_before = deliveries()
    sent = rec["sent_at"][:10]
    arrived = (np.datetime64(sent) + np.timedelta64(9, "D")).astype(str)
    with _client(settings, engine) as api:
        res = api.post(
            "/v1/suppliers/responses",
            json={
                "responses": [
                    {"order_number": po.id, "status": "received", "quantity": confirmed, "on_date": arrived}
                ]
            },
            headers=api.h("service"),
        )
    assert res.status_code == 201, res.text
    assert res.json()["loop"]["facts"]["lead_times"] in ("stored", "partial"), res.json()["loop"]
    lts = read_table("lead_times", TENANT, engine=engine, settings=settings).filter(
        (pl.col("supplier_id") == po.supplier_id)
        & (pl.col("sku_id") == po.sku_id)
        & (pl.col("order_date") == np.datetime64(sent))
    )
    assert lts.height == 1 and lts["lead_time_days"][0] == 9.0
    assert n_before is not None and deliveries() == n_before + 1
    pos = read_table("purchase_orders", TENANT, engine=engine, settings=settings).filter(
        pl.col("po_id") == po.id
    )
    assert pos["status"].to_list() == ["received"]

    # Every step is in the tenant's event log, in order.
    with session_scope(engine) as s:
        types = [
            t
            for (t,) in s.execute(
                select(Event.type).where(Event.tenant_id == TENANT, Event.key == po.id).order_by(Event.seq)
            )
        ]
    steps = [
        t
        for t in types
        if t.startswith("supplier.") or t in ("recommendation.approved", "recommendation.sent")
    ]
    assert (
        steps.index("supplier.order_queued")
        < steps.index("supplier.order_sent")
        < steps.index("supplier.partial")
    )
    with session_scope(engine) as s:
        seq = {}  # the first event of each type
        for t, n in s.execute(
            select(Event.type, Event.seq)
            .where(Event.tenant_id == TENANT, Event.key.in_([po.id, row["exception_key"]]))
            .order_by(Event.seq)
        ):
            seq.setdefault(t, n)
    # the order sent, the short confirmation, then the exception opened, assigned and acknowledged
    assert (
        seq["supplier.order_sent"]
        < seq["supplier.partial"]
        < seq["exception.opened"]
        < seq["exception.assigned"]
        < seq["exception.acknowledged"]
    )
