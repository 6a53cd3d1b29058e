"""features: planning_units.horizon_periods may be empty (the tenant's grid decides the default).

A fixed default of 28 periods meant 28 days, 28 weeks or 28 months depending on the tenant's grid; an empty
value now lets the forecast stage use its grid's default horizon.

Revision ID: f0005
Revises: f0004
"""

import sqlalchemy as sa
from alembic import op

revision = "f0005"
down_revision = "f0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Make planning_units.horizon_periods nullable."""
    with op.batch_alter_table("planning_units") as batch:
        batch.alter_column("horizon_periods", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    """Fill empty horizons with 28 and make the column required again."""
    op.execute("UPDATE planning_units SET horizon_periods = 28 WHERE horizon_periods IS NULL")
    with op.batch_alter_table("planning_units") as batch:
        batch.alter_column("horizon_periods", existing_type=sa.Integer(), nullable=False)
