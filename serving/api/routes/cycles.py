"""Cycle runs of the caller's tenant: start one in the background, report its status.

``POST /v1/cycles`` records a queued run (:func:`serving.cycle.start_cycle`) and runs it on a background
thread of this process (:func:`serving.cycle.run_cycle`); the answer is ``202`` with the run id at once.
``GET /v1/cycles/{run_id}`` and ``GET /v1/cycles`` read the run records (:mod:`features.runs`): stages, times,
counts, outputs and errors. A run id of another tenant is a 404, as a missing one.

Roles: starting a cycle needs ``service`` (batch schedulers, integrations) or ``admin``. A cycle may train a
model, and its proposals are auto-approved by the routing rules and written back through the outbox, so it is
an operator's action, not a planner's: planners decide the routed recommendations a cycle leaves them. Reading
runs needs any reader role. One cycle per tenant at a time: a start while another run of the tenant is queued
or running (and younger than :data:`STALE_AFTER`) is a 409 naming that run.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import EngineDep, Reader, require
from workflow.access import Principal
from workflow.errors import NotFound

__all__ = ["STALE_AFTER", "router"]

_log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/cycles", tags=["cycles"])

#: A queued or running run older than this no longer blocks a new one (its process is presumed gone).
STALE_AFTER = timedelta(hours=6)

Starter = Annotated[Principal, Depends(require("service"))]  # admin passes every role check
StageName = Literal["train", "forecast", "reconcile", "plan", "propose"]


class CycleIn(BaseModel):
    """Which stages to run (default: forecast, reconcile, plan, propose) and whether to train first."""

    model_config = ConfigDict(extra="forbid")

    stages: list[StageName] | None = Field(
        default=None, min_length=1, description="A subset of the stages, run in the cycle's order."
    )
    train: bool = Field(default=False, description="Train (and gate) a new model version first.")


class StageOut(BaseModel):
    """One stage of a cycle run."""

    stage: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None
    counts: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None


class CycleOut(BaseModel):
    """A cycle run and its stages."""

    run_id: str
    tenant_id: str
    status: str
    requested_by: str | None
    stages: list[StageOut]
    options: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class CycleStarted(BaseModel):
    """A cycle run accepted: poll ``url`` for its status."""

    run_id: str
    status: str
    stages: list[str]
    url: str


def _out(run) -> CycleOut:
    return CycleOut.model_validate(run.to_dict())


def _running(engine, tenant: str):
    from features.runs import list_runs

    now = datetime.now(UTC)
    for run in list_runs(engine, tenant, limit=20):
        if run.status in ("queued", "running") and now - run.created_at < STALE_AFTER:
            return run
    return None


def _background(engine, settings, tenant: str, run_id: str) -> None:
    from features.runs import fail_run
    from serving.cycle import run_cycle

    try:
        run_cycle(tenant, run_id=run_id, settings=settings, engine=engine)
    except Exception as exc:  # noqa: BLE001 - a background run must end recorded, whatever happened
        _log.exception("cycle %s of tenant %s stopped", run_id, tenant)
        try:
            fail_run(engine, tenant, run_id, f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001
            _log.exception("cycle %s: could not record the failure", run_id)


@router.post("", response_model=CycleStarted, status_code=202)
def start(body: CycleIn, p: Starter, engine: EngineDep, request: Request) -> CycleStarted:
    """Start a cycle run for the caller's tenant in the background (202 with its id)."""
    from features.runs import get_run
    from serving.cycle import start_cycle

    busy = _running(engine, p.tenant_id)
    if busy is not None:
        raise HTTPException(
            status_code=409,
            detail=f"cycle run {busy.run_id} of tenant {p.tenant_id!r} is {busy.status}; "
            f"wait for it (GET /v1/cycles/{busy.run_id})",
        )
    settings = request.app.state.settings
    try:
        run_id = start_cycle(
            p.tenant_id, stages=body.stages, train=body.train, settings=settings, engine=engine,
            requested_by=p.actor,
        )
    except (LookupError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    run = get_run(engine, p.tenant_id, run_id)  # as recorded (queued), before the thread moves it on
    threading.Thread(
        target=_background, args=(engine, settings, p.tenant_id, run_id), name=f"cycle-{run_id}", daemon=True
    ).start()
    return CycleStarted(
        run_id=run_id, status=run.status, stages=[s.stage for s in run.stages], url=f"/v1/cycles/{run_id}"
    )


@router.get("", response_model=list[CycleOut])
def list_(
    p: Reader, engine: EngineDep, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[CycleOut]:
    """The caller's tenant's recent cycle runs, newest first."""
    from features.runs import list_runs

    return [_out(r) for r in list_runs(engine, p.tenant_id, limit=limit)]


@router.get("/{run_id}", response_model=CycleOut)
def get(run_id: Annotated[str, Path(max_length=64)], p: Reader, engine: EngineDep) -> CycleOut:
    """One cycle run of the caller's tenant (404 for another tenant's)."""
    from features.runs import get_run

    try:
        return _out(get_run(engine, p.tenant_id, run_id))
    except LookupError:  # the same answer as every other route's unknown or foreign id
        raise NotFound("cycle run", run_id) from None
