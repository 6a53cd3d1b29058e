"""features: cycle run records (a cycle run of a tenant and its stages, see features.runs).

Revision ID: f0004
Revises: f0003
"""

import sqlalchemy as sa
from alembic import op

revision = "f0004"
down_revision = "f0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``cycle_runs`` and ``cycle_stages``."""
    op.create_table(
        "cycle_runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_cycle_runs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_cycle_runs")),
    )
    op.create_index(op.f("ix_cycle_runs_tenant_id"), "cycle_runs", ["tenant_id"], unique=False)
    op.create_table(
        "cycle_stages",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["cycle_runs.run_id"], name=op.f("fk_cycle_stages_run_id_cycle_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "stage", name=op.f("pk_cycle_stages")),
    )


def downgrade() -> None:
    """Drop the cycle run tables."""
    op.drop_table("cycle_stages")
    op.drop_index(op.f("ix_cycle_runs_tenant_id"), table_name="cycle_runs")
    op.drop_table("cycle_runs")
