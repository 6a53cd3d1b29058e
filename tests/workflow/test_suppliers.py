"""Routing by kind and system, orders to suppliers' channels, and supplier responses (SQLite and PostgreSQL).

Real stores, real HTTP receivers on loopback (signatures checked, idempotency keys honoured), real files.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from features.store._db import session_scope
from tests.workflow._helpers import Receiver, propose
from workflow import lifecycle, outbox, suppliers, webhooks
from workflow._models import Recommendation, SupplierResponse
from workflow.dispatcher import Dispatcher, RetryPolicy
from workflow.errors import IllegalTransition, InvalidInput, NotFound
from workflow.schemas import AutoApprove
from workflow.supplier_responses import ResponseLine, read_response_file, record_responses

ERP, WMS, OMS, SUP = "e" * 40, "w" * 40, "o" * 40, "s" * 40


def _auto(engine, tenant="a", **kw):
    return propose(engine, tenant, route=None, auto_approve=AutoApprove(rule="small"), **kw).id


def _dispatch(engine, router, **kw):
    return Dispatcher(engine, router, rng=np.random.default_rng(0), **kw).run(until_idle=True)


@pytest.fixture
def receivers():
    rs = {
        name: Receiver(secret=secret).start() for name, secret in (("erp", ERP), ("wms", WMS), ("oms", OMS))
    }
    rs["supplier"] = Receiver(secret=SUP).start()
    yield rs
    for r in rs.values():
        r.stop()


def _targets(engine, receivers, tenant="a", systems=("erp", "wms", "oms")):
    secrets = {"erp": ERP, "wms": WMS, "oms": OMS}
    with session_scope(engine) as s:
        for system in systems:
            webhooks.set_target(
                s, tenant, system, receivers[system].url, secrets[system], actor="test", https_only=False
            )


def test_each_kind_goes_to_its_system_and_a_missing_target_waits_then_dead_letters(
    engine, tenants, receivers
):
    _targets(engine, receivers)
    po = _auto(engine)
    tr = _auto(engine, kind="transfer", supplier_id=None, from_location_id="DC-2")
    al = _auto(engine, kind="allocation")
    ex = _auto(engine, kind="exception_update")  # no 'exceptions' target: the ERP takes it
    router = webhooks.WritebackRouter(engine)
    try:
        stats = _dispatch(engine, router)
    finally:
        router.close()
    assert stats.delivered == 4 and stats.dead == 0
    got = {name: sorted(b["recommendation_id"] for b in r.bodies.values()) for name, r in receivers.items()}
    assert got == {"erp": sorted([po, ex]), "wms": [tr], "oms": [al], "supplier": []}
    assert all(r.rejected_signatures == 0 for r in receivers.values())
    # tenant b has an ERP only: its transfer waits with the reason, then dead-letters with it (never lost)
    _targets(engine, receivers, tenant="b", systems=("erp",))
    tb = _auto(engine, "b", kind="transfer", supplier_id=None, from_location_id="DC-2")
    router = webhooks.WritebackRouter(engine)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.0, max_delay_s=0.0)
    try:
        first = Dispatcher(engine, router, rng=np.random.default_rng(0), policy=policy).run_once()
        with session_scope(engine) as s:
            (item,) = outbox.list_items(s, "b")
            assert first.retried == 1 and item.status == "pending"
            assert (
                "no webhook target for system 'wms'" in item.last_error
                and "PUT /v1/webhooks/wms" in item.last_error
            )
        _dispatch(engine, router, policy=policy)
    finally:
        router.close()
    with session_scope(engine) as s:
        (item,) = outbox.list_items(s, "b")
        assert item.status == "dead" and "system 'wms'" in item.last_error
        assert lifecycle.get(s, "b", tb).state == "failed"


def _approve_po(engine, tenants, **kw):
    rid = propose(engine, "a", **kw).id
    with session_scope(engine) as s:
        from workflow.schemas import ApproveIn

        lifecycle.approve(s, tenants[("a", "admin")][0], rid, ApproveIn(version=2))
    return rid


def test_purchase_order_goes_to_the_erp_then_to_its_supplier_by_webhook_and_by_file(
    engine, tenants, receivers, tmp_path
):
    _targets(engine, receivers)
    with session_scope(engine) as s:
        suppliers.set_channel(
            s, "a", "SUP-1", "webhook", url=receivers["supplier"].url, secret=SUP, actor="t", https_only=False
        )
        suppliers.set_channel(s, "a", "SUP-2", "file", file_format="csv", actor="t", https_only=False)
        with pytest.raises(InvalidInput, match="secret"):
            suppliers.set_channel(
                s, "a", "SUP-3", "webhook", url="http://x.example/h", actor="t", https_only=False
            )
        with pytest.raises(InvalidInput, match="url"):
            suppliers.set_channel(s, "a", "SUP-3", "file", url="/etc", actor="t", https_only=False)
        assert all("secret" not in c for c in suppliers.list_channels(s, "a"))
    hook_po = _approve_po(engine, tenants, quantity=100)
    file_po = _approve_po(engine, tenants, sku_id="SKU-2", supplier_id="SUP-2", quantity=40)
    no_channel = _approve_po(engine, tenants, sku_id="SKU-3", supplier_id="SUP-9")
    router = webhooks.WritebackRouter(engine, supplier_drop_root=tmp_path / "drops")
    try:
        stats = _dispatch(engine, router)
    finally:
        router.close()
    assert stats.delivered == 5 and stats.dead == 0  # 3 POs to the ERP, then 2 supplier orders
    assert sorted(b["recommendation_id"] for b in receivers["erp"].bodies.values()) == sorted(
        [hook_po, file_po, no_channel]
    )
    (doc,) = receivers["supplier"].bodies.values()
    assert doc["message_type"] == "ORDERS" and doc["order_number"] == hook_po
    assert doc["item_number"] == "SKU-1" and doc["quantity"] == 100.0 and doc["ship_to"] == "DC-1"
    (path,) = (tmp_path / "drops" / "a" / "SUP-2").glob("ORDERS-*.csv")
    (row,) = list(csv.DictReader(path.open()))
    assert row["order_number"] == file_po and float(row["quantity"]) == 40.0
    assert list(row) == list(suppliers.ORDER_FIELDS)
    with session_scope(engine) as s:  # the POs stay 'sent' (the supplier order changes no state)
        assert {lifecycle.get(s, "a", r).state for r in (hook_po, file_po, no_channel)} == {"sent"}
        again = suppliers.queue_order(s, "a", hook_po, actor="t")
        assert again["created"] is False  # the same order version is never queued twice
        with pytest.raises(InvalidInput, match="no channel"):
            suppliers.queue_order(s, "a", no_channel, actor="t")
        with pytest.raises(NotFound):
            suppliers.queue_order(s, "a", "nope", actor="t")
    # a redelivery of the ERP item does not queue the supplier order again (idempotency key per version)
    _dispatch(engine, webhooks.WritebackRouter(engine, supplier_drop_root=tmp_path / "drops"))
    assert receivers["supplier"].duplicates == 0 and len(receivers["supplier"].processed) == 1


def _sent_po(engine, tenants, **kw):
    rid = _approve_po(engine, tenants, **kw)
    with session_scope(engine) as s:
        (item,) = [i for i in outbox.claim(s, "t") if i.recommendation_id == rid]
        outbox.record_success(s, item, "t", external_ref="ERP-1")
    return rid


def _counts(engine, rid):
    with session_scope(engine) as s:
        n = s.scalar(select(func.count()).select_from(SupplierResponse))
        v = s.scalar(select(Recommendation.version).where(Recommendation.id == rid))
    return n, v


def test_bad_responses_are_refused_naming_the_field_and_nothing_is_half_written(engine, tenants):
    rid = _sent_po(engine, tenants, quantity=100)
    before = _counts(engine, rid)
    good = ResponseLine(order_number=rid, status="partial", quantity=60)
    cases = [
        (ResponseLine(order_number="PO-NOPE", status="confirmed"), NotFound, "order_number"),
        (ResponseLine(order_number=rid, status="confirmed", quantity=120), InvalidInput, "line 2: quantity"),
        (
            ResponseLine(order_number=rid, status="new_date", on_date="2000-01-01"),
            InvalidInput,
            "line 2: on_date",
        ),
    ]
    for bad, err, match in cases:
        with pytest.raises(err, match=match), session_scope(engine) as s:
            record_responses(s, "a", [good, bad], actor="t")
        assert _counts(engine, rid) == before  # the good first line was not stored either
    with pytest.raises(ValidationError, match="quantity"):
        ResponseLine(order_number=rid, status="partial", quantity=-1)
    with pytest.raises(ValidationError, match="on_date"):
        ResponseLine(order_number=rid, status="new_date", on_date="2026-13-40")
    routed = propose(engine, "a").id
    with pytest.raises(IllegalTransition), session_scope(engine) as s:
        record_responses(s, "a", [ResponseLine(order_number=routed, status="confirmed")], actor="t")
    with session_scope(engine) as s:
        (out,) = record_responses(s, "a", [good], actor="t")
    assert out.confirmed_qty == 60.0 and out.ordered_qty == 100.0
    assert _counts(engine, rid) == (before[0] + 1, before[1] + 1)


def test_response_file_import_names_the_line_and_field(engine, tenants, tmp_path):
    rid = _sent_po(engine, tenants, quantity=100)
    good = tmp_path / "ordrsp.csv"
    good.write_text(f"order_number,status,quantity,on_date,comment\n{rid},partial,60,,short of cans\n")
    (line,) = read_response_file(good)
    assert line.status == "partial" and line.quantity == 60.0 and line.comment == "short of cans"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"order_number,status,quantity\n{rid},confirmed,10\n{rid},partial,-5\n")
    with pytest.raises(InvalidInput, match="line 2: quantity"):
        read_response_file(bad)
    js = tmp_path / "ordrsp.json"
    js.write_text(
        json.dumps({"responses": [{"order_number": rid, "status": "new_date", "on_date": "2026-13-01"}]})
    )
    with pytest.raises(InvalidInput, match="line 1: on_date"):
        read_response_file(js)
    with pytest.raises(InvalidInput, match="columns"):
        (tmp_path / "x.csv").write_text("po,qty\n1,2\n")
        read_response_file(tmp_path / "x.csv")


def test_cli_imports_a_response_file_and_refuses_a_bad_one_whole(engine, tenants, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serving.cli import app

    monkeypatch.setenv("REPLENISH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REPLENISH_TENANT", "a")
    rid = _sent_po(engine, tenants, quantity=100)
    other = _sent_po(engine, tenants, sku_id="SKU-2", quantity=50)
    before = _counts(engine, rid)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"order_number,status,quantity\n{rid},partial,60\n{other},confirmed,75\n")
    res = CliRunner().invoke(app, ["suppliers", "import-responses", str(bad), "--no-replan"])
    assert res.exit_code == 2 and "line 2: quantity" in res.output and "above the 50 ordered" in res.output
    assert _counts(engine, rid) == before  # line 1 was not stored either
    good = tmp_path / "ordrsp.csv"
    good.write_text(f"order_number,status,quantity,on_date\n{rid},partial,60,\n{other},rejected,,\n")
    res = CliRunner().invoke(app, ["suppliers", "import-responses", str(good), "--no-replan"])
    assert res.exit_code == 0, res.output
    assert "recorded 2 response(s)" in res.output
    assert "exception short_shipment (high)" in res.output
    assert "exception supplier_rejected (high)" in res.output
    with session_scope(engine) as s:
        assert lifecycle.get(s, "a", rid).confirmed_quantity == 60.0
        assert lifecycle.get(s, "a", other).confirmed_quantity == 0.0


def test_a_response_sent_twice_with_its_id_is_applied_once(engine, tenants):
    rid = _sent_po(engine, tenants, quantity=100)
    line = ResponseLine(order_number=rid, status="partial", quantity=60, response_id="ORDRSP-77")
    with session_scope(engine) as s:
        (first,) = record_responses(s, "a", [line], actor="portal")
    after_first = _counts(engine, rid)
    with session_scope(engine) as s:  # a retried delivery, and the same line twice in one batch
        again = record_responses(s, "a", [line, line], actor="portal")
    assert not first.duplicate and [o.duplicate for o in again] == [True, True]
    assert _counts(engine, rid) == after_first
    other = ResponseLine(order_number=rid, status="partial", quantity=50, response_id="ORDRSP-78")
    with session_scope(engine) as s:
        (o,) = record_responses(s, "a", [other], actor="portal")
    assert not o.duplicate and o.confirmed_qty == 50.0
    assert _counts(engine, rid) == (after_first[0] + 1, after_first[1] + 1)


def test_cli_imports_a_suppliers_inbox_folder_file_by_file(engine, tenants, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from serving.cli import app

    monkeypatch.setenv("REPLENISH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REPLENISH_TENANT", "a")
    rid = _sent_po(engine, tenants, quantity=100)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "01-good.csv").write_text(f"order_number,status,quantity\n{rid},partial,70\n")
    (inbox / "02-bad.json").write_text(
        json.dumps([{"order_number": rid, "status": "partial", "quantity": 700}])
    )
    (inbox / ".03-still-writing.csv").write_text("order_number,status\n")
    res = CliRunner().invoke(app, ["suppliers", "import-responses", str(inbox), "--no-replan"])
    assert res.exit_code == 1, res.output
    assert "done      01-good.csv: 1 response(s), 1 exception(s)" in res.output
    assert "rejected  02-bad.json: quantity: 700 is above the 100 ordered" in res.output
    assert (inbox / "done" / "01-good.csv").exists() and (inbox / "rejected" / "02-bad.json").exists()
    assert "above the 100 ordered" in (inbox / "rejected" / "02-bad.json.error.txt").read_text()
    assert (inbox / ".03-still-writing.csv").exists()  # a file still being written is left alone
    with session_scope(engine) as s:
        assert lifecycle.get(s, "a", rid).confirmed_quantity == 70.0
    res = CliRunner().invoke(app, ["suppliers", "import-responses", str(inbox), "--no-replan"])
    assert res.exit_code == 0 and "no response file" in res.output  # nothing imported twice


def test_exception_updates_go_to_the_exceptions_target_where_one_is_set(engine, tenants, receivers):
    _targets(engine, receivers)
    exc_rx = Receiver(secret="x" * 40).start()
    try:
        with session_scope(engine) as s:
            webhooks.set_target(s, "a", "exceptions", exc_rx.url, "x" * 40, actor="test", https_only=False)
        ex = _auto(engine, kind="exception_update")
        po = _auto(engine)
        router = webhooks.WritebackRouter(engine)
        try:
            assert _dispatch(engine, router).delivered == 2
        finally:
            router.close()
        assert [b["recommendation_id"] for b in exc_rx.bodies.values()] == [ex]
        assert [b["recommendation_id"] for b in receivers["erp"].bodies.values()] == [po]
        assert webhooks.system_of("exception_update") == "exceptions"
        assert webhooks.system_of("supplier_order") == "supplier" and webhooks.system_of("mystery") is None
    finally:
        exc_rx.stop()


def test_cli_sets_lists_channels_and_queues_an_order(engine, tenants, monkeypatch):
    from typer.testing import CliRunner

    from serving.cli import app

    monkeypatch.setenv("REPLENISH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("REPLENISH_TENANT", "a")
    monkeypatch.setenv("SUP1_SECRET", SUP)
    run = CliRunner().invoke
    res = run(
        app, ["suppliers", "channel-set", "SUP-1", "--channel", "webhook", "--url", "http://127.0.0.1:9/h"]
    )
    assert res.exit_code == 2 and "secret" in res.output  # no secret: refused, naming the field
    res = run(
        app,
        ["suppliers", "channel-set", "SUP-1", "--channel", "webhook", "--url", "http://127.0.0.1:9/h"]
        + ["--secret-env", "SUP1_SECRET"],
    )
    assert res.exit_code == 0, res.output
    assert run(app, ["suppliers", "channel-set", "SUP-2", "--channel", "file"]).exit_code == 0
    listed = run(app, ["suppliers", "channels"]).output
    assert "SUP-1" in listed and "webhook" in listed and "SUP-2" in listed and SUP not in listed
    rid = _sent_po(engine, tenants, quantity=10)
    with session_scope(engine) as s:  # the ERP delivery above queued it already (SUP-1 has a channel)
        assert [i.kind for i in outbox.list_items(s, "a", status="pending")] == ["supplier_order"]
    res = run(app, ["suppliers", "send", rid])
    assert res.exit_code == 0 and "already queued" in res.output
    res = run(app, ["suppliers", "send", "nope"])
    assert res.exit_code == 2 and "not found" in res.output
