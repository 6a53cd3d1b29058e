"""Tenants, API keys and roles.

A key looks like ``rpk_<key_id>_<secret>``; only ``sha256(secret)`` is stored, so a leaked database does not
leak
keys. Each key belongs to one tenant and carries roles:

==========  =====================================================================================
role        may
==========  =====================================================================================
viewer      read everything of its tenant
planner     + propose, route, comment, and approve / override / reject within its approval limit
            on items routed to planners
approver    + approve / override / reject items routed to planners or approvers, within its limit
admin       everything in its tenant, no approval limit; manage keys; replay dead letters
service     machine clients: propose, route, post events, acknowledgements and supplier responses,
            telemetry; never approves
==========  =====================================================================================

Approval limits: a key's ``approval_limit`` if set, else the role default (:data:`DEFAULT_APPROVAL_LIMITS`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from features.store._db import utcnow
from features.store._tenants import Tenant
from workflow._journal import AuditRecord, append
from workflow._models import ApiKey
from workflow.errors import Forbidden, InvalidInput, NotFound

__all__ = [
    "DECIDER_RANK",
    "DEFAULT_APPROVAL_LIMITS",
    "ROLES",
    "Principal",
    "authenticate",
    "create_key",
    "ensure_tenant",
    "list_keys",
    "revoke_key",
]

ROLES = ("viewer", "planner", "approver", "admin", "service")
#: Rank of the roles that decide on routed items: a route to ``approver`` needs rank >= 2.
DECIDER_RANK = {"planner": 1, "approver": 2, "admin": 3}
DEFAULT_APPROVAL_LIMITS: dict[str, float | None] = {"planner": 10_000.0, "approver": 250_000.0, "admin": None}

_PREFIX = "rpk_"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: tenant, key and roles."""

    tenant_id: str
    key_id: str
    roles: frozenset[str]
    name: str = ""
    approval_limit: float | None = None  # explicit per-key limit (None: role default)

    @property
    def actor(self) -> str:
        """How the caller appears in the audit log."""
        return f"key:{self.key_id}" + (f"({self.name})" if self.name else "")

    def has_any(self, *roles: str) -> bool:
        """True when the caller holds one of ``roles`` (admin passes every role check of its tenant)."""
        return bool(self.roles & set(roles)) or "admin" in self.roles

    def require(self, *roles: str) -> None:
        """Raise :class:`Forbidden` unless the caller holds one of ``roles``."""
        if not self.has_any(*roles):
            raise Forbidden(
                f"this action needs one of the roles {', '.join(roles)}; "
                f"your key has {', '.join(sorted(self.roles))}"
            )

    @property
    def decider_rank(self) -> int:
        """Highest decision rank among the caller's roles (0: may not decide)."""
        return max((DECIDER_RANK.get(r, 0) for r in self.roles), default=0)

    @property
    def effective_limit(self) -> float | None:
        """Largest value the caller may approve (None: no limit)."""
        if self.approval_limit is not None:
            return self.approval_limit
        limits = [DEFAULT_APPROVAL_LIMITS[r] for r in self.roles if r in DEFAULT_APPROVAL_LIMITS]
        if not limits:
            return 0.0
        return None if any(v is None for v in limits) else max(limits)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    if not roles:
        raise InvalidInput("roles", f"give at least one role of {', '.join(ROLES)}")
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise InvalidInput("roles", f"unknown role(s) {', '.join(bad)}; expected some of {', '.join(ROLES)}")
    return roles


def ensure_tenant(session: Session, tenant_id: str, name: str | None = None) -> bool:
    """Create the tenant if it does not exist; True when it was created."""
    if session.get(Tenant, tenant_id) is not None:
        return False
    session.add(Tenant(tenant_id=tenant_id, name=name or tenant_id))
    session.flush()
    return True


def create_key(
    session: Session,
    tenant_id: str,
    roles: Iterable[str],
    *,
    name: str = "",
    approval_limit: float | None = None,
    actor: str = "system",
) -> tuple[str, str]:
    """Create an API key for ``tenant_id``.

    Returns:
        ``(key_id, plaintext)``; the plaintext is shown once and never stored.

    Raises:
        NotFound: the tenant does not exist.
        InvalidInput: unknown role or negative limit.
    """
    roles = _check_roles(roles)
    if approval_limit is not None and approval_limit < 0:
        raise InvalidInput("approval_limit", "must be >= 0 (or omitted for the role default)")
    if session.get(Tenant, tenant_id) is None:
        raise NotFound("tenant", tenant_id)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            key_id=key_id,
            tenant_id=tenant_id,
            name=name,
            secret_sha256=_hash(secret),
            roles=",".join(roles),
            approval_limit=approval_limit,
        )
    )
    session.flush()
    append(
        session,
        tenant_id,
        [
            AuditRecord(
                actor,
                "key.create",
                "api_key",
                key_id,
                None,
                {"roles": roles, "name": name, "approval_limit": approval_limit},
            )
        ],
    )
    return key_id, f"{_PREFIX}{key_id}_{secret}"


def authenticate(session: Session, presented: str | None) -> Principal | None:
    """The principal of a presented key, or None when it is missing, malformed, unknown or revoked."""
    if not presented or not presented.startswith(_PREFIX):
        return None
    key_id, sep, secret = presented[len(_PREFIX) :].partition("_")
    if not sep or not secret or len(key_id) > 16:
        return None
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_sha256, _hash(secret)):
        return None
    return Principal(key.tenant_id, key.key_id, frozenset(key.roles.split(",")), key.name, key.approval_limit)


def list_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys (hashes included only as stored; never the secrets)."""
    return list(
        session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at))
    )


def revoke_key(session: Session, tenant_id: str, key_id: str, *, actor: str) -> ApiKey:
    """Revoke a key of ``tenant_id`` (404 for another tenant's key)."""
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound("api key", key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
        append(
            session,
            tenant_id,
            [AuditRecord(actor, "key.revoke", "api_key", key_id, {"revoked": False}, {"revoked": True})],
        )
    return key
