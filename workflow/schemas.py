"""Typed inputs and outputs of the control plane (pydantic models, validated on construction).

These are the contract between the planner (which proposes recommendations as plain data), the HTTP API and
the command line. Every model forbids unknown fields, so a typo is a 422 naming the field rather than a
silently ignored value.

Example (what the planning glue hands to :func:`workflow.lifecycle.propose`)::

    RecommendationIn(
        kind="purchase_order", sku_id="SKU-1", location_id="DC-1", supplier_id="SUP-9",
        quantity=120, unit_cost=4.5, need_by=date(2026, 12, 20), promised_lead_time_days=14,
        route=Route(queue="high-value", role="approver", rule="value>10000", reason="high-cost buy"),
        evidence=EvidenceIn(forecast_version="fc-2026-11-27", model_version="tft:7",
                            quantiles={"p10": 80, "p50": 110, "p90": 150}, inventory_position=35,
                            lead_time={"mean_days": 14, "sd_days": 3},
                            simulation={"stockout_probability": 0.04, "fill_rate": 0.98},
                            constraints={"moq": 24, "pack_size": 12}),
        proposal_key="plan-2026-11-27/SKU-1/DC-1",
    )
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

__all__ = [
    "STATES",
    "AckIn",
    "ApproveIn",
    "AutoApprove",
    "CommentIn",
    "EvidenceIn",
    "Kind",
    "OverrideIn",
    "RecommendationIn",
    "RecommendationOut",
    "RejectIn",
    "Route",
    "RouteIn",
    "SupplierResponseIn",
]

Kind = Literal["purchase_order", "transfer", "allocation", "exception_update"]
STATES = (
    "proposed",
    "routed",
    "approved",
    "overridden",
    "rejected",
    "sent",
    "acknowledged",
    "failed",
    "retried",
    "expired",
)

_Id = Field(min_length=1, max_length=128, pattern=r"^[^\s].*$")
_Code = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class Route(_Strict):
    """Send the recommendation to planners: which queue, who may decide, and the rule that fired."""

    queue: str = Field(min_length=1, max_length=64, description="Work queue, e.g. 'high-value'.")
    role: Literal["planner", "approver", "admin"] = Field(description="Least role allowed to decide.")
    rule: str = Field(min_length=1, max_length=64, description="Routing rule that fired.")
    reason: str = Field(min_length=1, max_length=2000, description="Why it needs a human.")


class AutoApprove(_Strict):
    """Approve by policy without a human (the rule is recorded as the actor)."""

    rule: str = Field(min_length=1, max_length=64)
    reason: str = Field(default="within policy", max_length=2000)


class EvidenceIn(BaseModel):
    """What the recommendation rests on; stored immutably and referenced by its SHA-256.

    Named fields are the ones planners look at; any further JSON field is kept as given.
    """

    model_config = ConfigDict(extra="allow")

    forecast_version: str | None = Field(default=None, max_length=200)
    model_version: str | None = Field(default=None, max_length=200)
    quantiles: dict[str, float] | None = Field(
        default=None, description="Demand quantiles, e.g. {'p50': 110}."
    )
    inventory_position: float | None = None
    lead_time: dict[str, Any] | None = Field(default=None, description="Lead-time assumption.")
    simulation: dict[str, Any] | None = Field(default=None, description="Simulation result.")
    constraints: dict[str, Any] | None = Field(default=None, description="MOQ, pack size, budget, capacity.")
    assumptions: dict[str, Any] | None = None


class RecommendationIn(_Strict):
    """A recommendation as the planner produces it.

    ``value`` defaults to ``quantity * unit_cost``. Give ``route`` to send it to a planner queue, or
    ``auto_approve`` to approve it by policy at once (which writes it to the outbox); with neither it stays
    ``proposed``. ``proposal_key`` makes proposing idempotent: proposing the same key again returns the
    existing recommendation unchanged.
    """

    kind: Kind
    sku_id: str = _Id
    location_id: str = _Id
    from_location_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        validate_default=True,
        description="Source location of a transfer (required for transfers).",
    )
    supplier_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        validate_default=True,
        description="Required for purchase orders.",
    )
    quantity: float = Field(ge=0)
    unit_cost: float | None = Field(default=None, ge=0)
    value: float | None = Field(default=None, ge=0)
    need_by: date | None = None
    promised_lead_time_days: float | None = Field(default=None, ge=0)
    route: Route | None = None
    auto_approve: AutoApprove | None = Field(default=None, validate_default=True)
    evidence: EvidenceIn = Field(default_factory=EvidenceIn)
    proposal_key: str | None = Field(default=None, min_length=1, max_length=200)
    expires_at: datetime | None = None

    _f = field_validator("quantity", "unit_cost", "value", "promised_lead_time_days")(_finite)

    # Cross-field rules sit on the field they concern, so the 422 names that field.
    @field_validator("from_location_id")
    @classmethod
    def _transfer_needs_source(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("kind") == "transfer":
            raise ValueError("required when kind is 'transfer'")
        return v

    @field_validator("supplier_id")
    @classmethod
    def _po_needs_supplier(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("kind") == "purchase_order":
            raise ValueError("required when kind is 'purchase_order'")
        return v

    @field_validator("auto_approve")
    @classmethod
    def _route_or_auto(cls, v: AutoApprove | None, info: ValidationInfo) -> AutoApprove | None:
        if v is not None and info.data.get("route") is not None:
            raise ValueError("give either route or auto_approve, not both")
        return v

    @model_validator(mode="after")
    def _default_value(self) -> RecommendationIn:
        if self.value is None:
            self.value = self.quantity * self.unit_cost if self.unit_cost is not None else 0.0
        return self


class RouteIn(_Strict):
    """Body of a route action."""

    route: Route
    version: int | None = Field(default=None, ge=1, description="Expected version (optional for routing).")


class ApproveIn(_Strict):
    """Body of an approval: the version the approver looked at."""

    version: int = Field(ge=1)
    comment: str | None = Field(default=None, max_length=4000)


class OverrideIn(_Strict):
    """Body of an override: what changes and why (a reason code, and optionally a comment)."""

    version: int = Field(ge=1)
    quantity: float | None = Field(default=None, ge=0)
    need_by: date | None = Field(default=None, validate_default=True)
    reason_code: str = _Code
    comment: str | None = Field(default=None, max_length=4000)

    _f = field_validator("quantity")(_finite)

    @field_validator("need_by")
    @classmethod
    def _changes_something(cls, v: date | None, info: ValidationInfo) -> date | None:
        # A quantity that failed its own validation is absent from info.data: one error is enough.
        if v is None and "quantity" in info.data and info.data["quantity"] is None:
            raise ValueError("an override must change quantity or need_by (give one or both)")
        return v


class RejectIn(_Strict):
    """Body of a rejection."""

    version: int = Field(ge=1)
    reason_code: str = _Code
    comment: str | None = Field(default=None, max_length=4000)


class CommentIn(_Strict):
    """A planner comment (stored as evidence)."""

    text: str = Field(min_length=1, max_length=4000)


class AckIn(_Strict):
    """Acknowledgement from the receiving system (ERP/WMS/OMS) of a written-back action."""

    status: Literal["accepted", "rejected"]
    external_ref: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=2000)


class SupplierResponseIn(_Strict):
    """A supplier's response to a purchase order.

    ``partial`` needs ``quantity``; ``new_date`` needs ``on_date``; ``received`` needs ``on_date`` (the
    receipt date) and takes ``quantity`` (default: the ordered quantity).
    """

    status: Literal["confirmed", "partial", "rejected", "new_date", "received"]
    quantity: float | None = Field(default=None, ge=0, validate_default=True)
    on_date: date | None = Field(default=None, validate_default=True)
    comment: str | None = Field(default=None, max_length=4000)

    @field_validator("quantity")
    @classmethod
    def _partial_needs_quantity(cls, v: float | None, info: ValidationInfo) -> float | None:
        _finite(v)
        if v is None and info.data.get("status") == "partial":
            raise ValueError("required when status is 'partial'")
        return v

    @field_validator("on_date")
    @classmethod
    def _needs_date(cls, v: date | None, info: ValidationInfo) -> date | None:
        status = info.data.get("status")
        if v is None and status in ("new_date", "received"):
            raise ValueError(f"required when status is {status!r}")
        return v


class RecommendationOut(BaseModel):
    """A recommendation as stored, with its current state and version."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    kind: str
    state: str
    version: int
    sku_id: str
    location_id: str
    from_location_id: str | None
    supplier_id: str | None
    quantity: float
    unit_cost: float | None
    value: float
    need_by: date | None
    promised_lead_time_days: float | None
    final_quantity: float | None
    final_need_by: date | None
    route_queue: str | None
    route_role: str | None
    route_rule: str | None
    route_reason: str | None
    override_reason_code: str | None
    evidence_sha256: str
    proposal_key: str | None
    decided_by: str | None
    decided_at: datetime | None
    sent_at: datetime | None
    acknowledged_at: datetime | None
    external_ref: str | None
    confirmed_quantity: float | None
    confirmed_date: date | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
