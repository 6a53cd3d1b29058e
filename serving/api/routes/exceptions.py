"""Exceptions: list with filters, read, open, and the actions (assign, acknowledge, resolve, dismiss).

Every path with an id answers 404 for another tenant's id. Actions carry the ``version`` the caller looked at
(optional); a stale one answers 409 with the current version and state, an action the state does not allow
409 with the current state. Reading takes the tenant's new plan runs' exceptions in first
(:func:`workflow.exceptions.sync_plan_exceptions`), so a plan stored by any caller shows up as open.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from serving.api.deps import Admin, Decider, EngineDep, Proposer, Reader, SessionDep
from serving.api.routes.recommendations import AuditOut
from workflow import exceptions as wx
from workflow.schemas import INT64_MAX, StrictIn

__all__ = ["router"]

router = APIRouter(prefix="/v1/exceptions", tags=["exceptions"])
_log = logging.getLogger(__name__)

ExcId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
TypeName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^(\*|[a-z][a-z0-9_]*)$")]
_Name = Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]*$")]


_Strict = StrictIn  # unknown fields refused; NUL, NaN and huge integers refused in every field


class AssignIn(_Strict):
    """Give the exception to a person (and optionally a team)."""

    assignee: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*\S[^\x00]*$")
    owner_team: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00]*$")
    version: int | None = Field(default=None, ge=1, le=INT64_MAX)


class AcknowledgeIn(_Strict):
    """Say the exception is being handled."""

    note: str | None = Field(default=None, max_length=2000, pattern=r"^[^\x00]*$")
    version: int | None = Field(default=None, ge=1, le=INT64_MAX)


class ResolveIn(_Strict):
    """Close the exception as handled."""

    reason: str | None = Field(default=None, max_length=2000, pattern=r"^[^\x00]*$")
    version: int | None = Field(default=None, ge=1, le=INT64_MAX)


class DismissIn(_Strict):
    """Close the exception as not worth acting on; the reason is required."""

    reason: str = Field(min_length=3, max_length=2000, pattern=r"^[^\x00]*\S[^\x00]*$")
    version: int | None = Field(default=None, ge=1, le=INT64_MAX)


class RuleIn(_Strict):
    """A tenant's rule for one exception type."""

    sla_hours: float | None = Field(default=None, gt=0, le=8760)
    escalate_to: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00]*$")
    writeback: bool = False


class EscalateOut(BaseModel):
    """Exceptions escalated now."""

    escalated: list[wx.ExceptionOut]


def _sync(engine, s, tenant_id: str) -> None:
    try:
        wx.sync_plan_exceptions(engine, tenant_id)
    except Exception:  # the exceptions already taken in are still worth listing
        _log.exception("taking tenant %s's plan exceptions in failed", tenant_id)
    s.commit()  # a fresh snapshot for the reads that follow (SQLite WAL keeps the first read's otherwise)


@router.get("", response_model=list[wx.ExceptionOut])
def list_(
    p: Reader,
    s: SessionDep,
    engine: EngineDep,
    state: Annotated[
        Literal["open", "assigned", "acknowledged", "resolved", "dismissed"] | None, Query()
    ] = None,
    exception_type: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z][a-z0-9_]*$")] = None,
    severity: Annotated[Literal["high", "medium", "low"] | None, Query()] = None,
    owner_team: _Name = None,
    assignee: _Name = None,
    sku_id: _Name = None,
    location_id: _Name = None,
    active: bool | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> list[wx.ExceptionOut]:
    """The tenant's exceptions, active and most severe first, then by due time."""
    _sync(engine, s, p.tenant_id)
    return wx.list_exceptions(
        s, p.tenant_id, state=state, exception_type=exception_type, severity=severity, owner_team=owner_team,
        assignee=assignee, sku_id=sku_id, location_id=location_id, active=active, overdue=overdue,
        limit=limit, offset=min(offset, 2**62),
    )  # fmt: skip


@router.post("", response_model=wx.ExceptionOut, status_code=201)
def open_(body: wx.ExceptionIn, p: Proposer, s: SessionDep) -> wx.ExceptionOut:
    """Open an exception (or update the active one of the same unit and type)."""
    out, _ = wx.open_exception(s, p.tenant_id, body, actor=p.actor, source="api")
    return out


@router.post("/escalate", response_model=EscalateOut)
def escalate(p: Admin, s: SessionDep) -> EscalateOut:
    """Escalate the tenant's overdue exceptions now (what the scheduler does)."""
    return EscalateOut(escalated=wx.escalate_overdue(s, p.tenant_id, actor=p.actor))


@router.get("/rules/{exception_type}", response_model=wx.RuleOut)
def get_rule(exception_type: TypeName, p: Reader, s: SessionDep) -> wx.RuleOut:
    """The rule in force for a type (the tenant's, else its ``*`` rule, else the defaults)."""
    return wx.get_rule(s, p.tenant_id, exception_type)


@router.put("/rules/{exception_type}", response_model=wx.RuleOut)
def set_rule(exception_type: TypeName, body: RuleIn, p: Admin, s: SessionDep) -> wx.RuleOut:
    """Set the tenant's SLA, escalation target and writeback for a type (``*``: every other type)."""
    return wx.set_rule(
        s, p.tenant_id, exception_type, sla_hours=body.sla_hours, escalate_to=body.escalate_to,
        writeback=body.writeback, actor=p.actor,
    )  # fmt: skip


@router.get("/{exc_id}", response_model=wx.ExceptionOut)
def get(exc_id: ExcId, p: Reader, s: SessionDep) -> wx.ExceptionOut:
    """One exception with its linked recommendations."""
    return wx.get(s, p.tenant_id, exc_id)


@router.get("/{exc_id}/history", response_model=list[AuditOut])
def history(exc_id: ExcId, p: Reader, s: SessionDep) -> list[AuditOut]:
    """Audit entries of this exception, oldest first."""
    return [AuditOut.model_validate(e) for e in wx.history(s, p.tenant_id, exc_id)]


@router.post("/{exc_id}/assign", response_model=wx.ExceptionOut)
def assign(exc_id: ExcId, body: AssignIn, p: Decider, s: SessionDep) -> wx.ExceptionOut:
    """Give the exception to a person."""
    return wx.assign(
        s, p.tenant_id, exc_id, assignee=body.assignee, owner_team=body.owner_team, actor=p.actor,
        expected_version=body.version,
    )  # fmt: skip


@router.post("/{exc_id}/acknowledge", response_model=wx.ExceptionOut)
def acknowledge(exc_id: ExcId, body: AcknowledgeIn, p: Decider, s: SessionDep) -> wx.ExceptionOut:
    """Acknowledge: someone is on it."""
    return wx.acknowledge(
        s, p.tenant_id, exc_id, actor=p.actor, note=body.note, expected_version=body.version
    )


@router.post("/{exc_id}/resolve", response_model=wx.ExceptionOut)
def resolve(exc_id: ExcId, body: ResolveIn, p: Decider, s: SessionDep) -> wx.ExceptionOut:
    """Resolve: the problem was handled."""
    return wx.resolve(
        s, p.tenant_id, exc_id, actor=p.actor, reason=body.reason, expected_version=body.version
    )


@router.post("/{exc_id}/dismiss", response_model=wx.ExceptionOut)
def dismiss(exc_id: ExcId, body: DismissIn, p: Decider, s: SessionDep) -> wx.ExceptionOut:
    """Dismiss with a reason: not worth acting on."""
    return wx.dismiss(
        s, p.tenant_id, exc_id, actor=p.actor, reason=body.reason, expected_version=body.version
    )
