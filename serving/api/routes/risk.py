"""Risk routes: stockout and overstock risk per planning unit, from the caller tenant's latest plan run.

Every figure comes from planning's simulation as stored with the run: a unit's stockout probability before an
order placed now arrives, its days of cover, and the routed ``stockout_risk`` / ``overstock`` exceptions. The
answer names the forecast the plan was made on (run, stage, model version, data watermark). A plan made on a
stored forecast older than the tenant's sales (newer sales ingested since) is refused with 409 naming
``replenish cycle --tenant T``, as is a tenant without a plan run; another tenant's run is never read.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel

from serving.api.deps import EngineDep, Reader

__all__ = ["router"]

router = APIRouter(prefix="/v1/risk", tags=["risk"])

_RISK_TYPES = ("stockout_risk", "overstock")


class RiskItem(BaseModel):
    """One risk exception of a unit, as routed by the plan run."""

    exception_type: str
    severity: str
    sku_id: str | None
    location_id: str | None
    value: float | None
    threshold: float | None
    customer_impacting: bool
    message: str
    action: str
    route_queue: str | None
    route_role: str | None


class RiskResponse(BaseModel):
    """Risks of the latest plan run (``run_id``, ``as_of``) and the forecast it planned on, as filtered."""

    tenant: str
    run_id: str
    as_of: str
    forecast_run: str | None
    forecast_stage: str | None
    model_version: str | None
    forecast_source: str | None
    data_watermark: str | None
    items: list[RiskItem]


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and v != v else v


def _plan_run(engine, settings, tenant: str) -> dict[str, Any]:
    """The tenant's latest plan run, refused (409) when none exists or its forecast predates the sales."""
    from features.forecasts import sales_watermark
    from planning import load_run

    command = f"replenish cycle --tenant {tenant}"
    try:
        run = load_run(engine, tenant)
    except LookupError:
        raise HTTPException(
            409,
            detail={"msg": f"tenant {tenant!r} has no plan run yet: run `{command}`", "command": command},
        ) from None
    forecast = (run["run"].get("params") or {}).get("forecast") or {}
    planned_on = forecast.get("data_watermark")
    if planned_on is not None:
        now = sales_watermark(tenant, facts_dir=settings.facts_dir)
        if now != planned_on:
            raise HTTPException(
                409,
                detail={
                    "msg": f"the latest plan run of tenant {tenant!r} ({run['run']['run_id']}) was made on "
                    f"forecasts older than its latest sales (data watermark {planned_on!r}, sales now "
                    f"{now!r}); re-plan with `{command}`",
                    "command": command,
                    "run_id": str(run["run"]["run_id"]),
                    "data_watermark": planned_on,
                    "sales_watermark": now,
                },
            )
    run["forecast"] = forecast
    return run


@router.get("", response_model=RiskResponse, responses={401: {}, 403: {}, 409: {}, 422: {}})
def risk(
    principal: Reader,
    engine: EngineDep,
    request: Request,
    kind: Literal["stockout", "overstock", "all"] = "all",
    sku_id: str | None = Query(default=None, max_length=128),
    location_id: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=200, ge=1, le=5000),
) -> RiskResponse:
    """Stockout and overstock risks of the caller tenant's latest plan run, optionally for a SKU/location."""
    tenant = principal.tenant_id
    run = _plan_run(engine, request.app.state.settings, tenant)
    exc = run["exceptions"]
    wanted = _RISK_TYPES if kind == "all" else ("stockout_risk",) if kind == "stockout" else ("overstock",)
    items = []
    for r in exc.to_dicts() if exc.height else []:
        if r.get("exception_type") not in wanted:
            continue
        if sku_id is not None and r.get("sku_id") != sku_id:
            continue
        if location_id is not None and r.get("location_id") != location_id:
            continue
        items.append(RiskItem(**{k: _clean(r.get(k)) for k in RiskItem.model_fields}))
        if len(items) >= limit:
            break
    meta, fc = run["run"], run["forecast"]
    return RiskResponse(
        tenant=tenant,
        run_id=str(meta["run_id"]),
        as_of=str(meta["as_of"]),
        forecast_run=meta.get("forecast_version"),
        forecast_stage=fc.get("stage"),
        model_version=meta.get("model_version"),
        forecast_source=meta.get("forecast_source"),
        data_watermark=fc.get("data_watermark"),
        items=items,
    )
