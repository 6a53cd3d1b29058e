"""API keys of the caller's tenant (admin only); the secret is shown once, at creation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import Admin, SessionDep
from workflow import access

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Role = Literal["viewer", "planner", "approver", "admin", "service"]


class KeyIn(BaseModel):
    """A new key of the caller's tenant."""

    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1)
    name: str = Field(default="", max_length=200)
    approval_limit: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class KeyOut(BaseModel):
    """A key as stored (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    key_id: str
    name: str
    roles: list[str]
    approval_limit: float | None
    created_at: datetime
    revoked_at: datetime | None


class CreatedKey(KeyOut):
    """A new key with its secret, shown this once."""

    api_key: str


def _out(k) -> dict:
    return {
        "key_id": k.key_id,
        "name": k.name,
        "roles": k.roles.split(","),
        "approval_limit": k.approval_limit,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
    }


@router.post("", response_model=CreatedKey, status_code=201)
def create(body: KeyIn, p: Admin, s: SessionDep) -> CreatedKey:
    """Create a key in the caller's tenant."""
    key_id, plaintext = access.create_key(
        s, p.tenant_id, body.roles, name=body.name, approval_limit=body.approval_limit, actor=p.actor
    )
    from workflow._models import ApiKey

    return CreatedKey(**_out(s.get(ApiKey, key_id)), api_key=plaintext)


@router.get("", response_model=list[KeyOut])
def list_(p: Admin, s: SessionDep) -> list[KeyOut]:
    """The tenant's keys."""
    return [KeyOut(**_out(k)) for k in access.list_keys(s, p.tenant_id)]


@router.delete("/{key_id}", response_model=KeyOut)
def revoke(key_id: Annotated[str, Path(min_length=1, max_length=16)], p: Admin, s: SessionDep) -> KeyOut:
    """Revoke a key of the tenant."""
    return KeyOut(**_out(access.revoke_key(s, p.tenant_id, key_id, actor=p.actor)))
