"""features: tenant profiles (a tenant's cycle settings: model, grid, horizon, training, hierarchy).

Revision ID: f0003
Revises: f0002
"""

import sqlalchemy as sa
from alembic import op

revision = "f0003"
down_revision = "f0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tenant_profiles table."""
    op.create_table(
        "tenant_profiles",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_profiles"),
    )


def downgrade() -> None:
    """Drop the tenant_profiles table."""
    op.drop_table("tenant_profiles")
