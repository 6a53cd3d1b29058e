"""Planner-page sessions: opaque server-side tokens bound to an API key, with idle and absolute expiry.

The browser holds only a random token (its SHA-256 is stored, like keys); the API key itself never leaves the
sign-in form. A session ends at the first of: its absolute expiry, ``idle`` without use, sign-out
(:func:`revoke`), or its key being revoked or expiring. Each session carries a CSRF token that every form post
must echo (:func:`resolve` returns it; compare with :func:`csrf_matches`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._models import ApiKey, WebSession
from workflow.access import Principal, key_usable, principal_of

__all__ = ["PageSession", "csrf_matches", "open_session", "resolve", "revoke"]


@dataclass(frozen=True)
class PageSession:
    """A live session: who, and the CSRF token its forms carry."""

    principal: Principal
    csrf_token: str


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def open_session(session: Session, principal: Principal, *, absolute: timedelta) -> tuple[str, str]:
    """Start a session for ``principal``; returns ``(token, csrf_token)`` (the token goes into the cookie)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    now = utcnow()
    session.add(
        WebSession(
            token_sha256=_h(token),
            tenant_id=principal.tenant_id,
            key_id=principal.key_id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + absolute,
        )
    )
    session.flush()
    return token, csrf


def resolve(session: Session, token: str | None, *, idle: timedelta) -> PageSession | None:
    """The live session of a cookie token (its use noted), or None: unknown, ended, or its key is not live."""
    if not token or len(token) > 128:
        return None
    row = session.get(WebSession, _h(token))
    now = utcnow()
    if row is None or row.revoked_at is not None:
        return None
    if now >= _aware(row.expires_at) or now - _aware(row.last_seen_at) > idle:
        return None
    key = session.get(ApiKey, row.key_id)
    if not key_usable(key, now) or key.tenant_id != row.tenant_id:
        return None
    if now - _aware(row.last_seen_at) > timedelta(seconds=30):  # do not write on every page view
        row.last_seen_at = now
    return PageSession(principal_of(key), row.csrf_token)


def revoke(session: Session, token: str | None) -> bool:
    """End the session of ``token``; True when one was ended."""
    if not token or len(token) > 128:
        return False
    res = session.execute(
        update(WebSession)
        .where(WebSession.token_sha256 == _h(token), WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return res.rowcount == 1


def csrf_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
