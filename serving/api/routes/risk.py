"""Risk routes: stockout and overstock risk per planning unit, from the tenant's latest stored plan run.

Every figure comes from planning's simulation as stored with the run: a unit's stockout probability before an
order placed now arrives, its days of cover, and the routed ``stockout_risk`` / ``overstock`` exceptions.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
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
    """Risks of the latest plan run (``run_id``, ``as_of``), filtered as asked."""

    run_id: str
    as_of: str
    items: list[RiskItem]


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and v != v else v


@router.get("", response_model=RiskResponse, responses={404: {}})
def risk(
    principal: Reader,
    engine: EngineDep,
    kind: Literal["stockout", "overstock", "all"] = "all",
    sku_id: str | None = Query(default=None, max_length=128),
    location_id: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=200, ge=1, le=5000),
) -> RiskResponse:
    """Stockout and overstock risks of the tenant's latest plan run, optionally for a SKU / location."""
    from planning import load_run

    try:
        run = load_run(engine, principal.tenant_id)
    except LookupError:
        raise HTTPException(404, detail="no plan run for this tenant yet") from None
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
    return RiskResponse(run_id=str(run["run"]["run_id"]), as_of=str(run["run"]["as_of"]), items=items)
