"""The SQL state store: engine, sessions, migrations and the foundation's tables."""

from features.store._db import Base, make_engine, session_scope
from features.store._migrate import migrate

__all__ = ["Base", "make_engine", "migrate", "session_scope"]
