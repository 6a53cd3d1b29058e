"""Inputs, outputs and errors of the exception lifecycle (:mod:`workflow.exceptions`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from workflow.errors import WorkflowError
from workflow.schemas import StrictIn, UtcDatetime

__all__ = ["ExceptionIllegalTransition", "ExceptionIn", "ExceptionOut", "ExceptionVersionConflict"]


class ExceptionIllegalTransition(WorkflowError):
    """The action is not allowed from the exception's current state (named in the message)."""

    status_code = 409

    def __init__(self, exc_id: str, action: str, current: str, allowed_from: tuple[str, ...]):
        super().__init__(
            f"exception {exc_id}: cannot {action} from state {current!r} "
            f"(allowed from: {', '.join(allowed_from)})"
        )
        self.current, self.allowed_from = current, allowed_from

    def detail(self) -> dict:
        """Include the current state."""
        return {**super().detail(), "current_state": self.current, "allowed_from": list(self.allowed_from)}


class ExceptionVersionConflict(WorkflowError):
    """The exception changed since the caller read it."""

    status_code = 409

    def __init__(self, exc_id: str, expected: int, current: int, state: str):
        super().__init__(
            f"exception {exc_id}: version conflict (you sent version {expected}, it is now version {current} "
            f"in state {state!r}); reload and retry"
        )
        self.current, self.state = current, state

    def detail(self) -> dict:
        """Include the current version and state."""
        return {**super().detail(), "current_version": self.current, "current_state": self.state}


_Text = Field(default=None, max_length=128, pattern=r"^[^\s\x00][^\x00]*$")


class ExceptionIn(StrictIn):
    """An exception to open (or to update, if one with its key is active): what other code raises."""

    exception_type: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    severity: Literal["high", "medium", "low"] = "medium"
    message: str = Field(min_length=1, max_length=4000)
    sku_id: str | None = _Text
    location_id: str | None = _Text
    supplier_id: str | None = _Text
    po_id: str | None = _Text
    value: float | None = Field(default=None, allow_inf_nan=False)
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    customer_impacting: bool = False
    exception_key: str | None = Field(default=None, min_length=1, max_length=512)
    route_queue: str | None = Field(default=None, max_length=64)
    route_role: str | None = Field(default=None, max_length=32)
    owner_team: str | None = Field(default=None, max_length=64)
    recommendation_ids: list[str] = Field(default_factory=list, max_length=100)


class ExceptionOut(BaseModel):
    """An exception with its state, owner, due time and the recommendations it is linked to."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    exception_key: str
    exception_type: str
    state: str
    version: int
    severity: str
    sku_id: str | None
    location_id: str | None
    supplier_id: str | None
    po_id: str | None
    value: float | None
    threshold: float | None
    customer_impacting: bool
    message: str
    source: str
    first_run_id: str | None
    last_run_id: str | None
    occurrences: int
    route_queue: str | None
    route_role: str | None
    owner_team: str | None
    assignee: str | None
    due_at: UtcDatetime
    overdue: bool = False
    escalation_level: int
    escalated_at: UtcDatetime | None
    recommendation_ids: list[str]
    resolution: str | None
    reason: str | None
    opened_at: UtcDatetime
    updated_at: UtcDatetime
    last_seen_at: UtcDatetime
    acknowledged_at: UtcDatetime | None
    closed_at: UtcDatetime | None
    closed_by: str | None
    cleared_at: UtcDatetime | None
