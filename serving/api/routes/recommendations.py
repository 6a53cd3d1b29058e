"""Recommendations: propose, list, read, and the lifecycle actions (route, approve, override, reject, ...).

Every path with an id answers 404 for another tenant's id (existence never leaks). Decisions carry the
``version`` the caller looked at; a stale one answers 409 with the current version and state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from serving.api.deps import Decider, EngineDep, Integrator, PolicyDep, Proposer, Reader, SessionDep
from workflow import evidence, lifecycle
from workflow.schemas import (
    INT64_MAX,
    STATES,
    AckIn,
    ApproveIn,
    CommentIn,
    OverrideIn,
    ProposalIn,
    RecommendationOut,
    RejectIn,
    RouteIn,
    SupplierResponseIn,
    UtcDatetime,
)

__all__ = ["AuditOut", "router"]

router = APIRouter(prefix="/v1/recommendations", tags=["recommendations"])

RecId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
StateQ = Annotated[str | None, Query(pattern="^(" + "|".join(STATES) + ")$")]


class AuditOut(BaseModel):
    """One audit entry."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: UtcDatetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None
    sha256: str


class EvidenceLinkOut(BaseModel):
    """Evidence attached to a recommendation."""

    sha256: str
    kind: str
    actor: str
    created_at: UtcDatetime
    body: dict[str, Any]


class CommentOut(BaseModel):
    """The stored comment's address."""

    sha256: str


@router.post("", response_model=RecommendationOut, status_code=201)
def propose(body: ProposalIn, p: Proposer, s: SessionDep, policy: PolicyDep) -> RecommendationOut:
    """Propose a recommendation, valued on the server from the tenant's supplier terms (and route it)."""
    return lifecycle.propose(s, p.tenant_id, body, actor=p.actor, proposed_by=p.principal_id, policy=policy)


@router.get("", response_model=list[RecommendationOut])
def list_(
    p: Reader,
    s: SessionDep,
    state: StateQ = None,
    queue: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> list[RecommendationOut]:
    """List the tenant's recommendations, newest first."""
    return lifecycle.list_recommendations(
        s, p.tenant_id, state=state, queue=queue, limit=limit, offset=offset
    )


@router.get("/{rec_id}", response_model=RecommendationOut)
def get(rec_id: RecId, p: Reader, s: SessionDep) -> RecommendationOut:
    """One recommendation."""
    return lifecycle.get(s, p.tenant_id, rec_id)


@router.post("/{rec_id}/route", response_model=RecommendationOut)
def route(rec_id: RecId, body: RouteIn, p: Proposer, s: SessionDep) -> RecommendationOut:
    """Send a proposed recommendation to a planner queue."""
    return lifecycle.route(s, p.tenant_id, rec_id, body.route, actor=p.actor, expected_version=body.version)


@router.post("/{rec_id}/approve", response_model=RecommendationOut)
def approve(
    rec_id: RecId, body: ApproveIn, p: Decider, s: SessionDep, policy: PolicyDep
) -> RecommendationOut:
    """Approve as proposed; the action goes to the outbox."""
    return lifecycle.approve(s, p, rec_id, body, policy=policy)


@router.post("/{rec_id}/override", response_model=RecommendationOut)
def override(
    rec_id: RecId, body: OverrideIn, p: Decider, s: SessionDep, policy: PolicyDep
) -> RecommendationOut:
    """Approve with a changed quantity or date and a reason code."""
    return lifecycle.override(s, p, rec_id, body, policy=policy)


@router.post("/{rec_id}/reject", response_model=RecommendationOut)
def reject(rec_id: RecId, body: RejectIn, p: Decider, s: SessionDep, policy: PolicyDep) -> RecommendationOut:
    """Reject with a reason code."""
    return lifecycle.reject(s, p, rec_id, body, policy=policy)


@router.post("/{rec_id}/comments", response_model=CommentOut, status_code=201)
def comment(rec_id: RecId, body: CommentIn, p: Decider, s: SessionDep) -> CommentOut:
    """Attach a planner comment (immutable evidence)."""
    return CommentOut(sha256=lifecycle.comment(s, p.tenant_id, rec_id, body.text, actor=p.actor))


@router.post("/{rec_id}/ack", response_model=RecommendationOut)
def ack(rec_id: RecId, body: AckIn, p: Integrator, s: SessionDep) -> RecommendationOut:
    """Acknowledgement from the receiving system (accepted or rejected)."""
    return lifecycle.acknowledge(s, p.tenant_id, rec_id, body, actor=p.actor)


@router.post("/{rec_id}/supplier-responses", response_model=RecommendationOut, status_code=201)
def supplier_response(
    rec_id: RecId, body: SupplierResponseIn, request: Request, p: Integrator, engine: EngineDep
) -> RecommendationOut:
    """A supplier's response to a sent purchase order (the loop of ``POST /v1/suppliers/responses``)."""
    from features.store import session_scope
    from workflow.supplier_responses import ResponseLine, apply_responses, record_responses

    line = ResponseLine(order_number=rec_id, **body.model_dump())
    with session_scope(engine) as s:  # committed before the facts and the re-plan read it
        (outcome,) = record_responses(s, p.tenant_id, [line], actor=p.actor)
    apply_responses(engine, p.tenant_id, [outcome], settings=request.app.state.settings, actor=p.actor)
    return outcome.recommendation


@router.get("/{rec_id}/history", response_model=list[AuditOut])
def history(rec_id: RecId, p: Reader, s: SessionDep) -> list[AuditOut]:
    """Audit entries of this recommendation, oldest first."""
    return [AuditOut.model_validate(e) for e in lifecycle.history(s, p.tenant_id, rec_id)]


@router.get("/{rec_id}/evidence", response_model=list[EvidenceLinkOut])
def evidence_of(rec_id: RecId, p: Reader, s: SessionDep) -> list[EvidenceLinkOut]:
    """Evidence attached to this recommendation, oldest first."""
    lifecycle.get(s, p.tenant_id, rec_id)
    return [EvidenceLinkOut(**e) for e in evidence.for_recommendation(s, p.tenant_id, rec_id)]
