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

from sqlalchemy import insert
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._canonical import jsonable
from workflow._exception_rules import get_rule
from workflow._journal import AuditRecord, EventRecord, collect
from workflow._models import OutboxItem

__all__ = ["EXCEPTION_UPDATE", "item_records", "record"]

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


def item_records(item, actor: str, delivered: bool, detail: dict[str, Any]) -> tuple[list, list]:
    """The audit entry and event of an ``exception_update`` item delivered (or dead-lettered).

    ``detail``: the outcome's fields (``idempotency_key``, ``attempts`` and ``external_ref`` or ``error``);
    the outbox records the item itself (:func:`workflow.outbox.record_success` / ``record_failure``).
    """
    verb = "update_sent" if delivered else "update_failed"
    exc_id = item.payload.get("exception_id", "")
    detail = {"id": exc_id, "state": item.payload.get("state"), **detail}
    audit = AuditRecord(actor, f"exception.{verb}", "exception", exc_id, None, detail, None)
    event = EventRecord("exception", f"exception.{verb}", item.payload.get("exception_key", exc_id), detail)
    return [audit], [event]
