"""The one list of the packages' migration chains, and the call that migrates the whole state store.

The data layer (:mod:`features.store`) runs Alembic but names no package above it; each package that owns
tables declares its chain (``planning.MIGRATIONS``, ``workflow.MIGRATIONS``). The service, the command line,
the cycle and the batch jobs migrate with :func:`migrate_store`, so a new package with tables is added here,
once. ::

    from serving.migrations import migrate_store
    migrate_store(engine)
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

import planning
import workflow
from features.store import MigrationChain, migrate

__all__ = ["MIGRATIONS", "migrate_store"]


#: Every chain above the data layer's own (which :func:`features.store.migrate` always runs).
MIGRATIONS: tuple[MigrationChain, ...] = (planning.MIGRATIONS, workflow.MIGRATIONS)


def migrate_store(engine: Engine) -> None:
    """Upgrade the state store behind ``engine`` to the head of every package's chain (idempotent)."""
    migrate(engine, MIGRATIONS)
