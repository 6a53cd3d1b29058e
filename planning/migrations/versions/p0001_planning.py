"""planning: plan runs, recommendations, exceptions, purchase-order drafts.

Revision ID: p0001
Revises:
Depends on: f0001 (features: tenants)
"""

import sqlalchemy as sa
from alembic import op

revision = "p0001"
down_revision = None
branch_labels = ("planning",)
depends_on = "f0001"


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.tenant_id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
    )


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["plan_runs.run_id"], name=f"fk_{table}_run_id_plan_runs", ondelete="CASCADE"
    )


_ROUTE = ("action", "route_queue", "route_role", "rule", "reason")


def _route_columns() -> list[sa.Column]:
    return [
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("route_queue", sa.String(64)),
        sa.Column("route_role", sa.String(32)),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    """Create planning's tables."""
    op.create_table(
        "plan_runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("forecast_version", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200)),
        sa.Column("forecast_source", sa.String(200), nullable=False),
        sa.Column("n_units", sa.Integer(), nullable=False),
        sa.Column("n_recommendations", sa.Integer(), nullable=False),
        sa.Column("n_exceptions", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        _tenant_fk("plan_runs"),
        sa.PrimaryKeyConstraint("run_id", name="pk_plan_runs"),
    )
    op.create_index("ix_plan_runs_tenant_id", "plan_runs", ["tenant_id"])
    op.create_table(
        "plan_recommendations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sku_id", sa.String(128), nullable=False),
        sa.Column("location_id", sa.String(128), nullable=False),
        sa.Column("from_location_id", sa.String(128)),
        sa.Column("supplier_id", sa.String(128)),
        sa.Column("order_qty", sa.Float(), nullable=False),
        sa.Column("order_value", sa.Float(), nullable=False),
        sa.Column("expected_arrival", sa.Date()),
        *_route_columns(),
        sa.Column("evidence", sa.JSON(), nullable=False),
        _tenant_fk("plan_recommendations"),
        _run_fk("plan_recommendations"),
        sa.PrimaryKeyConstraint("id", name="pk_plan_recommendations"),
    )
    op.create_index("ix_plan_recommendations_tenant_run", "plan_recommendations", ["tenant_id", "run_id"])
    op.create_table(
        "plan_exceptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("exception_type", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("sku_id", sa.String(128)),
        sa.Column("location_id", sa.String(128)),
        sa.Column("supplier_id", sa.String(128)),
        sa.Column("po_id", sa.String(128)),
        sa.Column("value", sa.Float()),
        sa.Column("threshold", sa.Float()),
        sa.Column("customer_impacting", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        *_route_columns(),
        _tenant_fk("plan_exceptions"),
        _run_fk("plan_exceptions"),
        sa.PrimaryKeyConstraint("id", name="pk_plan_exceptions"),
    )
    op.create_index("ix_plan_exceptions_tenant_run", "plan_exceptions", ["tenant_id", "run_id"])
    op.create_table(
        "plan_po_drafts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("draft_id", sa.String(300), nullable=False),
        sa.Column("supplier_id", sa.String(128), nullable=False),
        sa.Column("location_id", sa.String(128), nullable=False),
        sa.Column("n_lines", sa.Integer(), nullable=False),
        sa.Column("total_qty", sa.Float(), nullable=False),
        sa.Column("total_value", sa.Float(), nullable=False),
        sa.Column("expected_arrival", sa.Date()),
        sa.Column("lines", sa.JSON(), nullable=False),
        _tenant_fk("plan_po_drafts"),
        _run_fk("plan_po_drafts"),
        sa.PrimaryKeyConstraint("id", name="pk_plan_po_drafts"),
    )
    op.create_index("ix_plan_po_drafts_tenant_run", "plan_po_drafts", ["tenant_id", "run_id"])


def downgrade() -> None:
    """Drop planning's tables."""
    for table in ("plan_po_drafts", "plan_exceptions", "plan_recommendations"):
        op.drop_index(f"ix_{table}_tenant_run", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_plan_runs_tenant_id", table_name="plan_runs")
    op.drop_table("plan_runs")
