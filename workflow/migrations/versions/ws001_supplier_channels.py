"""workflow: supplier channels (how a tenant's orders reach each supplier) and supplier response ids.

A branch of its own from w0002 (``alembic upgrade heads`` follows every branch), so that it merges beside
other workflow migrations made at the same time.

Revision ID: ws001
Revises: w0002
"""

import sqlalchemy as sa
from alembic import op

revision = "ws001"
down_revision = "w0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``wf_supplier_channels``; add ``wf_supplier_responses.response_id`` (unique per order)."""
    op.create_table(
        "wf_supplier_channels",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("supplier_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("secret", sa.String(length=256), nullable=True),
        sa.Column("file_format", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.tenant_id"],
            name=op.f("fk_wf_supplier_channels_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "supplier_id", name=op.f("pk_wf_supplier_channels")),
    )
    with op.batch_alter_table("wf_supplier_responses") as b:
        b.add_column(sa.Column("response_id", sa.String(length=64), nullable=True))
    op.create_index(
        "ux_wf_supplier_responses_response_id",
        "wf_supplier_responses",
        ["tenant_id", "recommendation_id", "response_id"],
        unique=True,
    )


def downgrade() -> None:
    """Drop ``wf_supplier_channels`` and the response id."""
    op.drop_index("ux_wf_supplier_responses_response_id", table_name="wf_supplier_responses")
    with op.batch_alter_table("wf_supplier_responses") as b:
        b.drop_column("response_id")
    op.drop_table("wf_supplier_channels")
