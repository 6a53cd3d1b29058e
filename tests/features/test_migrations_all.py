"""Every package's tables, created by the migrations alone, match the models (SQLite and PostgreSQL)."""

import importlib

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from features.store._db import Base


def test_all_migrations_match_all_models(engine):
    for name in ("features.store._schema", "features.profile", "planning._tables", "workflow._models"):
        importlib.import_module(name)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
