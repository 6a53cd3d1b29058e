"""Tenants: every record in the state store carries one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from features.store._db import Base, utcnow

__all__ = ["Tenant", "ensure_tenant"]


class Tenant(Base):
    """A customer of the service; all data is scoped by ``tenant_id``."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def ensure_tenant(session: Session, tenant_id: str, name: str | None = None) -> bool:
    """Create the tenant in the caller's transaction if it does not exist; True when it was created.

    The one way to create a tenant (ingest, the CLI, the control plane and the plan store call it). One
    ``INSERT ... ON CONFLICT DO NOTHING``, so a tenant created by a concurrent writer is not an error (False
    comes back) and nothing else in the caller's transaction is touched.

    Args:
        session: open session; the caller commits (``with session_scope(engine) as s``).
        tenant_id: the tenant's id.
        name: display name (default: the id).
    """
    if session.get(Tenant, tenant_id) is not None:
        return False
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Tenant.__table__).values(tenant_id=tenant_id, name=name or tenant_id, created_at=utcnow())
    stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id"]).returning(Tenant.__table__.c.tenant_id)
    return session.execute(stmt).scalar_one_or_none() is not None  # no row back: created meanwhile
