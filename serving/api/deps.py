"""Dependencies of the decision API, declared once as ``Annotated`` aliases.

* :data:`SessionDep` -- one transaction per request (committed when the handler returns, before the response
  is sent; rolled back on any error);
* :data:`PrincipalDep` -- the caller, from the ``X-API-Key`` header (401 when missing, unknown, revoked or
  expired), after its rate limits (per key and per tenant) and its tenant's daily quota: 429 with
  ``Retry-After`` when one is spent;
* :data:`Reader`, :data:`Proposer`, :data:`Decider`, :data:`Integrator`, :data:`Admin` -- the caller, after a
  role check (403 naming the roles needed);
* :data:`PolicyDep` -- the decision rights configured for this app (:class:`workflow.rights.DecisionPolicy`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store import session_scope
from workflow.access import Principal, authenticate
from workflow.rights import DecisionPolicy, current_policy

__all__ = [
    "Admin",
    "Decider",
    "EngineDep",
    "Integrator",
    "PolicyDep",
    "PrincipalDep",
    "Proposer",
    "Reader",
    "SessionDep",
    "check_rate",
    "require",
]


def get_engine(request: Request) -> Engine:
    """The state store's engine (built by ``create_app``)."""
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    """One transaction per request."""
    with session_scope(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    request: Request,
    session: SessionDep,
    x_api_key: Annotated[str | None, Header(description="API key: rpk_<id>_<secret>")] = None,
) -> Principal:
    """The authenticated caller; its tenant is noted on the request for metering."""
    principal = authenticate(session, x_api_key)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid X-API-Key header",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    request.state.tenant_id = principal.tenant_id
    check_rate(request, principal)
    return principal


def _too_many(retry_after: float, message: str) -> HTTPException:
    return HTTPException(
        status_code=429,
        detail={"error": "TooManyRequests", "message": message},
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def check_rate(request: Request, principal: Principal) -> None:
    """Take a token from the key's and the tenant's buckets; 429 when either is empty or the quota spent."""
    state = request.app.state
    per_key, per_tenant = getattr(state, "key_buckets", None), getattr(state, "tenant_buckets", None)
    if per_key is not None:
        wait = per_key.take(principal.key_id)
        if wait > 0:
            raise _too_many(wait, f"rate limit of key {principal.key_id} reached; retry after {wait:.1f} s")
    if per_tenant is not None:
        wait = per_tenant.take(principal.tenant_id)
        if wait > 0:
            raise _too_many(wait, f"rate limit of tenant {principal.tenant_id} reached; wait {wait:.1f} s")
    usage = getattr(state, "usage", None)
    if usage is not None and usage.over_quota(principal.tenant_id):
        from workflow.usage import seconds_to_midnight

        raise _too_many(
            seconds_to_midnight(), f"daily quota of tenant {principal.tenant_id} is spent (resets 00:00 UTC)"
        )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: str):
    """A dependency returning the caller after checking it holds one of ``roles`` (admin always passes)."""

    def check(principal: PrincipalDep) -> Principal:
        principal.require(*roles)
        return principal

    check.__name__ = f"require_{'_or_'.join(roles)}"
    return check


Reader = Annotated[Principal, Depends(require("viewer", "planner", "approver", "service"))]
Proposer = Annotated[Principal, Depends(require("planner", "service"))]
Decider = Annotated[Principal, Depends(require("planner", "approver"))]
Integrator = Annotated[Principal, Depends(require("service"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def get_policy(request: Request) -> DecisionPolicy:
    """The app's decision rights (``create_app`` sets them from the settings)."""
    return getattr(request.app.state, "decision_policy", None) or current_policy()


PolicyDep = Annotated[DecisionPolicy, Depends(get_policy)]
