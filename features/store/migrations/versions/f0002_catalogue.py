"""features: catalogue, supply, planning units, aliases, ingest log and quarantine.

SKUs, locations, channels, suppliers, supplier terms, planning units, purchase orders, customer commitments,
external aliases, ingest batches and the quarantine of rejected rows.

Revision ID: f0002
Revises: f0001
"""

import sqlalchemy as sa
from alembic import op

revision = "f0002"
down_revision = "f0001"
branch_labels = None
depends_on = None

_TABLES = (
    "supplier_terms",
    "quarantine_rows",
    "purchase_orders",
    "planning_units",
    "customer_commitments",
    "suppliers",
    "skus",
    "locations",
    "ingest_batches",
    "external_aliases",
    "channels",
)


def upgrade() -> None:
    """Create the tables of the data layer."""
    op.create_table(
        "channels",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_channels_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "channel_id", name=op.f("pk_channels")),
    )
    op.create_table(
        "external_aliases",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("internal_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "entity IN ('sku', 'location', 'channel', 'supplier')", name=op.f("ck_external_aliases_entity")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_external_aliases_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "entity", "source", "external_id", name=op.f("pk_external_aliases")
        ),
    )
    op.create_table(
        "ingest_batches",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_stored", sa.Integer(), nullable=False),
        sa.Column("rows_duplicate", sa.Integer(), nullable=False),
        sa.Column("rows_quarantined", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_ingest_batches_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_ingest_batches")),
    )
    op.create_index(
        "ix_ingest_batches_tenant_kind_hash",
        "ingest_batches",
        ["tenant_id", "kind", "content_hash"],
        unique=False,
    )

    op.create_table(
        "locations",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('store', 'dc', 'warehouse')", name=op.f("ck_locations_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_locations_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "location_id", name=op.f("pk_locations")),
    )
    op.create_table(
        "skus",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("sku_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("family", sa.String(length=64), nullable=True),
        sa.Column("brand", sa.String(length=64), nullable=True),
        sa.Column("uom", sa.String(length=16), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_skus_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "sku_id", name=op.f("pk_skus")),
    )
    op.create_table(
        "suppliers",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("supplier_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_suppliers_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "supplier_id", name=op.f("pk_suppliers")),
    )
    op.create_table(
        "customer_commitments",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("commitment_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("sku_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("qty > 0", name=op.f("ck_customer_commitments_qty")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "location_id"],
            ["locations.tenant_id", "locations.location_id"],
            name=op.f("fk_customer_commitments_tenant_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "sku_id"],
            ["skus.tenant_id", "skus.sku_id"],
            name=op.f("fk_customer_commitments_tenant_id_skus"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_customer_commitments_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "commitment_id", name=op.f("pk_customer_commitments")),
    )
    op.create_table(
        "planning_units",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("sku_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("policy_kind", sa.String(length=32), nullable=False),
        sa.Column("review_period_days", sa.Integer(), nullable=False),
        sa.Column("service_target", sa.Float(), nullable=False),
        sa.Column("horizon_periods", sa.Integer(), nullable=False),
        sa.Column("owner_team", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "policy_kind IN ('periodic_review', 'continuous_review', 'min_max', 'manual')",
            name=op.f("ck_planning_units_policy_kind"),
        ),
        sa.CheckConstraint(
            "service_target > 0 AND service_target < 1", name=op.f("ck_planning_units_service_target")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "channel_id"],
            ["channels.tenant_id", "channels.channel_id"],
            name=op.f("fk_planning_units_tenant_id_channels"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "location_id"],
            ["locations.tenant_id", "locations.location_id"],
            name=op.f("fk_planning_units_tenant_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "sku_id"],
            ["skus.tenant_id", "skus.sku_id"],
            name=op.f("fk_planning_units_tenant_id_skus"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_planning_units_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "sku_id", "location_id", "channel_id", name=op.f("pk_planning_units")
        ),
    )
    op.create_table(
        "purchase_orders",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("po_id", sa.String(length=64), nullable=False),
        sa.Column("sku_id", sa.String(length=64), nullable=False),
        sa.Column("location_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("supplier_id", sa.String(length=64), nullable=True),
        sa.Column("from_location_id", sa.String(length=64), nullable=True),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("order_date", sa.Date(), nullable=False),
        sa.Column("eta", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('purchase', 'transfer')", name=op.f("ck_purchase_orders_kind")),
        sa.CheckConstraint(
            "status IN ('open', 'received', 'cancelled')", name=op.f("ck_purchase_orders_status")
        ),
        sa.CheckConstraint("qty > 0", name=op.f("ck_purchase_orders_qty")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "location_id"],
            ["locations.tenant_id", "locations.location_id"],
            name=op.f("fk_purchase_orders_tenant_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "sku_id"],
            ["skus.tenant_id", "skus.sku_id"],
            name=op.f("fk_purchase_orders_tenant_id_skus"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_purchase_orders_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "po_id", "sku_id", "location_id", name=op.f("pk_purchase_orders")
        ),
    )
    op.create_index("ix_purchase_orders_tenant_eta", "purchase_orders", ["tenant_id", "eta"], unique=False)

    op.create_table(
        "quarantine_rows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["ingest_batches.batch_id"], name=op.f("fk_quarantine_rows_batch_id_ingest_batches")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_quarantine_rows_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine_rows")),
    )
    op.create_index(
        "ix_quarantine_rows_tenant_batch", "quarantine_rows", ["tenant_id", "batch_id"], unique=False
    )

    op.create_table(
        "supplier_terms",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("supplier_id", sa.String(length=64), nullable=False),
        sa.Column("sku_id", sa.String(length=64), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=False),
        sa.Column("moq", sa.Integer(), nullable=False),
        sa.Column("pack_size", sa.Integer(), nullable=False),
        sa.Column("max_order_qty", sa.Integer(), nullable=True),
        sa.Column("promised_lead_time_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "unit_cost >= 0 AND moq >= 0 AND pack_size >= 1 AND promised_lead_time_days >= 0",
            name=op.f("ck_supplier_terms_ranges"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "sku_id"],
            ["skus.tenant_id", "skus.sku_id"],
            name=op.f("fk_supplier_terms_tenant_id_skus"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "supplier_id"],
            ["suppliers.tenant_id", "suppliers.supplier_id"],
            name=op.f("fk_supplier_terms_tenant_id_suppliers"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.tenant_id"], name=op.f("fk_supplier_terms_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "supplier_id", "sku_id", name=op.f("pk_supplier_terms")),
    )


def downgrade() -> None:
    """Drop them again (children first)."""
    op.drop_index("ix_quarantine_rows_tenant_batch", table_name="quarantine_rows")
    op.drop_index("ix_purchase_orders_tenant_eta", table_name="purchase_orders")
    op.drop_index("ix_ingest_batches_tenant_kind_hash", table_name="ingest_batches")
    for table in _TABLES:
        op.drop_table(table)
