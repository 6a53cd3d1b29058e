"""API keys of the caller's tenant (admin only); the secret is shown once, at creation or rotation.

A key may expire (``expires_in_days``); rotating it gives a new secret while the previous one stays valid for
``grace_seconds`` (two valid secrets during the window, one key id); revoking it takes effect at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from features.store import utcnow
from serving.api.deps import Admin, SessionDep
from workflow import access
from workflow.schemas import StrictIn, UtcDatetime

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Role = Literal["viewer", "planner", "approver", "admin", "service", "metrics"]
KeyId = Annotated[str, Path(min_length=1, max_length=16, pattern=r"^[0-9a-f]+$")]


class KeyIn(StrictIn):
    """A new key of the caller's tenant."""

    roles: list[Role] = Field(min_length=1, max_length=6)
    name: str = Field(default="", max_length=200)
    approval_limit: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="None: does not expire.")


class RotateIn(StrictIn):
    """How long the previous secret stays valid after a rotation."""

    grace_seconds: int = Field(default=3600, ge=0, le=30 * 86400)


class KeyOut(BaseModel):
    """A key as stored (never the secret)."""

    model_config = ConfigDict(from_attributes=True)

    key_id: str
    name: str
    roles: list[str]
    approval_limit: float | None
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None
    expires_at: UtcDatetime | None = None
    previous_secret_valid_until: UtcDatetime | None = None


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
        "expires_at": k.expires_at,
        "previous_secret_valid_until": k.prev_valid_until,
    }


@router.post("", response_model=CreatedKey, status_code=201)
def create(body: KeyIn, p: Admin, s: SessionDep) -> CreatedKey:
    """Create a key in the caller's tenant."""
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    key_id, plaintext = access.create_key(
        s,
        p.tenant_id,
        body.roles,
        name=body.name,
        approval_limit=body.approval_limit,
        expires_at=expires,
        actor=p.actor,
    )
    from workflow.access import ApiKey

    return CreatedKey(**_out(s.get(ApiKey, key_id)), api_key=plaintext)


@router.get("", response_model=list[KeyOut])
def list_(p: Admin, s: SessionDep) -> list[KeyOut]:
    """The tenant's keys."""
    return [KeyOut(**_out(k)) for k in access.list_keys(s, p.tenant_id)]


@router.post("/{key_id}/rotate", response_model=CreatedKey)
def rotate(key_id: KeyId, body: RotateIn, p: Admin, s: SessionDep) -> CreatedKey:
    """Give a key a new secret (shown once); the old one stays valid for ``grace_seconds``."""
    key, plaintext = access.rotate_key(s, p.tenant_id, key_id, grace_s=body.grace_seconds, actor=p.actor)
    return CreatedKey(**_out(key), api_key=plaintext)


@router.delete("/{key_id}", response_model=KeyOut)
def revoke(key_id: KeyId, p: Admin, s: SessionDep) -> KeyOut:
    """Revoke a key of the tenant."""
    return KeyOut(**_out(access.revoke_key(s, p.tenant_id, key_id, actor=p.actor)))
