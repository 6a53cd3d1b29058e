"""The ordered event log: sales, inventory changes, forecasts, exceptions, supplier updates, replenishment.

Ordering guarantee (documented contract for consumers):

* Events are ordered **per tenant** by ``seq``: 1, 2, 3, ... with no gaps, in commit order. A ``seq`` is taken
  under the tenant's journal lock, held until commit, so an event with a smaller ``seq`` is never committed
  after a reader has seen a larger one. Reading ``seq > cursor`` therefore never skips an event.
* Events of one transaction are contiguous and in the order they were appended.
* There is no order across tenants.

Delivery is **at least once**: a consumer reads a page after its cursor, processes it, then commits the cursor
(:func:`commit_cursor`); if it crashes before committing it reads the same events again, so processing must be
idempotent (``(tenant_id, seq)`` identifies an event). Topic filters skip events but keep the guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._journal import AuditRecord, EventRecord, append
from workflow._models import Event, EventCursor
from workflow.errors import InvalidInput

__all__ = [
    "INGEST_TOPICS",
    "TOPICS",
    "EventPage",
    "commit_cursor",
    "get_cursor",
    "publish",
    "publish_cycle_stage",
    "publish_ingest",
    "read",
    "reset_cursor",
]

#: Topics of the log; each event's type and payload are documented in docs/events.md.
TOPICS = (
    "sales",
    "inventory",
    "forecast",
    "plan",
    "exception",
    "supplier",
    "replenishment",
    "monitoring",
    "job",
)
#: Ingest kinds announced on the log, and their topic (master data is not an event stream).
INGEST_TOPICS = {
    "sales": "sales",
    "inventory": "inventory",
    "lead_times": "supplier",
    "purchase_orders": "supplier",
}


@dataclass(frozen=True)
class EventPage:
    """A page of events and the cursor to read the next page from."""

    events: list[Any]  # rows with the columns of :class:`~workflow._models.Event` as attributes
    next_cursor: int


def publish(
    session: Session,
    tenant_id: str,
    topic: str,
    type_: str,
    key: str,
    payload: dict[str, Any],
    *,
    actor: str | None = None,
) -> int:
    """Append one event (e.g. a sales or inventory change arriving from an API client); returns its ``seq``.

    Raises:
        InvalidInput: unknown topic.
    """
    if topic not in TOPICS:
        raise InvalidInput("topic", f"unknown topic {topic!r}; expected one of {', '.join(TOPICS)}")
    _, seq = append(session, tenant_id, events=[EventRecord(topic, type_, key, payload)])
    return seq


def read(
    session: Session,
    tenant_id: str,
    *,
    after: int = 0,
    limit: int = 100,
    topics: list[str] | None = None,
    types: list[str] | None = None,
) -> EventPage:
    """Events with ``seq > after`` in order (at most ``limit``), optionally of some topics and types only.

    With filters, ``next_cursor`` is the last *returned* event's ``seq``: events the filter skipped after it
    are scanned again next time, never missed.
    """
    if topics:
        bad = [t for t in topics if t not in TOPICS]
        if bad:
            raise InvalidInput(
                "topic", f"unknown topic(s) {', '.join(bad)}; expected some of {', '.join(TOPICS)}"
            )
    t = Event.__table__  # plain rows (attribute access like the ORM class), cheaper to load than objects
    stmt = select(t).where(t.c.tenant_id == tenant_id, t.c.seq > after)
    if topics:
        stmt = stmt.where(t.c.topic.in_(topics))
    if types:
        stmt = stmt.where(t.c.type.in_(types))
    events = list(session.execute(stmt.order_by(t.c.seq).limit(limit)))
    return EventPage(events, events[-1].seq if events else after)


def get_cursor(session: Session, tenant_id: str, consumer: str) -> int:
    """A consumer's committed position (0 when it has never committed)."""
    cur = session.get(EventCursor, (tenant_id, consumer))
    return int(cur.position) if cur else 0


def commit_cursor(session: Session, tenant_id: str, consumer: str, position: int) -> int:
    """Store a consumer's position after it processed every event up to ``position``; never moves back.

    Returns:
        The stored position (the larger of the old and the new).
    """
    if position < 0:
        raise InvalidInput("position", "must be >= 0")
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(EventCursor.__table__).values(
        tenant_id=tenant_id, consumer=consumer, position=position, updated_at=utcnow()
    )
    col = EventCursor.__table__.c.position
    ins = ins.on_conflict_do_update(
        index_elements=["tenant_id", "consumer"],
        set_={
            "position": case((ins.excluded.position > col, ins.excluded.position), else_=col),
            "updated_at": ins.excluded.updated_at,
        },
    )
    session.execute(ins)
    return get_cursor(session, tenant_id, consumer)


def reset_cursor(session: Session, tenant_id: str, consumer: str, position: int, *, actor: str) -> int:
    """Set a consumer's position to ``position``, backwards too (an admin's repair), with an audit entry.

    Returns:
        The stored position.
    """
    if position < 0:
        raise InvalidInput("position", "must be >= 0")
    before = get_cursor(session, tenant_id, consumer)
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(EventCursor.__table__).values(
        tenant_id=tenant_id, consumer=consumer, position=position, updated_at=utcnow()
    )
    ins = ins.on_conflict_do_update(
        index_elements=["tenant_id", "consumer"],
        set_={"position": ins.excluded.position, "updated_at": ins.excluded.updated_at},
    )
    session.execute(ins)
    append(
        session,
        tenant_id,
        [
            AuditRecord(
                actor,
                "event_cursor.reset",
                "event_cursor",
                consumer,
                {"position": before},
                {"position": position},
                "cursor reset by an admin",
            )
        ],
    )
    return position


def publish_ingest(session: Session, tenant_id: str, result: dict[str, Any]) -> int | None:
    """Announce a stored ingest batch (``<kind>.ingested`` on the kind's topic); None for other kinds.

    Args:
        session: open session.
        tenant_id: the tenant.
        result: the ingest result as a dict (``features.ingest.IngestResult`` fields): ``kind``, ``batch_id``,
            ``status``, row counts, ``file``.
    """
    topic = INGEST_TOPICS.get(result.get("kind", ""))
    if (
        topic is None
        or not result.get("batch_id")
        or not result.get("rows_stored", 0) + result.get("rows_updated", 0)
    ):
        return None
    keep = (
        "kind",
        "batch_id",
        "status",
        "rows_total",
        "rows_stored",
        "rows_updated",
        "rows_duplicate",
        "rows_quarantined",
    )
    payload = {k: result.get(k) for k in keep}
    payload["file"] = str(result.get("file", "")).rsplit("/", 1)[-1]
    return publish(session, tenant_id, topic, f"{result['kind']}.ingested", str(result["batch_id"]), payload)


#: Cycle stages announced on the log: stage -> (topic, type).
_STAGE_EVENTS = {
    "train": ("forecast", "model.trained"),
    "forecast": ("forecast", "forecast.created"),
    "reconcile": ("forecast", "forecast.reconciled"),
    "plan": ("plan", "plan.created"),
    "propose": ("plan", "plan.proposed"),
}


def publish_cycle_stage(
    session: Session,
    tenant_id: str,
    run_id: str,
    stage: str,
    outputs: dict[str, Any],
    counts: dict[str, Any],
) -> int:
    """Announce a finished cycle stage (``forecast.created``, ``plan.created``, ...), keyed by its run."""
    topic, type_ = _STAGE_EVENTS[stage]
    small = {k: v for k, v in counts.items() if isinstance(v, bool | int | float | str) or v is None}
    return publish(
        session,
        tenant_id,
        topic,
        type_,
        run_id,
        {"cycle_run": run_id, "stage": stage, **outputs, "counts": small},
    )
