"""Migrations registered by the caller: the data layer runs its own chain and the chains it is given.

SQLite and PostgreSQL (``db_url``). The upper packages' chains are passed in as a caller would
(``planning.MIGRATIONS``, ``workflow.MIGRATIONS``); the data layer names none of them.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

import planning
import workflow
from features.store import FEATURES_MIGRATIONS, MigrationChain, make_engine, migrate, register_migrations
from features.store._migrate import alembic_config


def _tables(eng) -> set[str]:
    return set(sa.inspect(eng).get_table_names())


def test_features_chain_alone_creates_only_the_data_layer_tables(db_url):
    eng = make_engine(db_url)
    try:
        migrate(eng, [])
        names = _tables(eng)
        assert {"tenants", "skus", "cycle_runs"} <= names
        assert not any(n.startswith(("wf_", "plan_")) for n in names), sorted(names)
        migrate(eng, [planning.MIGRATIONS, workflow.MIGRATIONS])
        names = _tables(eng)
        assert {"wf_recommendations", "wf_outbox", "plan_runs"} <= names
    finally:
        eng.dispose()


def test_a_store_migrated_by_the_service_is_a_no_op_for_the_data_layer_alone(db_url):
    eng = make_engine(db_url)
    try:
        migrate(eng, [planning.MIGRATIONS, workflow.MIGRATIONS])
        with eng.connect() as c:
            before = sorted(c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        migrate(eng, [])  # the store holds workflow's and planning's revisions, unknown to this call
        with eng.connect() as c:
            after = sorted(c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        assert after == before and any(v.startswith("w") for v in after)
    finally:
        eng.dispose()


def test_a_behind_data_layer_next_to_unknown_chains_names_them(db_url):
    eng = make_engine(db_url)
    try:
        chains = [planning.MIGRATIONS, workflow.MIGRATIONS]
        migrate(eng, chains)
        command.downgrade(alembic_config(eng, chains), "features@-1")  # f0005 undone, the others kept
        with pytest.raises(RuntimeError, match=r"w0002|ws001|p0003") as err:
            migrate(eng, [])
        assert "f0005" in str(err.value) and "migrate_store" in str(err.value)
        migrate(eng, chains)  # with every chain it upgrades again
        with eng.connect() as c:
            assert "f0005" in set(c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        eng.dispose()


def test_registration_refuses_a_missing_folder_and_a_second_folder_for_a_label(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        MigrationChain("nowhere", tmp_path / "missing")
    with pytest.raises(ValueError, match="already registered"):
        register_migrations("workflow", tmp_path)
    with pytest.raises(ValueError, match="already registered"):
        register_migrations(FEATURES_MIGRATIONS.label, tmp_path)
    again = register_migrations("workflow", workflow.MIGRATIONS.versions, models=workflow.MIGRATIONS.models)
    assert again == workflow.MIGRATIONS  # the same chain again is harmless
