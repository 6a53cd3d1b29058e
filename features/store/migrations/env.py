"""Alembic environment: runs migrations on the engine passed in ``config.attributes['engine']``.

For ``alembic revision --autogenerate`` the metadata must hold every package's tables, else Alembic proposes
to drop the tables it cannot see. The model modules are imported here by *name* (this file runs only under
Alembic, never on an import of ``features``), so the data layer still imports nothing above it.
"""

import importlib

from alembic import context

from features.store._db import Base

MODEL_MODULES = ("features.store._tenants", "features.store._schema", "features.profile", "features.runs",
                 "planning._tables", "workflow._models")
for _name in MODEL_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a package without tables yet
        if exc.name != _name:
            raise

target_metadata = Base.metadata
engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
