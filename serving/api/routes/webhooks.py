"""Webhook targets of the caller's tenant, per receiving system (admin only; secrets are write-only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from serving.api.deps import Admin, SessionDep
from workflow import webhooks
from workflow.schemas import StrictIn, UtcDatetime

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

System = Annotated[
    Literal["erp", "wms", "oms", "exceptions"],
    Path(description="Receiving system (exceptions: optional receiver of exception updates, else the ERP)."),
]


class TargetIn(StrictIn):
    """Where the tenant's actions for this system go and the secret they are signed with (never returned)."""

    url: str = Field(min_length=8, max_length=2000, description="https:// (http:// only outside production).")
    secret: str = Field(min_length=32, max_length=256)


class TargetOut(BaseModel):
    """A target as stored, without its secret."""

    system: str
    url: str
    updated_at: UtcDatetime
    secret_set: bool


@router.get("", response_model=list[TargetOut])
def list_(p: Admin, s: SessionDep) -> list[TargetOut]:
    """The tenant's webhook targets (no secrets)."""
    return [TargetOut(**t) for t in webhooks.list_targets(s, p.tenant_id)]


@router.put("/{system}", response_model=TargetOut)
def put(system: System, body: TargetIn, request: Request, p: Admin, s: SessionDep) -> TargetOut:
    """Set the tenant's target for a system (https only in production)."""
    https_only = getattr(request.app.state.settings, "env", "development") == "production"
    return TargetOut(
        **webhooks.set_target(
            s, p.tenant_id, system, body.url, body.secret, actor=p.actor, https_only=https_only
        )
    )


@router.delete("/{system}", status_code=204)
def delete(system: System, p: Admin, s: SessionDep) -> None:
    """Remove the tenant's target for a system."""
    webhooks.delete_target(s, p.tenant_id, system, actor=p.actor)
