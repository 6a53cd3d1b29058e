"""The exceptions page under ``/ui/exceptions``: the tenant's exceptions with filters and their actions.

A planner or approver assigns, acknowledges, resolves and dismisses (with a reason) from the page; every form
carries the session's CSRF token and the version the planner saw, and goes through
:mod:`workflow.exceptions`, so a page action is the same state change, event and audit entry as the API's.
Viewers see the list without the forms. Opening the page takes the tenant's new plan runs' exceptions in.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from serving.api.deps import EngineDep, SessionDep
from serving.pages._views import FormPrincipal, PagePrincipal, page
from workflow import exceptions as wx
from workflow.errors import WorkflowError

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_log = logging.getLogger(__name__)
_VIEWS = ("active", "overdue", "resolved", "dismissed", "all")


def _filters(view: str) -> dict:
    return {
        "active": {"active": True},
        "overdue": {"overdue": True},
        "resolved": {"state": "resolved"},
        "dismissed": {"state": "dismissed"},
        "all": {},
    }[view]


@router.get("/exceptions", response_class=HTMLResponse)
def exceptions_page(
    request: Request,
    p: PagePrincipal,
    session: SessionDep,
    engine: EngineDep,
    view: str = "active",
    exception_type: str = "",
    msg: str | None = None,
    error: str | None = None,
):
    """The tenant's exceptions (active ones first, most severe, soonest due), with the actions."""
    view = view if view in _VIEWS else "active"
    try:
        wx.sync_plan_exceptions(engine, p.tenant_id)
    except Exception:  # what was taken in before is still worth showing
        _log.exception("taking tenant %s's plan exceptions in failed", p.tenant_id)
    session.commit()  # a fresh snapshot that sees what the sync stored
    kind = exception_type if exception_type.replace("_", "").isalnum() and len(exception_type) <= 32 else None
    rows = wx.list_exceptions(session, p.tenant_id, exception_type=kind, limit=500, **_filters(view))
    return page(
        request,
        "exceptions.html",
        p=p,
        rows=rows,
        view=view,
        views=_VIEWS,
        exception_type=kind or "",
        types=sorted({*wx.DEFAULT_SLA_HOURS} - {"*"}),
        can_act=p.has_any("planner", "approver"),
        msg=msg,
        error=error,
    )


def _back(view: str, **q: str) -> str:
    return "/ui/exceptions?" + urlencode({"view": view if view in _VIEWS else "active", **q})


def _act(exc_id: str, view: str, verb: str, fn, p) -> Response:
    if not p.has_any("planner", "approver"):  # the API's Decider roles
        raise HTTPException(403, detail="role: acting on exceptions needs the planner or approver role")
    try:
        fn()
    except WorkflowError as exc:
        if exc.status_code == 404:
            raise
        return RedirectResponse(_back(view, error=str(exc)), status_code=303)
    return RedirectResponse(
        _back(view, msg=f"exception {exc_id} {verb}") + f"#x-{quote(exc_id)}", status_code=303
    )


Version = Annotated[int, Form(ge=1)]
View = Annotated[str, Form(max_length=16)]


@router.post("/exceptions/{exc_id}/assign")
def assign_form(
    exc_id: str, p: FormPrincipal, session: SessionDep, version: Version,
    assignee: Annotated[str, Form(max_length=200)] = "", view: View = "active",
):  # fmt: skip
    """Assign from the page."""
    return _act(
        exc_id,
        view,
        "assigned",
        lambda: wx.assign(
            session, p.tenant_id, exc_id, assignee=assignee, actor=p.actor, expected_version=version
        ),
        p,
    )


@router.post("/exceptions/{exc_id}/acknowledge")
def acknowledge_form(
    exc_id: str, p: FormPrincipal, session: SessionDep, version: Version,
    note: Annotated[str, Form(max_length=2000)] = "", view: View = "active",
):  # fmt: skip
    """Acknowledge from the page."""
    return _act(
        exc_id,
        view,
        "acknowledged",
        lambda: wx.acknowledge(
            session, p.tenant_id, exc_id, actor=p.actor, note=note or None, expected_version=version
        ),
        p,
    )


@router.post("/exceptions/{exc_id}/resolve")
def resolve_form(
    exc_id: str, p: FormPrincipal, session: SessionDep, version: Version,
    reason: Annotated[str, Form(max_length=2000)] = "", view: View = "active",
):  # fmt: skip
    """Resolve from the page."""
    return _act(
        exc_id,
        view,
        "resolved",
        lambda: wx.resolve(
            session, p.tenant_id, exc_id, actor=p.actor, reason=reason or None, expected_version=version
        ),
        p,
    )


@router.post("/exceptions/{exc_id}/dismiss")
def dismiss_form(
    exc_id: str, p: FormPrincipal, session: SessionDep, version: Version,
    reason: Annotated[str, Form(max_length=2000)] = "", view: View = "active",
):  # fmt: skip
    """Dismiss from the page (a reason is required)."""
    return _act(
        exc_id,
        view,
        "dismissed",
        lambda: wx.dismiss(
            session, p.tenant_id, exc_id, actor=p.actor, reason=reason, expected_version=version
        ),
        p,
    )
