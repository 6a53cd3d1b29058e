"""The approval gate and the API's limits as a hostile client would try them (real app, real stores).

Each test of a bypass fails on the code before issue 13: the value came from the client, a missing unit cost
valued the order at 0, a client could auto-approve, an override of a quantity-0 proposal was valued at 0, a
proposer could approve their own proposal, a viewer could move an event consumer's cursor.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from features.settings import load_settings
from features.store._db import session_scope
from serving.api.main import create_app
from tests.workflow._helpers import seed_catalogue
from workflow import access

PO = {
    "kind": "purchase_order",
    "sku_id": "SKU-1",
    "location_id": "DC-1",
    "supplier_id": "SUP-1",
    "quantity": 100,
    "route": {"queue": "buyers", "role": "planner", "rule": "value>100", "reason": "review"},
}
ROLES = ("admin", "approver", "planner", "service", "viewer", "metrics")


def _client(engine, db_url, **settings):
    keys = {}
    with session_scope(engine) as s:
        for t in ("a", "b"):
            access.ensure_tenant(s, t)
            seed_catalogue(s, t, skus=("SKU-1", "SKU-2"), cost=50.0)
            for role in ROLES:
                keys[(t, role)] = access.create_key(s, t, [role], name=f"{t}-{role}")[1]
            keys[(t, "planner2")] = access.create_key(s, t, ["planner"], name=f"{t}-planner2")[1]
    app = create_app(load_settings(database_url=db_url, **settings), engine=engine)
    client = TestClient(app, raise_server_exceptions=False)
    client.keys = keys
    client.h = lambda t, role: {"X-API-Key": keys[(t, role)]}
    return client


@pytest.fixture
def api(engine, db_url):
    with _client(engine, db_url) as client:
        yield client


def _propose(api, body, role="planner", tenant="a"):
    return api.post("/v1/recommendations", json=body, headers=api.h(tenant, role))


# -- the bypasses -------------------------------------------------------------------------------------------


def test_self_declared_value_is_refused_and_the_server_values_the_order(api):
    r = _propose(api, {**PO, "quantity": 1_000_000, "value": 1})
    assert r.status_code == 422 and "value" in r.text
    rec = _propose(api, {**PO, "quantity": 1_000_000}).json()
    assert rec["value"] == 50_000_000 and rec["unit_cost"] == 50 and rec["cost_source"] == "supplier_terms"
    r = api.post(
        f"/v1/recommendations/{rec['id']}/approve", json={"version": 2}, headers=api.h("a", "planner2")
    )
    assert r.status_code == 403 and "exceeds your approval limit" in r.text
    assert (
        api.get(f"/v1/recommendations/{rec['id']}", headers=api.h("a", "viewer")).json()["state"] == "routed"
    )


def test_missing_unit_cost_never_values_an_order_at_zero(api):
    r = _propose(api, {**PO, "quantity": 1_000_000, "unit_cost": 0})
    assert r.status_code == 422 and "unit_cost" in r.text  # the client may not name a cost either
    # an item with no stored cost is routed to admins (default) ...
    rec = _propose(api, {**PO, "sku_id": "SKU-UNKNOWN", "quantity": 1_000_000}).json()
    assert rec["cost_source"] == "unknown" and rec["route_role"] == "admin" and rec["unit_cost"] is None
    for role in ("planner2", "approver"):
        r = api.post(
            f"/v1/recommendations/{rec['id']}/approve", json={"version": 2}, headers=api.h("a", role)
        )
        assert r.status_code == 403 and "unit cost is unknown" in r.text
    r = api.post(f"/v1/recommendations/{rec['id']}/approve", json={"version": 2}, headers=api.h("a", "admin"))
    assert r.status_code == 200


def test_unknown_cost_is_refused_when_configured(engine, db_url):
    with _client(engine, db_url, unknown_cost="refuse") as api:
        r = _propose(api, {**PO, "sku_id": "SKU-UNKNOWN"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sku_id"]
        assert api.get("/v1/recommendations", headers=api.h("a", "viewer")).json() == []


def test_client_cannot_auto_approve(api):
    for role in ("planner", "service", "admin"):
        body = {**PO, "route": None, "auto_approve": {"rule": "small", "reason": "trust me"}}
        r = _propose(api, body, role=role)
        assert r.status_code == 422 and "auto_approve" in r.text
    assert api.get("/v1/recommendations", headers=api.h("a", "viewer")).json() == []
    assert api.get("/v1/outbox", headers=api.h("a", "viewer")).json() == []


def test_server_side_auto_approval_respects_the_value_cap(engine):
    from workflow.lifecycle import propose_many
    from workflow.rights import DecisionPolicy
    from workflow.schemas import AutoApprove, RecommendationIn

    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
        seed_catalogue(s, "a", skus=("SKU-1",), cost=50.0)
        small, big = propose_many(
            s,
            "a",
            [
                RecommendationIn(
                    **{**PO, "route": None, "quantity": q, "value": 1.0},
                    auto_approve=AutoApprove(rule="small"),
                )
                for q in (10, 1000)
            ],
            actor="planning:run-1",
            policy=DecisionPolicy(auto_approve_max_value=10_000),
        )
    assert small.state == "approved" and small.value == 500 and small.decided_by == "policy:small"
    assert big.state == "routed" and big.value == 50_000 and big.route_role == "approver"
    assert "above the auto-approval cap" in big.route_reason


def test_override_of_a_quantity_zero_proposal_is_valued_on_the_server(api):
    rec = _propose(api, {**PO, "quantity": 0}, role="service").json()
    assert rec["value"] == 0
    r = api.post(
        f"/v1/recommendations/{rec['id']}/override",
        json={"version": 2, "quantity": 1_000_000, "reason_code": "x"},
        headers=api.h("a", "planner"),
    )
    assert r.status_code == 403 and "50000000.00 exceeds your approval limit" in r.text
    r = api.post(
        f"/v1/recommendations/{rec['id']}/override",
        json={"version": 2, "quantity": 100, "reason_code": "x"},
        headers=api.h("a", "planner"),
    )
    assert r.status_code == 200 and r.json()["value"] == 5000


def test_proposer_cannot_approve_own_proposal(api):
    rec = _propose(api, {**PO, "quantity": 10}).json()
    for action, body in (
        ("approve", {"version": 2}),
        ("override", {"version": 2, "quantity": 9, "reason_code": "x"}),
    ):
        r = api.post(f"/v1/recommendations/{rec['id']}/{action}", json=body, headers=api.h("a", "planner"))
        assert r.status_code == 403 and "four-eyes" in r.text
    r = api.post(
        f"/v1/recommendations/{rec['id']}/approve", json={"version": 2}, headers=api.h("a", "planner2")
    )
    assert r.status_code == 200 and r.json()["proposed_by"] != r.json()["decided_by"]


def test_viewer_cannot_move_an_event_cursor_and_admin_reset_is_audited(api):
    r = api.put("/v1/events/cursors/erp", json={"position": 10**6}, headers=api.h("a", "viewer"))
    assert r.status_code == 403
    assert api.get("/v1/events/cursors/erp", headers=api.h("a", "viewer")).json()["position"] == 0
    svc = api.h("a", "service")
    assert api.put("/v1/events/cursors/erp", json={"position": 7}, headers=svc).json()["position"] == 7
    assert api.put("/v1/events/cursors/erp", json={"position": 3}, headers=svc).json()["position"] == 7
    r = api.post("/v1/events/cursors/erp/reset", json={"position": 2}, headers=svc)
    assert r.status_code == 403
    r = api.post("/v1/events/cursors/erp/reset", json={"position": 2}, headers=api.h("a", "admin"))
    assert r.json()["position"] == 2
    audit = api.get("/v1/audit?entity_type=event_cursor", headers=api.h("a", "viewer")).json()
    assert [(e["action"], e["before"], e["after"]) for e in audit] == [
        ("event_cursor.reset", {"position": 7}, {"position": 2})
    ]


# -- hostile input: 4xx naming the field, never a 5xx --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"topic": "sales", "type": "s", "key": "k", "payload": {"q": NaN}}',
        '{"topic": "sales", "type": "s", "key": "k", "payload": {"q": Infinity}}',
        '{"topic": "sales", "type": "s", "key": "k", "payload": {"q": [1e400]}}',
        '{"topic": "sales", "type": "s", "key": "k", "payload": {"q": 9223372036854775808}}',
        '{"topic": "sales", "type": "s", "key": "k\\u0000", "payload": {}}',
        '{"topic": "sales", "type": "s", "key": "k", "payload": {"a\\u0000": 1}}',
    ],
)
def test_event_payloads_the_store_cannot_keep_are_422(api, body):
    r = api.post(
        "/v1/events", content=body, headers={**api.h("a", "service"), "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    assert "payload" in r.text or "key" in r.text


def test_numbers_and_ids_that_would_overflow_are_422(api):
    h = api.h("a", "service")
    r = _propose(api, {**PO, "quantity": 1e308}, role="service")
    assert r.status_code == 422 and "quantity" in r.text
    r = _propose(api, {**PO, "sku_id": "SKU\x001"}, role="service")
    assert r.status_code == 422 and "sku_id" in r.text and "NUL" in r.text
    big = 2**63
    for url in (
        f"/v1/outbox/{big}",
        f"/v1/events?after={big}",
        f"/v1/recommendations?offset={big}",
        f"/v1/audit?after={big}",
        "/v1/recommendations?queue=a%00b",
    ):
        r = api.get(url, headers=h)
        assert r.status_code == 422, (url, r.status_code, r.text)
    # ids made only of digits are still ids, not integers: found or not found, never refused
    assert api.get("/v1/recommendations/" + "9" * 32, headers=h).status_code == 404
    assert api.get("/v1/audit?entity_id=" + "9" * 32, headers=h).status_code == 200
    r = api.put("/v1/events/cursors/erp", json={"position": big}, headers=h)
    assert r.status_code == 422 and "position" in r.text
    rec = _propose(api, PO, role="service").json()
    r = api.post(
        f"/v1/recommendations/{rec['id']}/approve", json={"version": big}, headers=api.h("a", "admin")
    )
    assert r.status_code == 422 and "version" in r.text


def test_body_size_limit_is_413(api):
    h = {**api.h("a", "service"), "Content-Type": "application/json"}
    body = '{"topic": "sales", "type": "s", "key": "k", "payload": {"blob": "' + "x" * 2_000_000 + '"}}'
    r = api.post("/v1/events", content=body, headers=h)
    assert r.status_code == 413 and "larger than 1048576 bytes" in r.text
    data = body.encode()  # the same body chunked, without a Content-Length
    r = api.post("/v1/events", content=(data[i : i + 65536] for i in range(0, len(data), 65536)), headers=h)
    assert r.status_code == 413
    small = b'{"topic": "sales", "type": "s", "key": "k", "payload": {"q": 1}}'
    r = api.post("/v1/events", content=(small[i : i + 7] for i in range(0, len(small), 7)), headers=h)
    assert r.status_code == 201  # a small chunked body is read and replayed intact
    assert [e["payload"] for e in api.get("/v1/events", headers=api.h("a", "viewer")).json()["events"]] == [
        {"q": 1}
    ]


def test_unhandled_errors_answer_json_500_without_internals(api):
    @api.app.get("/boom")
    def boom():
        raise RuntimeError("secret connection string postgresql://u:p@db")

    r = api.get("/boom")
    assert r.status_code == 500 and r.json()["detail"]["error"] == "InternalError"
    assert "postgresql" not in r.text and "RuntimeError" not in r.text


# -- metrics ----------------------------------------------------------------------------------------------


def test_metrics_need_a_metrics_key_and_stay_small_with_50k_posted_labels(api):
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=api.h("a", "admin")).status_code == 403
    svc = api.h("a", "service")
    for chunk in range(5):
        rows = [
            {"level": f"lvl-{chunk}-{i}", "model_version": "m", "y": 1, "y_hat": 2} for i in range(10_000)
        ]
        assert api.post("/v1/telemetry/accuracy", json={"rows": rows}, headers=svc).status_code == 201
    text = api.get("/metrics", headers={"Authorization": f"Bearer {api.keys[('a', 'metrics')]}"}).text
    lines = text.strip().split("\n")
    assert len(lines) < 1000 and 'tenant="' not in text and "lvl-" not in text
    own = api.get("/v1/telemetry/metrics", headers=api.h("a", "viewer")).text.strip().split("\n")
    assert len(own) < 1000 and "replenish_series_truncated 1.0" in own


# -- rate limits, quotas and usage ---------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(engine, db_url):
    with _client(engine, db_url, rate_limit_per_key=1.0, rate_burst_per_key=3) as api:
        codes = [api.get("/v1/recommendations", headers=api.h("a", "viewer")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        r = api.get("/v1/recommendations", headers=api.h("a", "viewer"))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert api.get("/v1/recommendations", headers=api.h("a", "admin")).status_code == 200  # another key


def test_daily_quota_and_usage_survive_a_restart(engine, db_url):
    with _client(engine, db_url, tenant_daily_quota=5) as api:
        for _ in range(4):
            assert api.get("/v1/recommendations", headers=api.h("a", "viewer")).status_code == 200
    # a new app (a restart) on the same store: the day's usage is still there and counts against the quota
    with _client(engine, db_url, tenant_daily_quota=5) as api:
        usage = api.get("/v1/telemetry/usage", headers=api.h("a", "admin")).json()
        got = {(u["route"], u["status_class"]): u["requests"] for u in usage}
        assert got[("/v1/recommendations", "2xx")] == 4
        r = api.get("/v1/recommendations", headers=api.h("a", "viewer"))
        assert r.status_code == 429 and "quota" in r.text and int(r.headers["Retry-After"]) >= 1
        assert api.get("/v1/recommendations", headers=api.h("b", "viewer")).status_code == 200


# -- keys ---------------------------------------------------------------------------------------------------


def test_key_rotation_expiry_and_revocation(api):
    adm = api.h("a", "admin")
    new = api.post("/v1/keys", json={"roles": ["viewer"], "expires_in_days": 1}, headers=adm).json()
    old_secret = new["api_key"]
    rot = api.post(f"/v1/keys/{new['key_id']}/rotate", json={"grace_seconds": 600}, headers=adm).json()
    assert (
        rot["key_id"] == new["key_id"]
        and rot["api_key"] != old_secret
        and "api_key" not in api.get("/v1/keys", headers=adm).json()[0]
    )
    for k in (old_secret, rot["api_key"]):  # two valid secrets during the window
        assert api.get("/v1/recommendations", headers={"X-API-Key": k}).status_code == 200
    rot2 = api.post(f"/v1/keys/{new['key_id']}/rotate", json={"grace_seconds": 0}, headers=adm).json()
    assert api.get("/v1/recommendations", headers={"X-API-Key": rot["api_key"]}).status_code == 401
    assert api.get("/v1/recommendations", headers={"X-API-Key": rot2["api_key"]}).status_code == 200
    api.delete(f"/v1/keys/{new['key_id']}", headers=adm)
    assert api.get("/v1/recommendations", headers={"X-API-Key": rot2["api_key"]}).status_code == 401


def test_expired_key_is_refused(engine):
    from datetime import timedelta

    from features.store._db import utcnow

    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
        _, key = access.create_key(s, "a", ["viewer"], expires_at=utcnow() - timedelta(seconds=1))
        _, live = access.create_key(s, "a", ["viewer"], expires_at=utcnow() + timedelta(days=1))
    with session_scope(engine) as s:
        assert access.authenticate(s, key) is None and access.authenticate(s, live) is not None


def test_long_key_names_fit_the_actor_columns(api):
    adm = api.h("a", "admin")
    k = api.post("/v1/keys", json={"roles": ["service"], "name": "n" * 200}, headers=adm).json()["api_key"]
    rec = _propose(api, {**PO, "quantity": 1}, role="service")
    r = api.post("/v1/recommendations", json={**PO, "quantity": 2}, headers={"X-API-Key": k})
    assert rec.status_code == 201 and r.status_code == 201 and len(r.json()["proposed_by"]) <= 200


# -- webhooks per tenant -----------------------------------------------------------------------------------


def test_webhook_targets_are_per_tenant_and_secrets_write_only(api):
    adm = api.h("a", "admin")
    body = {"url": "https://erp.example/hook", "secret": "s" * 40}
    r = api.put("/v1/webhooks/erp", json=body, headers=adm)
    assert r.status_code == 200 and "secret" not in r.json() and r.json()["secret_set"] is True
    assert "s" * 40 not in api.get("/v1/webhooks", headers=adm).text
    assert api.get("/v1/webhooks", headers=api.h("b", "admin")).json() == []
    assert api.put("/v1/webhooks/erp", json={**body, "secret": "short"}, headers=adm).status_code == 422
    assert api.put("/v1/webhooks/erp", json=body, headers=api.h("a", "service")).status_code == 403
