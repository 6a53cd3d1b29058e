"""workflow: exceptions as workflow objects (state, owner, SLA, escalation), rules, plan-run sync, writeback.

Revision ID: w0003x
Revises: w0002
"""

import sqlalchemy as sa
from alembic import op

revision = "w0003x"
down_revision = "w0002"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_ACTIVE = sa.text("state IN ('open', 'assigned', 'acknowledged')")


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.tenant_id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create wf_exceptions (with its one-active-row-per-key index), wf_exception_rules, wf_exception_sync."""
    op.create_table(
        "wf_exceptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("exception_key", sa.String(length=512), nullable=False),
        sa.Column("exception_type", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("sku_id", sa.String(length=128), nullable=True),
        sa.Column("location_id", sa.String(length=128), nullable=True),
        sa.Column("supplier_id", sa.String(length=128), nullable=True),
        sa.Column("po_id", sa.String(length=128), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("customer_impacting", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("first_run_id", sa.String(length=64), nullable=True),
        sa.Column("last_run_id", sa.String(length=64), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("route_queue", sa.String(length=64), nullable=True),
        sa.Column("route_role", sa.String(length=32), nullable=True),
        sa.Column("owner_team", sa.String(length=64), nullable=True),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("due_at", _TZ, nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalated_at", _TZ, nullable=True),
        sa.Column("recommendation_ids", sa.JSON(), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("opened_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.Column("last_seen_at", _TZ, nullable=False),
        sa.Column("acknowledged_at", _TZ, nullable=True),
        sa.Column("closed_at", _TZ, nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("cleared_at", _TZ, nullable=True),
        _tenant_fk("wf_exceptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_exceptions")),
    )
    op.create_index("ix_wf_exceptions_tenant_state", "wf_exceptions", ["tenant_id", "state"])
    op.create_index("ix_wf_exceptions_tenant_key", "wf_exceptions", ["tenant_id", "exception_key"])
    op.create_index(
        "uq_wf_exceptions_active_key",
        "wf_exceptions",
        ["tenant_id", "exception_key"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_table(
        "wf_exception_rules",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("exception_type", sa.String(length=32), nullable=False),
        sa.Column("sla_hours", sa.Float(), nullable=True),
        sa.Column("escalate_to", sa.String(length=64), nullable=True),
        sa.Column("writeback", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        _tenant_fk("wf_exception_rules"),
        sa.PrimaryKeyConstraint("tenant_id", "exception_type", name=op.f("pk_wf_exception_rules")),
    )
    op.create_table(
        "wf_exception_sync",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("last_run_id", sa.String(length=64), nullable=True),
        sa.Column("last_run_at", _TZ, nullable=True),
        sa.Column("full_units", sa.Integer(), nullable=True),
        sa.Column("synced_at", _TZ, nullable=False),
        _tenant_fk("wf_exception_sync"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_wf_exception_sync")),
    )


    with op.batch_alter_table("wf_outbox") as batch:  # exception updates belong to no recommendation
        batch.alter_column("recommendation_id", existing_type=sa.String(length=32), nullable=True)


def downgrade() -> None:
    """Drop the three tables; outbox items without a recommendation are deleted."""
    op.execute("DELETE FROM wf_outbox WHERE recommendation_id IS NULL")
    with op.batch_alter_table("wf_outbox") as batch:
        batch.alter_column("recommendation_id", existing_type=sa.String(length=32), nullable=False)
    op.drop_table("wf_exception_sync")
    op.drop_table("wf_exception_rules")
    op.drop_index("uq_wf_exceptions_active_key", table_name="wf_exceptions")
    op.drop_index("ix_wf_exceptions_tenant_key", table_name="wf_exceptions")
    op.drop_index("ix_wf_exceptions_tenant_state", table_name="wf_exceptions")
    op.drop_table("wf_exceptions")
