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
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "STATES",
    "AckIn",
    "ApproveIn",
    "AutoApprove",
    "CommentIn",
    "EvidenceIn",
    "Kind",
    "INT64_MAX",
    "MAX_QUANTITY",
    "OverrideIn",
    "ProposalIn",
    "RecommendationIn",
    "RecommendationOut",
    "RejectIn",
    "Route",
    "RouteIn",
    "StrictIn",
    "UtcDatetime",
    "SupplierResponseIn",
    "check_json",
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

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_DEPTH = 32
#: Largest quantity of one recommendation (so that quantity x cost stays finite).
MAX_QUANTITY = 1e12

def as_utc(v: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives naive ones back; every stored time is UTC)."""
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v


#: A datetime answered as RFC 3339 with its offset (what the OpenAPI ``date-time`` format requires).
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]

_Id = Field(min_length=1, max_length=128, pattern=r"^[^\s].*$")
_Code = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


def check_json(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse what the stores cannot keep: NUL characters, non-finite numbers, integers outside int64.

    Raises:
        ValueError: naming the offending field's path (``payload.lines.3.qty``) and the expected form.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'}: NUL characters are not allowed in text")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(f"{path or 'value'}: integers must lie within int64 (-2**63 .. 2**63-1)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path or 'value'}: must be a finite number (no NaN, Infinity or overflow)")
    elif isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            raise ValueError(f"{path or 'value'}: nested deeper than {MAX_DEPTH} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(k, str) and "\x00" in k:
                raise ValueError(f"{path or 'value'}: NUL characters are not allowed in keys")
            check_json(v, f"{path}.{k}" if path else str(k), depth + 1)


class _Guarded(BaseModel):
    """Runs :func:`check_json` over the raw input, so that no field can smuggle NUL, NaN or a huge int."""

    @model_validator(mode="before")
    @classmethod
    def _guard(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_json(data)
        return data


class _Strict(_Guarded):
    model_config = ConfigDict(extra="forbid")


#: Strict request body (unknown fields refused, input guarded by :func:`check_json`) for routers to build on.
StrictIn = _Strict


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


class EvidenceIn(_Guarded):
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


class _ProposalFields(_Strict):
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
    quantity: float = Field(ge=0, le=MAX_QUANTITY)
    need_by: date | None = None
    promised_lead_time_days: float | None = Field(default=None, ge=0, le=3650)
    route: Route | None = None
    evidence: EvidenceIn = Field(default_factory=EvidenceIn)
    proposal_key: str | None = Field(default=None, min_length=1, max_length=200)
    expires_at: datetime | None = None

    _f = field_validator("quantity", "promised_lead_time_days")(_finite)

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


class ProposalIn(_ProposalFields):
    """A recommendation proposed over HTTP.

    There is no ``value``, ``unit_cost`` or ``auto_approve`` here (sending one is a 422): the server values
    the proposal from the tenant's stored supplier terms (:mod:`workflow.rights`), and only a server-side
    routing rule may approve without a human. Give ``route`` to send it to a planner queue; without it the
    proposal stays ``proposed``. ``proposal_key`` makes proposing idempotent.
    """


class RecommendationIn(_ProposalFields):
    """A recommendation as the planner produces it (the trusted, server-side hand-off; never an HTTP body).

    Value is computed on the server (quantity x the stored unit cost, :mod:`workflow.rights`): ``unit_cost``
    and ``value`` are accepted for compatibility and ignored. Give ``route`` to send it to a planner queue, or
    ``auto_approve`` (a server-side routing rule's decision) to approve it at once, which writes it to the
    outbox; an auto-approval above the policy's value cap, or of an item without a known cost, is routed to
    approvers instead. With neither it stays ``proposed``. ``proposal_key`` makes proposing idempotent:
    proposing the same key again returns the existing recommendation unchanged.
    """

    unit_cost: float | None = Field(default=None, ge=0, description="Ignored: the stored cost is used.")
    value: float | None = Field(default=None, ge=0, description="Ignored: the server computes the value.")
    auto_approve: AutoApprove | None = Field(default=None, validate_default=True)

    _g = field_validator("unit_cost", "value")(_finite)

    @field_validator("auto_approve")
    @classmethod
    def _route_or_auto(cls, v: AutoApprove | None, info: ValidationInfo) -> AutoApprove | None:
        if v is not None and info.data.get("route") is not None:
            raise ValueError("give either route or auto_approve, not both")
        return v


class RouteIn(_Strict):
    """Body of a route action."""

    route: Route
    version: int | None = Field(
        default=None, ge=1, le=INT64_MAX, description="Expected version (optional for routing)."
    )


class ApproveIn(_Strict):
    """Body of an approval: the version the approver looked at."""

    version: int = Field(ge=1, le=INT64_MAX)
    comment: str | None = Field(default=None, max_length=4000)


class OverrideIn(_Strict):
    """Body of an override: what changes and why (a reason code, and optionally a comment)."""

    version: int = Field(ge=1, le=INT64_MAX)
    quantity: float | None = Field(default=None, ge=0, le=MAX_QUANTITY)
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

    version: int = Field(ge=1, le=INT64_MAX)
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
    quantity: float | None = Field(default=None, ge=0, le=MAX_QUANTITY, validate_default=True)
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
    proposed_by: str | None = None
    cost_source: str | None = Field(
        default=None, description="Where the unit cost came from: supplier_terms, catalogue or unknown."
    )
    decided_by: str | None
    decided_at: UtcDatetime | None
    sent_at: UtcDatetime | None
    acknowledged_at: UtcDatetime | None
    external_ref: str | None
    confirmed_quantity: float | None
    confirmed_date: date | None
    expires_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime
