"""Proposing and routing recommendations: :func:`propose`, :func:`propose_many`, :func:`route`.

Internal to :mod:`workflow`; other packages import these names from :mod:`workflow.lifecycle`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow import evidence as _evidence
from workflow._journal import AuditRecord, EventRecord, append
from workflow._machine import _R, _R_INSERT, _event_payload, _out, _outbox_row, _step, _transition
from workflow._models import RecommendationEvidence
from workflow.errors import InvalidInput
from workflow.rights import UNKNOWN, DecisionPolicy, current_policy, unit_costs, valuation
from workflow.schemas import ProposalIn, RecommendationIn, RecommendationOut, Route


def _prepare(
    tenant_id: str,
    rec: RecommendationIn,
    actor: str,
    sha: str,
    costs: Mapping[tuple[str, str | None], float],
    policy: DecisionPolicy,
    proposed_by: str,
):
    """The row of a new recommendation after the steps ``rec`` asks for, and its journal records.

    The value is computed here from the stored unit cost (``rec.value`` and ``rec.unit_cost`` are ignored).
    An auto-approval is honoured only up to ``policy.auto_approve_max_value`` and for a known cost; otherwise
    the item is routed (to approvers, or to admins when its cost is unknown).
    """
    unit_cost, value, source = valuation(costs, rec.kind, rec.sku_id, rec.supplier_id, rec.quantity, policy)
    now = utcnow()
    row = {
        "id": uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "proposal_key": rec.proposal_key,
        "kind": rec.kind,
        "state": "proposed",
        "version": 1,
        "sku_id": rec.sku_id,
        "location_id": rec.location_id,
        "from_location_id": rec.from_location_id,
        "supplier_id": rec.supplier_id,
        "quantity": rec.quantity,
        "unit_cost": unit_cost,
        "value": value,
        "need_by": rec.need_by,
        "promised_lead_time_days": rec.promised_lead_time_days,
        "final_quantity": None,
        "final_need_by": None,
        "route_queue": None,
        "route_role": None,
        "route_rule": None,
        "route_reason": None,
        "override_reason_code": None,
        "evidence_sha256": sha,
        "proposed_by": proposed_by,
        "cost_source": source,
        "decided_by": None,
        "decided_at": None,
        "sent_at": None,
        "acknowledged_at": None,
        "external_ref": None,
        "confirmed_quantity": None,
        "confirmed_date": None,
        "expires_at": rec.expires_at,
        "created_at": now,
        "updated_at": now,
    }
    snapshot = {k: v for k, v in row.items() if k not in ("tenant_id", "created_at", "updated_at")}
    audits = [AuditRecord(actor, "recommendation.propose", "recommendation", row["id"], None, snapshot, None)]
    events = [EventRecord("replenishment", "recommendation.proposed", row["id"], _event_payload(row, actor))]
    route_to, auto = rec.route, rec.auto_approve
    if auto is not None and (source == UNKNOWN or value > policy.auto_approve_max_value):
        why = "its unit cost is unknown" if source == UNKNOWN else (
            f"value {value:.2f} is above the auto-approval cap {policy.auto_approve_max_value:.2f}"
        )
        route_to, auto = Route(queue="auto-approval-cap", role="approver", rule=auto.rule, reason=why), None
    if route_to is not None and source == UNKNOWN and route_to.role != "admin":
        route_to = Route(
            queue=route_to.queue, role="admin", rule=route_to.rule,
            reason=f"{route_to.reason} (unit cost unknown: admins decide)"[:2000],
        )
    # Later steps of the proposal are applied before the single INSERT; each is still checked and journaled.
    if route_to is not None:
        row, a, e = _step(row, "route", actor=actor, changes=_route_values(route_to), reason=route_to.reason)
        audits.append(a)
        events.append(e)
    elif auto is not None:
        policy_actor = f"policy:{auto.rule}"
        row, a, e = _step(
            row,
            "auto_approve",
            actor=policy_actor,
            reason=auto.reason,
            changes={
                "decided_by": policy_actor,
                "decided_at": now,
                "final_quantity": rec.quantity,
                "final_need_by": rec.need_by,
            },
        )
        audits.append(a)
        events.append(e)
    return row, audits, events


def _existing_by_key(session: Session, tenant_id: str, keys: list[str]) -> dict[str, Mapping[str, Any]]:
    if not keys:
        return {}
    rows = session.execute(
        select(_R).where(_R.c.tenant_id == tenant_id, _R.c.proposal_key.in_(keys))
    ).mappings()
    return {r["proposal_key"]: r for r in rows}


def _costs_of(session: Session, tenant_id: str, recs) -> dict[tuple[str, str | None], float]:
    return unit_costs(session, tenant_id, [(r.kind, r.sku_id, r.supplier_id) for r in recs])


def propose(
    session: Session,
    tenant_id: str,
    rec: RecommendationIn | ProposalIn,
    *,
    actor: str = "planning",
    proposed_by: str | None = None,
    policy: DecisionPolicy | None = None,
) -> RecommendationOut:
    """Store a new recommendation (state ``proposed``), valued on the server, then route or auto-approve it.

    Args:
        session: open session; the caller commits (``with session_scope(engine) as s``).
        tenant_id: the owning tenant (must exist).
        rec: the recommendation: a :class:`ProposalIn` from an HTTP client (no auto-approval possible) or a
            :class:`RecommendationIn` from the trusted server-side hand-off.
        actor: who proposes, as it should read in the audit log (e.g. ``"planning:run-42"``).
        proposed_by: the proposer's identity for the four-eyes check (default ``actor``; the API passes
            ``principal.principal_id``).
        policy: decision rights (default :func:`workflow.rights.current_policy`).

    Returns:
        The stored recommendation. With ``rec.proposal_key`` already used in this tenant, the existing one,
        unchanged (proposing is idempotent per key).

    Raises:
        InvalidInput: the value cannot be computed (unknown cost with ``unknown_cost="refuse"``, or too
            large).
    """
    policy = policy or current_policy()
    if isinstance(rec, ProposalIn):
        rec = RecommendationIn(**dict(rec))  # no auto_approve: a ProposalIn cannot carry one
    if rec.proposal_key is not None:
        existing = _existing_by_key(session, tenant_id, [rec.proposal_key])
        if existing:
            return _out(existing[rec.proposal_key])
    costs = _costs_of(session, tenant_id, [rec])
    sha = _evidence.put(session, tenant_id, "proposal", rec.evidence.model_dump(exclude_none=True))
    row, audits, events = _prepare(tenant_id, rec, actor, sha, costs, policy, proposed_by or actor)
    if rec.proposal_key is None:
        session.execute(_R_INSERT, row)
    else:
        try:
            with session.begin_nested():  # a concurrent propose of the same key loses here, not the whole txn
                session.execute(_R_INSERT, row)
        except IntegrityError:
            return _out(_existing_by_key(session, tenant_id, [rec.proposal_key])[rec.proposal_key])
    _evidence.link(session, tenant_id, row["id"], sha, "proposal", actor)
    outbox = [_outbox_row(row)] if row["state"] == "approved" else []
    append(session, tenant_id, audits, events, outbox_rows=outbox)
    return _out(row)


def propose_many(
    session: Session,
    tenant_id: str,
    recs: list[RecommendationIn],
    *,
    actor: str = "planning",
    policy: DecisionPolicy | None = None,
) -> list[RecommendationOut]:
    """Propose a whole plan in one transaction: the trusted hand-off from planning (never called over HTTP).

    Same result as :func:`propose` on each item, in order, but with one cost lookup, one INSERT per table and
    one journal append, so a plan of thousands of lines commits at once or not at all. Each item is valued
    from the stored supplier terms; ``auto_approve`` (planning's routing rule) is honoured up to
    ``policy.auto_approve_max_value``. Items whose ``proposal_key`` is already stored come back unchanged.
    If a concurrent writer stores one of the keys meanwhile, the batch falls back to proposing item by item.

    Raises:
        InvalidInput: a duplicate ``proposal_key`` in the batch, or an item that cannot be valued (nothing is
            stored then).
    """
    policy = policy or current_policy()
    keys = [r.proposal_key for r in recs if r.proposal_key is not None]
    if len(keys) != len(set(keys)):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise InvalidInput("proposal_key", f"appears more than once in the batch: {dup!r}")
    existing = _existing_by_key(session, tenant_id, keys)
    costs = _costs_of(session, tenant_id, [r for r in recs if r.proposal_key not in existing])
    out: list[Any] = [None] * len(recs)
    rows, audits, events, links = [], [], [], []
    for i, rec in enumerate(recs):
        if rec.proposal_key in existing:
            out[i] = _out(existing[rec.proposal_key])
            continue
        body = rec.evidence.model_dump(exclude_none=True)
        sha = _evidence.put(session, tenant_id, "proposal", body)
        row, a, e = _prepare(tenant_id, rec, actor, sha, costs, policy, actor)
        rows.append(row)
        audits += a
        events += e
        links.append(
            {
                "tenant_id": tenant_id,
                "recommendation_id": row["id"],
                "evidence_sha256": sha,
                "kind": "proposal",
                "actor": actor,
                "created_at": row["created_at"],
            }
        )
        out[i] = row
    if not rows:
        return out
    try:
        with session.begin_nested():
            session.execute(insert(_R), rows)
    except IntegrityError:
        if not keys:
            raise
        return [propose(session, tenant_id, r, actor=actor, policy=policy) for r in recs]
    session.execute(insert(RecommendationEvidence.__table__), links)
    outbox = [_outbox_row(row) for row in rows if row["state"] == "approved"]
    append(session, tenant_id, audits, events, outbox_rows=outbox)
    return [o if isinstance(o, RecommendationOut) else _out(o) for o in out]


def _route_values(r: Route) -> dict[str, Any]:
    return {"route_queue": r.queue, "route_role": r.role, "route_rule": r.rule, "route_reason": r.reason}


def route(
    session: Session,
    tenant_id: str,
    rec_id: str,
    r: Route,
    *,
    actor: str,
    expected_version: int | None = None,
) -> RecommendationOut:
    """Send a proposed recommendation to a planner queue (``proposed -> routed``).

    An item whose unit cost is unknown is always routed to admins, whatever ``r.role`` says.
    """

    def changes(row: Mapping[str, Any]) -> dict[str, Any]:
        role = "admin" if row["cost_source"] == UNKNOWN else r.role
        return {**_route_values(r), "route_role": role}

    row, a, e = _transition(
        session,
        tenant_id,
        rec_id,
        "route",
        actor=actor,
        expected_version=expected_version,
        changes=changes,
        reason=r.reason,
    )
    append(session, tenant_id, [a], [e])
    return _out(row)
