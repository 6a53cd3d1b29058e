"""Answers after a recommendation is sent: the receiving system's acknowledgement, the supplier's responses.

Supplier responses are confirmed, partial, rejected, new date and received.

Internal to :mod:`workflow`; other packages import these names from :mod:`workflow.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._journal import AuditRecord, EventRecord, append, collect
from workflow._machine import _OUTBOX, _R, _attach, _event_payload, _load, _out, _transition
from workflow._models import SupplierResponse
from workflow.errors import IllegalTransition, InvalidInput, VersionConflict
from workflow.schemas import AckIn, RecommendationOut, SupplierResponseIn


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
