"""The review queue page: filter, sort, search, page, and approve a selection in bulk.

Filtering, sorting, counting and paging run in SQL (:mod:`workflow.queue`). A bulk approval is the planner
approving each selected item in turn through :func:`workflow.lifecycle.approve`, each in its own savepoint:
the same role, approval-limit and four-eyes checks, audit entry, event and outbox item as one approval from
the API; an item the planner may not approve is refused on its own, stays routed, and the page says which and
why.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse

from serving.api.deps import PolicyDep, SessionDep
from serving.pages._views import FormPrincipal, PagePrincipal, page

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200)
MAX_BULK = 200
_TEXT = ("kind", "sku_id", "location_id", "supplier_id", "queue", "role", "rule", "q")


def _opt_float(name: str, raw: str | None) -> float | None:
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise HTTPException(422, detail=f"{name}: expected a number, got {raw!r}") from None


def _parse(params: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """The queue filter and view options of a query string (422 naming the field when one is malformed)."""
    from workflow.queue import SORTS, STATES, QueueFilter

    state = params.get("state", "routed") or None
    if state is not None and state not in STATES:
        raise HTTPException(422, detail=f"state: expected one of {', '.join(STATES)}")
    due_by = None
    if params.get("due_by"):
        try:
            due_by = date.fromisoformat(params["due_by"])
        except ValueError:
            raise HTTPException(422, detail="due_by: expected a date YYYY-MM-DD") from None
    text = {k: (params.get(k) or "").strip()[:200] or None for k in _TEXT}
    f = QueueFilter(
        state=state,
        due_by=due_by,
        min_value=_opt_float("min_value", params.get("min_value")),
        max_value=_opt_float("max_value", params.get("max_value")),
        **text,
    )
    sort = params.get("sort") or "urgency"
    if sort not in SORTS:
        raise HTTPException(422, detail=f"sort: expected one of {', '.join(SORTS)}")
    direction = params.get("dir") or ("desc" if sort == "value" else "asc")
    if direction not in ("asc", "desc"):
        raise HTTPException(422, detail="dir: expected asc or desc")
    try:
        size = int(params.get("size") or 50)
        number = int(params.get("page") or 1)
    except ValueError:
        raise HTTPException(422, detail="page, size: expected whole numbers") from None
    if size not in PAGE_SIZES:
        raise HTTPException(422, detail=f"size: expected one of {', '.join(map(str, PAGE_SIZES))}")
    if number < 1:
        raise HTTPException(422, detail="page: expected 1 or more")
    after = params.get("after") or None
    if after is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", after):
        raise HTTPException(422, detail="after: expected a recommendation id (the previous page's last item)")
    return f, {"sort": sort, "dir": direction, "size": size, "page": number, "after": after}


def _link(f, view: dict[str, Any], **change: Any) -> str:
    """The queue URL for this filter and view with ``change`` applied (empty values dropped).

    The keyset cursor (``after``) is kept only where ``change`` sets it (the "next" link).
    """
    args = {
        **{k: str(v) for k, v in f.active().items()},
        **{k: str(v) for k, v in view.items() if k != "after" and v is not None},
    }
    if f.state is None:
        args["state"] = ""
    args.update({k: str(v) for k, v in change.items()})
    return "/ui/queue?" + urlencode({k: v for k, v in args.items() if v != "" or k == "state"})


def _render(request: Request, p, session, params: dict[str, str], bulk: dict | None = None) -> HTMLResponse:
    from workflow import queue as wq

    f, view = _parse(params)
    recs, total = wq.page(
        session,
        p.tenant_id,
        f,
        sort=view["sort"],
        descending=view["dir"] == "desc",
        limit=view["size"],
        offset=(view["page"] - 1) * view["size"],
        after=view["after"],  # "next" from the previous page: start after its last item, skip nothing
    )
    pages = max(1, -(-total // view["size"]))
    limit = p.effective_limit
    return page(
        request,
        "queue.html",
        p=p,
        f=f,
        view=view,
        recs=recs,
        total=total,
        pages=pages,
        first=(view["page"] - 1) * view["size"] + 1 if recs else 0,
        counts=wq.counts(session, p.tenant_id),
        facets=wq.facets(session, p.tenant_id, f.state),
        states=wq.STATES,
        sorts=list(wq.SORTS),
        sizes=PAGE_SIZES,
        link=lambda **c: _link(f, view, **c),
        back=_link(f, view)[len("/ui/queue?") :],
        limit=limit,
        can_decide=p.has_any("planner", "approver"),
        bulk=bulk,
    )


@router.get("", response_class=HTMLResponse)
@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, p: PagePrincipal, session: SessionDep):
    """The review queue: routed recommendations of the planner's tenant, most urgent first."""
    return _render(request, p, session, dict(request.query_params))


def _approve_each(session, p, picks: list[str], policy) -> dict[str, list]:
    """Approve each ``id:version`` pick through the one decision path, each in its own savepoint."""
    from workflow.errors import WorkflowError
    from workflow.lifecycle import approve
    from workflow.schemas import ApproveIn

    done: list[str] = []
    refused: list[tuple[str, str]] = []
    for pick in picks:
        rec_id, _, version = pick.rpartition(":")
        if not rec_id or not version.isdigit():
            refused.append((pick, "pick: expected <recommendation id>:<version>"))
            continue
        try:
            with session.begin_nested():
                approve(session, p, rec_id, ApproveIn(version=int(version)), policy=policy)
        except WorkflowError as exc:
            detail = exc.detail()
            refused.append((rec_id, detail.get("message") if isinstance(detail, dict) else str(detail)))
        else:
            done.append(rec_id)
    return {"approved": done, "refused": refused}


@router.post("/queue/approve", response_class=HTMLResponse)
def bulk_approve(
    request: Request,
    p: FormPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    pick: Annotated[list[str] | None, Form()] = None,
    back: Annotated[str, Form(max_length=4000)] = "",
):
    """Approve the selected recommendations, one decision each; the refused ones stay routed, with why."""
    picks = list(dict.fromkeys(pick or []))
    params = {k: v[-1] for k, v in parse_qs(back).items()}
    if not picks:
        return _render(
            request,
            p,
            session,
            params,
            bulk={"approved": [], "refused": [], "error": "pick: select at least one recommendation"},
        )
    if len(picks) > MAX_BULK:
        raise HTTPException(422, detail=f"pick: at most {MAX_BULK} recommendations per bulk approval")
    result = _approve_each(session, p, picks, policy)
    return _render(request, p, session, params, bulk=result)
