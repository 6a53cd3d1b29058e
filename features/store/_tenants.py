"""Tenants: every record in the state store carries one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from features.store._db import Base, utcnow

__all__ = ["Tenant"]


class Tenant(Base):
    """A customer of the service; all data is scoped by ``tenant_id``."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
