"""Immutable evidence, addressed by content hash.

An evidence record (forecast and model versions, assumptions, simulation result, supplier response, planner
comment) is stored once per tenant under ``sha256(canonical JSON of {kind, body})``; storing the same content
again is a no-op, and there is no update path. A recommendation points at its proposal evidence
(``evidence_sha256``) and at later evidence through ``wf_recommendation_evidence`` links.
:func:`verify` recomputes every hash, so an edited record is detected.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._canonical import canonical_json, jsonable, sha256_hex
from workflow._models import Evidence, RecommendationEvidence
from workflow.errors import InvalidInput, NotFound

__all__ = ["EVIDENCE_KINDS", "digest", "for_recommendation", "get", "link", "put", "verify"]

EVIDENCE_KINDS = (
    "proposal",
    "planner_comment",
    "override",
    "rejection",
    "supplier_response",
    "acknowledgement",
    "assumption",
)


def digest(kind: str, body: dict[str, Any]) -> str:
    """The content address of an evidence record."""
    return sha256_hex(canonical_json({"kind": kind, "body": body}))


def put(session: Session, tenant_id: str, kind: str, body: dict[str, Any]) -> str:
    """Store ``body`` (if not stored yet) and return its SHA-256.

    Raises:
        InvalidInput: unknown kind, or a value that is not JSON (NaN, an object).
    """
    if kind not in EVIDENCE_KINDS:
        raise InvalidInput(
            "evidence.kind", f"unknown kind {kind!r}; expected one of {', '.join(EVIDENCE_KINDS)}"
        )
    try:
        body = jsonable(body)
        sha = digest(kind, body)
    except ValueError as exc:
        raise InvalidInput("evidence", str(exc)) from None
    session.execute(
        _put_stmt(session.get_bind().dialect.name),
        {"tenant_id": tenant_id, "sha256": sha, "kind": kind, "body": body, "created_at": utcnow()},
    )
    return sha


_PUT: dict[str, Any] = {}
_LINK = insert(RecommendationEvidence.__table__)


def _put_stmt(dialect: str):
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``dialect``, built once."""
    stmt = _PUT.get(dialect)
    if stmt is None:
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = _PUT[dialect] = ins(Evidence.__table__).on_conflict_do_nothing(
            index_elements=["tenant_id", "sha256"]
        )
    return stmt


def link(session: Session, tenant_id: str, recommendation_id: str, sha: str, kind: str, actor: str) -> None:
    """Attach stored evidence to a recommendation."""
    session.execute(
        _LINK,
        {
            "tenant_id": tenant_id,
            "recommendation_id": recommendation_id,
            "evidence_sha256": sha,
            "kind": kind,
            "actor": actor,
            "created_at": utcnow(),
        },
    )


def get(session: Session, tenant_id: str, sha: str) -> Evidence:
    """One evidence record of ``tenant_id`` (404 for another tenant's hash)."""
    ev = session.get(Evidence, (tenant_id, sha))
    if ev is None:
        raise NotFound("evidence", sha)
    return ev


def for_recommendation(session: Session, tenant_id: str, recommendation_id: str) -> list[dict[str, Any]]:
    """Evidence linked to a recommendation, oldest first: ``[{sha256, kind, actor, created_at, body}]``."""
    L, E = RecommendationEvidence, Evidence
    rows = session.execute(
        select(L.evidence_sha256, L.kind, L.actor, L.created_at, E.body)
        .join(E, (E.tenant_id == L.tenant_id) & (E.sha256 == L.evidence_sha256))
        .where(L.tenant_id == tenant_id, L.recommendation_id == recommendation_id)
        .order_by(L.id)
    ).all()
    return [{"sha256": r[0], "kind": r[1], "actor": r[2], "created_at": r[3], "body": r[4]} for r in rows]


def verify(session: Session, tenant_id: str) -> list[str]:
    """Hashes of the tenant's evidence records whose content no longer matches their address."""
    bad = []
    for sha, kind, body in session.execute(
        select(Evidence.sha256, Evidence.kind, Evidence.body).where(Evidence.tenant_id == tenant_id)
    ):
        if digest(kind, body) != sha:
            bad.append(sha)
    return bad
