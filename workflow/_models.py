"""Tables of the control plane, declared on the shared :class:`~features.store._db.Base`.

Every table carries ``tenant_id`` (the only foreign key outside this package is to ``tenants``). SKUs,
locations, suppliers and purchase orders are referenced by their string ids: their tables belong to the data
layer.

The migration that creates these tables is ``workflow/migrations/versions/w0001_control_plane.py``; a test
checks the two agree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from features.store import (
    Base,
    Tenant,  # noqa: F401  (registers the `tenants` table our FKs point at)
    utcnow,
)

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Event",
    "EventCursor",
    "Evidence",
    "JournalHead",
    "OutboxItem",
    "Recommendation",
    "RecommendationEvidence",
    "SupplierChannel",
    "SupplierResponse",
    "TelemetryPoint",
    "UsageCounter",
    "WebSession",
    "WebhookTarget",
]

# BIGINT identity on PostgreSQL, INTEGER PRIMARY KEY (the rowid) on SQLite.
_BigId = BigInteger().with_variant(Integer(), "sqlite")
_TZ = DateTime(timezone=True)


def _tenant_fk() -> Any:
    return mapped_column(String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), nullable=False)


class ApiKey(Base):
    """An API key bound to one tenant and a set of roles; only the SHA-256 of its secret is stored."""

    __tablename__ = "wf_api_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_sha256: Mapped[str] = mapped_column(String(64))
    roles: Mapped[str] = mapped_column(String(200))  # comma-separated, sorted
    approval_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    # Expiry and rotation (w0002): the key stops working at ``expires_at``; during a rotation the previous
    # secret stays valid until ``prev_valid_until``.
    expires_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    prev_secret_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_valid_until: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)


class Recommendation(Base):
    """One replenishment decision and its place in the lifecycle (see :mod:`workflow.lifecycle`).

    ``version`` increases by one on every change; writers compare-and-set on it (optimistic concurrency).
    """

    __tablename__ = "wf_recommendations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "proposal_key"),
        Index("ix_wf_recommendations_tenant_state", "tenant_id", "state"),
        # the queue page's facets and per-queue counts, read from the index alone (migration wq001)
        Index(
            "ix_wf_recommendations_queue_facets",
            "tenant_id",
            "state",
            "route_queue",
            "kind",
            "route_role",
            "route_rule",
            "supplier_id",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    proposal_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer, default=1)
    sku_id: Mapped[str] = mapped_column(String(128))
    location_id: Mapped[str] = mapped_column(String(128))
    from_location_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    supplier_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    quantity: Mapped[float] = mapped_column(Float)
    unit_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    value: Mapped[float] = mapped_column(Float)
    need_by: Mapped[date | None] = mapped_column(Date, nullable=True)
    promised_lead_time_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_quantity: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_need_by: Mapped[date | None] = mapped_column(Date, nullable=True)
    route_queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route_role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    route_rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    route_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    override_reason_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    # Who proposed (four-eyes check) and where the unit cost came from (w0002).
    proposed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cost_source: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    external_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confirmed_quantity: Mapped[float | None] = mapped_column(Float, nullable=True)
    confirmed_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


class Evidence(Base):
    """An immutable evidence record, addressed by the SHA-256 of its canonical JSON."""

    __tablename__ = "wf_evidence"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


class RecommendationEvidence(Base):
    """Links a recommendation to evidence gathered over its life (proposal, comments, supplier responses)."""

    __tablename__ = "wf_recommendation_evidence"
    __table_args__ = (Index("ix_wf_recommendation_evidence_rec", "recommendation_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    recommendation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("wf_recommendations.id", ondelete="CASCADE")
    )
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


class JournalHead(Base):
    """Per-tenant head of the audit hash chain and of the event sequence (the row writers lock)."""

    __tablename__ = "wf_journal_heads"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    audit_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_sha256: Mapped[str] = mapped_column(String(64))
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEntry(Base):
    """One append-only, hash-chained audit record: who did what to which entity, when and why."""

    __tablename__ = "wf_audit_log"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(_TZ)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_wf_audit_log_entity", "tenant_id", "entity_type", "entity_id"),)


class Event(Base):
    """One entry of the per-tenant ordered event log (gapless ``seq`` in commit order)."""

    __tablename__ = "wf_events"
    __table_args__ = (Index("ix_wf_events_tenant_topic_seq", "tenant_id", "topic", "seq"),)

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    topic: Mapped[str] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(_TZ)


class EventCursor(Base):
    """A consumer's committed position in its tenant's event log."""

    __tablename__ = "wf_event_cursors"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


class OutboxItem(Base):
    """An approved action waiting to leave (or having left) through an adapter."""

    __tablename__ = "wf_outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_wf_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_wf_outbox_tenant_status", "tenant_id", "status"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    # null for items that belong to no recommendation (exception updates, w0003x)
    recommendation_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("wf_recommendations.id", ondelete="CASCADE"), nullable=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(_TZ)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)


class SupplierResponse(Base):
    """A supplier's answer to a purchase order: confirmed, partial, rejected, new date, or goods received."""

    __tablename__ = "wf_supplier_responses"
    __table_args__ = (
        Index("ix_wf_supplier_responses_tenant_supplier", "tenant_id", "supplier_id"),
        Index(
            "ux_wf_supplier_responses_response_id",
            "tenant_id",
            "recommendation_id",
            "response_id",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    recommendation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("wf_recommendations.id", ondelete="CASCADE")
    )
    supplier_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[float | None] = mapped_column(Float, nullable=True)
    on_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    promised_lead_time_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    observed_lead_time_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    on_time: Mapped[int | None] = mapped_column(Integer, nullable=True)
    in_full: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    #: The supplier's own id of the response (ORDRSP document number): a response sent twice is kept once.
    response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class TelemetryPoint(Base):
    """One measured figure (forecast accuracy, stockouts, excess, ...) with its labels."""

    __tablename__ = "wf_telemetry"
    __table_args__ = (Index("ix_wf_telemetry_tenant_metric", "tenant_id", "metric"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = _tenant_fk()
    metric: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict] = mapped_column(JSON)
    value: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer, default=0)
    period: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the monitoring run (w0003_jobs)


class UsageCounter(Base):
    """Durable request metering: requests and summed latency per tenant, UTC day, route and status class."""

    __tablename__ = "wf_usage"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    route: Mapped[str] = mapped_column(String(200), primary_key=True)
    status_class: Mapped[str] = mapped_column(String(8), primary_key=True)  # 2xx, 4xx, 429, 5xx
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class WebSession(Base):
    """A planner-page session: an opaque token (only its SHA-256 is stored) bound to one API key."""

    __tablename__ = "wf_web_sessions"
    __table_args__ = (Index("ix_wf_web_sessions_key", "key_id"),)

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    key_id: Mapped[str] = mapped_column(String(16), ForeignKey("wf_api_keys.key_id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(_TZ)
    revoked_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)


class WebhookTarget(Base):
    """Where a tenant's actions for one receiving system (erp, wms, oms) go, and their signing secret.

    The secret is write-only through the API (never returned).
    """

    __tablename__ = "wf_webhook_targets"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    system: Mapped[str] = mapped_column(String(16), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


class SupplierChannel(Base):
    """How a tenant's orders reach one supplier: a signed webhook, or a file drop (CSV or JSON).

    The webhook secret is write-only through the API (never returned). A file drop's folder is not stored: it
    is ``<supplier drop root>/<tenant>/<supplier>/`` on the dispatcher's machine (so that no API caller can
    name a path on the server).
    """

    __tablename__ = "wf_supplier_channels"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id", ondelete="CASCADE"), primary_key=True
    )
    supplier_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook | file
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    secret: Mapped[str | None] = mapped_column(String(256), nullable=True)
    file_format: Mapped[str] = mapped_column(String(8), default="json")  # json | csv
    updated_at: Mapped[datetime] = mapped_column(_TZ, default=utcnow)


# the exception lifecycle's tables, registered with the metadata wherever the control plane's are
from workflow._exception_tables import ExceptionRecord, ExceptionRule, ExceptionSync  # noqa: E402, F401
from workflow._job_models import JobLease, JobRun  # noqa: E402,F401  (one metadata holds the job tables too)
