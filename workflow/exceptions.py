"""Exceptions as workflow objects: open -> assigned -> acknowledged -> resolved / dismissed.

Actions (:data:`TRANSITIONS`): assign, acknowledge (from open or assigned), resolve, dismiss (with a reason);
the user guide is ``docs/exceptions.md``.

* **One active exception per unit and type.** An exception's key is ``tenant|sku|unit|type``
  (:func:`planning`'s ``exception_keys``: the unit is the location, else ``supplier:<id>``); a partial unique
  index allows one *active* (open, assigned, acknowledged) row per key. :func:`open_exception` upserts: a
  later cycle that finds the same problem updates the active row (severity, value, message, last run,
  ``occurrences``), it never adds a second one.
* **Cleared conditions are auto-resolved.** When a plan run (a run that planned units) no longer finds a
  plan-detected exception, its active row is resolved with ``resolution = "cleared"`` by
  ``planning:<run>`` (:mod:`workflow._exception_sync`); a person's resolution is ``"resolved"`` or
  ``"dismissed"``. A row a person closed stays closed while the plan keeps finding the condition without a
  break (its ``last_seen_at`` and ``occurrences`` move, nothing reopens: a dismissed "known, ignore" does not
  come back every cycle); once a run no longer finds it (``cleared_at`` set), a later finding opens a new
  exception. Exceptions raised by other code (``source`` other than ``plan``: the supplier loop, the API) are
  never cleared by a plan run; a call after one was closed opens a new one.
* **Owner and due time.** The owner team comes from planning's routing (``owner_team``, else the route
  queue); ``assignee`` is a person (assign, or whoever acknowledges an unassigned one). ``due_at`` is
  ``opened_at + SLA`` of the type (:data:`DEFAULT_SLA_HOURS`, per tenant and type in
  ``wf_exception_rules``: :func:`set_rule`), half of it for ``high`` severity.
* **Escalation.** :func:`escalate_overdue` (the scheduler calls it) escalates every active exception past its
  due time: ``escalation_level`` + 1, the owner team becomes the rule's ``escalate_to`` (if set), the least
  role becomes ``approver``, and a new due time one SLA later.
* **Events, audit, writeback.** Every change appends an ``exception`` event (``exception.<verb>``) and an
  audit entry, and an ``exception_update`` outbox item where the tenant's rule asks, in its transaction.
* **Optimistic concurrency.** Actions take the ``version`` the caller saw; a stale one is a 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._exception_rules import DEFAULT_SLA_HOURS, RuleOut, _due, get_rule, set_rule
from workflow._exception_schemas import (
    ExceptionIllegalTransition,
    ExceptionIn,
    ExceptionOut,
    ExceptionVersionConflict,
)
from workflow._exception_tables import ACTIVE_STATES, ExceptionRecord
from workflow._exception_writeback import record
from workflow._journal import AuditRecord, EventRecord, flush
from workflow._models import Recommendation
from workflow.errors import InvalidInput, NotFound
from workflow.schemas import as_utc

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_SLA_HOURS",
    "EXCEPTION_STATES",
    "TRANSITIONS",
    "ExceptionIllegalTransition",
    "ExceptionIn",
    "ExceptionOut",
    "ExceptionVersionConflict",
    "RuleOut",
    "acknowledge",
    "assign",
    "dismiss",
    "escalate_overdue",
    "exception_key",
    "get",
    "get_rule",
    "history",
    "list_exceptions",
    "open_exception",
    "resolve",
    "set_rule",
    "sync_plan_exceptions",
]

EXCEPTION_STATES = ("open", "assigned", "acknowledged", "resolved", "dismissed")
#: action -> (states it is allowed from, state it leads to; None: unchanged)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "assign": (ACTIVE_STATES, "assigned"),
    "acknowledge": (("open", "assigned"), "acknowledged"),
    "resolve": (ACTIVE_STATES, "resolved"),
    "dismiss": (ACTIVE_STATES, "dismissed"),
    "clear": (ACTIVE_STATES, "resolved"),
    "escalate": (ACTIVE_STATES, None),
    "update": (ACTIVE_STATES, None),
}
_SEVERITIES = ("high", "medium", "low")
_E = ExceptionRecord.__table__
_COLS = [c.name for c in _E.columns]


def exception_key(tenant_id: str, exc: ExceptionIn) -> str:
    """``tenant|sku|unit|type`` (unit: the location, else ``supplier:<id>``, else ``-``), as planning's."""
    unit = exc.location_id or (f"supplier:{exc.supplier_id}" if exc.supplier_id else "-")
    return f"{tenant_id}|{exc.sku_id or '-'}|{unit}|{exc.exception_type}"


def _out(row: Mapping[str, Any], now: datetime | None = None) -> ExceptionOut:
    out = ExceptionOut.model_validate(dict(row))
    now = now or utcnow()
    out.overdue = out.state in ACTIVE_STATES and as_utc(out.due_at) < as_utc(now)
    return out


def _snapshot(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "state",
        "version",
        "severity",
        "assignee",
        "owner_team",
        "route_role",
        "due_at",
        "escalation_level",
        "resolution",
        "value",
    )
    return {k: row.get(k) for k in keys}


def _journal_records(before, after, verb: str, actor: str, reason: str | None):
    audit = AuditRecord(
        actor=actor,
        action=f"exception.{verb}",
        entity_type="exception",
        entity_id=after["id"],
        before=None if before is None else _snapshot(before),
        after=_snapshot(after),
        reason=reason,
    )
    payload = {
        "id": after["id"],
        "exception_type": after["exception_type"],
        "state": after["state"],
        "from_state": None if before is None else before["state"],
        "severity": after["severity"],
        "sku_id": after["sku_id"],
        "location_id": after["location_id"],
        "supplier_id": after["supplier_id"],
        "owner_team": after["owner_team"],
        "assignee": after["assignee"],
        "due_at": after["due_at"],
        "escalation_level": after["escalation_level"],
        "version": after["version"],
        "reason": reason,
    }
    event = EventRecord(
        topic="exception", type=f"exception.{verb}", key=after["exception_key"], payload=payload
    )
    return audit, event


# ---- opening and updating ---------------------------------------------------------------------------------


def _active_by_key(session: Session, tenant_id: str, key: str) -> Mapping[str, Any] | None:
    q = select(_E).where(
        _E.c.tenant_id == tenant_id, _E.c.exception_key == key, _E.c.state.in_(ACTIVE_STATES)
    )
    return session.execute(q).mappings().first()


def _quiet_by_key(session: Session, tenant_id: str, key: str) -> Mapping[str, Any] | None:
    """A plan exception a person closed whose condition has not cleared since (it stays closed)."""
    q = (
        select(_E)
        .where(
            _E.c.tenant_id == tenant_id,
            _E.c.exception_key == key,
            _E.c.state.in_(("resolved", "dismissed")),
            _E.c.resolution != "cleared",
            _E.c.cleared_at.is_(None),
            _E.c.source == "plan",
        )
        .order_by(_E.c.closed_at.desc())
    )
    return session.execute(q).mappings().first()


def _cas(session: Session, row: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    values = {**values, "version": row["version"] + 1}
    res = session.execute(
        update(_E).where(_E.c.id == row["id"], _E.c.version == row["version"]).values(**values)
    )
    if res.rowcount != 1:
        current = session.execute(select(_E.c.version, _E.c.state).where(_E.c.id == row["id"])).first()
        raise ExceptionVersionConflict(row["id"], row["version"], current[0], current[1])
    return {**dict(row), **values}


def open_exception(
    session: Session,
    tenant_id: str,
    exc: ExceptionIn,
    *,
    actor: str,
    source: str = "api",
    run_id: str | None = None,
    now: datetime | None = None,
    journal: dict[str, tuple[list, list]] | None = None,
) -> tuple[ExceptionOut, str]:
    """Open an exception, or update the active one with the same key (one active exception per unit and type).

    The one entry point for other code (the plan sync, the supplier loop, the API). Call it inside the
    caller's transaction; the event and audit entry are appended in it (or collected in ``journal``).

    Args:
        session: an open session of a migrated store.
        tenant_id: whose exception.
        exc: what was found; ``exception_key`` defaults to :func:`exception_key`.
        actor: who raises it (``planning:<run>``, ``supplier:<id>``, ``key:<id>``).
        source: ``plan`` for plan-detected exceptions (cleared by later plan runs), else any label.
        run_id: the run that found it (plan run, supplier response, ...).
        now: the time of the finding (default now).
        journal: collect the journal records for one append per tenant (:func:`workflow._journal.collect`).

    Returns:
        ``(exception, what)``, ``what`` one of ``opened``, ``updated``, ``quiet`` (a plan exception a person
        closed whose condition persists: left closed).
    """
    now = now or utcnow()
    key = exc.exception_key or exception_key(tenant_id, exc)
    found = {
        "severity": exc.severity,
        "value": exc.value,
        "threshold": exc.threshold,
        "message": exc.message,
        "customer_impacting": exc.customer_impacting,
        "last_run_id": run_id,
        "last_seen_at": now,
        "updated_at": now,
    }
    row = _active_by_key(session, tenant_id, key)
    if row is None and source == "plan":
        quiet = _quiet_by_key(session, tenant_id, key)
        if quiet is not None:
            session.execute(
                update(_E)
                .where(_E.c.id == quiet["id"])
                .values(last_seen_at=now, last_run_id=run_id, occurrences=quiet["occurrences"] + 1)
            )
            return _out(
                {**dict(quiet), "last_seen_at": now, "occurrences": quiet["occurrences"] + 1}, now
            ), "quiet"
    if row is None:
        rule = get_rule(session, tenant_id, exc.exception_type)
        new = {
            **{c: None for c in _COLS},
            **found,
            "id": uuid.uuid4().hex,
            "tenant_id": tenant_id,
            "exception_key": key,
            "exception_type": exc.exception_type,
            "state": "open",
            "version": 1,
            "sku_id": exc.sku_id,
            "location_id": exc.location_id,
            "supplier_id": exc.supplier_id,
            "po_id": exc.po_id,
            "source": source,
            "first_run_id": run_id,
            "occurrences": 1,
            "route_queue": exc.route_queue,
            "route_role": exc.route_role,
            "owner_team": exc.owner_team or exc.route_queue,
            "due_at": _due(now, rule, exc.severity),
            "escalation_level": 0,
            "recommendation_ids": list(dict.fromkeys(exc.recommendation_ids)),
            "opened_at": now,
        }
        try:
            with session.begin_nested():
                session.execute(insert(_E).values(**new))
        except IntegrityError:  # another writer opened it first: update theirs
            row = _active_by_key(session, tenant_id, key)
            if row is None:
                raise
        else:
            a, e = _journal_records(None, new, "opened", actor, None)
            record(session, tenant_id, a, e, new, journal)
            return _out(new, now), "opened"
    changes = dict(found)
    if exc.recommendation_ids:
        changes["recommendation_ids"] = list(
            dict.fromkeys([*(row["recommendation_ids"] or []), *exc.recommendation_ids])
        )
    if _SEVERITIES.index(exc.severity) < _SEVERITIES.index(
        row["severity"]
    ):  # worse: the due time may come closer
        rule = get_rule(session, tenant_id, exc.exception_type)
        changes["due_at"] = min(as_utc(row["due_at"]), _due(as_utc(row["opened_at"]), rule, exc.severity))
    if row["owner_team"] is None and (exc.owner_team or exc.route_queue):
        changes["owner_team"] = exc.owner_team or exc.route_queue
    changes["occurrences"] = row["occurrences"] + 1
    after = _cas(session, row, changes)
    a, e = _journal_records(row, after, "updated", actor, None)
    record(session, tenant_id, a, e, after, journal)
    return _out(after, now), "updated"


# ---- actions --------------------------------------------------------------------------------


def _load(session: Session, tenant_id: str, exc_id: str) -> Mapping[str, Any]:
    row = session.execute(select(_E).where(_E.c.id == exc_id, _E.c.tenant_id == tenant_id)).mappings().first()
    if row is None:
        raise NotFound("exception", exc_id)
    return row


def _act(
    session: Session,
    tenant_id: str,
    exc_id: str,
    action: str,
    changes: dict[str, Any],
    *,
    actor: str,
    expected_version: int | None,
    reason: str | None = None,
    verb: str | None = None,
    row: Mapping[str, Any] | None = None,
    journal: dict | None = None,
) -> ExceptionOut:
    row = row if row is not None else _load(session, tenant_id, exc_id)
    allowed, to = TRANSITIONS[action]
    if expected_version is not None and row["version"] != expected_version:
        raise ExceptionVersionConflict(exc_id, expected_version, row["version"], row["state"])
    if row["state"] not in allowed:
        raise ExceptionIllegalTransition(exc_id, action, row["state"], allowed)
    now = utcnow()
    values = {**changes, "updated_at": now}
    if to is not None:
        values["state"] = to
    after = _cas(session, row, values)
    a, e = _journal_records(
        row, after, verb or action + ("d" if action.endswith("e") else "ed"), actor, reason
    )
    record(session, tenant_id, a, e, after, journal)
    return _out(after, now)


def assign(
    session: Session,
    tenant_id: str,
    exc_id: str,
    *,
    assignee: str,
    actor: str,
    owner_team: str | None = None,
    expected_version: int | None = None,
) -> ExceptionOut:
    """Give an active exception to a person (and optionally a team)."""
    assignee = (assignee or "").strip()
    if not assignee or len(assignee) > 200:
        raise InvalidInput("assignee", "expected a person's name or id (1 to 200 characters)")
    changes: dict[str, Any] = {"assignee": assignee}
    if owner_team:
        changes["owner_team"] = owner_team[:64]
    return _act(
        session,
        tenant_id,
        exc_id,
        "assign",
        changes,
        actor=actor,
        expected_version=expected_version,
        verb="assigned",
    )


def acknowledge(
    session: Session,
    tenant_id: str,
    exc_id: str,
    *,
    actor: str,
    note: str | None = None,
    expected_version: int | None = None,
) -> ExceptionOut:
    """Say the exception is being handled (an unassigned one is assigned to whoever acknowledges it)."""
    row = _load(session, tenant_id, exc_id)
    changes = {"acknowledged_at": utcnow(), "assignee": row["assignee"] or actor}
    return _act(
        session,
        tenant_id,
        exc_id,
        "acknowledge",
        changes,
        actor=actor,
        expected_version=expected_version,
        reason=note,
        verb="acknowledged",
        row=row,
    )


def resolve(
    session: Session,
    tenant_id: str,
    exc_id: str,
    *,
    actor: str,
    reason: str | None = None,
    expected_version: int | None = None,
) -> ExceptionOut:
    """Close the exception as handled."""
    changes = {"resolution": "resolved", "reason": reason, "closed_at": utcnow(), "closed_by": actor}
    return _act(
        session,
        tenant_id,
        exc_id,
        "resolve",
        changes,
        actor=actor,
        expected_version=expected_version,
        reason=reason,
        verb="resolved",
    )


def dismiss(
    session: Session,
    tenant_id: str,
    exc_id: str,
    *,
    actor: str,
    reason: str,
    expected_version: int | None = None,
) -> ExceptionOut:
    """Close the exception as not worth acting on; a reason is required."""
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise InvalidInput("reason", "a dismissal needs a reason (at least 3 characters)")
    changes = {"resolution": "dismissed", "reason": reason, "closed_at": utcnow(), "closed_by": actor}
    return _act(
        session,
        tenant_id,
        exc_id,
        "dismiss",
        changes,
        actor=actor,
        expected_version=expected_version,
        reason=reason,
        verb="dismissed",
    )


def escalate_overdue(
    session: Session,
    tenant_id: str | None = None,
    *,
    now: datetime | None = None,
    actor: str = "system:scheduler",
    limit: int = 1000,
) -> list[ExceptionOut]:
    """Escalate every active exception past its due time (of one tenant, or of all); what the scheduler calls.

    Each gets ``escalation_level`` + 1, the least role ``approver``, the owner team of the rule's
    ``escalate_to`` (when set) and a new due time one SLA from now, so an exception nobody handles escalates
    again one SLA later, not on every scheduler tick. Idempotent within a tick; one journal append per tenant.

    Returns:
        The escalated exceptions (at most ``limit``, oldest due first).
    """
    now = now or utcnow()
    q = select(_E).where(_E.c.state.in_(ACTIVE_STATES), _E.c.due_at < now)
    if tenant_id is not None:
        q = q.where(_E.c.tenant_id == tenant_id)
    rows = session.execute(q.order_by(_E.c.due_at, _E.c.id).limit(limit)).mappings().all()
    journal: dict[str, tuple[list, list]] = {}
    out = []
    for row in rows:
        rule = get_rule(session, row["tenant_id"], row["exception_type"])
        level = row["escalation_level"] + 1
        changes = {
            "escalation_level": level,
            "escalated_at": now,
            "route_role": "approver",
            "owner_team": rule.escalate_to or row["owner_team"],
            "due_at": _due(now, rule, row["severity"]),
        }
        reason = f"overdue since {as_utc(row['due_at']).isoformat(timespec='minutes')} (level {level})"
        out.append(
            _act(
                session,
                row["tenant_id"],
                row["id"],
                "escalate",
                changes,
                actor=actor,
                expected_version=None,
                reason=reason,
                verb="escalated",
                row=row,
                journal=journal,
            )
        )
    flush(session, journal)
    return out


# ---- reading --------------------------------------------------------------------------------


def get(session: Session, tenant_id: str, exc_id: str) -> ExceptionOut:
    """One exception of the tenant, with the recommendations linked to it (404 for another tenant's id)."""
    out = _out(_load(session, tenant_id, exc_id))
    out.recommendation_ids = linked_recommendations(session, tenant_id, out)
    return out


def linked_recommendations(session: Session, tenant_id: str, exc: ExceptionOut, limit: int = 10) -> list[str]:
    """Recommendations linked explicitly, then the unit's newest recommendations (same SKU and location)."""
    ids = list(exc.recommendation_ids)
    if exc.sku_id is not None:
        q = select(Recommendation.id).where(
            Recommendation.tenant_id == tenant_id, Recommendation.sku_id == exc.sku_id
        )
        if exc.location_id is not None:
            q = q.where(Recommendation.location_id == exc.location_id)
        elif exc.supplier_id is not None:
            q = q.where(Recommendation.supplier_id == exc.supplier_id)
        ids += list(session.execute(q.order_by(Recommendation.created_at.desc()).limit(limit)).scalars())
    return list(dict.fromkeys(ids))[:limit]


def list_exceptions(
    session: Session,
    tenant_id: str,
    *,
    state: str | None = None,
    exception_type: str | None = None,
    severity: str | None = None,
    owner_team: str | None = None,
    assignee: str | None = None,
    sku_id: str | None = None,
    location_id: str | None = None,
    active: bool | None = None,
    overdue: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ExceptionOut]:
    """The tenant's exceptions, most severe and oldest due first, with filters."""
    now = utcnow()
    q = select(_E).where(_E.c.tenant_id == tenant_id)
    for col, val in (
        (_E.c.state, state),
        (_E.c.exception_type, exception_type),
        (_E.c.severity, severity),
        (_E.c.owner_team, owner_team),
        (_E.c.assignee, assignee),
        (_E.c.sku_id, sku_id),
        (_E.c.location_id, location_id),
    ):
        if val is not None:
            q = q.where(col == val)
    if active is not None:
        q = q.where(_E.c.state.in_(ACTIVE_STATES) if active else _E.c.state.not_in(ACTIVE_STATES))
    if overdue is not None:
        late = and_(_E.c.state.in_(ACTIVE_STATES), _E.c.due_at < now)
        q = q.where(late if overdue else or_(_E.c.state.not_in(ACTIVE_STATES), _E.c.due_at >= now))
    order = (
        case((_E.c.state.in_(ACTIVE_STATES), 0), else_=1),
        case((_E.c.severity == "high", 0), (_E.c.severity == "medium", 1), else_=2),
        _E.c.due_at,
        _E.c.id,
    )
    rows = session.execute(q.order_by(*order).limit(limit).offset(offset)).mappings().all()
    return [_out(r, now) for r in rows]


def history(session: Session, tenant_id: str, exc_id: str) -> list[Any]:
    """Audit entries of one exception, oldest first."""
    from workflow._models import AuditEntry

    _load(session, tenant_id, exc_id)
    q = (
        select(AuditEntry)
        .where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.entity_type == "exception",
            AuditEntry.entity_id == exc_id,
        )
        .order_by(AuditEntry.seq)
    )
    return list(session.execute(q).scalars())


def sync_plan_exceptions(engine: Any, tenant_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Take the tenant's new plan runs' exceptions in (:mod:`workflow._exception_sync`)."""
    from workflow._exception_sync import sync_plan_exceptions as sync

    return sync(engine, tenant_id, now=now)
