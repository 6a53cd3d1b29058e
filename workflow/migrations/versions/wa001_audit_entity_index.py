"""workflow: an index for one entity's audit trail.

The recommendation and item pages read the audit entries of given entities (``workflow.audit.entries_of``,
``lifecycle.history``); without this index each read scans the tenant's whole audit log, which only grows.

Revision ID: wa001
Revises: w0002
"""

from alembic import op

revision = "wa001"
down_revision = "w0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``ix_wf_audit_log_entity``."""
    op.create_index("ix_wf_audit_log_entity", "wf_audit_log", ["tenant_id", "entity_type", "entity_id"])


def downgrade() -> None:
    """Drop ``ix_wf_audit_log_entity``."""
    op.drop_index("ix_wf_audit_log_entity", table_name="wf_audit_log")
