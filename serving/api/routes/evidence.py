"""Evidence records, by content hash (404 for another tenant's hash)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from serving.api.deps import Reader, SessionDep
from workflow import evidence
from workflow.schemas import UtcDatetime

__all__ = ["router"]

router = APIRouter(prefix="/v1/evidence", tags=["evidence"])


class EvidenceOut(BaseModel):
    """An immutable evidence record."""

    model_config = ConfigDict(from_attributes=True)

    sha256: str
    kind: str
    body: dict[str, Any]
    created_at: UtcDatetime


@router.get("/{sha256}", response_model=EvidenceOut)
def get(sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], p: Reader, s: SessionDep) -> EvidenceOut:
    """One evidence record."""
    return EvidenceOut.model_validate(evidence.get(s, p.tenant_id, sha256))
