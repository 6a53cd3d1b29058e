"""Planning's migration chain matches its models (SQLite and PostgreSQL) and downgrades cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import planning._tables  # noqa: F401  (registers the tables)
from features.store._db import Base, make_engine
from features.store._migrate import alembic_config, migrate

PLAN_TABLES = {"plan_runs", "plan_recommendations", "plan_exceptions", "plan_po_drafts"}


def _ours(obj, name, type_, reflected, compare_to):
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return (name if type_ == "table" else getattr(table, "name", None)) in PLAN_TABLES


def test_migrated_schema_matches_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _ours, "compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    assert PLAN_TABLES <= set(sa.inspect(engine).get_table_names())
    for name in PLAN_TABLES:  # tenant-scoped, foreign key to tenants
        table = Base.metadata.tables[name]
        assert any(fk.column.table.name == "tenants" for fk in table.c.tenant_id.foreign_keys), name


def test_planning_chain_downgrades_and_upgrades(db_url):
    eng = make_engine(db_url)
    try:
        migrate(eng)
        cfg = alembic_config(eng)
        command.downgrade(cfg, "planning@base")
        names = set(sa.inspect(eng).get_table_names())
        assert not (PLAN_TABLES & names) and "tenants" in names  # only planning's tables went
        migrate(eng)
        assert PLAN_TABLES <= set(sa.inspect(eng).get_table_names())
    finally:
        eng.dispose()
