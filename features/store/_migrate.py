"""Alembic migrations across packages, each package's chain registered by the package that owns the tables.

One Alembic environment (``features/store/migrations``) and one version chain per package that owns tables,
each labelled with its package's name (its first revision's ``branch_labels``). The data layer knows only its
own chain (:data:`FEATURES_MIGRATIONS`); a package above it declares its chain with
:func:`register_migrations` in its public face (``planning.MIGRATIONS``, ``workflow.MIGRATIONS``), so
importing the package registers its chain, and the caller that migrates the whole store passes every chain
(``serving.migrations.migrate_store`` lists them in one place)::

    from features.store import migrate
    migrate(engine)                                  # features' chain and every chain registered so far
    migrate(engine, [planning.MIGRATIONS, workflow.MIGRATIONS])   # features' chain and exactly these

Migrating a store that holds revisions of a chain not given here is a no-op when the given chains are at their
heads already (a training job on a store the service migrated); when they are not, the error names the
revisions this call does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

__all__ = ["FEATURES_MIGRATIONS", "MigrationChain", "alembic_config", "migrate", "register_migrations"]

_ENV_DIR = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class MigrationChain:
    """One package's Alembic version chain.

    Attributes:
        label: the chain's branch label (``branch_labels`` of its first revision), e.g. ``"workflow"``.
        versions: the folder holding its revision files.
        models: the modules defining its tables, which the Alembic environment imports (by name, so that
            registering a chain stays cheap) for ``--autogenerate`` to see them.
    """

    label: str
    versions: Path
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not Path(self.versions).is_dir():
            raise ValueError(f"MigrationChain {self.label!r}: versions={self.versions} is not a folder")


#: The data layer's own chain (tenants, catalogue, profiles, runs).
FEATURES_MIGRATIONS = MigrationChain("features", _ENV_DIR / "versions")
_REGISTERED: dict[str, MigrationChain] = {}


def register_migrations(label: str, versions: str | Path, models: Sequence[str] = ()) -> MigrationChain:
    """Declare a package's chain so that :func:`migrate` without ``chains`` runs it too; returns the chain.

    Called by the package's public face (its ``__init__``); registering the same chain again is harmless.

    Raises:
        ValueError: ``versions`` is not a folder, or ``label`` is already registered with another folder.
    """
    chain = MigrationChain(label, Path(versions).resolve(), tuple(models))
    known = FEATURES_MIGRATIONS if label == FEATURES_MIGRATIONS.label else _REGISTERED.get(label)
    if known is not None and known.versions.resolve() != chain.versions:
        raise ValueError(f"migration chain {label!r} is already registered with {known.versions}")
    _REGISTERED[label] = chain
    return chain


def _chains(chains: Sequence[MigrationChain] | None) -> list[MigrationChain]:
    given = list(_REGISTERED.values()) if chains is None else list(chains)
    out = {FEATURES_MIGRATIONS.label: FEATURES_MIGRATIONS}
    for c in given:
        out.setdefault(c.label, c)
    return list(out.values())


def alembic_config(engine: Engine, chains: Sequence[MigrationChain] | None = None) -> Config:
    """An Alembic config bound to ``engine`` with features' chain and ``chains`` (default: the registered)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_ENV_DIR))
    cfg.set_main_option("version_locations", " ".join(str(c.versions) for c in _chains(chains)))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["engine"] = engine
    cfg.attributes["models"] = [m for c in _chains(chains) for m in c.models]
    return cfg


def migrate(engine: Engine, chains: Sequence[MigrationChain] | None = None) -> None:
    """Upgrade the database behind ``engine`` to the head of features' chain and ``chains`` (idempotent).

    Args:
        engine: the state store.
        chains: the other packages' chains to run (default: every chain registered in this process).

    Raises:
        RuntimeError: the store holds revisions of a chain not given here and the given chains are behind
            (migrate with every package's chain, as ``serving.migrations.migrate_store`` does).
    """
    cfg = alembic_config(engine, chains)
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    unknown = sorted(current - {rev.revision for rev in script.walk_revisions()}) if current else []
    if unknown:
        missing = sorted(set(script.get_heads()) - current)
        if not missing:
            return  # our chains are at their heads; the other chains belong to another caller
        raise RuntimeError(
            f"the store holds revisions {unknown} of a migration chain not given to migrate(), and the "
            f"revisions {missing} are still to run: migrate with every package's chain "
            "(serving.migrations.migrate_store)"
        )
    command.upgrade(cfg, "heads")
