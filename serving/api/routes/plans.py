"""Plan routes: the latest stored plan run, and what-if re-plans that are computed but never saved.

``POST /v1/plans/what-if`` re-plans a set of planning units with a changed service target, lead time or budget
and answers the scenario beside the unchanged plan of the same units, both computed now by
:func:`planning.plan` on the same inputs and the same simulation seed (so the difference is the change, not
noise). Forecasts come from the served model when it knows the units, else from planning's baseline.

Inputs come from ``app.state.plan_inputs``, a zero-argument callable returning ``planning.PlanInputs`` (built
once, off the event loop, then reused; periods of ``app.state.plan_period_days`` days, default 30);
:func:`stallion_plan_inputs` builds them from the bundled demo data.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import EngineDep, Reader

__all__ = ["WhatIfRequest", "router", "stallion_plan_inputs"]

router = APIRouter(prefix="/v1/plans", tags=["plans"])

_UNIT = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}\|[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$"


def stallion_plan_inputs(period_days: int = 30, horizon: int = 6):
    """Planning inputs of the bundled Stallion data and its seeded supply side (what the demo plans)."""
    import polars as pl

    from features.contracts import get_contract
    from features.stallion import stallion_tables
    from planning import inputs_from_frames

    tables = {}
    for kind, frame in stallion_tables(seed=0).items():
        try:
            fields = get_contract(kind).fields
        except Exception:  # noqa: BLE001 - not a contract kind
            tables[kind] = frame
            continue
        missing = [f for f in fields if not f.required and f.name not in frame.columns]
        tables[kind] = (
            frame.with_columns([pl.lit(f.default).alias(f.name) for f in missing]) if missing else frame
        )
    return inputs_from_frames(**tables, period_days=period_days, horizon=horizon)


class WhatIfRequest(BaseModel):
    """A change to try on some planning units; nothing is saved."""

    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(pattern=_UNIT)]] = Field(
        min_length=1,
        max_length=2000,
        description="Planning units as 'location|sku' (e.g. 'Agency_01|SKU_01').",
    )
    fill_target: float | None = Field(default=None, ge=0.5, le=0.999, description="New fill-rate target.")
    lead_time_factor: float | None = Field(
        default=None, gt=0.0, le=10.0, description="Multiply supplier lead times (1.5 = 50% longer)."
    )
    budget: float | None = Field(default=None, ge=0.0, description="Total money for these units' orders.")


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
    """The unchanged plan and the scenario for the same units, with totals."""

    forecast_source: str
    change: dict[str, Any]
    base: list[UnitOutcome]
    scenario: list[UnitOutcome]
    totals: dict[str, dict[str, float]]


_lock = threading.Lock()


def _inputs(request: Request):
    provider = getattr(request.app.state, "plan_inputs", None)
    if provider is None:
        raise HTTPException(503, detail="no planning inputs are configured for this instance")
    with _lock:
        cached = getattr(request.app.state, "plan_inputs_value", None)
        if cached is None:
            cached = request.app.state.plan_inputs_value = provider()
    return cached


def _select(inputs, ids: list[str]):
    keys = [
        f"{loc}|{sku}" for sku, loc in zip(inputs.units["sku_id"], inputs.units["location_id"], strict=True)
    ]
    row = {k: i for i, k in enumerate(keys)}
    missing = [u for u in ids if u not in row]
    if missing:
        raise HTTPException(404, detail={"msg": "unknown planning units", "units": missing[:50]})
    return np.array([row[u] for u in ids], dtype=np.int64)


def _outcomes(result, ids: list[str]) -> list[UnitOutcome]:
    u = result.units
    keys = [f"{loc}|{sku}" for sku, loc in zip(u["sku_id"], u["location_id"], strict=True)]
    by = {k: r for k, r in zip(keys, u.iter_rows(named=True), strict=True)}

    def f(x):
        return float(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else 0.0

    out = []
    for unit in ids:
        r = by[unit]
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


def _run_what_if(
    inputs, idx: np.ndarray, body: WhatIfRequest, values, levels, source: str, period_days: int
) -> WhatIfResponse:
    import polars as pl

    from planning import Budget, Forecast, PlanConfig, plan

    units = inputs.units[idx.tolist()]
    pmf = np.asarray(inputs.lead_time_pmf)[idx]
    counts = None if inputs.lead_time_counts is None else np.asarray(inputs.lead_time_counts)[idx]
    history = inputs.forecast.history
    on_baseline = values is None
    fc = Forecast(
        levels=np.asarray(inputs.forecast.levels if on_baseline else levels),
        values=np.asarray(inputs.forecast.values)[idx] if on_baseline else np.asarray(values),
        version=f"what-if:{source}",
        model_version=None,
        source=source,
        history=history.rows(idx) if on_baseline and history is not None else None,
    )
    config = PlanConfig(period_days=period_days, seed=0)
    base = plan(units, fc, pmf, as_of=inputs.as_of, config=config, lead_time_counts=counts)
    s_units, s_pmf, s_counts, budgets = units, pmf, counts, ()
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
        s_units, fc, s_pmf, as_of=inputs.as_of, config=config, budgets=budgets, lead_time_counts=s_counts
    )
    ids = body.units
    b, s = _outcomes(base, ids), _outcomes(scenario, ids)
    return WhatIfResponse(
        forecast_source=source,
        change=body.model_dump(exclude={"units"}, exclude_none=True),
        base=b,
        scenario=s,
        totals={"base": _totals(b), "scenario": _totals(s)},
    )


@router.post("/what-if", response_model=WhatIfResponse, responses={404: {}, 422: {}, 503: {}})
async def what_if(body: WhatIfRequest, request: Request, principal: Reader) -> WhatIfResponse:
    """Re-plan units with a changed service target, lead time or budget, beside the unchanged plan."""
    if body.fill_target is None and body.lead_time_factor is None and body.budget is None:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body"],
                    "msg": "give at least one of fill_target, lead_time_factor, budget",
                    "type": "value_error",
                }
            ],
        )
    inputs = await asyncio.to_thread(_inputs, request)
    idx = _select(inputs, body.units)
    values, levels = None, None  # None: plan on the inputs' own baseline (its history bootstrap)
    source = str(inputs.forecast.source)
    forecaster = getattr(request.app.state, "forecaster", None)
    if forecaster is not None:
        try:
            out = await forecaster.forecast(body.units)
            h = min(np.asarray(out["values"]).shape[1], np.asarray(inputs.forecast.values).shape[1])
            values, levels = np.asarray(out["values"])[:, :h], np.asarray(out["quantiles"])
            source = f"model version {out['version']}"
        except Exception:  # noqa: BLE001 - unknown to the model or model busy: plan on the baseline, say so
            source += " (served model unavailable for these units)"
    period_days = int(getattr(request.app.state, "plan_period_days", 30))
    return await asyncio.to_thread(_run_what_if, inputs, idx, body, values, levels, source, period_days)


@router.get("/latest", response_model=dict)
def latest(principal: Reader, engine: EngineDep, limit: int = 50) -> dict[str, Any]:
    """The tenant's latest stored plan run: its parameters, counts and first recommendations."""
    from planning import load_run

    try:
        run = load_run(engine, principal.tenant_id)
    except LookupError:
        raise HTTPException(404, detail="no plan run for this tenant yet") from None
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
