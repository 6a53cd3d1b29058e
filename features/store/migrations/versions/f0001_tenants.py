"""features: tenants.

Revision ID: f0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "f0001"
down_revision = None
branch_labels = ("features",)
depends_on = None


def upgrade() -> None:
    """Create the tenants table."""
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenants"),
    )


def downgrade() -> None:
    """Drop the tenants table."""
    op.drop_table("tenants")
