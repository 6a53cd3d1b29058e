"""The recommendation lifecycle: an explicit state machine with optimistic concurrency.

States and the actions that move between them (:data:`TRANSITIONS`)::

    proposed --route--> routed --approve--> approved ----send--> sent --acknowledge--> acknowledged
       |                  |----override---> overridden --send--^   |
       |--auto_approve--> approved                                 |--fail--> failed --retry--> retried -->..
       |--reject / expire (also from routed) --> rejected / expired
    approved / overridden / retried / sent --fail--> failed

Any other (state, action) pair raises :class:`~workflow.errors.IllegalTransition` naming the current state.

Every change is one compare-and-set ``UPDATE ... WHERE id = :id AND version = :v`` that bumps ``version``;
callers pass the version they looked at, and a stale one raises :class:`~workflow.errors.VersionConflict`, so
of two approvers acting on the same item exactly one wins. Each transition appends an audit entry (actor,
time, before/after, reason) and a ``replenishment`` event in the same transaction, and approvals and overrides
write the action to the outbox in that transaction too (:mod:`workflow.outbox` delivers it).

Entry points for other packages (all take an open session; commit is the caller's ``session_scope``):

* :func:`propose` -- planning hands a :class:`~workflow.schemas.RecommendationIn`; returns the stored record.
  :func:`propose_many` does a whole plan in one transaction. Example (the serving/CLI glue)::

      with session_scope(engine) as s:
          recs = lifecycle.propose_many(s, tenant_id, [RecommendationIn(...), ...], actor="planning:run-42")

  Give each item a ``proposal_key`` (e.g. ``"run-42/SKU-1/DC-1"``) so that re-sending a plan after a crash
  stores nothing twice. ``route=Route(...)`` sends it to a planner queue; ``auto_approve=AutoApprove(rule)``
  approves it by policy and writes it to the outbox at once.
* :func:`route`, :func:`approve`, :func:`override`, :func:`reject`, :func:`comment`, :func:`expire_due`.
* :func:`acknowledge`, :func:`record_supplier_response` -- answers from the systems of record and suppliers.
* :func:`get`, :func:`list_recommendations`, :func:`history`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow import evidence as _evidence
from workflow._journal import AuditRecord, EventRecord, append, collect
from workflow._machine import (  # noqa: F401  (BatchConflict, _mark, _transition_many: used by workflow.outbox)
    _LOAD,
    _OUTBOX,
    _R,
    _R_INSERT,
    TERMINAL,
    TRANSITIONS,
    BatchConflict,
    _event_payload,
    _load,
    _mark,
    _out,
    _outbox_row,
    _step,
    _transition,
    _transition_many,
)
from workflow._models import AuditEntry, RecommendationEvidence, SupplierResponse
from workflow.access import Principal
from workflow.errors import IllegalTransition, InvalidInput, VersionConflict
from workflow.rights import UNKNOWN, DecisionPolicy, check_decider, current_policy, unit_costs, valuation
from workflow.schemas import (
    STATES,
    AckIn,
    ApproveIn,
    OverrideIn,
    ProposalIn,
    RecommendationIn,
    RecommendationOut,
    RejectIn,
    Route,
    SupplierResponseIn,
)

__all__ = [
    "STATES",
    "TERMINAL",
    "TRANSITIONS",
    "acknowledge",
    "approve",
    "comment",
    "expire_due",
    "get",
    "history",
    "list_recommendations",
    "override",
    "propose",
    "propose_many",
    "record_supplier_response",
    "reject",
    "route",
]

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


def _attach(session: Session, tenant_id: str, rec_id: str, kind: str, body: dict, actor: str) -> str:
    sha = _evidence.put(session, tenant_id, kind, {"recommendation_id": rec_id, **body})
    _evidence.link(session, tenant_id, rec_id, sha, kind, actor)
    return sha


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


def acknowledge(
    session: Session,
    tenant_id: str,
    rec_id: str,
    ack: AckIn,
    *,
    actor: str,
    journal: dict[str, tuple[list, list]] | None = None,
) -> RecommendationOut:
    """Record the receiving system's answer: ``accepted`` (to ``acknowledged``) or ``rejected`` (``failed``).

    ``journal`` (internal): collect the journal records for one append at the end of a batch.
    """
    if ack.status == "accepted":
        row, a, e = _transition(
            session,
            tenant_id,
            rec_id,
            "acknowledge",
            actor=actor,
            reason=ack.message,
            changes=lambda r: {
                "acknowledged_at": utcnow(),
                "external_ref": ack.external_ref or r["external_ref"],
            },
        )
    else:
        row, a, e = _transition(
            session,
            tenant_id,
            rec_id,
            "fail",
            actor=actor,
            reason=f"rejected by the receiving system: {ack.message or 'no message'}",
            guard=_only_from("sent", rec_id),
        )
        # A refusal by the system of record dead-letters the delivered item, so it can be fixed and replayed.
        session.execute(
            update(_OUTBOX)
            .where(
                _OUTBOX.c.recommendation_id == rec_id,
                _OUTBOX.c.tenant_id == tenant_id,
                _OUTBOX.c.status == "delivered",
            )
            .values(
                status="dead", last_error=f"rejected by the receiving system: {ack.message or 'no message'}"
            )
        )
    if (
        ack.status == "rejected" or ack.external_ref or ack.message
    ):  # a bare "accepted" adds nothing to the audit
        _attach(session, tenant_id, rec_id, "acknowledgement", ack.model_dump(), actor)
    collect(session, tenant_id, [a], [e], journal)
    return _out(row)


def _only_from(state: str, rec_id: str):
    def guard(row: Mapping[str, Any]) -> None:
        if row["state"] != state:
            raise IllegalTransition(rec_id, "acknowledge", row["state"], (state,))

    return guard


def record_supplier_response(
    session: Session, tenant_id: str, rec_id: str, resp: SupplierResponseIn, *, actor: str
) -> RecommendationOut:
    """Record a supplier's response to a sent purchase order and update the order's confirmed terms.

    ``received`` records the observed lead time (receipt date minus send date) and whether the order came on
    time (by the confirmed or needed date) and in full, which feed supplier OTIF and lead-time drift.

    Raises:
        InvalidInput: the recommendation is not a purchase order.
        IllegalTransition: the order has not been sent (state not ``sent`` or ``acknowledged``).
    """
    row = _load(session, tenant_id, rec_id)
    if row["kind"] != "purchase_order":
        raise InvalidInput(
            "recommendation_id", f"supplier responses apply to purchase orders, not {row['kind']}"
        )
    if row["state"] not in ("sent", "acknowledged"):
        raise IllegalTransition(rec_id, "record a supplier response", row["state"], ("sent", "acknowledged"))
    ordered = row["final_quantity"] if row["final_quantity"] is not None else row["quantity"]
    changes: dict[str, Any] = {}
    observed = on_time = in_full = None
    if resp.status == "confirmed":
        changes = {
            "confirmed_quantity": resp.quantity if resp.quantity is not None else ordered,
            "confirmed_date": resp.on_date or row["final_need_by"] or row["need_by"],
        }
    elif resp.status == "partial":
        changes = {
            "confirmed_quantity": resp.quantity,
            "confirmed_date": resp.on_date or row["confirmed_date"],
        }
    elif resp.status == "rejected":
        changes = {"confirmed_quantity": 0.0}
    elif resp.status == "new_date":
        changes = {"confirmed_date": resp.on_date}
    else:  # received
        sent = row["sent_at"]
        observed = float((resp.on_date - sent.date()).days) if sent is not None else None
        due = row["confirmed_date"] or row["final_need_by"] or row["need_by"]
        on_time = int(due is None or resp.on_date <= due)
        in_full = int((resp.quantity if resp.quantity is not None else ordered) >= ordered)
    values = {**changes, "version": row["version"] + 1, "updated_at": utcnow()}
    res = session.execute(
        update(_R)
        .where(_R.c.id == rec_id, _R.c.tenant_id == tenant_id, _R.c.version == row["version"])
        .values(**values)
    )
    if res.rowcount != 1:
        cur = _load(session, tenant_id, rec_id)
        raise VersionConflict(rec_id, row["version"], cur["version"], cur["state"])
    session.execute(
        insert(SupplierResponse.__table__).values(
            tenant_id=tenant_id,
            recommendation_id=rec_id,
            supplier_id=row["supplier_id"],
            status=resp.status,
            quantity=resp.quantity,
            on_date=resp.on_date,
            promised_lead_time_days=row["promised_lead_time_days"],
            observed_lead_time_days=observed,
            on_time=on_time,
            in_full=in_full,
            created_at=utcnow(),
        )
    )
    body = {**resp.model_dump(), "observed_lead_time_days": observed, "on_time": on_time, "in_full": in_full}
    _attach(session, tenant_id, rec_id, "supplier_response", body, actor)
    before = {k: row[k] for k in values if k != "updated_at"}
    after = {k: v for k, v in values.items() if k != "updated_at"}
    new = {**row, **values}
    append(
        session,
        tenant_id,
        [
            AuditRecord(
                actor,
                "recommendation.supplier_response",
                "recommendation",
                rec_id,
                before,
                after,
                resp.comment or resp.status,
            )
        ],
        [
            EventRecord(
                "supplier",
                f"supplier.{resp.status}",
                rec_id,
                {**_event_payload(new, actor), **body, "on_date": resp.on_date},
            )
        ],
    )
    return _out(new)


def get(session: Session, tenant_id: str, rec_id: str) -> RecommendationOut:
    """One recommendation of ``tenant_id`` (404 for another tenant's id)."""
    return _out(_load(session, tenant_id, rec_id))


def list_recommendations(
    session: Session,
    tenant_id: str,
    *,
    state: str | None = None,
    queue: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[RecommendationOut]:
    """Recommendations of ``tenant_id``, newest first, optionally by state and queue."""
    stmt = select(_R).where(_R.c.tenant_id == tenant_id)
    if state is not None:
        stmt = stmt.where(_R.c.state == state)
    if queue is not None:
        stmt = stmt.where(_R.c.route_queue == queue)
    rows = session.execute(
        stmt.order_by(_R.c.created_at.desc(), _R.c.id).limit(limit).offset(offset)
    ).mappings()
    return [_out(r) for r in rows]


def history(session: Session, tenant_id: str, rec_id: str) -> list[AuditEntry]:
    """The audit entries of one recommendation, oldest first."""
    _load(session, tenant_id, rec_id)
    return list(
        session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.tenant_id == tenant_id,
                AuditEntry.entity_type == "recommendation",
                AuditEntry.entity_id == rec_id,
            )
            .order_by(AuditEntry.seq)
        )
    )
