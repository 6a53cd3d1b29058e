"""The append-only, hash-chained audit log: reading it and verifying it.

Entries are written only by :func:`workflow._journal.append` (one per change of state, with actor, time,
before/after and reason). Entry ``n`` of a tenant stores ``sha256 = H(sha256[n-1] || canonical(entry n))``
and the tenant's journal head stores the last ``seq`` and hash, so :func:`verify` detects an edited entry
(its hash no longer matches), a deleted or inserted entry (``seq`` gap or broken link) and a truncated tail
(head and last entry disagree). ``replenish audit verify`` runs it for every tenant.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow._canonical import GENESIS
from workflow._journal import audit_digest
from workflow._models import AuditEntry, JournalHead

__all__ = ["AuditProblem", "VerifyReport", "entries", "entries_of", "verify", "verify_all"]


@dataclass(frozen=True)
class AuditProblem:
    """One inconsistency found by :func:`verify`."""

    seq: int
    problem: str


@dataclass
class VerifyReport:
    """Result of verifying one tenant's chain."""

    tenant_id: str
    entries: int = 0
    head_seq: int = 0
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def as_dict(self) -> dict:
        """JSON-able form."""
        return {
            "tenant_id": self.tenant_id,
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "problems": [{"seq": p.seq, "problem": p.problem} for p in self.problems],
        }


def entries(
    session: Session,
    tenant_id: str,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit entries of one tenant in ``seq`` order, optionally for one entity."""
    stmt = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.seq > after_seq)
    if entity_type is not None:
        stmt = stmt.where(AuditEntry.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    return list(session.scalars(stmt.order_by(AuditEntry.seq).limit(limit)))


def entries_of(
    session: Session, tenant_id: str, entity_type: str, entity_ids: Sequence[str]
) -> dict[str, list[AuditEntry]]:
    """Audit entries of several entities of one type in one query: ``{entity_id: entries}`` in ``seq`` order.

    An id with no entries in this tenant (another tenant's, or unknown) maps to an empty list.
    """
    out: dict[str, list[AuditEntry]] = {e: [] for e in entity_ids}
    if not out:
        return out
    stmt = select(AuditEntry).where(
        AuditEntry.tenant_id == tenant_id,
        AuditEntry.entity_type == entity_type,
        AuditEntry.entity_id.in_(list(out)),
    )
    for e in session.scalars(stmt.order_by(AuditEntry.seq)):
        out[e.entity_id].append(e)
    return out


def _scan(session: Session, tenant_id: str, chunk: int = 5000) -> Iterator[tuple]:
    cols = AuditEntry.__table__.c
    last = 0
    while True:
        rows = session.execute(
            select(
                cols.seq,
                cols.at,
                cols.actor,
                cols.action,
                cols.entity_type,
                cols.entity_id,
                cols.before,
                cols.after,
                cols.reason,
                cols.prev_sha256,
                cols.sha256,
            )
            .where(cols.tenant_id == tenant_id, cols.seq > last)
            .order_by(cols.seq)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def verify(session: Session, tenant_id: str, *, max_problems: int = 100) -> VerifyReport:
    """Walk one tenant's chain from the genesis and report every broken link (up to ``max_problems``)."""
    report = VerifyReport(tenant_id)
    head = session.get(JournalHead, tenant_id)
    report.head_seq = int(head.audit_seq) if head else 0
    prev_hash, expect_seq = GENESIS, 1

    def problem(seq: int, text: str) -> None:
        if len(report.problems) < max_problems:
            report.problems.append(AuditProblem(seq, text))

    for seq, at, actor, action, etype, eid, before, after, reason, prev_sha, sha in _scan(session, tenant_id):
        report.entries += 1
        if seq != expect_seq:
            problem(
                seq, f"sequence gap: expected seq {expect_seq}, found {seq} (entries deleted or inserted)"
            )
        if prev_sha != prev_hash:
            problem(seq, "prev_sha256 does not match the previous entry's hash (chain broken)")
        digest = audit_digest(
            prev_sha,
            tenant_id=tenant_id,
            seq=seq,
            at=_as_dt(at),
            actor=actor,
            action=action,
            entity_type=etype,
            entity_id=eid,
            before=before,
            after=after,
            reason=reason,
        )
        if digest != sha:
            problem(seq, "content does not match its sha256 (entry edited)")
        prev_hash, expect_seq = sha, seq + 1
    if head is not None:
        if report.entries and (head.audit_seq != expect_seq - 1 or head.audit_sha256 != prev_hash):
            problem(
                head.audit_seq,
                f"journal head (seq {head.audit_seq}) does not match the last entry "
                f"(seq {expect_seq - 1}): entries missing at the tail",
            )
        elif not report.entries and head.audit_seq:
            problem(head.audit_seq, "journal head records entries but the log is empty")
    return report


def _as_dt(value) -> datetime:
    if isinstance(value, str):  # some drivers hand back text
        return datetime.fromisoformat(value)
    return value


def verify_all(session: Session) -> list[VerifyReport]:
    """Verify the chain of every tenant that has a journal."""
    tenants = session.scalars(select(JournalHead.tenant_id).order_by(JournalHead.tenant_id)).all()
    return [verify(session, t) for t in tenants]
