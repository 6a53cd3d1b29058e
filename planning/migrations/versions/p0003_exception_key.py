"""planning: a stable key per exception (tenant|sku|unit|type), the same in every plan run.

Revision ID: p0003
Revises: p0002
"""

import sqlalchemy as sa
from alembic import op

revision = "p0003"
down_revision = "p0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable exception_key column and its (tenant_id, exception_key) index."""
    with op.batch_alter_table("plan_exceptions") as batch:
        batch.add_column(sa.Column("exception_key", sa.String(512), nullable=True))
        batch.create_index("ix_plan_exceptions_tenant_key", ["tenant_id", "exception_key"])


def downgrade() -> None:
    """Drop the index and the column."""
    with op.batch_alter_table("plan_exceptions") as batch:
        batch.drop_index("ix_plan_exceptions_tenant_key")
        batch.drop_column("exception_key")
