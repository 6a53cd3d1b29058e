"""The recommendation state machine's mechanics: transitions, compare-and-set, journal records, outbox rows.

Internal to :mod:`workflow` (:mod:`workflow.lifecycle` is the public surface; :mod:`workflow.outbox` uses the
batch transition). See :mod:`workflow.lifecycle` for the states and actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow import evidence as _evidence
from workflow._journal import AuditRecord, EventRecord
from workflow._models import OutboxItem, Recommendation
from workflow.errors import IllegalTransition, NotFound, VersionConflict
from workflow.schemas import RecommendationOut

#: action -> (states it is allowed from, state it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "route": (("proposed",), "routed"),
    "auto_approve": (("proposed",), "approved"),
    "approve": (("routed",), "approved"),
    "override": (("routed",), "overridden"),
    "reject": (("proposed", "routed"), "rejected"),
    "expire": (("proposed", "routed"), "expired"),
    "send": (("approved", "overridden", "retried"), "sent"),
    "fail": (("approved", "overridden", "retried", "sent"), "failed"),
    "retry": (("failed",), "retried"),
    "acknowledge": (("sent",), "acknowledged"),
}
TERMINAL = ("rejected", "expired", "acknowledged")

_R = Recommendation.__table__
_OUTBOX = OutboxItem.__table__
_SNAPSHOT_SKIP = ("updated_at",)


def _event_payload(row: Mapping[str, Any], actor: str) -> dict[str, Any]:
    qty = row["final_quantity"] if row["final_quantity"] is not None else row["quantity"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "state": row["state"],
        "version": row["version"],
        "sku_id": row["sku_id"],
        "location_id": row["location_id"],
        "supplier_id": row["supplier_id"],
        "quantity": qty,
        "value": row["value"],
        "actor": actor,
    }


# Statements are built once and executed with parameters: building and cache-keying a statement per call
# costs more CPU than executing it.
_LOAD = select(_R).where(_R.c.id == bindparam("b_id"), _R.c.tenant_id == bindparam("b_tenant"))
_R_INSERT = insert(_R)
_CAS: dict[tuple[str, ...], Any] = {}


def _cas_update(columns: tuple[str, ...]):
    """``UPDATE ... SET <columns> WHERE id, tenant and version match`` (cached per column set)."""
    stmt = _CAS.get(columns)
    if stmt is None:
        stmt = _CAS[columns] = (
            update(_R)
            .where(
                _R.c.id == bindparam("b_id"),
                _R.c.tenant_id == bindparam("b_tenant"),
                _R.c.version == bindparam("b_version"),
            )
            .values({c: bindparam(c) for c in columns})
        )
    return stmt


def _load(session: Session, tenant_id: str, rec_id: str) -> Mapping[str, Any]:
    row = session.execute(_LOAD, {"b_id": rec_id, "b_tenant": tenant_id}).mappings().first()
    if row is None:
        raise NotFound("recommendation", rec_id)
    return row


def _transition(
    session: Session,
    tenant_id: str,
    rec_id: str,
    action: str,
    *,
    actor: str,
    expected_version: int | None = None,
    changes: dict[str, Any] | Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
    guard: Callable[[Mapping[str, Any]], None] | None = None,
    reason: str | None = None,
) -> tuple[dict[str, Any], AuditRecord, EventRecord]:
    """Check and apply one transition (compare-and-set); return the new row and its journal records.

    The caller appends the journal records last (see :mod:`workflow._journal` for the lock order).
    """
    row = _load(session, tenant_id, rec_id)
    allowed_from, to = TRANSITIONS[action]
    if expected_version is not None and row["version"] != expected_version:
        raise VersionConflict(rec_id, expected_version, row["version"], row["state"])
    if row["state"] not in allowed_from:
        raise IllegalTransition(rec_id, action, row["state"], allowed_from)
    if guard is not None:
        guard(row)
    values = _values(row, to, changes)
    res = session.execute(
        _cas_update(tuple(sorted(values))),
        {**values, "b_id": rec_id, "b_tenant": tenant_id, "b_version": row["version"]},
    )
    if res.rowcount != 1:  # someone committed between our read and our write
        cur = _load(session, tenant_id, rec_id)
        raise VersionConflict(rec_id, row["version"], cur["version"], cur["state"])
    return _journal_records(row, values, action, actor, reason)


def _values(row: Mapping[str, Any], to: str, changes) -> dict[str, Any]:
    if callable(changes):
        changes = changes(row)
    return {"state": to, "version": row["version"] + 1, "updated_at": utcnow(), **(changes or {})}


def _journal_records(
    row: Mapping[str, Any], values: dict[str, Any], action: str, actor: str, reason: str | None
) -> tuple[dict[str, Any], AuditRecord, EventRecord]:
    after = {**row, **values}
    before_d = {k: row[k] for k in values if k not in _SNAPSHOT_SKIP}
    after_d = {k: values[k] for k in values if k not in _SNAPSHOT_SKIP}
    audit = AuditRecord(
        actor, f"recommendation.{action}", "recommendation", row["id"], before_d, after_d, reason
    )
    event = EventRecord(
        "replenishment", f"recommendation.{values['state']}", row["id"], _event_payload(after, actor)
    )
    return after, audit, event


def _step(row: dict[str, Any], action: str, *, actor: str, changes=None, reason: str | None = None):
    """Apply a transition to a row not yet written (a new proposal): same checks, same journal records."""
    allowed_from, to = TRANSITIONS[action]
    if row["state"] not in allowed_from:
        raise IllegalTransition(row["id"], action, row["state"], allowed_from)
    return _journal_records(row, _values(row, to, changes), action, actor, reason)


def _outbox_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The outbox row of an approved action (written by the journal append, in the approval's transaction)."""
    key = f"{row['id']}-v{row['version']}"
    qty = row["final_quantity"] if row["final_quantity"] is not None else row["quantity"]
    need_by = row["final_need_by"] or row["need_by"]
    payload = {
        "idempotency_key": key,
        "tenant_id": row["tenant_id"],
        "recommendation_id": row["id"],
        "kind": row["kind"],
        "decision": row["state"],
        "sku_id": row["sku_id"],
        "location_id": row["location_id"],
        "from_location_id": row["from_location_id"],
        "supplier_id": row["supplier_id"],
        "quantity": qty,
        "unit_cost": row["unit_cost"],
        "value": row["value"],
        "need_by": need_by.isoformat() if need_by else None,
        "decided_by": row["decided_by"],
        "evidence_sha256": row["evidence_sha256"],
    }
    return {
        "tenant_id": row["tenant_id"],
        "recommendation_id": row["id"],
        "idempotency_key": key,
        "kind": row["kind"],
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": utcnow(),
        "created_at": utcnow(),
    }


def _out(row: Mapping[str, Any]) -> RecommendationOut:
    return RecommendationOut.model_validate(dict(row))


class BatchConflict(Exception):
    """A bulk transition could not apply to every item; the caller redoes the batch item by item."""


def _transition_many(
    session: Session,
    tenant_id: str,
    items: list[tuple[str, dict[str, Any] | Callable[[Mapping[str, Any]], dict[str, Any]], str | None]],
    action: str,
    *,
    actor: str,
) -> list[tuple[dict[str, Any], AuditRecord, EventRecord]]:
    """:func:`_transition` for many recommendations of one tenant: one SELECT and one executemany UPDATE.

    ``items`` are ``(rec_id, changes, reason)``; every ``changes`` must set the same columns. All or nothing:
    raises :class:`BatchConflict` (before writing, or after a compare-and-set missed; roll back then) when any
    item is missing, not in an allowed state, or changed concurrently.
    """
    if not items:
        return []
    allowed_from, to = TRANSITIONS[action]
    rows = {
        r["id"]: r
        for r in session.execute(
            select(_R).where(_R.c.tenant_id == tenant_id, _R.c.id.in_([i[0] for i in items]))
        ).mappings()
    }
    params, out, columns = [], [], None
    for rec_id, changes, reason in items:
        row = rows.get(rec_id)
        if row is None or row["state"] not in allowed_from:
            raise BatchConflict(rec_id)
        values = _values(row, to, changes)
        cols = tuple(sorted(values))
        if columns is not None and cols != columns:
            raise BatchConflict(rec_id)
        columns = cols
        params.append({**values, "b_id": rec_id, "b_tenant": tenant_id, "b_version": row["version"]})
        out.append(_journal_records(row, values, action, actor, reason))
    res = session.execute(_cas_update(columns), params)
    if res.rowcount != len(params):
        raise BatchConflict(f"{len(params) - res.rowcount} item(s) changed concurrently")
    return out


# Used by workflow.outbox (the dispatcher side); not part of the public surface.
def _mark(
    session: Session,
    tenant_id: str,
    rec_id: str,
    action: str,
    *,
    actor: str,
    reason: str | None = None,
    changes: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], AuditRecord, EventRecord]:
    return _transition(session, tenant_id, rec_id, action, actor=actor, reason=reason, changes=changes)


def _attach(session: Session, tenant_id: str, rec_id: str, kind: str, body: dict, actor: str) -> str:
    sha = _evidence.put(session, tenant_id, kind, {"recommendation_id": rec_id, **body})
    _evidence.link(session, tenant_id, rec_id, sha, kind, actor)
    return sha
