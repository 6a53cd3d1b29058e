"""The supplier loop end to end on real stores (SQLite and PostgreSQL), the real API and real receivers.

ingest -> cycle (plan, propose) -> approve -> dispatch (PO to the ERP, transfer to the WMS, the order
document to the supplier) -> the supplier confirms 60% -> a short-shipment exception row, the purchase-order
fact, and a re-plan of the affected unit that allocates the confirmed supply -> actuals of the forecast's
periods ingested -> the scheduler's monitoring job -> the accuracy of the cycle's model version and the
forecast value added of the planner's override, read through the API; bad responses get 4xx naming the field
and store nothing; every step is an event of the tenant's log, in order.
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


def _route_every_buy(engine, tmp_path):
    """The tenant's routing: the project's rules, every purchase order to the buyers (a planner decides)."""
    from pathlib import Path

    from features.profile import update_profile

    rules = (Path(__file__).resolve().parents[2] / "configs" / "routing.yaml").read_text()
    assert "order_value: {gt: 25000}" in rules
    path = tmp_path / "routing.yaml"
    path.write_text(rules.replace("order_value: {gt: 25000}", "order_value: {gt: 0}"))
    update_profile(engine, TENANT, routing=str(path))


def _actuals(settings, tmp_path, rng):
    """Sales of every stored forecast row's unit and period (demand came in about 40% above the p50)."""
    from features.forecasts import read_forecasts

    fc = read_forecasts(TENANT, "reconciled", "fc1", level="bottom", facts_dir=settings.facts_dir).sort(
        "unique_id", "date"
    )
    y = np.maximum(0, np.round(1.4 * fc["p50"].to_numpy() + rng.normal(0, 2, fc.height)))
    sales = fc.select("sku_id", "location_id", "channel_id", "date").with_columns(
        pl.Series("qty", y.astype(np.int64)), pl.lit(2.5).alias("price"), pl.lit(False).alias("promo")
    )
    path = tmp_path / "actuals.parquet"
    sales.write_parquet(path)
    return fc.with_columns(pl.Series("y", y)), path


def _monitoring_job(engine, settings):
    """The monitoring job, as ``replenish serve``'s scheduler runs it (one tick, then its recorded run)."""
    from serving.jobs import build_specs
    from workflow.jobs import Scheduler, list_runs

    sched = Scheduler(engine, build_specs(engine, settings, intervals_s={"monitoring": 3600.0}))
    try:
        assert sched.tick() == ["monitoring"]
    finally:
        sched.stop()  # waits for the claimed run to end
    (run,) = list_runs(engine, job="monitoring")
    assert run["status"] == "succeeded", run
    return run


def _expected_fva(pairs, po, final, as_of):
    """FVA of the one override, by its definition (docs/monitoring.md), from the rows the test ingested."""
    win = pairs.filter(
        (pl.col("sku_id") == po.sku_id)
        & (pl.col("location_id") == po.location_id)
        & pl.col("date").is_between(as_of, po.need_by)
    )
    right = max(0.0, po.quantity + win["y"].sum() - win["p50"].sum())
    return 1.0 - abs(final - right) / abs(po.quantity - right)


def _first_seqs(engine, keys):
    """``type -> (seq, topic)`` of the first event of each type about ``keys``."""
    from features.store import session_scope
    from workflow._models import Event

    out = {}
    with session_scope(engine) as s:
        q = select(Event.type, Event.seq, Event.topic).where(Event.tenant_id == TENANT, Event.key.in_(keys))
        for t, n, topic in s.execute(q.order_by(Event.seq)):
            out.setdefault(t, (n, topic))
    return out


def _first(recs, kind):
    """A recommendation of ``kind`` that still needs a decision, or one planning auto-approved."""
    pick = [r for r in recs if r.kind == kind and r.state in ("routed", "proposed", "approved")]
    assert pick, f"the plan made no {kind}"
    return sorted(pick, key=lambda r: (r.state != "routed", -(r.quantity or 0)))[0]


def test_approve_dispatch_supplier_confirms_60_percent_and_the_replan_allocates_it(
    settings, ingested, receivers, tmp_path
):
    from features.store._db import session_scope
    from features.tables import read_table
    from planning import load_run
    from serving.cycle import run_cycle
    from workflow import lifecycle
    from workflow._models import SupplierResponse
    from workflow.dispatcher import Dispatcher
    from workflow.webhooks import WritebackRouter

    engine, data = ingested
    _route_every_buy(engine, tmp_path)
    store_forecast(settings, data)
    run = run_cycle(TENANT, stages=["plan", "propose"], settings=settings, engine=engine)
    assert run.status == "succeeded", run.error
    with session_scope(engine) as s:
        recs = lifecycle.list_recommendations(s, TENANT, limit=10_000)
    po, tr = _first(recs, "purchase_order"), _first(recs, "transfer")
    assert po.state == "routed" and po.need_by is not None, po  # a planner decides it: an override
    final = float(np.ceil(1.25 * po.quantity))

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
        body = {"version": po.version, "quantity": final, "reason_code": "promo_known"}
        res = api.post(f"/v1/recommendations/{po.id}/override", json=body, headers=api.h("approver"))
        assert res.status_code == 200 and res.json()["state"] == "overridden", res.text
        for rec in (tr,):
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
        assert ordered == erp_ids[po.id]["quantity"] == final  # the overridden quantity left

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

    # Actuals of the forecast's periods arrive through the ingest path, the scheduler's monitoring job runs,
    # and monitoring shows the accuracy of the cycle's model version and the override's value added.
    from serving.ingest import ingest_and_announce

    pairs, path = _actuals(settings, tmp_path, np.random.default_rng(3))
    batch = ingest_and_announce("sales", path, tenant=TENANT, engine=engine, settings=settings)
    assert batch.rows_stored == pairs.height, batch
    job = _monitoring_job(engine, settings)
    with _client(settings, engine) as api:
        res = api.get("/v1/telemetry/monitoring", headers=api.h("approver"))
    assert res.status_code == 200, res.text
    mon = res.json()
    run_id = mon["runs"][0]["run_id"]
    assert job["counts"][TENANT]["pairs"] == pairs.height
    fig = {(p["metric"], tuple(sorted(p["labels"].items()))): p for p in mon["points"]}
    h1 = pairs.filter(pl.col("horizon") == 1)
    err = (h1["y"] - h1["p50"]).abs()
    bottom_h1 = (("horizon", "1"), ("level", "bottom"), ("model_version", "3"))
    wape = fig[("forecast_wape", bottom_h1)]
    assert wape["n"] == h1.height and wape["value"] == pytest.approx(err.sum() / h1["y"].abs().sum())
    assert fig[("forecast_mae", bottom_h1)]["value"] == pytest.approx(err.mean())
    as_of = pairs.filter(pl.col("horizon") == 1)["date"].min()
    fva = fig[("override_fva", ())]["value"]
    assert fva == pytest.approx(_expected_fva(pairs, po, final, as_of)) and fva > 0
    print(f"model version 3: WAPE h1 {wape['value']:.3f} over {wape['n']} units; override FVA {fva:.3f}")

    # Every step is in the tenant's event log, in order: cycle -> override -> sent -> the supplier's order ->
    # 60% -> re-plan -> exception worked -> receipt -> actuals -> monitoring.
    seq = _first_seqs(
        engine, [run.run_id, po.id, row["exception_key"], loop["replan_run_id"], batch.batch_id, run_id]
    )
    order = [
        ("plan.created", "plan"),
        ("recommendation.overridden", "replenishment"),
        ("recommendation.sent", "replenishment"),  # the ERP took the PO: the order goes to the supplier
        ("supplier.order_queued", "supplier"),
        ("supplier.order_sent", "supplier"),
        ("supplier.partial", "supplier"),
        ("plan.replanned", "plan"),
        ("exception.opened", "exception"),
        ("exception.assigned", "exception"),
        ("exception.acknowledged", "exception"),
        ("supplier.received", "supplier"),
        ("sales.ingested", "sales"),
        ("monitoring.completed", "monitoring"),
    ]
    got = sorted((seq[t][0], t, seq[t][1]) for t, _ in order if t in seq)
    assert [(t, topic) for _, t, topic in got] == order


def test_the_regular_cycle_plans_with_open_confirmations_and_counts_a_sent_order_once(
    settings, ingested, receivers, tmp_path
):
    """A PO sent and confirmed short: the next regular cycle allocates the confirmed supply (not only the
    supplier loop's re-plan), and once a snapshot counts the order in on_order it is not counted again."""
    from datetime import UTC, datetime

    from features.store import session_scope
    from planning import load_plan_inputs, load_run
    from serving.cycle import run_cycle
    from serving.ingest import ingest_and_announce
    from workflow import lifecycle
    from workflow.confirmations import confirmed_supply
    from workflow.dispatcher import Dispatcher
    from workflow.webhooks import WritebackRouter

    engine, data = ingested
    store_forecast(settings, data)
    assert (
        run_cycle(TENANT, stages=["plan", "propose"], settings=settings, engine=engine).status == "succeeded"
    )
    with session_scope(engine) as s:
        po = _first(lifecycle.list_recommendations(s, TENANT, limit=10_000), "purchase_order")
    with _client(settings, engine) as api:
        admin = api.h("admin")
        url = receivers["erp"].url
        assert api.put("/v1/webhooks/erp", json={"url": url, "secret": ERP}, headers=admin).status_code == 200
        ch = {"channel": "webhook", "url": receivers["sup"].url, "secret": SUP}
        assert api.put(f"/v1/suppliers/{po.supplier_id}/channel", json=ch, headers=admin).status_code == 200
        if po.state != "approved":
            body = {"version": po.version}
            assert (
                api.post(f"/v1/recommendations/{po.id}/approve", json=body, headers=admin).status_code == 200
            )
        router = WritebackRouter(engine)
        try:
            Dispatcher(engine, router, rng=np.random.default_rng(0)).run(until_idle=True)
        finally:
            router.close()
        confirmed = float(np.floor(0.6 * po.quantity))
        line = {"order_number": po.id, "status": "partial", "quantity": confirmed}
        res = api.post(
            "/v1/suppliers/responses",
            params={"replan": False},
            json={"responses": [line]},
            headers=api.h("service"),
        )
        assert res.status_code == 201 and res.json()["loop"]["replan_run_id"] is None, res.text
    (order,) = confirmed_supply(engine, TENANT).to_dicts()
    assert (order["po_id"], order["ordered_qty"], order["confirmed_qty"]) == (po.id, po.quantity, confirmed)

    def cycle_plan():
        run = run_cycle(TENANT, stages=["plan"], settings=settings, engine=engine)
        assert run.status == "succeeded", run.error
        return load_run(engine, TENANT, run.run_id)  # the plan run of a cycle has its id

    # The regular cycle plans with the confirmation: the SKU's confirmed supply is allocated.
    stored = cycle_plan()
    inputs_meta = stored["run"]["params"]["inputs"]
    assert inputs_meta["confirmed_supply"] == {po.sku_id: confirmed}
    allocs = stored["recommendations"].filter(pl.col("kind") == "allocation")
    assert allocs.height and set(allocs["sku_id"]) == {po.sku_id}
    assert allocs["order_qty"].sum() <= confirmed
    assert "on_order_netted" not in inputs_meta  # the snapshots predate the order: it is in none of them

    # The ERP's snapshot of today counts the sent order in on_order: it is counted once (as confirmed).
    unit = (pl.col("sku_id") == po.sku_id) & (pl.col("location_id") == po.location_id)
    snap = data.inventory.filter(unit).sort("date").tail(1)
    on_hand = snap["on_hand"][0]
    today = datetime.now(UTC).date()
    snap = snap.with_columns(pl.lit(today).alias("date"), pl.lit(po.quantity).alias("on_order"))
    snap.write_parquet(tmp_path / "snapshot.parquet")
    assert (
        ingest_and_announce(
            "inventory", tmp_path / "snapshot.parquet", tenant=TENANT, engine=engine, settings=settings
        ).rows_stored
        == 1
    )
    stored = cycle_plan()
    netted = {f"{po.sku_id}|{po.location_id}": po.quantity}
    assert stored["run"]["params"]["inputs"]["on_order_netted"] == netted
    units = load_plan_inputs(
        engine, TENANT, settings=settings, confirmed_supply=confirmed_supply(engine, TENANT)
    ).units.filter(unit)
    assert (units["on_hand"][0], units["on_order"][0]) == (on_hand, 0.0)
    # and so does the supplier loop's re-plan
    with _client(settings, engine) as api:
        res = api.post("/v1/suppliers/responses", json={"responses": [line]}, headers=api.h("service"))
    assert res.status_code == 201 and res.json()["loop"]["replan_run_id"], res.text
    replan = load_run(engine, TENANT, res.json()["loop"]["replan_run_id"])
    assert replan["run"]["params"]["inputs"]["on_order_netted"] == netted
