"""workflow: control plane (keys, recommendations, evidence, audit chain, events, outbox, telemetry).

Revision ID: w0001
Revises:
Depends on: f0001 (features: tenants)
"""

import sqlalchemy as sa
from alembic import op

revision = "w0001"
down_revision = None
branch_labels = ("workflow",)
depends_on = "f0001"


def upgrade() -> None:
    """Create the control-plane tables."""
    op.create_table(
        "wf_api_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.String(length=200), nullable=False),
        sa.Column("approval_limit", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_wf_api_keys")),
    )
    op.create_table(
        "wf_audit_log",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prev_sha256", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_audit_log_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_wf_audit_log")),
    )
    op.create_table(
        "wf_event_cursors",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_event_cursors_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "consumer", name=op.f("pk_wf_event_cursors")),
    )
    op.create_table(
        "wf_events",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_wf_events")),
    )
    op.create_index("ix_wf_events_tenant_topic_seq", "wf_events", ["tenant_id", "topic", "seq"], unique=False)
    op.create_table(
        "wf_evidence",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_evidence_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "sha256", name=op.f("pk_wf_evidence")),
    )
    op.create_table(
        "wf_journal_heads",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("audit_sha256", sa.String(length=64), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_journal_heads_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_wf_journal_heads")),
    )
    op.create_table(
        "wf_recommendations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("proposal_key", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sku_id", sa.String(length=128), nullable=False),
        sa.Column("location_id", sa.String(length=128), nullable=False),
        sa.Column("from_location_id", sa.String(length=128), nullable=True),
        sa.Column("supplier_id", sa.String(length=128), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("need_by", sa.Date(), nullable=True),
        sa.Column("promised_lead_time_days", sa.Float(), nullable=True),
        sa.Column("final_quantity", sa.Float(), nullable=True),
        sa.Column("final_need_by", sa.Date(), nullable=True),
        sa.Column("route_queue", sa.String(length=64), nullable=True),
        sa.Column("route_role", sa.String(length=16), nullable=True),
        sa.Column("route_rule", sa.String(length=64), nullable=True),
        sa.Column("route_reason", sa.Text(), nullable=True),
        sa.Column("override_reason_code", sa.String(length=64), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("confirmed_quantity", sa.Float(), nullable=True),
        sa.Column("confirmed_date", sa.Date(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_recommendations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_recommendations")),
        sa.UniqueConstraint(
            "tenant_id", "proposal_key", name=op.f("uq_wf_recommendations_tenant_id_proposal_key")
        ),
    )
    op.create_index(
        "ix_wf_recommendations_tenant_state", "wf_recommendations", ["tenant_id", "state"], unique=False
    )
    op.create_table(
        "wf_telemetry",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_telemetry_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_telemetry")),
    )
    op.create_index("ix_wf_telemetry_tenant_metric", "wf_telemetry", ["tenant_id", "metric"], unique=False)
    op.create_table(
        "wf_outbox",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("recommendation_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["wf_recommendations.id"],
            name=op.f("fk_wf_outbox_recommendation_id_wf_recommendations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_outbox_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_wf_outbox_idempotency_key")),
    )
    op.create_index("ix_wf_outbox_status_due", "wf_outbox", ["status", "next_attempt_at"], unique=False)
    op.create_index("ix_wf_outbox_tenant_status", "wf_outbox", ["tenant_id", "status"], unique=False)
    op.create_table(
        "wf_recommendation_evidence",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("recommendation_id", sa.String(length=32), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["wf_recommendations.id"],
            name=op.f("fk_wf_recommendation_evidence_recommendation_id_wf_recommendations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_recommendation_evidence_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_recommendation_evidence")),
    )
    op.create_index(
        "ix_wf_recommendation_evidence_rec", "wf_recommendation_evidence", ["recommendation_id"], unique=False
    )
    op.create_table(
        "wf_supplier_responses",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("recommendation_id", sa.String(length=32), nullable=False),
        sa.Column("supplier_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("on_date", sa.Date(), nullable=True),
        sa.Column("promised_lead_time_days", sa.Float(), nullable=True),
        sa.Column("observed_lead_time_days", sa.Float(), nullable=True),
        sa.Column("on_time", sa.Integer(), nullable=True),
        sa.Column("in_full", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["wf_recommendations.id"],
            name=op.f("fk_wf_supplier_responses_recommendation_id_wf_recommendations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_supplier_responses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_supplier_responses")),
    )
    op.create_index(
        "ix_wf_supplier_responses_tenant_supplier",
        "wf_supplier_responses",
        ["tenant_id", "supplier_id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop the control-plane tables."""
    op.drop_index("ix_wf_supplier_responses_tenant_supplier", table_name="wf_supplier_responses")
    op.drop_table("wf_supplier_responses")
    op.drop_index("ix_wf_recommendation_evidence_rec", table_name="wf_recommendation_evidence")
    op.drop_table("wf_recommendation_evidence")
    op.drop_index("ix_wf_outbox_tenant_status", table_name="wf_outbox")
    op.drop_index("ix_wf_outbox_status_due", table_name="wf_outbox")
    op.drop_table("wf_outbox")
    op.drop_index("ix_wf_telemetry_tenant_metric", table_name="wf_telemetry")
    op.drop_table("wf_telemetry")
    op.drop_index("ix_wf_recommendations_tenant_state", table_name="wf_recommendations")
    op.drop_table("wf_recommendations")
    op.drop_table("wf_journal_heads")
    op.drop_table("wf_evidence")
    op.drop_index("ix_wf_events_tenant_topic_seq", table_name="wf_events")
    op.drop_table("wf_events")
    op.drop_table("wf_event_cursors")
    op.drop_table("wf_audit_log")
    op.drop_table("wf_api_keys")
