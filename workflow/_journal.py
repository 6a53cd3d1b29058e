"""The per-tenant journal: hash-chained audit entries and ordered events, appended under one row lock.

Every change of state in the control plane ends its transaction with exactly one :func:`append` call, *after*
its other writes (lock order: recommendation row, outbox row, journal head). :func:`append` locks the tenant's
``wf_journal_heads`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's single writer lock does the same), so
within a tenant

* audit ``seq`` and event ``seq`` are gapless and increase in commit order, and
* each audit entry's hash covers the previous entry's hash, making the log a hash chain.

The lock is held only from the append to the commit (a few inserts), so it bounds a single tenant's write rate,
not the service's: tenants never wait for each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from features.store._db import utcnow
from workflow._canonical import GENESIS, canonical_json, jsonable, sha256_hex, ts_text
from workflow._models import AuditEntry, Event, JournalHead

__all__ = ["AuditRecord", "EventRecord", "append", "audit_digest"]

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


def _lock_head(session: Session, tenant_id: str) -> tuple[int, str, int]:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # pysqlite runs a SELECT that opens a transaction outside any lock; a (no-op) write first takes
        # SQLite's writer lock, so the head we read next cannot change before we commit.
        session.execute(update(_HEAD).where(_HEAD.c.tenant_id == tenant_id)
                        .values(event_seq=_HEAD.c.event_seq))
    stmt = (
        select(_HEAD.c.audit_seq, _HEAD.c.audit_sha256, _HEAD.c.event_seq)
        .where(_HEAD.c.tenant_id == tenant_id)
        .with_for_update()
    )
    row = session.execute(stmt).first()
    if row is None:
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            ins(_HEAD)
            .values(tenant_id=tenant_id, audit_seq=0, audit_sha256=GENESIS, event_seq=0)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        row = session.execute(stmt).one()
    return int(row[0]), str(row[1]), int(row[2])


def append(
    session: Session,
    tenant_id: str,
    audits: list[AuditRecord] = (),
    events: list[EventRecord] = (),
    *,
    at: datetime | None = None,
) -> tuple[int, int]:
    """Append audit entries and events for ``tenant_id`` in the caller's transaction.

    Call it last in the transaction (it takes the tenant's journal lock until commit).

    Returns:
        ``(last_audit_seq, last_event_seq)`` after the append.
    """
    if not audits and not events:
        raise ValueError("append needs at least one audit entry or event")
    at = at or utcnow()
    a_seq, a_hash, e_seq = _lock_head(session, tenant_id)
    if audits:
        rows = []
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
            rows.append(
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
        session.execute(insert(_AUDIT), rows)
    if events:
        rows = []
        for ev in events:
            e_seq += 1
            rows.append(
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
        session.execute(insert(_EVENTS), rows)
    session.execute(
        update(_HEAD)
        .where(_HEAD.c.tenant_id == tenant_id)
        .values(audit_seq=a_seq, audit_sha256=a_hash, event_seq=e_seq)
    )
    return a_seq, e_seq
