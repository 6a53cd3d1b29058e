"""The planning -> workflow hand-off (workflow.proposals.propose_plan) on a real state store."""

from __future__ import annotations

import pytest

from features.store._db import session_scope
from tests.workflow._helpers import ingest_plan_catalogue
from workflow.lifecycle import list_recommendations
from workflow.proposals import propose_plan


def _all(engine, tenant):
    with session_scope(engine) as s:
        return list_recommendations(s, tenant, limit=10_000)


def test_propose_plan_routes_and_auto_approves_as_planning_decided_and_is_idempotent(
    engine, plan_result, tmp_path
):
    from planning import save_plan

    ingest_plan_catalogue(engine, "acme", tmp_path)
    recs = plan_result.recommendations
    routed = recs.filter(recs["action"] == "route")
    auto = recs.filter(recs["action"] == "auto_approve")
    assert routed.height > 0 and auto.height > 0, "the fixture must exercise both decisions"
    run_id = save_plan(engine, "acme", plan_result, create_tenant=True)

    first = propose_plan(engine, "acme", run_id)
    assert (first.total, first.created, first.existing) == (recs.height, recs.height, 0)
    assert first.by_state == {"approved": auto.height, "routed": routed.height}
    stored = _all(engine, "acme")
    assert len(stored) == recs.height
    by_sku_loc = {(r.sku_id, r.location_id): r for r in stored}
    for row in routed.iter_rows(named=True):
        r = by_sku_loc[(row["sku_id"], row["location_id"])]
        assert (r.state, r.route_queue, r.route_role) == ("routed", "buyers", "planner")
        assert r.route_rule == "big_buy"
        assert r.value == pytest.approx(row["order_value"], rel=1e-6)
    for row in auto.iter_rows(named=True):
        r = by_sku_loc[(row["sku_id"], row["location_id"])]
        assert r.state == "approved" and r.decided_by == "policy:default"
        assert r.quantity == pytest.approx(row["order_qty"])

    again = propose_plan(engine, "acme", run_id)
    assert (again.created, again.existing, again.total) == (0, recs.height, recs.height)
    assert again.by_state == first.by_state
    assert len(_all(engine, "acme")) == recs.height  # nothing added


def test_auto_approvals_of_items_without_a_stored_cost_go_to_approvers(engine, plan_result):
    """Planning's auto-approval is a server-side rule, but the value it is capped by needs a known cost."""
    from planning import save_plan

    run_id = save_plan(engine, "acme", plan_result, create_tenant=True)  # no catalogue ingested
    result = propose_plan(engine, "acme", run_id)
    assert "approved" not in result.by_state  # nothing reaches the outbox unvalued
    stored = _all(engine, "acme")
    auto = plan_result.recommendations.filter(plan_result.recommendations["action"] == "auto_approve")
    keys = {(r["sku_id"], r["location_id"]) for r in auto.iter_rows(named=True)}
    held = [r for r in stored if (r.sku_id, r.location_id) in keys]
    assert held and all(r.state == "routed" and r.route_role in ("approver", "admin") for r in held)


def test_the_evidence_names_the_forecast_and_the_plan_run(engine, plan_result):
    from planning import save_plan
    from workflow.evidence import get as get_evidence

    run_id = save_plan(engine, "acme", plan_result, create_tenant=True)
    propose_plan(engine, "acme", run_id, actor="cycle:test")
    rec = _all(engine, "acme")[0]
    with session_scope(engine) as s:
        body = get_evidence(s, "acme", rec.evidence_sha256).body
    meta = plan_result.meta
    assert body["forecast_version"] == meta["forecast_version"]
    assert body["forecast"]["source"] == meta["forecast_source"]
    assert body["plan_run"] == run_id and body["assumptions"]["plan_run"] == run_id
    assert body["simulation"]["n_paths"] == 64
    assert "bound_by" in body["constraints"] and body["planning_kind"] == "purchase"
    assert body["order"]["order_qty"] == rec.quantity and "on_hand" in body["inventory"]
    assert body["constraints"]["supplier"]["supplier_id"] == rec.supplier_id
    assert set(body["quantiles"]) == {"p05", "p50", "p95"}


def test_two_plan_runs_are_proposed_separately_and_another_tenant_cannot_propose_them(engine, plan_result):
    from planning import save_plan

    n = plan_result.recommendations.height
    first = save_plan(engine, "acme", plan_result, create_tenant=True)
    second = save_plan(engine, "acme", plan_result)
    propose_plan(engine, "acme", first)
    assert propose_plan(engine, "acme", second).created == n
    assert len(_all(engine, "acme")) == 2 * n
    save_plan(engine, "other", plan_result, create_tenant=True)
    with pytest.raises(LookupError, match="no plan run"):
        propose_plan(engine, "other", first)
    assert _all(engine, "other") == []


def test_no_plan_run_id_proposes_the_tenants_newest_run(engine, plan_result):
    from planning import save_plan

    save_plan(engine, "acme", plan_result, create_tenant=True)
    newest = save_plan(engine, "acme", plan_result)
    result = propose_plan(engine, "acme", None)
    assert result.plan_run_id == newest and result.created == plan_result.recommendations.height
    with pytest.raises(LookupError, match="no plan run"):
        propose_plan(engine, "nobody", None)
