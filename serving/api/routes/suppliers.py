"""Suppliers: each supplier's order channel, sending an order, and recording suppliers' responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from features.store import session_scope
from serving.api.deps import Admin, EngineDep, SessionDep, require
from workflow import suppliers
from workflow.access import Principal
from workflow.schemas import RecommendationOut, StrictIn, UtcDatetime
from workflow.supplier_responses import ResponseLine, apply_responses, record_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/suppliers", tags=["suppliers"])

SupplierId = Annotated[str, Path(min_length=1, max_length=128, description="The supplier's id.")]
OrderNumber = Annotated[str, Path(min_length=1, max_length=64, description="The purchase order's id.")]
#: Who records a supplier's response: the supplier portal's service key, or a planner who took it by phone.
Responder = Annotated[Principal, Depends(require("planner", "approver", "service"))]
Sender = Annotated[Principal, Depends(require("approver", "admin", "service"))]


class ChannelIn(StrictIn):
    """How the tenant's orders reach this supplier: a signed webhook, or a file drop (CSV or JSON)."""

    channel: Literal["webhook", "file"]
    url: str | None = Field(
        default=None, max_length=2000, description="Webhook only: https:// in production."
    )
    secret: str | None = Field(default=None, max_length=256, description="Webhook only: 32+ characters.")
    file_format: Literal["json", "csv"] = "json"


class ChannelOut(BaseModel):
    """A channel as stored, without its secret."""

    supplier_id: str
    channel: str
    url: str | None
    file_format: str
    secret_set: bool
    updated_at: UtcDatetime


class QueuedOut(BaseModel):
    """The order's item in the outbox."""

    outbox_item_id: int
    idempotency_key: str
    created: bool


class ResponsesIn(StrictIn):
    """One or more supplier responses (EDI-like ORDRSP lines), recorded all or none."""

    responses: list[ResponseLine] = Field(min_length=1, max_length=1000)


class LoopOut(BaseModel):
    """What the responses changed beyond the orders: facts, exceptions, the re-plan and its allocations."""

    facts: dict[str, str]
    exceptions: list[dict[str, Any]]
    confirmed_supply: dict[str, float]
    replan_run_id: str | None
    allocations: list[dict[str, Any]]
    proposed: int
    notes: list[str]


class ResponsesOut(BaseModel):
    """The orders as they are after the responses, and what the loop did.

    ``duplicates`` lists the ``response_id`` of lines that repeat a response already recorded (applied once).
    """

    recorded: list[RecommendationOut]
    duplicates: list[str]
    loop: LoopOut


@router.get("/channels", response_model=list[ChannelOut])
def list_channels(p: Admin, s: SessionDep) -> list[ChannelOut]:
    """The tenant's supplier channels (no secrets)."""
    return [ChannelOut(**c) for c in suppliers.list_channels(s, p.tenant_id)]


@router.put("/{supplier_id}/channel", response_model=ChannelOut)
def put_channel(
    supplier_id: SupplierId, body: ChannelIn, request: Request, p: Admin, s: SessionDep
) -> ChannelOut:
    """Set how the tenant's orders reach a supplier (webhook: https only in production)."""
    https_only = getattr(request.app.state.settings, "env", "development") == "production"
    return ChannelOut(
        **suppliers.set_channel(
            s,
            p.tenant_id,
            supplier_id,
            body.channel,
            url=body.url,
            secret=body.secret,
            file_format=body.file_format,
            actor=p.actor,
            https_only=https_only,
        )
    )


@router.delete("/{supplier_id}/channel", status_code=204)
def delete_channel(supplier_id: SupplierId, p: Admin, s: SessionDep) -> None:
    """Remove a supplier's channel."""
    suppliers.delete_channel(s, p.tenant_id, supplier_id, actor=p.actor)


@router.post("/orders/{order_number}/send", response_model=QueuedOut, status_code=202)
def send_order(order_number: OrderNumber, p: Sender, s: SessionDep) -> QueuedOut:
    """Queue a purchase order's document for its supplier's channel (idempotent per order version)."""
    return QueuedOut(**suppliers.queue_order(s, p.tenant_id, order_number, actor=p.actor))


@router.post("/responses", response_model=ResponsesOut, status_code=201)
def post_responses(
    body: ResponsesIn,
    request: Request,
    p: Responder,
    engine: EngineDep,
    replan: Annotated[
        bool, Query(description="Re-plan the affected units with the confirmed supply.")
    ] = True,
) -> ResponsesOut:
    """Record supplier responses (all or none), then update facts, raise exceptions and re-plan."""
    with session_scope(engine) as s:  # committed before the facts and the re-plan read it
        outcomes = record_responses(s, p.tenant_id, body.responses, actor=p.actor)
    loop = apply_responses(
        engine, p.tenant_id, outcomes, settings=request.app.state.settings, replan=replan, actor=p.actor
    )
    return ResponsesOut(
        recorded=[o.recommendation for o in outcomes],
        duplicates=[ln.response_id for ln, o in zip(body.responses, outcomes, strict=True) if o.duplicate],
        loop=LoopOut(**loop.to_dict()),
    )
