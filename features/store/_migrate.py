"""Alembic migrations across packages.

One Alembic environment (``features/store/migrations``) and one version chain per package that owns tables,
each labelled with the package name. The chains are found by package *name* (no import of their code), so the
data layer does not depend on the layers above it; a package without a ``migrations/versions`` folder is
skipped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

__all__ = ["MIGRATION_PACKAGES", "alembic_config", "migrate"]

MIGRATION_PACKAGES = ("features.store", "planning", "workflow")
_ENV_DIR = Path(__file__).resolve().parent / "migrations"


def _version_locations() -> list[str]:
    locations = []
    for name in MIGRATION_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        versions = Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
        if versions.is_dir():
            locations.append(str(versions))
    return locations


def alembic_config(engine: Engine) -> Config:
    """An Alembic config bound to ``engine`` with every package's version chain."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_ENV_DIR))
    cfg.set_main_option("version_locations", " ".join(_version_locations()))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the head of every chain (idempotent)."""
    command.upgrade(alembic_config(engine), "heads")
