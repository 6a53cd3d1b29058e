"""The features migration chain matches the models, on SQLite and PostgreSQL, and downgrades cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from features.store._db import Base
from features.store._migrate import alembic_config
from features.store._schema import FEATURE_TABLES


def _ours(obj, name, type_, reflected, compare_to):
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", None)
    return table_name in FEATURE_TABLES


def test_migrated_schema_matches_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _ours, "compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    names = set(sa.inspect(engine).get_table_names())
    assert set(FEATURE_TABLES) <= names


def test_every_data_table_is_tenant_scoped():
    for name in FEATURE_TABLES:
        if name == "tenants":
            continue
        table = Base.metadata.tables[name]
        assert "tenant_id" in table.c, name
        assert any(fk.column.table.name == "tenants" for fk in table.c.tenant_id.foreign_keys), name


def test_features_chain_downgrades_and_upgrades(db_url):
    from features.store._db import make_engine

    engine = make_engine(db_url)
    try:
        cfg = alembic_config(engine)
        command.upgrade(cfg, "features@head")
        assert {"skus", "quarantine_rows"} <= set(sa.inspect(engine).get_table_names())
        command.downgrade(cfg, "features@f0001")
        names = set(sa.inspect(engine).get_table_names())
        assert "tenants" in names and "skus" not in names and "quarantine_rows" not in names
        command.upgrade(cfg, "features@head")
        assert "skus" in set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
