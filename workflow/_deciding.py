"""Planners' decisions on routed recommendations: approve, override, reject, comment, and expiry.

Internal to :mod:`workflow`; other packages import these names from :mod:`workflow.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._journal import AuditRecord, append
from workflow._machine import _R, TRANSITIONS, _attach, _load, _out, _outbox_row, _transition
from workflow.access import Principal
from workflow.errors import IllegalTransition, InvalidInput, VersionConflict
from workflow.rights import UNKNOWN, DecisionPolicy, check_decider, current_policy, unit_costs, valuation
from workflow.schemas import ApproveIn, OverrideIn, RecommendationOut, RejectIn


def approve(
    session: Session,
    principal: Principal,
    rec_id: str,
    body: ApproveIn,
    *,
    policy: DecisionPolicy | None = None,
) -> RecommendationOut:
    """Approve a routed recommendation as proposed and write it to the outbox (``routed -> approved``).

    Raises:
        VersionConflict: ``body.version`` is stale (someone else acted first).
        IllegalTransition: it is not ``routed``.
        Forbidden: the caller's role is below the route's role, the (server-computed) value exceeds the
            caller's limit, the cost is unknown and the caller is not an unlimited admin, or the caller
            proposed it (four-eyes).
    """
    policy = policy or current_policy()
    now = utcnow()
    actor = principal.actor

    def guard(row: Mapping[str, Any]) -> None:
        check_decider(
            principal, row, value=row["value"], unknown_cost=row["cost_source"] == UNKNOWN, policy=policy
        )

    row, a, e = _transition(
        session,
        principal.tenant_id,
        rec_id,
        "approve",
        actor=actor,
        expected_version=body.version,
        guard=guard,
        reason=body.comment,
        changes=lambda r: {
            "decided_by": actor,
            "decided_at": now,
            "final_quantity": r["quantity"],
            "final_need_by": r["need_by"],
        },
    )
    if body.comment:
        _attach(session, principal.tenant_id, rec_id, "planner_comment", {"text": body.comment}, actor)
    append(session, principal.tenant_id, [a], [e], outbox_rows=[_outbox_row(row)])
    return _out(row)


def override(
    session: Session,
    principal: Principal,
    rec_id: str,
    body: OverrideIn,
    *,
    policy: DecisionPolicy | None = None,
) -> RecommendationOut:
    """Approve with a changed quantity and/or date and a reason code (``routed -> overridden``).

    The override is re-valued on the server (new quantity times the stored unit cost, looked up again) and
    checked against the caller's approval limit and the four-eyes rule like an approval.
    """
    policy = policy or current_policy()
    policy.check_reason(body.reason_code)
    now = utcnow()
    actor = principal.actor
    cur = _load(session, principal.tenant_id, rec_id)
    new_qty = body.quantity if body.quantity is not None else cur["quantity"]
    new_date = body.need_by if body.need_by is not None else cur["need_by"]
    if new_qty == cur["quantity"] and new_date == cur["need_by"]:
        raise InvalidInput(
            "quantity",
            "an override must change quantity or need_by from the proposal "
            f"(quantity {cur['quantity']}, need_by {cur['need_by']})",
        )
    costs = unit_costs(session, principal.tenant_id, [(cur["kind"], cur["sku_id"], cur["supplier_id"])])
    unit_cost, value, source = valuation(
        costs, cur["kind"], cur["sku_id"], cur["supplier_id"], new_qty, replace(policy, unknown_cost="route")
    )

    def guard(row: Mapping[str, Any]) -> None:
        check_decider(principal, row, value=value, unknown_cost=source == UNKNOWN, policy=policy)

    row, a, e = _transition(
        session,
        principal.tenant_id,
        rec_id,
        "override",
        actor=actor,
        expected_version=body.version,
        guard=guard,
        reason=body.comment or body.reason_code,
        changes={
            "decided_by": actor,
            "decided_at": now,
            "final_quantity": new_qty,
            "final_need_by": new_date,
            "override_reason_code": body.reason_code,
            "unit_cost": unit_cost,
            "value": value,
            "cost_source": source,
        },
    )
    _attach(
        session,
        principal.tenant_id,
        rec_id,
        "override",
        {
            "reason_code": body.reason_code,
            "comment": body.comment,
            "from_quantity": cur["quantity"],
            "to_quantity": new_qty,
            "from_need_by": cur["need_by"],
            "to_need_by": new_date,
        },
        actor,
    )
    append(session, principal.tenant_id, [a], [e], outbox_rows=[_outbox_row(row)])
    return _out(row)


def reject(
    session: Session,
    principal: Principal,
    rec_id: str,
    body: RejectIn,
    *,
    policy: DecisionPolicy | None = None,
) -> RecommendationOut:
    """Reject a proposed or routed recommendation with a reason code (``-> rejected``, terminal).

    Needs the route's role (no value check: rejecting spends nothing; the proposer may withdraw).
    """
    policy = policy or current_policy()
    policy.check_reason(body.reason_code)
    actor = principal.actor

    def guard(row: Mapping[str, Any]) -> None:
        check_decider(principal, row, value=None, unknown_cost=False, policy=policy, four_eyes=False)

    row, a, e = _transition(
        session,
        principal.tenant_id,
        rec_id,
        "reject",
        actor=actor,
        expected_version=body.version,
        guard=guard,
        reason=body.comment or body.reason_code,
        changes={"decided_by": actor, "decided_at": utcnow(), "override_reason_code": body.reason_code},
    )
    _attach(
        session,
        principal.tenant_id,
        rec_id,
        "rejection",
        {"reason_code": body.reason_code, "comment": body.comment},
        actor,
    )
    append(session, principal.tenant_id, [a], [e])
    return _out(row)


def comment(session: Session, tenant_id: str, rec_id: str, text: str, *, actor: str) -> str:
    """Attach a planner comment (immutable evidence) to a recommendation; returns its SHA-256."""
    _load(session, tenant_id, rec_id)
    sha = _attach(session, tenant_id, rec_id, "planner_comment", {"text": text}, actor)
    append(
        session,
        tenant_id,
        [
            AuditRecord(
                actor,
                "recommendation.comment",
                "recommendation",
                rec_id,
                None,
                {"evidence_sha256": sha},
                text[:200],
            )
        ],
    )
    return sha


def expire_due(
    session: Session, tenant_id: str, *, now: datetime | None = None, actor: str = "system:expiry"
) -> int:
    """Expire proposed/routed recommendations whose ``expires_at`` has passed; returns how many."""
    now = now or utcnow()
    ids = session.scalars(
        select(_R.c.id).where(
            _R.c.tenant_id == tenant_id,
            _R.c.state.in_(TRANSITIONS["expire"][0]),
            _R.c.expires_at.is_not(None),
            _R.c.expires_at <= now,
        )
    ).all()
    audits, events = [], []
    for rec_id in ids:
        try:
            _, a, e = _transition(session, tenant_id, rec_id, "expire", actor=actor, reason="expired")
        except (IllegalTransition, VersionConflict):
            continue  # decided meanwhile
        audits.append(a)
        events.append(e)
    if audits:
        append(session, tenant_id, audits, events)
    return len(audits)
