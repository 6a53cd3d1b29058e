"""Shared test configuration: markers, GPU skip helper, per-run REPLENISH_HOME."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MPLBACKEND", "Agg")

#: The session's trained tenants (``trained``, ``shared_home``), for the training and the CLI tests.
pytest_plugins = ["tests._trained"]


def _gpu_available() -> bool:
    from kernels._backend import gpu_available

    return gpu_available()


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests without a CUDA device: the one place that decides GPU skips."""
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU / CuPy on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _replenish_home(tmp_path, monkeypatch):
    """Every test gets its own embedded state folder."""
    monkeypatch.setenv("REPLENISH_HOME", str(tmp_path / "replenish-home"))


def _pg_admin_url() -> str | None:
    return os.environ.get("REPLENISH_TEST_PG_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """URL of a fresh, empty state store: a SQLite file, and a new database on the real PostgreSQL server.

    The PostgreSQL case runs when ``REPLENISH_TEST_PG_URL`` points at a server (``.ci/run`` starts one) and is
    skipped, visibly, otherwise.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    admin = _pg_admin_url()
    if not admin:
        pytest.skip("REPLENISH_TEST_PG_URL not set (no PostgreSQL server)")
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:12]}"
    url = sa.engine.make_url(admin.replace("postgresql://", "postgresql+psycopg://", 1))
    admin_engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin_engine.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


@pytest.fixture
def engine(db_url):
    """A migrated engine on a fresh state store (SQLite and PostgreSQL)."""
    from features.store._db import make_engine
    from serving.migrations import migrate_store

    eng = make_engine(db_url)
    migrate_store(eng)
    yield eng
    eng.dispose()
