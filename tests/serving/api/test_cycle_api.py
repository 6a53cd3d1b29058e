"""``/v1/cycles``: start a cycle run for the caller's tenant in the background, report it, per tenant only."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from features.store._db import session_scope
from tests.serving import _cycle_data
from tests.serving._cycle_data import TENANT, store_forecast
from workflow import access

settings, ingested = _cycle_data.settings, _cycle_data.ingested  # the shared fixtures


@pytest.fixture
def api(settings, ingested):
    from serving.api.main import ROUTERS, create_app
    from serving.api.routes import cycles

    assert cycles.router in ROUTERS  # the one app builder serves it
    engine, data = ingested
    store_forecast(settings, data)
    keys = {}
    with session_scope(engine) as s:
        access.ensure_tenant(s, "other")
        for t in (TENANT, "other"):
            for role in ("admin", "service", "planner", "viewer"):
                keys[(t, role)] = access.create_key(s, t, [role], name=f"{t}-{role}")[1]
    app = create_app(settings, engine=engine)
    with TestClient(app) as client:
        client.h = lambda t, role: {"X-API-Key": keys[(t, role)]}
        client.engine = engine
        yield client


def _wait(api, run_id, headers, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/v1/cycles/{run_id}", headers=headers).json()
        if run["status"] in ("succeeded", "failed"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"cycle {run_id} still {run['status']} after {timeout} s")


def test_post_starts_a_run_for_the_callers_tenant_and_get_reports_it(api):
    started = api.post("/v1/cycles", json={"stages": ["propose", "plan"]}, headers=api.h(TENANT, "service"))
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["stages"] == ["plan", "propose"] and body["status"] == "queued"
    assert body["url"] == f"/v1/cycles/{body['run_id']}"

    run = _wait(api, body["run_id"], api.h(TENANT, "viewer"))
    assert run["status"] == "succeeded", run["error"]
    assert run["tenant_id"] == TENANT and run["requested_by"].startswith("key:")
    plan, propose = run["stages"]
    assert plan["outputs"]["plan_run"] == run["run_id"] and plan["outputs"]["reconciliation_method"]
    assert propose["counts"]["created"] == plan["counts"]["recommendations"] > 0
    assert run["started_at"] <= run["finished_at"]

    listed = api.get("/v1/cycles", headers=api.h(TENANT, "planner")).json()
    assert [r["run_id"] for r in listed] == [run["run_id"]]


def test_another_tenants_run_is_not_found_and_not_listed(api):
    started = api.post("/v1/cycles", json={"stages": ["plan"]}, headers=api.h(TENANT, "admin"))
    run_id = started.json()["run_id"]
    _wait(api, run_id, api.h(TENANT, "admin"))
    other = api.get(f"/v1/cycles/{run_id}", headers=api.h("other", "admin"))
    assert other.status_code == 404 and other.json()["detail"]["message"] == f"cycle run {run_id} not found"
    assert api.get("/v1/cycles", headers=api.h("other", "viewer")).json() == []
    assert api.get("/v1/cycles/nope", headers=api.h(TENANT, "viewer")).status_code == 404


def test_roles_input_and_one_run_per_tenant_at_a_time(api):
    from features.runs import create_run

    assert api.post("/v1/cycles", json={}, headers=api.h(TENANT, "planner")).status_code == 403
    assert api.post("/v1/cycles", json={}).status_code == 401
    bad = api.post("/v1/cycles", json={"stages": ["bake"]}, headers=api.h(TENANT, "service"))
    assert bad.status_code == 422 and "stages" in bad.text
    assert api.post("/v1/cycles", json={"stages": []}, headers=api.h(TENANT, "service")).status_code == 422
    queued = create_run(api.engine, TENANT, ["plan"], requested_by="scheduler")  # another run not done yet
    busy = api.post("/v1/cycles", json={"stages": ["plan"]}, headers=api.h(TENANT, "service"))
    assert busy.status_code == 409 and queued in busy.json()["detail"]
    # ... but it does not block another tenant (which has no data: its plan stage fails, recorded).
    other = api.post("/v1/cycles", json={"stages": ["plan"]}, headers=api.h("other", "service"))
    assert other.status_code == 202
    failed = _wait(api, other.json()["run_id"], api.h("other", "viewer"))
    assert failed["status"] == "failed" and "other" in failed["error"]


def test_a_failed_stage_is_reported_with_its_message(api):
    from features.profile import update_profile

    update_profile(api.engine, TENANT, routing="/nonexistent/routing.yaml")
    run_id = api.post("/v1/cycles", json={"stages": ["plan", "propose"]}, headers=api.h(TENANT, "service"))
    run = _wait(api, run_id.json()["run_id"], api.h(TENANT, "viewer"))
    assert run["status"] == "failed" and run["error"].startswith("plan: ")
    assert [s["status"] for s in run["stages"]] == ["failed", "skipped"]
