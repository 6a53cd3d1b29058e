"""Tenants, API keys and roles.

A key looks like ``rpk_<key_id>_<secret>``; only ``sha256(secret)`` is stored, so a leaked database does not
leak keys. Each key belongs to one tenant and carries roles:

==========  =====================================================================================
role        may
==========  =====================================================================================
viewer      read everything of its tenant
planner     + propose, route, comment, and approve / override / reject within its approval limit
            on items routed to planners
approver    + approve / override / reject items routed to planners or approvers, within its limit
admin       everything in its tenant, no approval limit; manage keys; replay dead letters
service     machine clients: propose, route, post events, acknowledgements and supplier responses,
            telemetry, move event cursors; never approves
metrics     only ``/metrics`` (operational figures without tenant labels); for the Prometheus scraper
==========  =====================================================================================

Approval limits: a key's ``approval_limit`` if set, else the role default (:data:`DEFAULT_APPROVAL_LIMITS`).

Keys may expire (``expires_at``) and be rotated (:func:`rotate_key`): the rotated key keeps its id (and so its
identity in the audit log and the four-eyes check) and gets a new secret; the previous secret stays valid for
a grace period so that clients can switch without downtime. Revocation takes effect on the next request (keys
are not cached).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from features.store import Tenant, utcnow
from features.store import ensure_tenant as ensure_tenant  # the one tenant creator, re-exported here
from workflow._journal import AuditRecord, append
from workflow._models import ApiKey
from workflow.errors import Forbidden, InvalidInput, NotFound

__all__ = [
    "ApiKey",
    "DECIDER_RANK",
    "DEFAULT_APPROVAL_LIMITS",
    "ROLES",
    "Principal",
    "authenticate",
    "create_key",
    "ensure_tenant",
    "key_usable",
    "list_keys",
    "principal_of",
    "revoke_key",
    "rotate_key",
]

ROLES = ("viewer", "planner", "approver", "admin", "service", "metrics")
#: Longest key name shown in the audit log's actor (``key:<id>(<name>)`` fits the 200-wide actor columns).
NAME_IN_ACTOR = 64
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
        """How the caller appears in the audit log (the name cut to :data:`NAME_IN_ACTOR` characters)."""
        return f"key:{self.key_id}" + (f"({self.name[:NAME_IN_ACTOR]})" if self.name else "")

    @property
    def principal_id(self) -> str:
        """Stable identity of the caller (``key:<key_id>``; the same across rotations of the key)."""
        return f"key:{self.key_id}"

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


def create_key(
    session: Session,
    tenant_id: str,
    roles: Iterable[str],
    *,
    name: str = "",
    approval_limit: float | None = None,
    expires_at: datetime | None = None,
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
    if len(name) > 200:
        raise InvalidInput("name", "at most 200 characters")
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
            expires_at=expires_at,
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
                {
                    "roles": roles,
                    "name": name,
                    "approval_limit": approval_limit,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
        ],
    )
    return key_id, f"{_PREFIX}{key_id}_{secret}"


def _aware(t: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; every stored time is UTC.
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def principal_of(key: ApiKey) -> Principal:
    """The principal a stored key stands for."""
    return Principal(key.tenant_id, key.key_id, frozenset(key.roles.split(",")), key.name, key.approval_limit)


def key_usable(key: ApiKey | None, now: datetime | None = None) -> bool:
    """True when ``key`` exists, is not revoked and has not expired."""
    if key is None or key.revoked_at is not None:
        return False
    exp = _aware(key.expires_at)
    return exp is None or (now or utcnow()) < exp


def authenticate(session: Session, presented: str | None) -> Principal | None:
    """The principal of a presented key, or None when it is missing, malformed, unknown, revoked or expired.

    During a rotation window the previous secret is accepted too (until ``prev_valid_until``).
    """
    if not presented or len(presented) > 256 or not presented.startswith(_PREFIX):
        return None
    key_id, sep, secret = presented[len(_PREFIX) :].partition("_")
    if not sep or not secret or len(key_id) > 16 or "\x00" in presented:
        return None
    key = session.get(ApiKey, key_id)
    now = utcnow()
    if not key_usable(key, now):
        return None
    digest = _hash(secret)
    ok = hmac.compare_digest(key.secret_sha256, digest)
    if not ok and key.prev_secret_sha256 is not None:
        until = _aware(key.prev_valid_until)
        ok = until is not None and now < until and hmac.compare_digest(key.prev_secret_sha256, digest)
    return principal_of(key) if ok else None


def list_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys (hashes included only as stored; never the secrets)."""
    return list(
        session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at))
    )


def rotate_key(
    session: Session, tenant_id: str, key_id: str, *, grace_s: float = 3600.0, actor: str
) -> tuple[ApiKey, str]:
    """Give a key of ``tenant_id`` a new secret; the old one stays valid for ``grace_s`` seconds.

    Returns:
        ``(key, plaintext)``: the new plaintext is shown once.

    Raises:
        NotFound: no such usable key in the tenant.
        InvalidInput: ``grace_s`` outside 0 .. 30 days.
    """
    if not 0 <= grace_s <= 30 * 86400:
        raise InvalidInput("grace_seconds", "expected 0 .. 2592000 (30 days)")
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id or not key_usable(key):
        raise NotFound("api key", key_id)
    secret = secrets.token_urlsafe(32)
    key.prev_secret_sha256 = key.secret_sha256 if grace_s > 0 else None
    key.prev_valid_until = utcnow() + timedelta(seconds=grace_s) if grace_s > 0 else None
    key.secret_sha256 = _hash(secret)
    session.flush()
    append(
        session,
        tenant_id,
        [
            AuditRecord(
                actor,
                "key.rotate",
                "api_key",
                key_id,
                None,
                {"previous_valid_until": key.prev_valid_until.isoformat() if key.prev_valid_until else None},
            )
        ],
    )
    return key, f"{_PREFIX}{key_id}_{secret}"


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
