"""The outbox: items and their status, dead letters, replay, and acknowledgements by idempotency key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import Admin, Integrator, Reader, SessionDep
from workflow import outbox
from workflow.errors import NotFound
from workflow.schemas import INT64_MAX, AckIn, RecommendationOut, UtcDatetime

__all__ = ["router"]

router = APIRouter(prefix="/v1/outbox", tags=["outbox"])

ItemId = Annotated[int, Path(ge=1, le=INT64_MAX)]


class OutboxOut(BaseModel):
    """One outbox item."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    recommendation_id: str | None  # None: an exception update
    idempotency_key: str
    kind: str
    status: str
    attempts: int
    next_attempt_at: UtcDatetime
    last_error: str | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    payload: dict[str, Any]


class AckByKeyIn(AckIn):
    """An acknowledgement naming the idempotency key the action was delivered with."""

    idempotency_key: str = Field(min_length=1, max_length=100)


class AckOut(BaseModel):
    """The recommendation after the acknowledgement; ``duplicate`` when it had been applied before."""

    recommendation: RecommendationOut
    duplicate: bool


@router.get("", response_model=list[OutboxOut])
def list_(
    p: Reader,
    s: SessionDep,
    status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
) -> list[OutboxOut]:
    """Outbox items, oldest first (``status=dead`` lists the dead letters)."""
    return [
        OutboxOut.model_validate(i)
        for i in outbox.list_items(s, p.tenant_id, status=status, limit=limit, offset=offset)
    ]


@router.get("/{item_id}", response_model=OutboxOut)
def get(item_id: ItemId, p: Reader, s: SessionDep) -> OutboxOut:
    """One outbox item."""
    from workflow.outbox import OutboxItem

    item = s.get(OutboxItem, item_id)
    if item is None or item.tenant_id != p.tenant_id:
        raise NotFound("outbox item", item_id)
    return OutboxOut.model_validate(item)


@router.post("/{item_id}/replay", response_model=OutboxOut)
def replay(item_id: ItemId, p: Admin, s: SessionDep) -> OutboxOut:
    """Put a dead letter back in the queue (same idempotency key)."""
    return OutboxOut.model_validate(outbox.replay(s, p.tenant_id, item_id, actor=p.actor))


@router.post("/acks", response_model=AckOut)
def ack(body: AckByKeyIn, p: Integrator, s: SessionDep) -> AckOut:
    """Acknowledgement from the receiving system, by idempotency key (repeats are harmless)."""
    rec, dup = outbox.acknowledge_by_key(
        s,
        p.tenant_id,
        body.idempotency_key,
        AckIn(**body.model_dump(exclude={"idempotency_key"})),
        actor=p.actor,
    )
    return AckOut(recommendation=rec, duplicate=dup)
