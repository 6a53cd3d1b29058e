"""Plan, what-if and risk routes over a real plan run of the bundled Stallion data (in-process app,
SQLite)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs():
    from serving.api.routes.plans import stallion_plan_inputs

    return stallion_plan_inputs()


@pytest.fixture(scope="module")
def client(inputs, tmp_path_factory):
    from fastapi.testclient import TestClient

    from features.settings import load_settings
    from features.store._db import session_scope
    from features.store._migrate import migrate
    from planning import PlanConfig, load_rules, plan, save_plan
    from serving.api._decision import build_decision_app
    from workflow import access

    settings = load_settings(home=tmp_path_factory.mktemp("home"))
    app = build_decision_app(settings, None, plan_inputs=lambda: inputs, plan_period_days=30)
    migrate(app.state.engine)
    with session_scope(app.state.engine) as s:
        for t in ("a", "b"):
            access.ensure_tenant(s, t)
        key_a = access.create_key(s, "a", ["viewer"], actor="test")[1]
        key_b = access.create_key(s, "b", ["viewer"], actor="test")[1]
    result = plan(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        config=PlanConfig(period_days=30),
        rules=load_rules("configs/routing.yaml"),
        extra_exceptions=inputs.exceptions,
    )
    run_id = save_plan(app.state.engine, "a", result)
    with TestClient(app) as c:
        c.run_id, c.result = run_id, result
        c.ha, c.hb = {"X-API-Key": key_a}, {"X-API-Key": key_b}
        yield c


def _units(inputs, n):
    return [
        f"{loc}|{sku}"
        for sku, loc in zip(inputs.units["sku_id"][:n], inputs.units["location_id"][:n], strict=True)
    ]


def test_latest_plan_and_risk_are_tenant_scoped(client):
    r = client.get("/v1/plans/latest", headers=client.ha)
    assert r.status_code == 200 and r.json()["run"]["run_id"] == client.run_id
    assert r.json()["counts"]["recommendations"] == client.result.recommendations.height
    assert client.get("/v1/plans/latest", headers=client.hb).status_code == 404
    assert client.get("/v1/plans/latest").status_code == 401
    risk = client.get("/v1/risk?kind=stockout", headers=client.ha).json()
    want = client.result.exceptions.filter(
        client.result.exceptions["exception_type"] == "stockout_risk"
    ).height
    assert risk["run_id"] == client.run_id and len(risk["items"]) == min(want, 200)
    assert all(i["exception_type"] == "stockout_risk" for i in risk["items"])
    assert client.get("/v1/risk", headers=client.hb).status_code == 404


def test_what_if_moves_the_plan_the_right_way_and_saves_nothing(client, inputs):
    units = _units(inputs, 12)
    before = client.get("/v1/plans/latest", headers=client.ha).json()["run"]["count"]

    up = client.post(
        "/v1/plans/what-if", json={"units": units, "fill_target": 0.99}, headers=client.ha
    ).json()
    for b, s in zip(up["base"], up["scenario"], strict=True):
        assert s["order_up_to"] >= b["order_up_to"] - 1e-6 and s["fill_rate"] >= b["fill_rate"] - 1e-3
    assert up["totals"]["scenario"]["order_qty"] >= up["totals"]["base"]["order_qty"]

    slow = client.post(
        "/v1/plans/what-if", json={"units": units, "lead_time_factor": 3.0}, headers=client.ha
    ).json()
    assert sum(s["order_up_to"] for s in slow["scenario"]) > sum(b["order_up_to"] for b in slow["base"])

    budget = 0.25 * up["totals"]["base"]["order_value"]
    tight = client.post(
        "/v1/plans/what-if", json={"units": units, "budget": budget}, headers=client.ha
    ).json()
    assert tight["totals"]["scenario"]["order_value"] <= budget + 1e-6
    assert tight["totals"]["base"]["order_value"] > budget

    after = client.get("/v1/plans/latest", headers=client.ha).json()["run"]["count"]
    assert after == before, "a what-if must not store a run"


def test_what_if_rejects_bad_input_with_the_field_named(client, inputs):
    units = _units(inputs, 2)
    r = client.post("/v1/plans/what-if", json={"units": units, "fill_target": 1.5}, headers=client.ha)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fill_target"]
    r = client.post("/v1/plans/what-if", json={"units": units}, headers=client.ha)
    assert r.status_code == 422
    r = client.post("/v1/plans/what-if", json={"units": ["Nowhere|SKU_99"], "budget": 1}, headers=client.ha)
    assert r.status_code == 404 and r.json()["detail"]["units"] == ["Nowhere|SKU_99"]
