"""The state machine on SQLite and PostgreSQL: every (state, action) pair, decisions, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from features.store._db import session_scope
from tests.workflow._helpers import propose, rec_in
from workflow import evidence, lifecycle, outbox
from workflow._models import AuditEntry, Event, OutboxItem
from workflow.errors import Forbidden, IllegalTransition, InvalidInput, NotFound, VersionConflict
from workflow.lifecycle import STATES, TRANSITIONS
from workflow.schemas import AckIn, ApproveIn, OverrideIn, RejectIn, Route, SupplierResponseIn

ROUTE = Route(queue="q2", role="planner", rule="r2", reason="again")


def _send(engine, rec_id):
    with session_scope(engine) as s:
        items = outbox.claim(s, "tester")
    item = next(i for i in items if i.recommendation_id == rec_id)
    with session_scope(engine) as s:
        assert outbox.record_success(s, item, "tester", external_ref="ERP-1")


def drive(engine, tenants, state: str) -> str:
    """A recommendation of tenant ``a`` brought to ``state`` through legal transitions only."""
    admin = tenants[("a", "admin")][0]
    if state == "proposed":
        return propose(engine, "a", route=None).id
    if state == "expired":
        past = datetime.now(UTC) - timedelta(minutes=1)
        rid = propose(engine, "a", expires_at=past).id
        with session_scope(engine) as s:
            assert lifecycle.expire_due(s, "a") >= 1
        return rid
    rid = propose(engine, "a").id
    if state == "routed":
        return rid
    with session_scope(engine) as s:
        if state == "overridden":
            lifecycle.override(s, admin, rid, OverrideIn(version=2, quantity=120, reason_code="promo"))
            return rid
        if state == "rejected":
            lifecycle.reject(s, admin, rid, RejectIn(version=2, reason_code="dup"))
            return rid
        lifecycle.approve(s, admin, rid, ApproveIn(version=2))
    if state == "approved":
        return rid
    _send(engine, rid)
    if state == "sent":
        return rid
    with session_scope(engine) as s:
        ack = AckIn(status="accepted" if state == "acknowledged" else "rejected", message="no such supplier")
        lifecycle.acknowledge(s, "a", rid, ack, actor="erp")
    if state in ("acknowledged", "failed"):
        return rid
    with session_scope(engine) as s:
        item = s.scalars(select(OutboxItem).where(OutboxItem.recommendation_id == rid)).one()
        outbox.replay(s, "a", item.id, actor="ops")
    assert state == "retried"
    return rid


def attempt(s, tenants, rec, action: str):
    admin = tenants[("a", "admin")][0]
    v = rec.version
    if action == "route":
        return lifecycle.route(s, "a", rec.id, ROUTE, actor="t", expected_version=v)
    if action == "approve":
        return lifecycle.approve(s, admin, rec.id, ApproveIn(version=v))
    if action == "override":
        return lifecycle.override(
            s, admin, rec.id, OverrideIn(version=v, quantity=rec.quantity + 7, reason_code="x")
        )
    if action == "reject":
        return lifecycle.reject(s, admin, rec.id, RejectIn(version=v, reason_code="x"))
    if action == "acknowledge":
        return lifecycle.acknowledge(s, "a", rec.id, AckIn(status="accepted"), actor="erp")
    row, _, _ = lifecycle._mark(s, "a", rec.id, action, actor="t")
    return SimpleNamespace(state=row["state"])


class _Rollback(Exception):
    pass


def _journal_len(engine):
    with session_scope(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(AuditEntry)),
            s.scalar(select(func.count()).select_from(Event)),
        )


def test_every_state_action_pair(engine, tenants):
    """Illegal pairs are refused naming the current state, writing nothing; legal ones reach their target."""
    refused = allowed = 0
    for state in STATES:
        rid = drive(engine, tenants, state)
        with session_scope(engine) as s:
            rec = lifecycle.get(s, "a", rid)
        assert rec.state == state
        for action, (sources, target) in TRANSITIONS.items():
            before = _journal_len(engine)
            if state in sources:
                with pytest.raises(_Rollback), session_scope(engine) as s:
                    out = attempt(s, tenants, rec, action)
                    assert out.state == target, (state, action)
                    raise _Rollback
                allowed += 1
            else:
                with pytest.raises(IllegalTransition) as ei, session_scope(engine) as s:
                    attempt(s, tenants, rec, action)
                assert ei.value.current == state
                assert f"from state {state!r}" in str(ei.value)
                refused += 1
            assert _journal_len(engine) == before, (state, action)
            with session_scope(engine) as s:
                assert lifecycle.get(s, "a", rid).version == rec.version
    assert allowed == sum(len(src) for src, _ in TRANSITIONS.values())
    assert refused == len(STATES) * len(TRANSITIONS) - allowed
    print(f"{allowed} legal and {refused} illegal (state, action) pairs checked")


def test_propose_route_approve_writes_outbox_event_audit(engine, tenants):
    admin = tenants[("a", "admin")][0]
    rec = propose(engine, "a")
    assert (rec.state, rec.version, rec.value) == ("routed", 2, 250.0)
    with session_scope(engine) as s:
        out = lifecycle.approve(s, admin, rec.id, ApproveIn(version=2, comment="fine"))
    assert (out.state, out.version, out.final_quantity, out.decided_by) == ("approved", 3, 100.0, admin.actor)
    with session_scope(engine) as s:
        items = s.scalars(select(OutboxItem)).all()
        assert [(i.idempotency_key, i.status, i.payload["quantity"]) for i in items] == [
            (f"{rec.id}-v3", "pending", 100.0)
        ]
        hist = lifecycle.history(s, "a", rec.id)
        assert [h.action for h in hist] == [
            "recommendation.propose",
            "recommendation.route",
            "recommendation.approve",
        ]
        assert hist[-1].before["state"] == "routed" and hist[-1].after["state"] == "approved"
        assert hist[-1].actor == admin.actor and hist[-1].reason == "fine"
        kinds = [e["kind"] for e in evidence.for_recommendation(s, "a", rec.id)]
        assert kinds == ["proposal", "planner_comment"]
        ev = evidence.get(s, "a", rec.evidence_sha256)
        assert ev.body["model_version"] == "tft:3"


def test_auto_approve_by_policy(engine, tenants):
    from workflow.schemas import AutoApprove

    rec = propose(engine, "a", route=None, auto_approve=AutoApprove(rule="value<1000"))
    assert rec.state == "approved" and rec.decided_by == "policy:value<1000"
    with session_scope(engine) as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 1


def test_override_changes_quantity_and_date_with_reason(engine, tenants):
    planner = tenants[("a", "planner")][0]
    rec = propose(engine, "a")
    with session_scope(engine) as s:
        with pytest.raises(InvalidInput, match="must change"):
            lifecycle.override(s, planner, rec.id, OverrideIn(version=2, quantity=100, reason_code="x"))
    with session_scope(engine) as s:
        out = lifecycle.override(
            s,
            planner,
            rec.id,
            OverrideIn(version=2, quantity=80, need_by="2026-12-24", reason_code="promo_end"),
        )
    assert (out.state, out.final_quantity, str(out.final_need_by), out.override_reason_code) == (
        "overridden",
        80.0,
        "2026-12-24",
        "promo_end",
    )
    assert out.value == pytest.approx(200.0)
    with session_scope(engine) as s:
        item = s.scalars(select(OutboxItem)).one()
        assert item.payload["quantity"] == 80.0 and item.payload["need_by"] == "2026-12-24"


def test_approval_limits_and_route_roles(engine, tenants):
    planner = tenants[("a", "planner")][0]  # default limit 10,000
    big = propose(engine, "a", quantity=10_000, unit_cost=2.0)  # value 20,000
    with session_scope(engine) as s:
        with pytest.raises(Forbidden, match="exceeds your approval limit 10000"):
            lifecycle.approve(s, planner, big.id, ApproveIn(version=2))
        with pytest.raises(Forbidden, match="exceeds"):  # an override is valued at its new quantity
            lifecycle.override(s, planner, big.id, OverrideIn(version=2, quantity=5000.5, reason_code="x"))
    with session_scope(engine) as s:  # cutting the buy to within the limit is allowed
        assert (
            lifecycle.override(
                s, planner, big.id, OverrideIn(version=2, quantity=3000, reason_code="budget")
            ).state
            == "overridden"
        )
    to_approver = propose(engine, "a", route=Route(queue="hv", role="approver", rule="v", reason="r"))
    with session_scope(engine) as s, pytest.raises(Forbidden, match="routed to role 'approver'"):
        lifecycle.approve(s, planner, to_approver.id, ApproveIn(version=2))
    with session_scope(engine) as s, pytest.raises(Forbidden):
        lifecycle.approve(s, tenants[("a", "service")][0], to_approver.id, ApproveIn(version=2))
    with session_scope(engine) as s:
        assert (
            lifecycle.approve(s, tenants[("a", "approver")][0], to_approver.id, ApproveIn(version=2)).state
            == "approved"
        )


def test_stale_version_conflicts(engine, tenants):
    admin = tenants[("a", "admin")][0]
    rec = propose(engine, "a")
    with session_scope(engine) as s, pytest.raises(VersionConflict) as ei:
        lifecycle.approve(s, admin, rec.id, ApproveIn(version=1))
    assert ei.value.current == 2 and ei.value.state == "routed"


def test_other_tenant_is_not_found(engine, tenants):
    rec = propose(engine, "a")
    b_admin = tenants[("b", "admin")][0]
    with session_scope(engine) as s:
        with pytest.raises(NotFound):
            lifecycle.get(s, "b", rec.id)
        with pytest.raises(NotFound):
            lifecycle.approve(s, b_admin, rec.id, ApproveIn(version=2))
        with pytest.raises(NotFound):
            evidence.get(s, "b", rec.evidence_sha256)
    with session_scope(engine) as s:
        assert lifecycle.get(s, "a", rec.id).state == "routed"


def test_proposal_key_is_idempotent(engine, tenants):
    first = propose(engine, "a", proposal_key="plan-7/SKU-1/DC-1")
    again = propose(engine, "a", proposal_key="plan-7/SKU-1/DC-1", quantity=5)
    assert again.id == first.id and again.quantity == 100.0
    other_tenant = propose(engine, "b", proposal_key="plan-7/SKU-1/DC-1")
    assert other_tenant.id != first.id


def test_supplier_responses_update_po_and_lead_time(engine, tenants):
    rid = drive(engine, tenants, "acknowledged")
    with session_scope(engine) as s:
        sent_at = lifecycle.get(s, "a", rid).sent_at
        r1 = lifecycle.record_supplier_response(
            s, "a", rid, SupplierResponseIn(status="partial", quantity=60), actor="supplier-portal"
        )
    assert r1.confirmed_quantity == 60.0 and r1.state == "acknowledged"
    received = (sent_at + timedelta(days=17)).date()
    with session_scope(engine) as s:
        lifecycle.record_supplier_response(
            s, "a", rid, SupplierResponseIn(status="received", quantity=60, on_date=received), actor="wms"
        )
    from workflow.telemetry import supplier_performance

    with session_scope(engine) as s:
        perf = supplier_performance(s, "a")
    assert perf == [
        {
            "supplier_id": "SUP-1",
            "received": 1,
            "otif": 0.0,
            "lead_time_drift_days": 3.0,
            "observed_lead_time_days": 17.0,
        }
    ]
    routed = propose(engine, "a")
    with session_scope(engine) as s, pytest.raises(IllegalTransition, match="'routed'"):
        lifecycle.record_supplier_response(
            s, "a", routed.id, SupplierResponseIn(status="confirmed"), actor="x"
        )


def test_ack_rejection_dead_letters_and_replay_retries(engine, tenants):
    rid = drive(engine, tenants, "failed")
    with session_scope(engine) as s:
        dead = outbox.list_items(s, "a", status="dead")
        assert [d.recommendation_id for d in dead] == [rid]
        assert "no such supplier" in dead[0].last_error
        outbox.replay(s, "a", dead[0].id, actor="ops")
    with session_scope(engine) as s:
        assert lifecycle.get(s, "a", rid).state == "retried"
        assert outbox.list_items(s, "a", status="pending")[0].idempotency_key == dead[0].idempotency_key
        with pytest.raises(InvalidInput, match="only dead items"):
            outbox.replay(s, "a", dead[0].id, actor="ops")


def test_four_eyes_threshold_and_per_rule_setting(engine, tenants):
    from workflow.rights import DecisionPolicy

    planner = tenants[("a", "planner")][0]
    with session_scope(engine) as s:  # the planner proposes itself (value 100 x 2.5 = 250)
        own = lifecycle.propose(s, "a", rec_in(), actor=planner.actor, proposed_by=planner.principal_id)
        small_rule = lifecycle.propose(
            s,
            "a",
            rec_in(route=Route(queue="q", role="planner", rule="tiny", reason="r")),
            actor=planner.actor,
            proposed_by=planner.principal_id,
        )
    strict = DecisionPolicy(four_eyes_above=0.0, four_eyes_rules={"tiny": None})
    with session_scope(engine) as s, pytest.raises(Forbidden, match="four-eyes"):
        lifecycle.approve(s, planner, own.id, ApproveIn(version=2), policy=strict)
    with session_scope(engine) as s:  # the rule turns four-eyes off for its items
        assert (
            lifecycle.approve(s, planner, small_rule.id, ApproveIn(version=2), policy=strict).state
            == "approved"
        )
    with session_scope(engine) as s:  # above 1,000 only: 250 passes
        relaxed = DecisionPolicy(four_eyes_above=1000.0)
        assert lifecycle.approve(s, planner, own.id, ApproveIn(version=2), policy=relaxed).state == "approved"
