"""The workflow migration creates exactly the tables the models declare (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import workflow._models  # noqa: F401  (registers the tables)
from features.store._db import Base


def test_models_match_migration(engine):
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    # other packages' tables may be missing from this metadata (their models are not imported here): only ours
    mine = [d for d in diffs if "wf_" in repr(d)]
    assert mine == []
