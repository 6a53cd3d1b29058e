"""The audit log: entries in order, and verification of the hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from serving.api.deps import Reader, SessionDep
from serving.api.routes.recommendations import AuditOut
from workflow import audit
from workflow.schemas import INT64_MAX

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class VerifyOut(BaseModel):
    """Result of verifying the tenant's chain."""

    tenant_id: str
    ok: bool
    entries: int
    head_seq: int
    problems: list[dict[str, Any]]


@router.get("", response_model=list[AuditOut])
def list_(
    p: Reader,
    s: SessionDep,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    entity_type: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[AuditOut]:
    """Audit entries after ``after``, in order."""
    return [
        AuditOut.model_validate(e)
        for e in audit.entries(
            s, p.tenant_id, entity_type=entity_type, entity_id=entity_id, after_seq=after, limit=limit
        )
    ]


@router.get("/verify", response_model=VerifyOut)
def verify(p: Reader, s: SessionDep) -> VerifyOut:
    """Walk the tenant's hash chain and report every broken link."""
    return VerifyOut(**audit.verify(s, p.tenant_id).as_dict())
