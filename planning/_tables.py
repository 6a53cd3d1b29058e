"""Planning's tables in the state store: plan runs and what each produced.

* :class:`PlanRun` -> ``plan_runs``: one per planning run (as-of date, forecast version and source, counts,
  parameters).
* :class:`PlanRecommendation` -> ``plan_recommendations``: purchase / transfer / allocation proposals with
  their route, owner team and evidence (JSON, see :mod:`planning._evidence`).
* :class:`PlanException` -> ``plan_exceptions``: risks and exceptions with their route and owner team.
* :class:`PlanPoDraft` -> ``plan_po_drafts``: purchase-order drafts per supplier and location.

SKUs, locations and suppliers are referenced by the tenant's string ids; the only foreign keys outside this
package point at ``tenants``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from features.store import (
    Base,
    Tenant,  # noqa: F401  (the table the foreign keys point at)
    utcnow,
)

__all__ = ["PlanException", "PlanPoDraft", "PlanRecommendation", "PlanRun"]


def _tenant_fk() -> ForeignKey:
    return ForeignKey("tenants.tenant_id", ondelete="CASCADE")


def _run_fk() -> ForeignKey:
    return ForeignKey("plan_runs.run_id", ondelete="CASCADE")


class PlanRun(Base):
    """One planning run of a tenant."""

    __tablename__ = "plan_runs"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), _tenant_fk(), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    as_of: Mapped[date] = mapped_column(Date)
    forecast_version: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    forecast_source: Mapped[str] = mapped_column(String(200))
    n_units: Mapped[int] = mapped_column(Integer)
    n_recommendations: Mapped[int] = mapped_column(Integer)
    n_exceptions: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)


class PlanRecommendation(Base):
    """A proposed purchase, transfer or allocation with its route and evidence."""

    __tablename__ = "plan_recommendations"
    __table_args__ = (Index("ix_plan_recommendations_tenant_run", "tenant_id", "run_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), _run_fk())
    tenant_id: Mapped[str] = mapped_column(String(64), _tenant_fk())
    kind: Mapped[str] = mapped_column(String(32))
    sku_id: Mapped[str] = mapped_column(String(128))
    location_id: Mapped[str] = mapped_column(String(128))
    from_location_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    supplier_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    order_qty: Mapped[float] = mapped_column(Float)
    order_value: Mapped[float] = mapped_column(Float)
    expected_arrival: Mapped[date | None] = mapped_column(Date, nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    route_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route_role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    owner_team: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PlanException(Base):
    """A risk or exception found by a run, with its route."""

    __tablename__ = "plan_exceptions"
    __table_args__ = (
        Index("ix_plan_exceptions_tenant_run", "tenant_id", "run_id"),
        Index("ix_plan_exceptions_tenant_key", "tenant_id", "exception_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), _run_fk())
    tenant_id: Mapped[str] = mapped_column(String(64), _tenant_fk())
    exception_type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    sku_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    location_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    supplier_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    po_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    customer_impacting: Mapped[bool] = mapped_column(Boolean, default=False)
    message: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    route_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route_role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    owner_team: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: ``tenant|sku|unit|type`` (:func:`planning._exceptions.exception_keys`): the same in every run.
    exception_key: Mapped[str | None] = mapped_column(String(512), nullable=True)


class PlanPoDraft(Base):
    """A purchase-order draft: the recommended lines of one supplier for one location."""

    __tablename__ = "plan_po_drafts"
    __table_args__ = (Index("ix_plan_po_drafts_tenant_run", "tenant_id", "run_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), _run_fk())
    tenant_id: Mapped[str] = mapped_column(String(64), _tenant_fk())
    draft_id: Mapped[str] = mapped_column(String(300))
    supplier_id: Mapped[str] = mapped_column(String(128))
    location_id: Mapped[str] = mapped_column(String(128))
    n_lines: Mapped[int] = mapped_column(Integer)
    total_qty: Mapped[float] = mapped_column(Float)
    total_value: Mapped[float] = mapped_column(Float)
    expected_arrival: Mapped[date | None] = mapped_column(Date, nullable=True)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
