"""The per-tenant journal: hash-chained audit entries and ordered events, appended under one row lock.

Every change of state in the control plane ends its transaction with exactly one :func:`append` call, *after*
its other writes (lock order: recommendation row, outbox row, journal head). :func:`append` locks the tenant's
``wf_journal_heads`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's single writer lock does the same),
so within a tenant

* audit ``seq`` and event ``seq`` are gapless and increase in commit order, and
* each audit entry's hash covers the previous entry's hash, making the log a hash chain.

The lock is held only from the append to the commit (a few inserts), so it bounds a single tenant's write
rate, not the service's: tenants never wait for each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._canonical import GENESIS, canonical_json, jsonable, sha256_hex, ts_text
from workflow._models import AuditEntry, Event, JournalHead, OutboxItem

__all__ = ["AuditRecord", "EventRecord", "append", "audit_digest", "collect", "flush"]

_HEAD = JournalHead.__table__
_AUDIT = AuditEntry.__table__
_EVENTS = Event.__table__


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry to append: who did what to which entity, with before/after and why."""

    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class EventRecord:
    """One event to append to the tenant's ordered log."""

    topic: str
    type: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)


def audit_digest(
    prev_sha256: str,
    *,
    tenant_id: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: Any,
    after: Any,
    reason: str | None,
) -> str:
    """SHA-256 of the previous hash and the canonical JSON of one entry (the chain's link)."""
    body = {
        "tenant_id": tenant_id,
        "seq": int(seq),
        "at": ts_text(at),
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "before": before,
        "after": after,
        "reason": reason,
    }
    return sha256_hex(prev_sha256.encode(), canonical_json(body))


_OUTBOX_COLS = (
    "tenant_id, recommendation_id, idempotency_key, kind, payload, status, attempts, "
    "next_attempt_at, created_at"
)
_PG_OUTBOX = (
    f", new_outbox AS (INSERT INTO wf_outbox ({_OUTBOX_COLS}) SELECT {_OUTBOX_COLS} FROM "
    "json_populate_recordset(NULL::wf_outbox, CAST(:outbox AS json)))"
)
_PG_APPEND = text(
    "WITH new_audit AS (INSERT INTO wf_audit_log SELECT * FROM json_populate_recordset(NULL::wf_audit_log, "
    "CAST(:audit AS json))), new_events AS (INSERT INTO wf_events SELECT * FROM "
    "json_populate_recordset(NULL::wf_events, CAST(:events AS json)))"
    f"{_PG_OUTBOX} UPDATE wf_journal_heads SET audit_sha256 = :sha WHERE tenant_id = :tenant_id"
)


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return json.dumps(
        [{k: ts_text(v) if isinstance(v, datetime) else v for k, v in r.items()} for r in rows],
        ensure_ascii=False,
        allow_nan=False,
    )


_TAKE = (
    update(_HEAD)
    .where(_HEAD.c.tenant_id == bindparam("b_tenant"))
    .values(audit_seq=_HEAD.c.audit_seq + bindparam("b_na"), event_seq=_HEAD.c.event_seq + bindparam("b_ne"))
    .returning(_HEAD.c.audit_seq, _HEAD.c.audit_sha256, _HEAD.c.event_seq)
)
_SET_HASH = (
    update(_HEAD).where(_HEAD.c.tenant_id == bindparam("b_tenant")).values(audit_sha256=bindparam("b_sha"))
)
_AUDIT_INSERT = insert(_AUDIT)
_EVENTS_INSERT = insert(_EVENTS)
_OUTBOX_INSERT = insert(OutboxItem.__table__)


def _take_head(session: Session, tenant_id: str, n_audit: int, n_events: int) -> tuple[int, str, int]:
    """Lock the tenant's head and reserve ``n_audit`` audit and ``n_events`` event numbers (one round trip).

    ``UPDATE ... RETURNING`` takes the row lock on PostgreSQL and SQLite's writer lock (so the head read
    cannot change before commit). Returns the head *before* the reservation: last audit seq and hash, last
    event seq.
    """
    params = {"b_tenant": tenant_id, "b_na": n_audit, "b_ne": n_events}
    row = session.execute(_TAKE, params).first()
    if row is None:  # the tenant's first entry
        dialect = session.get_bind().dialect.name
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            ins(_HEAD)
            .values(tenant_id=tenant_id, audit_seq=0, audit_sha256=GENESIS, event_seq=0)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        row = session.execute(_TAKE, params).one()
    return int(row[0]) - n_audit, str(row[1]), int(row[2]) - n_events


def append(
    session: Session,
    tenant_id: str,
    audits: list[AuditRecord] = (),
    events: list[EventRecord] = (),
    *,
    at: datetime | None = None,
    outbox_rows: list[dict[str, Any]] = (),
) -> tuple[int, int]:
    """Append audit entries and events for ``tenant_id`` in the caller's transaction.

    Call it last in the transaction (it takes the tenant's journal lock until commit). Two round trips on
    PostgreSQL: reserve the numbers; then insert both logs, the ``outbox_rows`` of an approval and the new
    chain hash in one statement.

    Returns:
        ``(last_audit_seq, last_event_seq)`` after the append.
    """
    if not audits and not events:
        raise ValueError("append needs at least one audit entry or event")
    at = at or utcnow()
    a_seq, a_hash, e_seq = _take_head(session, tenant_id, len(audits), len(events))
    audit_rows, event_rows = [], []
    for rec in audits:
        a_seq += 1
        before, after = jsonable(rec.before), jsonable(rec.after)
        digest = audit_digest(
            a_hash,
            tenant_id=tenant_id,
            seq=a_seq,
            at=at,
            actor=rec.actor,
            action=rec.action,
            entity_type=rec.entity_type,
            entity_id=rec.entity_id,
            before=before,
            after=after,
            reason=rec.reason,
        )
        audit_rows.append(
            {
                "tenant_id": tenant_id,
                "seq": a_seq,
                "at": at,
                "actor": rec.actor,
                "action": rec.action,
                "entity_type": rec.entity_type,
                "entity_id": rec.entity_id,
                "before": before,
                "after": after,
                "reason": rec.reason,
                "prev_sha256": a_hash,
                "sha256": digest,
            }
        )
        a_hash = digest
    for ev in events:
        e_seq += 1
        event_rows.append(
            {
                "tenant_id": tenant_id,
                "seq": e_seq,
                "topic": ev.topic,
                "type": ev.type,
                "key": ev.key,
                "payload": jsonable(ev.payload),
                "at": at,
            }
        )
    if session.get_bind().dialect.name == "postgresql":
        # One statement of fixed shape (compiled once): both logs arrive as JSON arrays and the chain's new
        # hash is stored on the head. json (not jsonb) keeps nested JSON text exactly as hashed.
        session.execute(
            _PG_APPEND,
            {
                "tenant_id": tenant_id,
                "sha": a_hash,
                "audit": _json_rows(audit_rows),
                "events": _json_rows(event_rows),
                "outbox": _json_rows(list(outbox_rows)),
            },
        )
    else:
        if outbox_rows:
            session.execute(_OUTBOX_INSERT, list(outbox_rows))
        if audit_rows:
            session.execute(_AUDIT_INSERT, audit_rows)
        if event_rows:
            session.execute(_EVENTS_INSERT, event_rows)
        if audit_rows:
            session.execute(_SET_HASH, {"b_tenant": tenant_id, "b_sha": a_hash})
    return a_seq, e_seq


def collect(
    session: Session,
    tenant_id: str,
    audits: list[AuditRecord],
    events: list[EventRecord],
    journal: dict[str, tuple[list, list]] | None,
) -> None:
    """Append now (``journal`` None), or collect for one :func:`flush` per tenant at the end of a batch."""
    if journal is None:
        append(session, tenant_id, audits, events)
    else:
        a, e = journal.setdefault(tenant_id, ([], []))
        a.extend(audits)
        e.extend(events)


def flush(session: Session, journal: dict[str, tuple[list, list]]) -> None:
    """Append what a batch collected: one append per tenant, tenants in sorted order (the lock order)."""
    for tenant_id in sorted(journal):
        audits, events = journal[tenant_id]
        if audits or events:
            append(session, tenant_id, audits, events)
