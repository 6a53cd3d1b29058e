"""``exception_update`` writebacks: an exception's changes through the outbox where the tenant's rule asks.

Where a tenant's rule for the type says ``writeback`` (:func:`workflow.exceptions.set_rule`), every change of
an exception (opened, updated, assigned, acknowledged, resolved, dismissed, cleared, escalated) writes one
outbox item of kind ``exception_update`` in the change's transaction, with the idempotency key
``exc-<id>-v<version>``: the dispatcher delivers it like any writeback (retries, dead letters, replay), to
the tenant's target for exception updates. The item belongs to no recommendation (``recommendation_id`` is
null): delivering it, or dead-lettering it, records the item and an ``exception.update_sent`` /
``exception.update_failed`` event, and changes no recommendation's state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._canonical import jsonable
from workflow._exception_rules import get_rule
from workflow._journal import AuditRecord, EventRecord, collect
from workflow._models import OutboxItem

__all__ = ["EXCEPTION_UPDATE", "item_dead", "item_delivered", "record"]

EXCEPTION_UPDATE = "exception_update"
_O = OutboxItem.__table__
_FIELDS = ("exception_key", "exception_type", "state", "severity", "sku_id", "location_id",
           "supplier_id", "po_id", "owner_team", "assignee", "due_at", "escalation_level", "resolution",
           "message")  # fmt: skip


def record(session: Session, tenant_id: str, audit, event, row: dict[str, Any], journal: dict | None) -> None:
    """Collect a change's journal records and, where the tenant's rule asks, write its outbox item."""
    if get_rule(session, tenant_id, row["exception_type"]).writeback:
        key = f"exc-{row['id']}-v{row['version']}"
        payload = {
            "idempotency_key": key,
            "tenant_id": tenant_id,
            "kind": EXCEPTION_UPDATE,
            "exception_id": row["id"],
            "change": event.type.removeprefix("exception."),
            "reason": event.payload.get("reason"),
            **{f: row.get(f) for f in _FIELDS},
        }
        now = utcnow()
        session.execute(
            insert(_O).values(
                tenant_id=tenant_id, recommendation_id=None, idempotency_key=key, kind=EXCEPTION_UPDATE,
                payload=jsonable(payload), status="pending", attempts=0, next_attempt_at=now, created_at=now,
            )
        )  # fmt: skip
    collect(session, tenant_id, [audit], [event], journal)


def _journal(session, item, actor: str, verb: str, detail: dict, journal) -> None:
    exc_id = item.payload.get("exception_id", "")
    detail = {"id": exc_id, "state": item.payload.get("state"), **detail}
    audit = AuditRecord(actor, f"exception.{verb}", "exception", exc_id, None, detail, None)
    event = EventRecord("exception", f"exception.{verb}", item.payload.get("exception_key", exc_id), detail)
    collect(session, item.tenant_id, [audit], [event], journal)


def item_delivered(session: Session, item, owner: str, ref: str | None, actor: str, journal) -> bool:
    """Mark an item without a recommendation delivered (False: no longer ours)."""
    res = session.execute(
        update(_O)
        .where(_O.c.id == item.id, _O.c.status == "pending", _O.c.lease_owner == owner)
        .values(
            status="delivered", delivered_at=utcnow(), lease_owner=None, lease_until=None, last_error=None
        )
    )
    if res.rowcount != 1:
        return False
    detail = {"idempotency_key": item.idempotency_key, "external_ref": ref, "attempts": item.attempts}
    _journal(session, item, actor, "update_sent", detail, journal)
    return True


def item_dead(session: Session, item, owner: str, error: str, actor: str, journal) -> str:
    """Dead-letter an item without a recommendation (``""``: no longer ours)."""
    res = session.execute(
        update(_O)
        .where(_O.c.id == item.id, _O.c.status == "pending", _O.c.lease_owner == owner)
        .values(status="dead", lease_owner=None, lease_until=None, last_error=error)
    )
    if res.rowcount != 1:
        return ""
    detail = {"idempotency_key": item.idempotency_key, "error": error, "attempts": item.attempts}
    _journal(session, item, actor, "update_failed", detail, journal)
    return "dead"
