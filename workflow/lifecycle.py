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

This module is the public face; the code sits in private modules by concern: ``workflow._proposing``
(propose, route), ``workflow._deciding`` (approve, override, reject, comment, expiry), ``workflow._answers``
(acknowledgements and supplier responses) and ``workflow._machine`` (transitions, compare-and-set, outbox
rows).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow._answers import acknowledge, record_supplier_response
from workflow._deciding import approve, comment, expire_due, override, reject
from workflow._machine import (  # noqa: F401  (BatchConflict, _mark, _transition_many: used by workflow.outbox)
    _R,
    TERMINAL,
    TRANSITIONS,
    BatchConflict,
    _load,
    _mark,
    _out,
    _transition,
    _transition_many,
)
from workflow._models import AuditEntry
from workflow._proposing import (  # noqa: F401  (_existing_by_key: used by workflow.proposals)
    _existing_by_key,
    propose,
    propose_many,
    route,
)
from workflow.schemas import STATES, RecommendationOut

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
