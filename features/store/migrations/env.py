"""Alembic environment: runs migrations on the engine passed in ``config.attributes['engine']``.

For ``alembic revision --autogenerate`` the metadata must hold every package's tables, else Alembic proposes
to drop the tables it cannot see. The data layer's own model modules are imported here; those of the packages
above it are named by the chains the caller registered (:class:`features.store.MigrationChain` ``.models``,
passed in ``config.attributes['models']``), so the data layer names no package above it.
"""

import importlib

from alembic import context

import features.profile  # noqa: F401  (the data layer's tables beside the store's)
import features.runs  # noqa: F401
import features.store._schema  # noqa: F401
import features.store._tenants  # noqa: F401
from features.store._db import Base

for _name in context.config.attributes.get("models", ()):
    importlib.import_module(_name)

target_metadata = Base.metadata
engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
