"""The SQL state store: engine, sessions, migrations and the foundation's tables.

Other packages import these names from here, never from the private modules behind them::

    from features.store import make_engine, migrate, session_scope, utcnow
    from features.store import Sku, Location, Tenant
"""

from features.store._db import Base, make_engine, session_scope, utcnow
from features.store._migrate import FEATURES_MIGRATIONS, MigrationChain, migrate, register_migrations
from features.store._schema import (
    ALIAS_ENTITIES,
    Channel,
    ExternalAlias,
    IngestBatch,
    Location,
    QuarantineRow,
    Sku,
    Supplier,
    SupplierTerm,
)
from features.store._tenants import Tenant, ensure_tenant

__all__ = [
    "ALIAS_ENTITIES",
    "FEATURES_MIGRATIONS",
    "Base",
    "Channel",
    "ExternalAlias",
    "IngestBatch",
    "Location",
    "MigrationChain",
    "QuarantineRow",
    "Sku",
    "Supplier",
    "SupplierTerm",
    "Tenant",
    "ensure_tenant",
    "make_engine",
    "migrate",
    "register_migrations",
    "session_scope",
    "utcnow",
]
