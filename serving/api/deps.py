"""Dependencies of the decision API, declared once as ``Annotated`` aliases.

* :data:`SessionDep` -- one transaction per request (committed when the handler returns, before the response
  is sent; rolled back on any error);
* :data:`PrincipalDep` -- the caller, from the ``X-API-Key`` header (401 when missing or unknown);
* :data:`Reader`, :data:`Proposer`, :data:`Decider`, :data:`Integrator`, :data:`Admin` -- the caller, after a
  role check (403 naming the roles needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store._db import session_scope
from workflow.access import Principal, authenticate

__all__ = [
    "Admin",
    "Decider",
    "EngineDep",
    "Integrator",
    "PrincipalDep",
    "Proposer",
    "Reader",
    "SessionDep",
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
    return principal


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
