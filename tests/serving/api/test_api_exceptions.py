"""The exceptions API (/v1/exceptions) on the real app and a real store (SQLite file and PostgreSQL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from features.settings import load_settings
from features.store._db import session_scope
from serving.api.main import create_app
from workflow import access

EXC = {
    "exception_type": "short_shipment",
    "severity": "high",
    "sku_id": "SKU-1",
    "location_id": "DC-1",
    "supplier_id": "SUP-1",
    "po_id": "PO-7",
    "value": 0.4,
    "message": "PO-7 confirmed 60 of 100",
}


@pytest.fixture
def api(engine, db_url):
    keys = {}
    with session_scope(engine) as s:
        for t in ("a", "b"):
            access.ensure_tenant(s, t)
            for role in ("admin", "approver", "planner", "service", "viewer"):
                keys[(t, role)] = access.create_key(s, t, [role], name=f"{t}-{role}")[1]
    app = create_app(load_settings(database_url=db_url), engine=engine)
    with TestClient(app) as client:
        client.h = lambda t, role: {"X-API-Key": keys[(t, role)]}
        yield client


def test_roles_tenants_and_the_lifecycle_over_http(api):
    h = api.h
    assert api.post("/v1/exceptions", json=EXC, headers=h("a", "viewer")).status_code == 403
    assert api.post("/v1/exceptions", json=EXC).status_code == 401
    made = api.post("/v1/exceptions", json=EXC, headers=h("a", "service"))
    assert made.status_code == 201, made.text
    x = made.json()
    assert (x["state"], x["severity"], x["exception_key"]) == ("open", "high", "a|SKU-1|DC-1|short_shipment")
    again = api.post("/v1/exceptions", json={**EXC, "value": 0.5}, headers=h("a", "service")).json()
    assert again["id"] == x["id"] and again["occurrences"] == 2  # one active per unit and type

    # viewers read, never act; another tenant does not see it
    assert api.get(f"/v1/exceptions/{x['id']}", headers=h("a", "viewer")).status_code == 200
    assert api.get(f"/v1/exceptions/{x['id']}", headers=h("b", "planner")).status_code == 404
    assert api.get("/v1/exceptions", headers=h("b", "planner")).json() == []
    for action, body in (("assign", {"assignee": "pat"}), ("acknowledge", {}), ("resolve", {})):
        r = api.post(f"/v1/exceptions/{x['id']}/{action}", json=body, headers=h("a", "viewer"))
        assert r.status_code == 403, (action, r.text)
    assert (
        api.post(f"/v1/exceptions/{x['id']}/acknowledge", json={}, headers=h("b", "planner")).status_code
        == 404
    )

    r = api.post(
        f"/v1/exceptions/{x['id']}/assign", json={"assignee": "pat", "version": 2}, headers=h("a", "planner")
    )
    assert r.status_code == 200 and r.json()["state"] == "assigned", r.text
    stale = api.post(f"/v1/exceptions/{x['id']}/acknowledge", json={"version": 2}, headers=h("a", "planner"))
    assert stale.status_code == 409 and stale.json()["detail"]["current_version"] == 3
    ack = api.post(
        f"/v1/exceptions/{x['id']}/acknowledge", json={"note": "calling"}, headers=h("a", "planner")
    )
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    twice = api.post(f"/v1/exceptions/{x['id']}/acknowledge", json={}, headers=h("a", "planner"))
    assert twice.status_code == 409 and twice.json()["detail"]["current_state"] == "acknowledged"
    no_reason = api.post(
        f"/v1/exceptions/{x['id']}/dismiss", json={"reason": "  "}, headers=h("a", "approver")
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.text
    gone = api.post(
        f"/v1/exceptions/{x['id']}/dismiss", json={"reason": "rest ships Friday"}, headers=h("a", "approver")
    )
    assert gone.status_code == 200 and gone.json()["state"] == "dismissed"

    listed = api.get("/v1/exceptions", params={"state": "dismissed"}, headers=h("a", "viewer")).json()
    assert [e["id"] for e in listed] == [x["id"]]
    assert api.get("/v1/exceptions", params={"active": True}, headers=h("a", "viewer")).json() == []
    trail = api.get(f"/v1/exceptions/{x['id']}/history", headers=h("a", "viewer")).json()
    assert [e["action"] for e in trail] == [
        "exception.opened", "exception.updated", "exception.assigned", "exception.acknowledged",
        "exception.dismissed",
    ]  # fmt: skip
    evs = api.get("/v1/events", params={"topic": "exception"}, headers=h("a", "service"))
    assert evs.status_code == 200, evs.text
    assert [e["type"] for e in evs.json()["events"]] == [e["action"] for e in trail]  # in order


def test_bad_input_is_a_clear_4xx(api):
    h = api.h("a", "planner")
    cases = [
        api.post("/v1/exceptions", json={**EXC, "exception_type": "Bad Type"}, headers=api.h("a", "service")),
        api.post("/v1/exceptions", json={**EXC, "colour": "red"}, headers=api.h("a", "service")),
        api.post(
            "/v1/exceptions",
            content='{"exception_type": "late_po", "message": "m", "value": NaN}',
            headers={**api.h("a", "service"), "content-type": "application/json"},
        ),
        api.post("/v1/exceptions/zz/acknowledge", json={}, headers=h),
        api.post(f"/v1/exceptions/{'0' * 32}/acknowledge", json={}, headers=h),
        api.get("/v1/exceptions", params={"state": "lost"}, headers=h),
        api.get("/v1/exceptions", params={"limit": 0}, headers=h),
        api.post(f"/v1/exceptions/{'0' * 32}/assign", json={"assignee": ""}, headers=h),
        api.put("/v1/exceptions/rules/late_po", json={"sla_hours": -1}, headers=api.h("a", "admin")),
        api.put("/v1/exceptions/rules/late_po", json={"sla_hours": 4}, headers=h),
    ]
    assert [c.status_code for c in cases] == [422, 422, 422, 422, 404, 422, 422, 422, 422, 403]
    ok = api.put(
        "/v1/exceptions/rules/late_po",
        json={"sla_hours": 4, "escalate_to": "leads"},
        headers=api.h("a", "admin"),
    )
    assert ok.status_code == 200 and ok.json()["sla_hours"] == 4


def test_nul_in_any_text_field_is_refused_with_its_name_and_nothing_is_stored(api):
    # PostgreSQL cannot store NUL in text: the schema refuses it (422 naming the field), never a 500
    service = api.h("a", "service")
    for field in ("message", "po_id", "exception_key", "sku_id"):
        r = api.post("/v1/exceptions", json={**EXC, field: "x\u0000y"}, headers=service)
        assert r.status_code == 422, (field, r.status_code, r.text)
        assert field in r.text and "NUL" in r.text
    assert api.get("/v1/exceptions", headers=api.h("a", "viewer")).json() == []
    assert api.get("/v1/exceptions/rules/late_po", headers=api.h("b", "viewer")).json()["sla_hours"] == 24
