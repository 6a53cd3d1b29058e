"""workflow: decision rights (proposer, cost source, key expiry/rotation, page sessions, usage, webhooks).

Revision ID: w0002
Revises: w0001
"""

import sqlalchemy as sa
from alembic import op

revision = "w0002"
down_revision = "w0001"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the columns and tables of the decision-rights checks."""
    with op.batch_alter_table("wf_recommendations") as b:
        b.add_column(sa.Column("proposed_by", sa.String(length=200), nullable=True))
        b.add_column(sa.Column("cost_source", sa.String(length=32), nullable=True))
    with op.batch_alter_table("wf_api_keys") as b:
        b.add_column(sa.Column("expires_at", _TZ, nullable=True))
        b.add_column(sa.Column("prev_secret_sha256", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("prev_valid_until", _TZ, nullable=True))
    op.create_table(
        "wf_usage",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status_class", sa.String(length=8), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_wf_usage_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "day", "route", "status_class", name=op.f("pk_wf_usage")),
    )
    op.create_table(
        "wf_web_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("last_seen_at", _TZ, nullable=False),
        sa.Column("expires_at", _TZ, nullable=False),
        sa.Column("revoked_at", _TZ, nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["wf_api_keys.key_id"], name=op.f("fk_wf_web_sessions_key_id_wf_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_wf_web_sessions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_wf_web_sessions")),
    )
    op.create_index("ix_wf_web_sessions_key", "wf_web_sessions", ["key_id"])
    op.create_table(
        "wf_webhook_targets",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_wf_webhook_targets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "system", name=op.f("pk_wf_webhook_targets")),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("wf_webhook_targets")
    op.drop_index("ix_wf_web_sessions_key", table_name="wf_web_sessions")
    op.drop_table("wf_web_sessions")
    op.drop_table("wf_usage")
    with op.batch_alter_table("wf_api_keys") as b:
        b.drop_column("prev_valid_until")
        b.drop_column("prev_secret_sha256")
        b.drop_column("expires_at")
    with op.batch_alter_table("wf_recommendations") as b:
        b.drop_column("cost_source")
        b.drop_column("proposed_by")
