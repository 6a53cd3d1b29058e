"""Tables of the exception lifecycle (:mod:`workflow.exceptions`); their migration is ``w0003x_exceptions``.

* :class:`ExceptionRecord` -> ``wf_exceptions``: one row per exception occurrence with its state, owner, due
  time and escalation; at most one *active* row (open, assigned, acknowledged) per tenant and
  ``exception_key`` (a partial unique index).
* :class:`ExceptionRule` -> ``wf_exception_rules``: per tenant and exception type (``*`` for every type): the
  SLA, where an overdue exception escalates, and whether changes are written back (``exception_update``).
* :class:`ExceptionSync` -> ``wf_exception_sync``: per tenant, the newest plan run whose exceptions were
  taken into the lifecycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from features.store import (
    Base,
    Tenant,  # noqa: F401  (the table the foreign keys point at)
    utcnow,
)

__all__ = ["ACTIVE_STATES", "ExceptionRecord", "ExceptionRule", "ExceptionSync"]

#: States in which an exception still needs someone (one such row per key).
ACTIVE_STATES = ("open", "assigned", "acknowledged")
_ACTIVE_SQL = "state IN ('open', 'assigned', 'acknowledged')"
_TZ = DateTime(timezone=True)


def _tenant_fk() -> Any:
    return mapped_column(String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False)


class ExceptionRecord(Base):
    """An exception as a workflow object (``version`` bumps on every change: compare-and-set)."""

    __tablename__ = "wf_exceptions"
    __table_args__ = (
        Index("ix_wf_exceptions_tenant_state", "tenant_id", "state"),
        Index("ix_wf_exceptions_tenant_key", "tenant_id", "exception_key"),
        Index(
            "uq_wf_exceptions_active_key",
            "tenant_id",
            "exception_key",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    exception_key: Mapped[str] = mapped_column(String(512))
    exception_type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    severity: Mapped[str] = mapped_column(String(16))
    sku_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    location_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    supplier_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    po_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    customer_impacting: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(64))
    first_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    route_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route_role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    owner_team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    due_at: Mapped[datetime] = mapped_column(_TZ)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    recommendation_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cleared_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)


class ExceptionRule(Base):
    """A tenant's rule for one exception type (``*``: every type without its own rule)."""

    __tablename__ = "wf_exception_rules"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    exception_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    sla_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    escalate_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    writeback: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


class ExceptionSync(Base):
    """The newest plan run of a tenant whose exceptions the lifecycle has taken in."""

    __tablename__ = "wf_exception_sync"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    last_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    #: units of the last run taken as a whole plan (a run of at most half as many re-planned a subset)
    full_units: Mapped[int | None] = mapped_column(Integer, nullable=True)
    synced_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
