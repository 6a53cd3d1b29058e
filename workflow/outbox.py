"""The transactional outbox: approved actions waiting to leave, their attempts, dead letters and replay.

Rows are written by :mod:`workflow.lifecycle` in the same transaction as the approval or override, so an
approved action is never lost and never sent without being approved. Each row carries an idempotency key
(``<recommendation id>-v<version at approval>``) that stays the same across retries and replays; receivers
deduplicate on it.

Statuses: ``pending`` (due at ``next_attempt_at``), ``delivered``, ``dead`` (attempts exhausted or a permanent
error; the recommendation is ``failed``). :func:`replay` puts a dead item back to ``pending`` and moves its
recommendation ``failed -> retried``.

Claiming uses a lease (``lease_owner``, ``lease_until``): a dispatcher that dies after sending but before
recording leaves the lease to expire, another claims the item and sends it again with the same idempotency
key. Delivery is therefore at least once, and exactly once at a receiver that honours the key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._exception_writeback import item_records as exception_records
from workflow._journal import AuditRecord, EventRecord, append, collect, flush
from workflow._models import OutboxItem
from workflow.errors import IllegalTransition, InvalidInput, NotFound
from workflow.lifecycle import BatchConflict, _mark, _transition_many, acknowledge, get
from workflow.schemas import AckIn, RecommendationOut

__all__ = [
    "OutboxItem",
    "OUTBOX_STATUSES",
    "Claimed",
    "LostLease",
    "acknowledge_by_key",
    "acknowledge_many",
    "claim",
    "flush_journal",
    "counts",
    "list_items",
    "record_failure",
    "record_success",
    "record_successes",
    "replay",
]

OUTBOX_STATUSES = ("pending", "delivered", "dead")
#: Kind of an order on its way to a supplier (:mod:`workflow.suppliers`); it leaves after the purchase order
#: reached the ERP and does not change the purchase order's state.
SUPPLIER_ORDER = "supplier_order"
_O = OutboxItem.__table__


@dataclass(frozen=True)
class Claimed:
    """An outbox item leased to one dispatcher."""

    id: int
    tenant_id: str
    recommendation_id: str | None  # None: an exception update (workflow._exception_writeback)
    idempotency_key: str
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one


def claim(
    session: Session, owner: str, *, limit: int = 50, lease_s: float = 30.0, now: datetime | None = None
) -> list[Claimed]:
    """Lease up to ``limit`` due items to ``owner`` and count the attempt.

    On PostgreSQL concurrent dispatchers skip each other's locked rows (``FOR UPDATE SKIP LOCKED``); on SQLite
    the single writer lock serialises claims. An item whose lease has expired is due again.
    """
    now = now or utcnow()
    due = and_(
        _O.c.status == "pending",
        _O.c.next_attempt_at <= now,
        or_(_O.c.lease_until.is_(None), _O.c.lease_until < now),
    )
    stmt = select(_O.c.id).where(due).order_by(_O.c.next_attempt_at, _O.c.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = session.scalars(stmt).all()
    if not ids:
        return []
    session.execute(
        update(_O)
        .where(_O.c.id.in_(ids), due)
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), attempts=_O.c.attempts + 1)
    )
    rows = (
        session.execute(select(_O).where(_O.c.id.in_(ids), _O.c.lease_owner == owner).order_by(_O.c.id))
        .mappings()
        .all()
    )
    return [
        Claimed(
            r["id"],
            r["tenant_id"],
            r["recommendation_id"],
            r["idempotency_key"],
            r["kind"],
            r["payload"],
            r["attempts"],
        )
        for r in rows
    ]


_DELIVERED = (
    update(_O)
    .where(_O.c.id == bindparam("b_id"), _O.c.status == "pending", _O.c.lease_owner == bindparam("b_owner"))
    .values(
        status="delivered",
        delivered_at=bindparam("b_now"),
        lease_owner=None,
        lease_until=None,
        last_error=None,
    )
)


def record_successes(
    session: Session,
    items: list[Claimed],
    owner: str,
    refs: list[str | None],
    *,
    actor: str = "system:dispatcher",
    journal: dict[str, tuple[list, list]] | None = None,
) -> int:
    """Record a batch of deliveries at once (one SELECT and two executemany UPDATEs per tenant).

    All or nothing: raises :class:`LostLease` (roll back, then record item by item with
    :func:`record_success`) when any item is no longer ours or its recommendation not sendable.
    """
    now = utcnow()
    by_tenant: dict[str, list[int]] = {}
    own_journal = journal is None
    journal = {} if journal is None else journal
    for i, item in enumerate(items):
        if item.kind == SUPPLIER_ORDER or item.recommendation_id is None:  # the item only
            if not _item_delivered(session, item, owner, refs[i], actor, journal):
                raise LostLease(item.tenant_id)
            continue
        by_tenant.setdefault(item.tenant_id, []).append(i)
    for tenant_id, idx in by_tenant.items():
        try:
            recs = _transition_many(
                session,
                tenant_id,
                [
                    (
                        items[i].recommendation_id,
                        {"sent_at": now, "external_ref": refs[i]},
                        f"delivered (attempt {items[i].attempts})",
                    )
                    for i in idx
                ],
                "send",
                actor=actor,
            )
        except BatchConflict:
            raise LostLease(tenant_id) from None
        res = session.execute(
            _DELIVERED, [{"b_id": items[i].id, "b_owner": owner, "b_now": now} for i in idx]
        )
        if res.rowcount != len(idx):
            raise LostLease(tenant_id)
        for i, (_, a, e) in zip(idx, recs, strict=True):
            e = replace(
                e, payload={**e.payload, "idempotency_key": items[i].idempotency_key, "external_ref": refs[i]}
            )
            collect(session, tenant_id, [a], [e], journal)
        _queue_supplier_orders(session, tenant_id, [items[i] for i in idx], actor, journal)
    if own_journal:
        flush(session, journal)
    return len(items)


def record_success(
    session: Session,
    item: Claimed,
    owner: str,
    *,
    external_ref: str | None = None,
    actor: str = "system:dispatcher",
    journal: dict[str, tuple[list, list]] | None = None,
) -> bool:
    """Mark a delivered item and move its recommendation to ``sent``.

    Returns:
        False when the item was no longer ours (lease expired and taken over, or already recorded); the
        transaction should then be rolled back by the caller (nothing was changed).
    """
    now = utcnow()
    if item.kind == SUPPLIER_ORDER or item.recommendation_id is None:
        return _item_delivered(session, item, owner, external_ref, actor, journal)
    try:
        _, a, e = _mark(
            session,
            item.tenant_id,
            item.recommendation_id,
            "send",
            actor=actor,
            reason=f"delivered (attempt {item.attempts})",
            changes={"sent_at": now, "external_ref": external_ref},
        )
    except IllegalTransition:
        return False
    res = session.execute(_DELIVERED, {"b_id": item.id, "b_owner": owner, "b_now": now})
    if res.rowcount != 1:
        raise LostLease(item.id)
    e = replace(
        e, payload={**e.payload, "idempotency_key": item.idempotency_key, "external_ref": external_ref}
    )
    _journal(session, item.tenant_id, a, e, journal)
    _queue_supplier_orders(session, item.tenant_id, [item], actor, journal)
    return True


def _journal(session: Session, tenant_id: str, a, e, journal: dict | None) -> None:
    collect(session, tenant_id, [a], [e], journal)


def _queue_supplier_orders(
    session: Session, tenant_id: str, items: list[Claimed], actor: str, journal: dict | None
) -> None:
    """Purchase orders the ERP has now: queue their supplier orders where the supplier has a channel."""
    from workflow.suppliers import queue_after_delivery

    pos = [it.recommendation_id for it in items if it.kind == "purchase_order"]
    audits, events = queue_after_delivery(session, tenant_id, pos, actor=actor)
    if audits or events:
        collect(session, tenant_id, audits, events, journal)


def _supplier_order_records(item: Claimed, actor: str, delivered: bool, detail: dict) -> tuple[list, list]:
    """The audit entry and event of a supplier order delivered (or dead-lettered)."""
    doc, key = item.payload, item.idempotency_key
    if delivered:
        reason = f"delivered to supplier {doc.get('supplier_id')} (attempt {item.attempts})"
        audit_detail = {"idempotency_key": key, "external_ref": detail["external_ref"]}
        payload = {
            "order_number": doc.get("order_number"),
            "supplier_id": doc.get("supplier_id"),
            "sku_id": doc.get("item_number"),
            "location_id": doc.get("ship_to"),
            "quantity": doc.get("quantity"),
            **audit_detail,
        }
    else:
        reason = f"dead letter after {item.attempts} attempt(s): {detail['error']}"
        audit_detail, payload = {"idempotency_key": key}, {"idempotency_key": key, "error": detail["error"]}
    verb = "supplier.order_sent" if delivered else "supplier.order_failed"
    rid = item.recommendation_id
    return [AuditRecord(actor, verb, "recommendation", rid, None, audit_detail, reason)], [
        EventRecord("supplier", verb, rid, payload)
    ]


def _item_only_records(item: Claimed, actor: str, delivered: bool, detail: dict) -> tuple[list, list]:
    """Journal of an item whose outcome changes no recommendation: a supplier order, an exception update."""
    if item.kind == SUPPLIER_ORDER:
        return _supplier_order_records(item, actor, delivered, detail)
    return exception_records(item, actor, delivered, detail)


def _item_delivered(
    session: Session, item: Claimed, owner: str, ref: str | None, actor: str, journal: dict | None
) -> bool:
    """Record an item that changes no recommendation delivered (False: no longer ours).

    Supplier orders (the purchase order's state does not change: the ERP has it) and exception updates.
    """
    res = session.execute(_DELIVERED, {"b_id": item.id, "b_owner": owner, "b_now": utcnow()})
    if res.rowcount != 1:
        return False
    detail = {"idempotency_key": item.idempotency_key, "external_ref": ref, "attempts": item.attempts}
    collect(session, item.tenant_id, *_item_only_records(item, actor, True, detail), journal)
    return True


flush_journal = flush


class LostLease(Exception):
    """Raised inside a transaction to roll it back when another dispatcher took the item over."""


def record_failure(
    session: Session,
    item: Claimed,
    owner: str,
    error: str,
    *,
    retry_at: datetime | None,
    actor: str = "system:dispatcher",
    journal: dict[str, tuple[list, list]] | None = None,
) -> str:
    """Record a failed attempt: schedule the retry at ``retry_at``, or dead-letter the item when it is None.

    Returns:
        The item's new status (``pending`` or ``dead``), or ``""`` when the item was no longer ours.
    """
    error = error[:2000]
    if retry_at is not None:
        res = session.execute(
            update(_O)
            .where(_O.c.id == item.id, _O.c.status == "pending", _O.c.lease_owner == owner)
            .values(next_attempt_at=retry_at, lease_owner=None, lease_until=None, last_error=error)
        )
        return "pending" if res.rowcount == 1 else ""
    if item.kind == SUPPLIER_ORDER or item.recommendation_id is None:
        return _item_dead(session, item, owner, error, actor, journal)
    try:
        _, a, e = _mark(
            session,
            item.tenant_id,
            item.recommendation_id,
            "fail",
            actor=actor,
            reason=f"dead letter after {item.attempts} attempt(s): {error}",
        )
    except IllegalTransition:
        return ""
    res = session.execute(
        update(_O)
        .where(_O.c.id == item.id, _O.c.status == "pending", _O.c.lease_owner == owner)
        .values(status="dead", lease_owner=None, lease_until=None, last_error=error)
    )
    if res.rowcount != 1:
        raise LostLease(item.id)
    _journal(session, item.tenant_id, a, e, journal)
    return "dead"


def _item_dead(
    session: Session, item: Claimed, owner: str, error: str, actor: str, journal: dict | None
) -> str:
    """Dead-letter an item that changes no recommendation (``""``: no longer ours), see `_item_delivered`."""
    res = session.execute(
        update(_O)
        .where(_O.c.id == item.id, _O.c.status == "pending", _O.c.lease_owner == owner)
        .values(status="dead", lease_owner=None, lease_until=None, last_error=error)
    )
    if res.rowcount != 1:
        return ""
    detail = {"idempotency_key": item.idempotency_key, "error": error, "attempts": item.attempts}
    collect(session, item.tenant_id, *_item_only_records(item, actor, False, detail), journal)
    return "dead"


def replay(session: Session, tenant_id: str, item_id: int, *, actor: str) -> OutboxItem:
    """Put a dead letter back in the queue (same idempotency key) and its recommendation to ``retried``.

    Raises:
        NotFound: no such item in this tenant.
        InvalidInput: the item is not dead.
    """
    item = session.get(OutboxItem, item_id)
    if item is None or item.tenant_id != tenant_id:
        raise NotFound("outbox item", item_id)
    if item.status != "dead":
        raise InvalidInput("status", f"only dead items can be replayed; item {item_id} is {item.status!r}")
    if item.kind == SUPPLIER_ORDER or item.recommendation_id is None:  # the item only
        return _requeue(session, tenant_id, item_id, actor)
    _, a, e = _mark(
        session,
        tenant_id,
        item.recommendation_id,
        "retry",
        actor=actor,
        reason=f"replay of outbox item {item_id}",
    )
    session.execute(
        update(_O)
        .where(_O.c.id == item_id, _O.c.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), lease_owner=None, lease_until=None)
    )
    append(
        session,
        tenant_id,
        [
            a,
            AuditRecord(
                actor,
                "outbox.replay",
                "outbox",
                str(item_id),
                {"status": "dead"},
                {"status": "pending"},
                None,
            ),
        ],
        [e],
    )
    session.expire(item)
    return session.get(OutboxItem, item_id)


def _requeue(session: Session, tenant_id: str, item_id: int, actor: str) -> OutboxItem:
    """Replay an item without a recommendation: the item back to ``pending``, audited."""
    session.execute(
        update(_O)
        .where(_O.c.id == item_id, _O.c.status == "dead")
        .values(status="pending", attempts=0, next_attempt_at=utcnow(), lease_owner=None, lease_until=None)
    )
    after = {"status": "pending"}
    append(
        session,
        tenant_id,
        [AuditRecord(actor, "outbox.replay", "outbox", str(item_id), {"status": "dead"}, after)],
    )
    return session.get(OutboxItem, item_id)


_REC_OF_KEY = select(_O.c.recommendation_id).where(
    _O.c.tenant_id == bindparam("b_tenant"), _O.c.idempotency_key == bindparam("b_key")
)


def acknowledge_by_key(
    session: Session,
    tenant_id: str,
    idempotency_key: str,
    ack: AckIn,
    *,
    actor: str,
    journal: dict[str, tuple[list, list]] | None = None,
) -> tuple[RecommendationOut, bool]:
    """Apply a receiving system's acknowledgement, found by the idempotency key it was sent with.

    Acknowledgements may arrive more than once: a repeat of an already applied acknowledgement returns the
    recommendation unchanged with ``duplicate=True``.

    Returns:
        ``(recommendation, duplicate)``.
    """
    rec_id = session.execute(_REC_OF_KEY, {"b_tenant": tenant_id, "b_key": idempotency_key}).scalar()
    if rec_id is None:
        raise NotFound("outbox item with idempotency key", idempotency_key)
    try:
        return acknowledge(session, tenant_id, rec_id, ack, actor=actor, journal=journal), False
    except IllegalTransition as exc:
        if (ack.status, exc.current) in (("accepted", "acknowledged"), ("rejected", "failed")):
            return get(session, tenant_id, rec_id), True  # a repeat of an applied acknowledgement
        raise


def acknowledge_many(
    session: Session, tenant_id: str, acks: list[tuple[str, AckIn]], *, actor: str
) -> list[tuple[RecommendationOut, bool]]:
    """Apply a batch of acknowledgements (an ERP's ack file or batch call) in one transaction.

    Returns:
        ``(recommendation, duplicate)`` per acknowledgement, in order.

    Raises:
        NotFound, IllegalTransition: for the first bad item; nothing of the batch is applied.
    """
    bare = [ack for _, ack in acks if ack.status == "accepted" and not ack.external_ref and not ack.message]
    if len(bare) == len(acks) and acks:  # plain acceptances: bulk path (no evidence to attach)
        keys = [k for k, _ in acks]
        rec_of = dict(
            session.execute(
                select(_O.c.idempotency_key, _O.c.recommendation_id).where(
                    _O.c.tenant_id == tenant_id, _O.c.idempotency_key.in_(keys)
                )
            ).all()
        )
        if len(rec_of) == len(set(keys)) == len(keys):
            now = utcnow()
            try:
                with session.begin_nested():
                    recs = _transition_many(
                        session,
                        tenant_id,
                        [(rec_of[k], {"acknowledged_at": now}, None) for k in keys],
                        "acknowledge",
                        actor=actor,
                    )
            except BatchConflict:
                recs = None  # some were acknowledged before, or are not sent: item by item below
            if recs is not None:
                append(session, tenant_id, [a for _, a, _ in recs], [e for _, _, e in recs])
                return [(RecommendationOut.model_validate(r), False) for r, _, _ in recs]
    journal: dict[str, tuple[list, list]] = {}
    out = [
        acknowledge_by_key(session, tenant_id, key, ack, actor=actor, journal=journal) for key, ack in acks
    ]
    flush(session, journal)
    return out


def list_items(
    session: Session, tenant_id: str, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[OutboxItem]:
    """Outbox items of a tenant, oldest first, optionally by status (``dead`` lists the dead letters)."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise InvalidInput("status", f"expected one of {', '.join(OUTBOX_STATUSES)}")
    stmt = select(OutboxItem).where(OutboxItem.tenant_id == tenant_id)
    if status is not None:
        stmt = stmt.where(OutboxItem.status == status)
    return list(session.scalars(stmt.order_by(OutboxItem.id).limit(limit).offset(offset)))


def counts(session: Session, tenant_id: str | None = None) -> dict[str, int]:
    """Number of outbox items by status (one tenant, or all)."""
    stmt = select(_O.c.status, func.count()).group_by(_O.c.status)
    if tenant_id is not None:
        stmt = stmt.where(_O.c.tenant_id == tenant_id)
    out = dict.fromkeys(OUTBOX_STATUSES, 0)
    out.update({s: int(n) for s, n in session.execute(stmt)})
    return out
