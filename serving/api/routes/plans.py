"""Plan routes: the caller tenant's latest stored plan run, and what-if re-plans computed but never saved.

``POST /v1/plans/what-if`` re-plans some of the caller tenant's stocking points (``sku|location``) with a
changed service target, lead time or budget and answers the scenario beside the unchanged plan of the same
points, both computed now by :func:`planning.plan` on the same inputs and the same simulation seed (so the
difference is the change, not noise).

Inputs are the tenant's own: :func:`planning.load_plan_inputs` on the forecast run the tenant is served from
(:func:`serving.api.routes.forecasts.current_forecast`, so what-if and ``/v1/forecasts`` agree and a tenant
without current forecasts gets the same 409), cached per replica and tenant, keyed by that run and the
sales watermark, and rebuilt when either moves. This module converts no forecasts: the demand distribution is
the one planning built from the stored run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import threading
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import EngineDep, Reader
from serving.api.routes.forecasts import current_forecast

__all__ = ["PlanInputsCache", "WhatIfRequest", "WhatIfResponse", "run_what_if", "router"]

router = APIRouter(prefix="/v1/plans", tags=["plans"])

_SEG = r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}"
#: A stocking point ``sku|location``; a bottom unit ``sku|location|channel`` names its stocking point.
_UNIT = rf"^{_SEG}\|{_SEG}(\|{_SEG})?$"


class PlanInputsCache:
    """Per-replica planning inputs of each tenant, keyed by the forecast run and the sales watermark.

    Built off the event loop by :func:`planning.load_plan_inputs`, once per (tenant, forecast run, sales
    watermark); one build per tenant at a time, concurrent requests of that tenant wait for it and reuse it.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self.builds = 0

    def get(self, engine, settings, tenant: str, meta) -> Any:
        """The inputs of ``tenant`` planned on the forecast run ``meta`` (blocking)."""
        from planning import load_plan_inputs

        key = (meta.stage, meta.run_id, meta.created_at, meta.data_watermark)
        with self._locks_lock:
            lock = self._locks.setdefault(tenant, threading.Lock())
        with lock:
            hit = self._entries.get(tenant)
            if hit is not None and hit[0] == key:
                return hit[1]
            inputs = load_plan_inputs(engine, tenant, settings=settings, forecast_run=meta.run_id)
            self._entries[tenant] = (key, inputs)
            self.builds += 1
            return inputs


def _inputs_cache(app) -> PlanInputsCache:
    cache = getattr(app.state, "plan_inputs_cache", None)
    if cache is None:
        cache = app.state.plan_inputs_cache = PlanInputsCache()
    return cache


class WhatIfRequest(BaseModel):
    """A change to try on some of the caller tenant's stocking points; nothing is saved."""

    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(pattern=_UNIT)]] = Field(
        min_length=1,
        max_length=2000,
        description="Stocking points as 'sku|location' (a unit 'sku|location|channel' names its point).",
    )
    fill_target: float | None = Field(default=None, ge=0.5, le=0.999, description="New fill-rate target.")
    lead_time_factor: float | None = Field(
        default=None, gt=0.0, le=10.0, description="Multiply supplier lead times (1.5 = 50% longer)."
    )
    budget: float | None = Field(default=None, ge=0.0, description="Total money for these units' orders.")
    demand_factor: float | None = Field(
        default=None, gt=0.0, le=10.0, description="Multiply the demand forecast (1.2 = 20% more demand)."
    )


class UnitOutcome(BaseModel):
    """One unit's plan: order and the simulated service it buys."""

    unit: str
    order_qty: float
    order_value: float
    order_up_to: float
    fill_rate: float
    stockout_probability: float
    bound_by: str | None


class WhatIfResponse(BaseModel):
    """The unchanged plan and the scenario for the same points, with totals and the forecast planned on."""

    tenant: str
    forecast_run: str
    forecast_stage: str
    model_version: str | None
    data_watermark: str
    forecast_source: str
    change: dict[str, Any]
    base: list[UnitOutcome]
    scenario: list[UnitOutcome]
    totals: dict[str, dict[str, float]]


def _point(unit: str) -> str:
    return "|".join(unit.split("|")[:2])


def _select(inputs, ids: list[str], tenant: str) -> np.ndarray:
    u = inputs.units
    row = {f"{sku}|{loc}": i for i, (sku, loc) in enumerate(zip(u["sku_id"], u["location_id"], strict=True))}
    missing = [u for u in ids if _point(u) not in row]
    if missing:
        raise HTTPException(
            404,
            detail={
                "msg": f"unknown stocking point(s) for tenant {tenant!r}: {', '.join(missing[:10])}",
                "units": missing[:50],
            },
        )
    return np.array([row[_point(u)] for u in ids], dtype=np.int64)


def _outcomes(result, ids: list[str]) -> list[UnitOutcome]:
    u = result.units
    keys = [f"{sku}|{loc}" for sku, loc in zip(u["sku_id"], u["location_id"], strict=True)]
    by = {k: r for k, r in zip(keys, u.iter_rows(named=True), strict=True)}

    def f(x):
        return float(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else 0.0

    out = []
    for unit in ids:
        r = by[_point(unit)]
        out.append(
            UnitOutcome(
                unit=unit,
                order_qty=f(r.get("order_qty")),
                order_value=f(r.get("order_value")),
                order_up_to=f(r.get("order_up_to")),
                fill_rate=f(r.get("fill_rate_at_level")),
                stockout_probability=f(r.get("stockout_probability")),
                bound_by=r.get("bound_by"),
            )
        )
    return out


def _totals(rows: list[UnitOutcome]) -> dict[str, float]:
    n = max(len(rows), 1)
    return {
        "order_qty": sum(r.order_qty for r in rows),
        "order_value": sum(r.order_value for r in rows),
        "mean_fill_rate": sum(r.fill_rate for r in rows) / n,
        "mean_stockout_probability": sum(r.stockout_probability for r in rows) / n,
    }


def _period_days(inputs, meta) -> float:
    from features.forecasts import period_days

    return float(getattr(inputs, "period_days", None) or period_days(meta.freq))


def _run_what_if(inputs, meta, idx: np.ndarray, body: WhatIfRequest) -> WhatIfResponse:
    import polars as pl

    from planning import Budget, PlanConfig, plan

    points = np.unique(idx)  # a point asked twice (e.g. through two channels) is planned once
    units = inputs.units[points.tolist()]
    pmf = np.asarray(inputs.lead_time_pmf)[points]
    counts = None if inputs.lead_time_counts is None else np.asarray(inputs.lead_time_counts)[points]
    fc = inputs.forecast
    fc = dataclasses.replace(
        fc,
        values=np.asarray(fc.values)[points],
        history=fc.history.rows(points) if fc.history is not None else None,
    )
    config = PlanConfig(period_days=_period_days(inputs, meta), seed=0)
    base = plan(units, fc, pmf, as_of=inputs.as_of, config=config, lead_time_counts=counts)
    s_units, s_pmf, s_counts, budgets, s_fc = units, pmf, counts, (), fc
    if body.demand_factor is not None:  # every quantile, or every bootstrap draw, scaled alike
        k = float(body.demand_factor)
        hist = fc.history
        s_fc = dataclasses.replace(
            fc,
            values=np.asarray(fc.values) * k,
            history=None if hist is None else dataclasses.replace(hist, factor=np.asarray(hist.factor) * k),
        )
    if body.fill_target is not None:
        s_units = s_units.with_columns(pl.lit(float(body.fill_target)).alias("fill_target"))
    if body.lead_time_factor is not None:
        k = pmf.shape[1]
        width = max(k, int(np.ceil((k - 1) * body.lead_time_factor)) + 1)

        def shift(p):  # bin j (periods) moves to round(j * factor); mass (or counts) kept
            out = np.zeros((p.shape[0], width))
            for j in range(k):
                out[:, int(round(j * body.lead_time_factor))] += p[:, j]
            return out

        s_pmf = shift(pmf)
        s_counts = None if counts is None else shift(counts)
        s_units = s_units.with_columns(
            pl.col("lead_time_mean") * body.lead_time_factor, pl.col("lead_time_std") * body.lead_time_factor
        )
    if body.budget is not None:
        budgets = (Budget(by=None, limits=float(body.budget)),)
    scenario = plan(
        s_units, s_fc, s_pmf, as_of=inputs.as_of, config=config, budgets=budgets, lead_time_counts=s_counts
    )
    ids = body.units
    b, s = _outcomes(base, ids), _outcomes(scenario, ids)
    return WhatIfResponse(
        tenant=meta.tenant,
        forecast_run=meta.run_id,
        forecast_stage=meta.stage,
        model_version=meta.model_version,
        data_watermark=meta.data_watermark,
        forecast_source=str(fc.source),
        change=body.model_dump(exclude={"units"}, exclude_none=True),
        base=b,
        scenario=s,
        totals={"base": _totals(b), "scenario": _totals(s)},
    )


@router.post("/what-if", response_model=WhatIfResponse, responses={401: {}, 404: {}, 409: {}, 422: {}})
async def what_if(body: WhatIfRequest, request: Request, principal: Reader) -> WhatIfResponse:
    """Re-plan the caller tenant's points with a changed target, lead time or budget, beside the plan."""
    return await run_what_if(request, principal.tenant_id, body)


async def run_what_if(request: Request, tenant: str, body: WhatIfRequest) -> WhatIfResponse:
    """The what-if of ``body`` on ``tenant``'s current plan inputs (the API route's and the pages' path).

    Raises:
        HTTPException: 422 without a change, 409 without current forecasts, 404 for an unknown point.
    """
    changes = (body.fill_target, body.lead_time_factor, body.budget, body.demand_factor)
    if all(c is None for c in changes):
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body"],
                    "msg": "give at least one of fill_target, lead_time_factor, budget, demand_factor",
                    "type": "value_error",
                }
            ],
        )
    meta = (await current_forecast(request, tenant)).meta  # 409 when the tenant has no current forecasts
    app = request.app
    inputs = await asyncio.to_thread(
        _inputs_cache(app).get, app.state.engine, app.state.settings, tenant, meta
    )
    idx = _select(inputs, body.units, tenant)
    return await asyncio.to_thread(_run_what_if, inputs, meta, idx, body)


@router.get("/latest", response_model=dict, responses={401: {}, 409: {}})
def latest(principal: Reader, engine: EngineDep, limit: int = 50) -> dict[str, Any]:
    """The caller tenant's latest stored plan run: its parameters, counts and first recommendations."""
    from planning import load_run

    try:
        run = load_run(engine, principal.tenant_id)
    except LookupError:
        command = f"replenish cycle --tenant {principal.tenant_id}"
        raise HTTPException(
            409,
            detail={
                "msg": f"tenant {principal.tenant_id!r} has no plan run yet: run `{command}`",
                "command": command,
            },
        ) from None
    recs = run["recommendations"]
    cols = [
        c
        for c in (
            "id",
            "kind",
            "sku_id",
            "location_id",
            "supplier_id",
            "order_qty",
            "order_value",
            "expected_arrival",
            "action",
            "route_queue",
            "route_role",
            "rule",
            "reason",
        )
        if c in recs.columns
    ]
    return {
        "run": {
            k: (str(v) if not isinstance(v, int | float | str | dict | type(None)) else v)
            for k, v in run["run"].items()
        },
        "counts": {
            "recommendations": recs.height,
            "exceptions": run["exceptions"].height,
            "po_drafts": run["po_drafts"].height,
        },
        "recommendations": [
            {k: (str(v) if not isinstance(v, int | float | str | type(None)) else v) for k, v in r.items()}
            for r in recs.select(cols).head(limit).to_dicts()
        ],
    }
