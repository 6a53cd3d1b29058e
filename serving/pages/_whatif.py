"""The recommendation page's in-place what-if: ``POST /ui/recommendations/{id}/what-if``.

The planner changes the lead-time factor, the demand factor or the service (fill-rate) target; the page asks
the same re-plan as ``POST /v1/plans/what-if`` (:func:`serving.api.routes.plans.run_what_if`: the tenant's
current forecasts and plan inputs, the unchanged plan beside the scenario, nothing saved) for the
recommendation's stocking point, and shows the proposed quantity with the projected on-hand chart redrawn
for the scenario. The page's script posts the form and swaps in the answer (a fragment, asked for with the
``X-Fragment`` header); without script the form posts and the whole page comes back with the result.
"Use as override" pre-fills the override form with the scenario's quantity; the override still needs a
reason code from the catalogue and goes through the same decision path as any override.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from serving.api.deps import PolicyDep, SessionDep
from serving.pages._views import FormPrincipal, page, recommendation_context, render

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
_FIELDS = {
    "lead_time_factor": "lead-time factor",
    "demand_factor": "demand factor",
    "fill_target": "service target",
}


def _float(name: str, raw: str | None) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{_FIELDS[name]}: expected a number, got {raw!r}") from None


def _request(rec, fields: dict[str, str | None]):
    """The API's what-if body for the recommendation's stocking point (ValueError naming the field)."""
    from serving.api.routes.plans import WhatIfRequest

    values = {k: _float(k, v) for k, v in fields.items()}
    try:
        return WhatIfRequest(units=[f"{rec.sku_id}|{rec.location_id}"], **values)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(f"{_FIELDS.get(str(e['loc'][-1]), e['loc'][-1])}: {e['msg']}" for e in exc.errors())
        ) from None


def _detail(exc: HTTPException) -> str:
    d = exc.detail
    if isinstance(d, dict):
        return str(d.get("msg", d))
    if isinstance(d, list):
        return "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in d)
    return str(d)


def _describe(body) -> str:
    parts = []
    if body.lead_time_factor is not None:
        parts.append(f"lead time x{body.lead_time_factor:g}")
    if body.demand_factor is not None:
        parts.append(f"demand x{body.demand_factor:g}")
    if body.fill_target is not None:
        parts.append(f"service target {body.fill_target:g}")
    return ", ".join(parts)


async def _what_if(request: Request, ctx: dict[str, Any], fields: dict[str, str | None]) -> dict[str, Any]:
    """The what-if result shown on the page: base and scenario figures, the redrawn chart, or an error."""
    from serving.api.routes.plans import run_what_if

    rec, out = ctx["rec"], {"fields": fields}
    try:
        body = _request(rec, fields)
        res = await run_what_if(request, ctx["p"].tenant_id, body)
    except ValueError as exc:
        return {**out, "error": str(exc), "status": 422}
    except HTTPException as exc:  # 409: no current forecasts; 404: the point is not in the plan inputs
        return {**out, "error": _detail(exc), "status": exc.status_code}
    base, scen = res.base[0], res.scenario[0]
    change = _describe(body)
    out.update(
        base=base,
        scenario=scen,
        change=change,
        forecast_run=res.forecast_run,
        model_version=res.model_version,
        quantity=round(scen.order_qty, 3),
    )
    proj = ctx.get("projection")
    if proj is not None:
        out["svg"] = proj.svg(
            scen.order_qty,
            demand_factor=body.demand_factor or 1.0,
            lead_factor=body.lead_time_factor or 1.0,
            reorder=scen.order_up_to,
            title=f"what-if ({change}): order of {scen.order_qty:,.0f}",
        )
    out["comment"] = f"what-if {change}: {scen.order_qty:,.0f} units (plan {base.order_qty:,.0f})"
    return out


@router.post("/recommendations/{rec_id}/what-if", response_class=HTMLResponse)
async def what_if_form(
    rec_id: str,
    request: Request,
    p: FormPrincipal,
    session: SessionDep,
    policy: PolicyDep,
    lead_time_factor: Annotated[str | None, Form(max_length=32)] = None,
    demand_factor: Annotated[str | None, Form(max_length=32)] = None,
    fill_target: Annotated[str | None, Form(max_length=32)] = None,
):
    """Run a what-if for the recommendation's point: the result fragment (script) or the whole page."""
    ctx = await recommendation_context(request, p, session, policy, rec_id)
    fields = {
        "lead_time_factor": lead_time_factor,
        "demand_factor": demand_factor,
        "fill_target": fill_target,
    }
    whatif = await _what_if(request, ctx, fields)
    status = whatif.get("status", 200)
    if request.headers.get("x-fragment"):
        return render(
            "whatif_result.html",
            status_code=status,
            whatif=whatif,
            rec=ctx["rec"],
            can_decide=ctx["can_decide"],
        )
    return page(request, "recommendation.html", status_code=status, whatif=whatif, **ctx)
