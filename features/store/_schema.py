"""The data layer's tables in the SQL state store: identities, hierarchies, supply, policies, ingest log.

Every table is tenant-scoped: ``tenant_id`` leads each primary key and references ``tenants``. Identifiers are
the tenant's own strings (``sku_id``, ``location_id``, ...); external systems' codes map onto them through
``external_aliases`` (see :mod:`features.identity`).

Tables (model class -> table):

* :class:`Sku` -> ``skus``: product with hierarchy levels ``category > family > brand``, free
  ``attributes``.
* :class:`Location` -> ``locations``: store, DC or warehouse with ``region`` and ``parent_id`` (the location
  hierarchy: store -> DC -> warehouse).
* :class:`Channel` -> ``channels``; :class:`Supplier` -> ``suppliers``.
* :class:`SupplierTerm` -> ``supplier_terms``: per supplier x SKU unit cost, MOQ, pack size, max order
  quantity, promised lead time.
* :class:`PlanningUnit` -> ``planning_units``: SKU x location x channel with its replenishment policy (kind,
  review period, service target, horizon) and owner team.
* :class:`PurchaseOrderLine` -> ``purchase_orders``: open purchase orders and transfers with ETA.
* :class:`CustomerCommitment` -> ``customer_commitments``: quantities promised to customers by a due date.
* :class:`ExternalAlias` -> ``external_aliases``: an external code of an entity -> its internal id.
* :class:`IngestBatch` -> ``ingest_batches``: one per ingested file (content hash for idempotence, counts).
* :class:`QuarantineRow` -> ``quarantine_rows``: a rejected input value with file, row, field, value and
  expected form.

Read them with SQLAlchemy (``select(Sku).where(Sku.tenant_id == t)``) or, for frames, with
``polars.read_database(select(...), connection)``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from features.store._db import Base, utcnow
from features.store._tenants import Tenant  # noqa: F401  (the table the foreign keys point at)

__all__ = [
    "FEATURE_TABLES",
    "Channel",
    "CustomerCommitment",
    "ExternalAlias",
    "IngestBatch",
    "Location",
    "PlanningUnit",
    "PurchaseOrderLine",
    "QuarantineRow",
    "Sku",
    "Supplier",
    "SupplierTerm",
]

_ID = 64
LOCATION_KINDS = ("store", "dc", "warehouse")
POLICY_KINDS = ("periodic_review", "continuous_review", "min_max", "manual")
ORDER_KINDS = ("purchase", "transfer")
ORDER_STATUSES = ("open", "received", "cancelled")
ALIAS_ENTITIES = ("sku", "location", "channel", "supplier")


def _tenant() -> Mapped[str]:
    return mapped_column(String(_ID), ForeignKey("tenants.tenant_id"), primary_key=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Sku(Base):
    """A product. Hierarchy levels: category > family > brand > SKU."""

    __tablename__ = "skus"

    tenant_id: Mapped[str] = _tenant()
    sku_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(_ID))
    family: Mapped[str | None] = mapped_column(String(_ID))
    brand: Mapped[str | None] = mapped_column(String(_ID))
    uom: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Location(Base):
    """A store, distribution centre or warehouse; ``parent_id`` is the next level (store, DC, warehouse)."""

    __tablename__ = "locations"
    __table_args__ = (CheckConstraint(_in("kind", LOCATION_KINDS), name="kind"),)

    tenant_id: Mapped[str] = _tenant()
    location_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(_ID))
    # Not a foreign key: a batch may list a store before its DC; ingest checks that the parent exists.
    parent_id: Mapped[str | None] = mapped_column(String(_ID))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Channel(Base):
    """A sales channel (store, online, wholesale, ...)."""

    __tablename__ = "channels"

    tenant_id: Mapped[str] = _tenant()
    channel_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Supplier(Base):
    """A supplier of SKUs."""

    __tablename__ = "suppliers"

    tenant_id: Mapped[str] = _tenant()
    supplier_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SupplierTerm(Base):
    """What one supplier offers for one SKU: cost, order constraints and promised lead time."""

    __tablename__ = "supplier_terms"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "supplier_id"], ["suppliers.tenant_id", "suppliers.supplier_id"]),
        ForeignKeyConstraint(["tenant_id", "sku_id"], ["skus.tenant_id", "skus.sku_id"]),
        CheckConstraint("unit_cost >= 0 AND moq >= 0 AND pack_size >= 1 AND promised_lead_time_days >= 0",
                        name="ranges"),
    )

    tenant_id: Mapped[str] = _tenant()
    supplier_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    sku_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    unit_cost: Mapped[float] = mapped_column(Float)
    moq: Mapped[int] = mapped_column(Integer)
    pack_size: Mapped[int] = mapped_column(Integer)
    max_order_qty: Mapped[int | None] = mapped_column(Integer)
    promised_lead_time_days: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PlanningUnit(Base):
    """SKU x location x channel: what is forecast and replenished, with its policy and owner."""

    __tablename__ = "planning_units"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "sku_id"], ["skus.tenant_id", "skus.sku_id"]),
        ForeignKeyConstraint(["tenant_id", "location_id"], ["locations.tenant_id", "locations.location_id"]),
        ForeignKeyConstraint(["tenant_id", "channel_id"], ["channels.tenant_id", "channels.channel_id"]),
        CheckConstraint(_in("policy_kind", POLICY_KINDS), name="policy_kind"),
        CheckConstraint("service_target > 0 AND service_target < 1", name="service_target"),
    )

    tenant_id: Mapped[str] = _tenant()
    sku_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    policy_kind: Mapped[str] = mapped_column(String(32))
    review_period_days: Mapped[int] = mapped_column(Integer)
    service_target: Mapped[float] = mapped_column(Float)
    horizon_periods: Mapped[int | None] = mapped_column(Integer)
    owner_team: Mapped[str | None] = mapped_column(String(_ID))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PurchaseOrderLine(Base):
    """A line of an open purchase order (from a supplier) or transfer (from a location), with its ETA."""

    __tablename__ = "purchase_orders"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "sku_id"], ["skus.tenant_id", "skus.sku_id"]),
        ForeignKeyConstraint(["tenant_id", "location_id"], ["locations.tenant_id", "locations.location_id"]),
        CheckConstraint(_in("kind", ORDER_KINDS), name="kind"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint("qty > 0", name="qty"),
        Index("ix_purchase_orders_tenant_eta", "tenant_id", "eta"),
    )

    tenant_id: Mapped[str] = _tenant()
    po_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    sku_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    supplier_id: Mapped[str | None] = mapped_column(String(_ID))
    from_location_id: Mapped[str | None] = mapped_column(String(_ID))
    qty: Mapped[float] = mapped_column(Float)
    order_date: Mapped[date] = mapped_column(Date)
    eta: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CustomerCommitment(Base):
    """A quantity promised to a customer for a SKU at a location and channel by a due date."""

    __tablename__ = "customer_commitments"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "sku_id"], ["skus.tenant_id", "skus.sku_id"]),
        ForeignKeyConstraint(["tenant_id", "location_id"], ["locations.tenant_id", "locations.location_id"]),
        CheckConstraint("qty > 0", name="qty"),
    )

    tenant_id: Mapped[str] = _tenant()
    commitment_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(_ID))
    sku_id: Mapped[str] = mapped_column(String(_ID))
    location_id: Mapped[str] = mapped_column(String(_ID))
    channel_id: Mapped[str | None] = mapped_column(String(_ID))
    qty: Mapped[float] = mapped_column(Float)
    due_date: Mapped[date] = mapped_column(Date)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="open")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExternalAlias(Base):
    """An external system's code for an entity, mapped to the tenant's internal id (identity resolution)."""

    __tablename__ = "external_aliases"
    __table_args__ = (CheckConstraint(_in("entity", ALIAS_ENTITIES), name="entity"),)

    tenant_id: Mapped[str] = _tenant()
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    source: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    internal_id: Mapped[str] = mapped_column(String(_ID))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IngestBatch(Base):
    """One ingested file: its content hash (a re-sent file adds nothing) and what became of its rows."""

    __tablename__ = "ingest_batches"
    __table_args__ = (Index("ix_ingest_batches_tenant_kind_hash", "tenant_id", "kind", "content_hash"),)

    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("tenants.tenant_id"))
    kind: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # stored | partial | rejected
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_stored: Mapped[int] = mapped_column(Integer, default=0)
    rows_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    rows_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuarantineRow(Base):
    """One rejected value of an input row: where it came from, what it was and what was expected."""

    __tablename__ = "quarantine_rows"
    __table_args__ = (Index("ix_quarantine_rows_tenant_batch", "tenant_id", "batch_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(_ID), ForeignKey("tenants.tenant_id"))
    batch_id: Mapped[str] = mapped_column(String(32), ForeignKey("ingest_batches.batch_id"))
    kind: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(Text)
    row_number: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(200))
    value: Mapped[str | None] = mapped_column(Text)
    expected: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


#: Tables created by the features chain (f0001 tenants, f0002 the rest).
FEATURE_TABLES = ("tenants", "skus", "locations", "channels", "suppliers", "supplier_terms", "planning_units",
                  "purchase_orders", "customer_commitments", "external_aliases", "ingest_batches",
                  "quarantine_rows")
