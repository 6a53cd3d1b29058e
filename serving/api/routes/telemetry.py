"""Telemetry of the caller's tenant: accuracy, inventory outcomes, suppliers, overrides, request metering."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import Field, model_validator

from serving.api.deps import Admin, EngineDep, Integrator, Reader, SessionDep
from workflow import telemetry
from workflow.schemas import StrictIn
from workflow.usage import read_usage

__all__ = ["router"]

router = APIRouter(prefix="/v1/telemetry", tags=["telemetry"])

# Bounded so that sums over the largest request stay finite (an overflow would answer null for a number).
Num = Annotated[float, Field(ge=-1e12, le=1e12, allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


_Strict = StrictIn


class AccuracyRow(_Strict):
    """One actual against its forecast."""

    level: str = Field(min_length=1, max_length=64)
    model_version: str = Field(min_length=1, max_length=200)
    y: Num
    y_hat: Num
    lo: Num | None = None
    hi: Num | None = None

    @model_validator(mode="after")
    def _interval(self) -> AccuracyRow:
        if (self.lo is None) != (self.hi is None) or (self.lo is not None and self.lo > self.hi):
            raise ValueError("lo and hi: give both (lo <= hi) or neither")
        return self


class AccuracyIn(_Strict):
    """Actuals that arrived, with the forecasts made for them."""

    period: str | None = Field(default=None, max_length=32)
    rows: list[AccuracyRow] = Field(min_length=1, max_length=100_000)


class InventoryRow(_Strict):
    """One unit-period's availability and demand."""

    available: Num
    demand: NonNeg
    max_stock: NonNeg | None = None
    unit_cost: NonNeg | None = None


class InventoryIn(_Strict):
    """Inventory outcomes of one location (or ``all``) over a period."""

    location: str = Field(default="all", max_length=128)
    period: str | None = Field(default=None, max_length=32)
    rows: list[InventoryRow] = Field(min_length=1, max_length=100_000)


class OverrideOutcomesIn(_Strict):
    """The quantity that proved right, per overridden recommendation id."""

    period: str | None = Field(default=None, max_length=32)
    hindsight: dict[str, NonNeg] = Field(min_length=1)


@router.get("/summary")
def summary(p: Reader, s: SessionDep) -> dict[str, Any]:
    """Latest figures and live counts of the tenant."""
    return telemetry.summary(s, p.tenant_id)


@router.post("/accuracy", status_code=201)
def accuracy(body: AccuracyIn, p: Integrator, s: SessionDep) -> list[dict[str, Any]]:
    """Record forecast accuracy (WAPE, bias, coverage) by level and model version."""
    r = body.rows
    has_interval = all(x.lo is not None for x in r)
    return telemetry.record_accuracy(
        s,
        p.tenant_id,
        level=[x.level for x in r],
        model_version=[x.model_version for x in r],
        y=[x.y for x in r],
        y_hat=[x.y_hat for x in r],
        lo=[x.lo for x in r] if has_interval else None,
        hi=[x.hi for x in r] if has_interval else None,
        period=body.period,
    )


@router.post("/inventory", status_code=201)
def inventory(body: InventoryIn, p: Integrator, s: SessionDep) -> dict[str, float]:
    """Record stockouts and excess inventory."""
    r = body.rows
    has_max = all(x.max_stock is not None for x in r)
    has_cost = has_max and all(x.unit_cost is not None for x in r)
    return telemetry.record_inventory(
        s,
        p.tenant_id,
        available=[x.available for x in r],
        demand=[x.demand for x in r],
        max_stock=[x.max_stock for x in r] if has_max else None,
        unit_cost=[x.unit_cost for x in r] if has_cost else None,
        location=body.location,
        period=body.period,
    )


@router.post("/override-outcomes", status_code=201)
def override_outcomes(body: OverrideOutcomesIn, p: Integrator, s: SessionDep) -> dict[str, Any]:
    """Record the forecast value added of planner overrides."""
    return telemetry.record_override_outcomes(s, p.tenant_id, body.hindsight, period=body.period)


@router.post("/monitoring", status_code=201)
async def run_monitoring(request: Request, p: Integrator, engine: EngineDep) -> dict[str, Any]:
    """Run the monitoring job for the tenant now (the scheduler runs it hourly); returns its id and counts."""
    from workflow.monitoring import run_monitoring as run

    facts_dir = request.app.state.settings.facts_dir
    res = await run_in_threadpool(run, engine, p.tenant_id, facts_dir=facts_dir)
    return {"run_id": res.run_id, "counts": res.counts}


@router.get("/monitoring")
def monitoring(p: Reader, s: SessionDep, run_id: str | None = None) -> dict[str, Any]:
    """The figures of the tenant's newest monitoring run (or of ``run_id``), and its recent runs."""
    from workflow.monitoring import monitoring_runs, run_points

    return {"runs": monitoring_runs(s, p.tenant_id, limit=20), "points": run_points(s, p.tenant_id, run_id)}


@router.get("/metrics", response_class=PlainTextResponse)
def tenant_metrics(p: Reader, s: SessionDep) -> PlainTextResponse:
    """The tenant's business figures in Prometheus text (no tenant label, at most 500 series)."""
    return PlainTextResponse(
        telemetry.tenant_prometheus_text(s, p.tenant_id), media_type="text/plain; version=0.0.4"
    )


@router.get("/usage")
async def usage(request: Request, p: Admin) -> list[dict[str, Any]]:
    """The tenant's metered requests per UTC day, route and status class (durable; last 31 days; admin)."""
    from features.store import session_scope

    meter = request.app.state.usage
    await run_in_threadpool(meter.flush)

    def read() -> list[dict[str, Any]]:
        with session_scope(request.app.state.engine) as s:
            return read_usage(s, p.tenant_id)

    return await run_in_threadpool(read)
