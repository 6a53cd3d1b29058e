"""The ordered event log: publish, read by cursor, and consumer cursors (see :mod:`workflow.events`).

Moving a consumer's cursor forward needs the service role (the consumer itself); an admin may reset it to any
position, backwards too, which is audited. Readers may only read it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import Admin, Integrator, Reader, SessionDep
from workflow import events
from workflow.schemas import INT64_MAX, StrictIn, UtcDatetime

__all__ = ["router"]

router = APIRouter(prefix="/v1/events", tags=["events"])

Topic = Literal[events.TOPICS]  # the log's topics (docs/events.md)
Consumer = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class EventIn(StrictIn):
    """An event from an API client (sales, inventory change, forecast, exception, supplier update).

    The payload is any JSON object without NUL characters, non-finite numbers or integers outside int64.
    """

    topic: Topic
    type: str = Field(min_length=1, max_length=64)
    key: str = Field(min_length=1, max_length=200, description="Entity the event is about, e.g. a SKU id.")
    payload: dict[str, Any] = Field(default_factory=dict)


class EventOut(BaseModel):
    """One event."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    topic: str
    type: str
    key: str
    payload: dict[str, Any]
    at: UtcDatetime


class EventPageOut(BaseModel):
    """A page of events and where to read on."""

    events: list[EventOut]
    next_cursor: int


class Published(BaseModel):
    """Where the event landed."""

    seq: int


class CursorIn(StrictIn):
    """A consumer's new position (it has processed every event up to it)."""

    position: int = Field(ge=0, le=INT64_MAX)


class CursorOut(BaseModel):
    """A consumer's committed position."""

    consumer: str
    position: int


@router.post("", response_model=Published, status_code=201)
def publish(body: EventIn, p: Integrator, s: SessionDep) -> Published:
    """Append an event to the tenant's log."""
    return Published(
        seq=events.publish(s, p.tenant_id, body.topic, body.type, body.key, body.payload, actor=p.actor)
    )


@router.get("", response_model=EventPageOut)
def read(
    p: Reader,
    s: SessionDep,
    after: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    topic: Annotated[list[Topic] | None, Query()] = None,
    type: Annotated[list[str] | None, Query(max_length=64)] = None,  # noqa: A002 - the field's name
) -> EventPageOut:
    """Events after a cursor, in order (at least once: commit your cursor after processing)."""
    page = events.read(s, p.tenant_id, after=after, limit=limit, topics=topic, types=type)
    return EventPageOut(
        events=[EventOut.model_validate(e) for e in page.events], next_cursor=page.next_cursor
    )


@router.get("/cursors/{consumer}", response_model=CursorOut)
def get_cursor(consumer: Consumer, p: Reader, s: SessionDep) -> CursorOut:
    """A consumer's committed position (0 if none)."""
    return CursorOut(consumer=consumer, position=events.get_cursor(s, p.tenant_id, consumer))


@router.put("/cursors/{consumer}", response_model=CursorOut)
def commit_cursor(consumer: Consumer, body: CursorIn, p: Integrator, s: SessionDep) -> CursorOut:
    """Commit a consumer's position (service role; never moves back)."""
    return CursorOut(
        consumer=consumer, position=events.commit_cursor(s, p.tenant_id, consumer, body.position)
    )


@router.post("/cursors/{consumer}/reset", response_model=CursorOut)
def reset_cursor(consumer: Consumer, body: CursorIn, p: Admin, s: SessionDep) -> CursorOut:
    """Set a consumer's position, backwards too (admin; audited)."""
    return CursorOut(
        consumer=consumer,
        position=events.reset_cursor(s, p.tenant_id, consumer, body.position, actor=p.actor),
    )
