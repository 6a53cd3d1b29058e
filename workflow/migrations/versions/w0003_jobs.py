"""workflow: scheduled jobs (leader lease, one run per job and window) and the monitoring run of a figure.

Revision ID: w0003_jobs
Revises: w0002
"""

import sqlalchemy as sa
from alembic import op

revision = "w0003_jobs"
down_revision = "w0002"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the lease and job-run tables; telemetry points name the monitoring run that measured them."""
    op.create_table(
        "wf_job_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("lease_until", _TZ, nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", _TZ, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_wf_job_leases")),
    )
    op.create_table(
        "wf_job_runs",
        sa.Column("id", _BigId, autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("window_start", _TZ, nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", _TZ, nullable=False),
        sa.Column("finished_at", _TZ, nullable=True),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_job_runs")),
        sa.UniqueConstraint("job", "window_start", name=op.f("uq_wf_job_runs_job_window_start")),
    )
    op.create_index("ix_wf_job_runs_job_started", "wf_job_runs", ["job", "started_at"], unique=False)
    with op.batch_alter_table("wf_telemetry") as b:
        b.add_column(sa.Column("run_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("wf_telemetry") as b:
        b.drop_column("run_id")
    op.drop_index("ix_wf_job_runs_job_started", table_name="wf_job_runs")
    op.drop_table("wf_job_runs")
    op.drop_table("wf_job_leases")
