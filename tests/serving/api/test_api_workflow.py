"""The control-plane HTTP API on the real app and a real store (SQLite file and PostgreSQL)."""

from __future__ import annotations

import math
import threading
from collections import Counter

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features.runs import create_run
from features.settings import load_settings
from features.store._db import session_scope
from serving.api.main import create_app
from tests.workflow._helpers import seed_catalogue
from workflow import access
from workflow.adapters import FileDropAdapter
from workflow.dispatcher import Dispatcher

PO = {
    "kind": "purchase_order",
    "sku_id": "SKU-1",
    "location_id": "DC-1",
    "supplier_id": "SUP-1",
    "quantity": 100,
    "need_by": "2026-12-20",
    "promised_lead_time_days": 10,
    "route": {"queue": "buyers", "role": "planner", "rule": "value>100", "reason": "review"},
    "evidence": {"forecast_version": "fc-1", "model_version": "tft:3", "quantiles": {"p50": 90}},
}


@pytest.fixture
def api(engine, db_url):
    keys = {}
    with session_scope(engine) as s:
        for t in ("a", "b"):
            access.ensure_tenant(s, t)
            seed_catalogue(s, t)
            for role in ("admin", "approver", "planner", "service", "viewer", "metrics"):
                keys[(t, role)] = access.create_key(s, t, [role], name=f"{t}-{role}")[1]
    app = create_app(load_settings(database_url=db_url), engine=engine)
    with TestClient(app) as client:
        client.keys = keys
        client.h = lambda t, role: {"X-API-Key": keys[(t, role)]}
        yield client


def _dispatch(engine, tmp_path):
    return Dispatcher(engine, FileDropAdapter(tmp_path / "drop"), rng=np.random.default_rng(0)).run(
        until_idle=True
    )


def _setup_tenant_a(api, engine, tmp_path):
    """Tenant a's records of every kind an id can point at."""
    h, svc = api.h("a", "admin"), api.h("a", "service")  # four-eyes: the proposer does not approve
    routed = api.post("/v1/recommendations", json=PO, headers=svc).json()
    sent = api.post("/v1/recommendations", json=PO, headers=svc).json()
    api.post(f"/v1/recommendations/{sent['id']}/approve", json={"version": 2}, headers=h)
    _dispatch(engine, tmp_path)
    item = api.get("/v1/outbox", headers=h).json()[0]
    key_id = api.get("/v1/keys", headers=h).json()[0]["key_id"]
    return {"routed": routed, "sent": sent, "item": item, "key_id": key_id, "sha": routed["evidence_sha256"]}


def test_tenant_isolation_on_every_route_with_a_foreign_key(api, engine, tmp_path):
    a = _setup_tenant_a(api, engine, tmp_path)
    rid, sid, item, kid, sha = a["routed"]["id"], a["sent"]["id"], a["item"], a["key_id"], a["sha"]
    exc = {"exception_type": "late_po", "sku_id": "SKU-1", "location_id": "DC-1", "message": "late"}
    xid = api.post("/v1/exceptions", json=exc, headers=api.h("a", "service")).json()["id"]
    b_admin, b_planner = api.h("b", "admin"), api.h("b", "planner")
    cycle = create_run(engine, "a", ["forecast", "plan"], requested_by="a-admin")  # a's cycle run, queued
    tried = {
        ("GET", "/v1/cycles/{run_id}"): api.get(f"/v1/cycles/{cycle}", headers=b_admin),
        ("GET", "/v1/exceptions/{exc_id}"): api.get(f"/v1/exceptions/{xid}", headers=b_admin),
        ("GET", "/v1/exceptions/{exc_id}/history"): api.get(f"/v1/exceptions/{xid}/history", headers=b_admin),
        ("POST", "/v1/exceptions/{exc_id}/assign"): api.post(
            f"/v1/exceptions/{xid}/assign", json={"assignee": "x"}, headers=b_planner
        ),
        ("POST", "/v1/exceptions/{exc_id}/acknowledge"): api.post(
            f"/v1/exceptions/{xid}/acknowledge", json={}, headers=b_planner
        ),
        ("POST", "/v1/exceptions/{exc_id}/resolve"): api.post(
            f"/v1/exceptions/{xid}/resolve", json={}, headers=b_planner
        ),
        ("POST", "/v1/exceptions/{exc_id}/dismiss"): api.post(
            f"/v1/exceptions/{xid}/dismiss", json={"reason": "not ours"}, headers=b_planner
        ),
        ("GET", "/v1/recommendations/{rec_id}"): api.get(
            f"/v1/recommendations/{rid}", headers=api.h("b", "admin")
        ),
        ("POST", "/v1/recommendations/{rec_id}/route"): api.post(
            f"/v1/recommendations/{rid}/route",
            headers=api.h("b", "admin"),
            json={"route": PO["route"], "version": 2},
        ),
        ("POST", "/v1/recommendations/{rec_id}/approve"): api.post(
            f"/v1/recommendations/{rid}/approve", json={"version": 2}, headers=api.h("b", "admin")
        ),
        ("POST", "/v1/recommendations/{rec_id}/override"): api.post(
            f"/v1/recommendations/{rid}/override",
            json={"version": 2, "quantity": 5, "reason_code": "x"},
            headers=api.h("b", "admin"),
        ),
        ("POST", "/v1/recommendations/{rec_id}/reject"): api.post(
            f"/v1/recommendations/{rid}/reject",
            json={"version": 2, "reason_code": "x"},
            headers=api.h("b", "admin"),
        ),
        ("POST", "/v1/recommendations/{rec_id}/comments"): api.post(
            f"/v1/recommendations/{rid}/comments", json={"text": "hi"}, headers=api.h("b", "admin")
        ),
        ("POST", "/v1/recommendations/{rec_id}/ack"): api.post(
            f"/v1/recommendations/{sid}/ack", json={"status": "accepted"}, headers=api.h("b", "service")
        ),
        ("POST", "/v1/recommendations/{rec_id}/supplier-responses"): api.post(
            f"/v1/recommendations/{sid}/supplier-responses",
            json={"status": "confirmed"},
            headers=api.h("b", "service"),
        ),
        ("GET", "/v1/recommendations/{rec_id}/history"): api.get(
            f"/v1/recommendations/{rid}/history", headers=api.h("b", "admin")
        ),
        ("GET", "/v1/recommendations/{rec_id}/evidence"): api.get(
            f"/v1/recommendations/{rid}/evidence", headers=api.h("b", "admin")
        ),
        ("GET", "/v1/evidence/{sha256}"): api.get(f"/v1/evidence/{sha}", headers=api.h("b", "admin")),
        ("GET", "/v1/outbox/{item_id}"): api.get(f"/v1/outbox/{item['id']}", headers=api.h("b", "admin")),
        ("POST", "/v1/outbox/{item_id}/replay"): api.post(
            f"/v1/outbox/{item['id']}/replay", headers=api.h("b", "admin")
        ),
        ("POST", "/v1/outbox/acks"): api.post(
            "/v1/outbox/acks",
            headers=api.h("b", "service"),
            json={"idempotency_key": item["idempotency_key"], "status": "accepted"},
        ),
        ("POST", "/v1/suppliers/orders/{order_number}/send"): api.post(
            f"/v1/suppliers/orders/{sid}/send", headers=api.h("b", "admin")
        ),
        ("POST", "/v1/suppliers/responses"): api.post(
            "/v1/suppliers/responses",
            headers=api.h("b", "service"),
            json={"responses": [{"order_number": sid, "status": "confirmed"}]},
        ),
        ("DELETE", "/v1/keys/{key_id}"): api.delete(f"/v1/keys/{kid}", headers=api.h("b", "admin")),
        ("POST", "/v1/keys/{key_id}/rotate"): api.post(
            f"/v1/keys/{kid}/rotate", json={"grace_seconds": 0}, headers=api.h("b", "admin")
        ),
    }
    for route, resp in tried.items():
        assert resp.status_code == 404, (route, resp.status_code, resp.text)
        assert "not found" in resp.json()["detail"]["message"]
    # every route of ours that takes an id (or a key in its body) was tried
    paths = api.app.openapi()["paths"]
    ours = {
        (m.upper(), path)
        for path, ops in paths.items()
        for m in ops
        if path.startswith("/v1/")
        and "{" in path
        and not path.startswith("/v1/forecasts")
        and not path.startswith("/v1/events/cursors")
        and not path.startswith("/v1/webhooks")
        and not path.endswith("/channel")
        and not path.startswith("/v1/exceptions/rules")
    }  # cursors, webhook targets, supplier channels and exception rules are named per tenant, not ids
    assert ours | {("POST", "/v1/outbox/acks"), ("POST", "/v1/suppliers/responses")} == set(tried)
    # lists of b show none of a's records
    for path in ("/v1/recommendations", "/v1/outbox", "/v1/audit"):
        assert all(
            rid not in str(x) and sid not in str(x) for x in api.get(path, headers=api.h("b", "admin")).json()
        )
    assert api.get("/v1/events", headers=api.h("b", "admin")).json()["events"] == []
    # nothing of a changed
    h = api.h("a", "admin")
    assert api.get(f"/v1/recommendations/{rid}", headers=h).json()["version"] == a["routed"]["version"]
    assert api.get(f"/v1/recommendations/{sid}", headers=h).json()["state"] == "sent"
    assert api.get(f"/v1/exceptions/{xid}", headers=h).json()["state"] == "open"
    assert api.get("/v1/exceptions", headers=b_admin).json() == []
    assert api.get("/v1/audit/verify", headers=h).json()["ok"]
    assert all(k["revoked_at"] is None for k in api.get("/v1/keys", headers=h).json())


def _errors(resp):
    assert resp.status_code == 422, resp.text
    return {tuple(e["loc"]): e["msg"] for e in resp.json()["detail"]}


def test_bad_payloads_get_422_naming_the_field(api):
    h = api.h("a", "admin")
    errs = _errors(api.post("/v1/recommendations", json={**PO, "quantity": -3}, headers=h))
    assert ("body", "quantity") in errs and "greater than or equal to 0" in errs[("body", "quantity")]
    errs = _errors(
        api.post("/v1/recommendations", json={k: v for k, v in PO.items() if k != "supplier_id"}, headers=h)
    )
    assert "required when kind is 'purchase_order'" in errs[("body", "supplier_id")]
    errs = _errors(api.post("/v1/recommendations", json={**PO, "kind": "gift", "qty": 3}, headers=h))
    assert ("body", "kind") in errs and ("body", "qty") in errs
    errs = _errors(api.post("/v1/recommendations", json={**PO, "need_by": "next tuesday"}, headers=h))
    assert ("body", "need_by") in errs
    errs = _errors(api.post("/v1/recommendations", content='{"quantity": NaN}', headers=h))
    assert errs  # not even JSON
    rid = api.post("/v1/recommendations", json=PO, headers=h).json()["id"]
    errs = _errors(api.post(f"/v1/recommendations/{rid}/approve", json={"version": "two"}, headers=h))
    assert ("body", "version") in errs
    errs = _errors(
        api.post(f"/v1/recommendations/{rid}/override", json={"version": 2, "reason_code": "x"}, headers=h)
    )
    assert "must change quantity or need_by" in errs[("body", "need_by")]
    errs = _errors(
        api.post(
            f"/v1/recommendations/{rid}/supplier-responses",
            json={"status": "partial"},
            headers=api.h("a", "service"),
        )
    )
    assert "required when status is 'partial'" in errs[("body", "quantity")]
    errs = _errors(
        api.post(
            "/v1/events", json={"topic": "gossip", "type": "x", "key": "k"}, headers=api.h("a", "service")
        )
    )
    assert ("body", "topic") in errs
    errs = _errors(api.post("/v1/keys", json={"roles": ["overlord"]}, headers=h))
    assert ("body", "roles", 0) in errs
    errs = _errors(
        api.post(
            "/v1/telemetry/accuracy",
            headers=api.h("a", "service"),
            json={
                "rows": [
                    {"level": "sku", "model_version": "m", "y": 1, "y_hat": 1},
                    {"level": "sku", "model_version": "m", "y": 1, "y_hat": "lots"},
                ]
            },
        )
    )
    assert ("body", "rows", 1, "y_hat") in errs
    errs = _errors(api.get("/v1/recommendations?state=dreaming", headers=h))
    assert ("query", "state") in errs
    # nothing was stored by the refused requests
    assert len(api.get("/v1/recommendations", headers=h).json()) == 1


def test_authentication_and_roles(api):
    assert api.get("/v1/recommendations").status_code == 401
    assert api.get("/v1/recommendations", headers={"X-API-Key": "rpk_nope_nope"}).status_code == 401
    rid = api.post("/v1/recommendations", json=PO, headers=api.h("a", "service")).json()["id"]
    r = api.post(f"/v1/recommendations/{rid}/approve", json={"version": 2}, headers=api.h("a", "viewer"))
    assert r.status_code == 403 and "needs one of the roles" in r.json()["detail"]["message"]
    assert (
        api.post(
            f"/v1/recommendations/{rid}/approve", json={"version": 2}, headers=api.h("a", "service")
        ).status_code
        == 403
    )
    assert api.post("/v1/keys", json={"roles": ["viewer"]}, headers=api.h("a", "approver")).status_code == 403
    new = api.post("/v1/keys", json={"roles": ["viewer"], "name": "temp"}, headers=api.h("a", "admin")).json()
    hv = {"X-API-Key": new["api_key"]}
    assert api.get("/v1/recommendations", headers=hv).status_code == 200
    assert api.delete(f"/v1/keys/{new['key_id']}", headers=api.h("a", "admin")).status_code == 200
    assert api.get("/v1/recommendations", headers=hv).status_code == 401


def test_illegal_transition_and_conflict_over_http(api):
    h = api.h("a", "approver")
    rid = api.post("/v1/recommendations", json=PO, headers=api.h("a", "service")).json()["id"]
    assert api.post(f"/v1/recommendations/{rid}/approve", json={"version": 2}, headers=h).status_code == 200
    r = api.post(f"/v1/recommendations/{rid}/approve", json={"version": 2}, headers=h)
    assert r.status_code == 409 and r.json()["detail"]["current_state"] == "approved"
    r = api.post(f"/v1/recommendations/{rid}/reject", json={"version": 3, "reason_code": "late"}, headers=h)
    assert r.status_code == 409
    assert (
        r.json()["detail"]["error"] == "IllegalTransition"
        and "from state 'approved'" in r.json()["detail"]["message"]
    )


def test_http_approval_race_has_one_winner(api):
    rid = api.post("/v1/recommendations", json=PO, headers=api.h("a", "service")).json()["id"]
    codes, barrier, lock = [], threading.Barrier(8), threading.Lock()

    def go(i):
        barrier.wait()
        path = ("approve", "reject", "override")[i % 3]
        body = {"version": 2, "reason_code": "r", "quantity": 7} if path == "override" else {"version": 2}
        if path == "reject":
            body["reason_code"] = "r"
        r = api.post(f"/v1/recommendations/{rid}/{path}", json=body, headers=api.h("a", "approver"))
        with lock:
            codes.append(r.status_code)

    ts = [threading.Thread(target=go, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert Counter(codes) == {200: 1, 409: 7}


def test_flow_events_acks_supplier_telemetry_and_metrics(api, engine, tmp_path):
    svc, adm = api.h("a", "service"), api.h("a", "admin")
    rec = api.post("/v1/recommendations", json={**PO, "proposal_key": "plan-1/1"}, headers=svc).json()
    assert (
        api.post("/v1/recommendations", json={**PO, "proposal_key": "plan-1/1"}, headers=svc).json()["id"]
        == rec["id"]
    )
    r = api.post(
        f"/v1/recommendations/{rec['id']}/override",
        headers=api.h("a", "planner"),
        json={"version": 2, "quantity": 80, "reason_code": "promo_end", "comment": "promo ends early"},
    )
    assert r.status_code == 200 and r.json()["final_quantity"] == 80
    assert _dispatch(engine, tmp_path).delivered == 1
    key = api.get("/v1/outbox?status=delivered", headers=adm).json()[0]["idempotency_key"]
    ack = {"idempotency_key": key, "status": "accepted", "external_ref": "PO-9"}
    assert api.post("/v1/outbox/acks", json=ack, headers=svc).json()["duplicate"] is False
    assert api.post("/v1/outbox/acks", json=ack, headers=svc).json()["duplicate"] is True
    r = api.post(
        f"/v1/recommendations/{rec['id']}/supplier-responses",
        headers=svc,
        json={"status": "confirmed", "on_date": "2026-12-22"},
    )
    assert r.status_code == 201 and r.json()["confirmed_quantity"] == 80
    page = api.get("/v1/events?topic=replenishment", headers=adm).json()
    assert [e["type"] for e in page["events"]] == [
        "recommendation.proposed",
        "recommendation.routed",
        "recommendation.overridden",
        "recommendation.sent",
        "recommendation.acknowledged",
    ]
    assert api.put("/v1/events/cursors/erp", json={"position": page["next_cursor"]}, headers=adm).json() == {
        "consumer": "erp",
        "position": page["next_cursor"],
    }
    assert (
        api.post(
            "/v1/events",
            json={"topic": "sales", "type": "sale", "key": "SKU-1", "payload": {"q": 3}},
            headers=svc,
        ).status_code
        == 201
    )
    new = api.get(f"/v1/events?after={page['next_cursor']}", headers=adm).json()["events"]
    assert [e["topic"] for e in new] == ["supplier", "sales"]
    hist = api.get(f"/v1/recommendations/{rec['id']}/history", headers=adm).json()
    assert [h["action"].split(".")[1] for h in hist] == [
        "propose",
        "route",
        "override",
        "send",
        "acknowledge",
        "supplier_response",
    ]
    ev = api.get(f"/v1/recommendations/{rec['id']}/evidence", headers=adm).json()
    assert [e["kind"] for e in ev] == ["proposal", "override", "acknowledgement", "supplier_response"]
    assert (
        api.get(f"/v1/evidence/{rec['evidence_sha256']}", headers=adm).json()["body"]["model_version"]
        == "tft:3"
    )
    acc = api.post(
        "/v1/telemetry/accuracy",
        headers=svc,
        json={
            "period": "2026-11",
            "rows": [
                {"level": "sku", "model_version": "tft:3", "y": 10, "y_hat": 12, "lo": 8, "hi": 14},
                {"level": "sku", "model_version": "tft:3", "y": 30, "y_hat": 27, "lo": 20, "hi": 29},
            ],
        },
    )
    assert acc.status_code == 201
    assert math.isclose(acc.json()[0]["wape"], 5 / 40) and acc.json()[0]["coverage"] == 0.5
    summ = api.get("/v1/telemetry/summary", headers=api.h("a", "viewer")).json()
    assert summ["overrides"] == {"human_decisions": 1, "overrides": 1, "override_rate": 1.0}
    assert summ["recommendations_by_state"] == {"acknowledged": 1}
    assert any(
        u["route"] == "/v1/recommendations" for u in api.get("/v1/telemetry/usage", headers=adm).json()
    )
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=adm).status_code == 403
    text = api.get("/metrics", headers={"Authorization": f"Bearer {api.keys[('a', 'metrics')]}"}).text
    assert 'replenish_recommendations{state="acknowledged"} 1.0' in text
    assert 'replenish_requests_total{route="/v1/recommendations",status="201"}' in text
    assert 'tenant="' not in text and "replenish_forecast_wape" not in text and 'supplier="' not in text
    own = api.get("/v1/telemetry/metrics", headers=api.h("a", "viewer")).text
    assert 'replenish_forecast_wape{level="sku",model_version="tft:3"} 0.125' in own
    assert "replenish_override_rate 1.0" in own and 'tenant="' not in own
    assert "wape" not in api.get("/v1/telemetry/metrics", headers=api.h("b", "viewer")).text
