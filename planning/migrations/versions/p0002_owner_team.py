"""planning: owner team of each recommendation and exception (from planning_units.owner_team).

Revision ID: p0002
Revises: p0001
"""

import sqlalchemy as sa
from alembic import op

revision = "p0002"
down_revision = "p0001"
branch_labels = None
depends_on = None

_TABLES = ("plan_recommendations", "plan_exceptions")


def upgrade() -> None:
    """Add the nullable owner_team column."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("owner_team", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop the owner_team column."""
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("owner_team")
