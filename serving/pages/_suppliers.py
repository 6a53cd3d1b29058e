"""Supplier pages under ``/ui/suppliers``: open purchase orders, and the form recording a supplier's response.

A planner who hears from a supplier (a call, an e-mail) records the response here: confirmed, partial,
rejected, a new date, or goods received. The form goes through the same functions as the API
(:func:`workflow.supplier_responses.record_responses`, then
:func:`~workflow.supplier_responses.apply_responses`): the same checks (a quantity above the ordered one, a
date before the order was sent: the page names the field), the same audit entry and event, the same facts,
exceptions and re-plan.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from features.store import session_scope
from serving.api.deps import EngineDep, SessionDep
from serving.pages._views import FormPrincipal, PagePrincipal, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_OPEN = ("sent", "acknowledged")


def _may_record(p) -> bool:
    return p.has_any("planner", "approver", "service")


@router.get("/suppliers", response_class=HTMLResponse)
def orders(request: Request, p: PagePrincipal, session: SessionDep):
    """Purchase orders sent to suppliers and not yet received, newest first, with their last response."""
    from workflow.lifecycle import list_recommendations

    recs = [
        r
        for state in _OPEN
        for r in list_recommendations(session, p.tenant_id, state=state, limit=500)
        if r.kind == "purchase_order"
    ]
    recs.sort(key=lambda r: r.sent_at or r.created_at, reverse=True)
    return page(request, "suppliers.html", p=p, recs=recs, last=_last_responses(session, p.tenant_id, recs))


def _last_responses(session, tenant_id: str, recs) -> dict[str, object]:
    from workflow.supplier_responses import responses_of

    return {r.recommendation_id: r for r in responses_of(session, tenant_id, [r.id for r in recs])}


@router.get("/suppliers/orders/{order_number}", response_class=HTMLResponse)
def order(
    order_number: str,
    request: Request,
    p: PagePrincipal,
    session: SessionDep,
    msg: str | None = None,
    error: str | None = None,
):
    """One purchase order, its supplier's responses so far, and the response form."""
    from workflow.lifecycle import get
    from workflow.supplier_responses import responses_of

    rec = get(session, p.tenant_id, order_number)  # 404 for another tenant's id
    responses = responses_of(session, p.tenant_id, [rec.id])
    return page(
        request,
        "supplier_order.html",
        p=p,
        rec=rec,
        responses=responses,
        msg=msg,
        error=error,
        can_record=_may_record(p) and rec.kind == "purchase_order" and rec.state in _OPEN,
    )


@router.post("/suppliers/orders/{order_number}/responses")
def record_form(
    order_number: str,
    request: Request,
    p: FormPrincipal,
    engine: EngineDep,
    status: Annotated[str, Form()],
    quantity: Annotated[str | None, Form()] = None,
    on_date: Annotated[str | None, Form()] = None,
    comment: Annotated[str | None, Form()] = None,
) -> Response:
    """Record a supplier's response from the page, then run the loop (facts, exceptions, re-plan)."""
    from workflow.errors import WorkflowError
    from workflow.supplier_responses import ResponseLine, apply_responses, record_responses

    if not _may_record(p):
        raise HTTPException(
            403, detail="recording a supplier response needs role planner, approver or service"
        )
    back = f"/ui/suppliers/orders/{quote(order_number)}"
    fields = {"status": status, "quantity": quantity, "on_date": on_date, "comment": comment}
    try:
        line = ResponseLine(
            order_number=order_number, **{k: v for k, v in fields.items() if v not in (None, "")}
        )
        with session_scope(engine) as s:
            outcomes = record_responses(s, p.tenant_id, [line], actor=p.actor)
    except ValidationError as exc:
        err = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return RedirectResponse(f"{back}?error={quote(err)}", status_code=303)
    except WorkflowError as exc:
        if exc.status_code == 404:
            raise
        return RedirectResponse(f"{back}?error={quote(str(exc))}", status_code=303)
    loop = apply_responses(engine, p.tenant_id, outcomes, settings=request.app.state.settings, actor=p.actor)
    said = [f"recorded {status}"]
    said += [f"exception {e['exception_type']}: {e['message']}" for e in loop.exceptions]
    if loop.replan_run_id:
        said.append(f"re-planned ({loop.replan_run_id}): {loop.proposed} allocation(s) proposed")
    said += loop.notes
    return RedirectResponse(f"{back}?msg={quote('; '.join(said))}", status_code=303)
