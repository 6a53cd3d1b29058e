"""Training tests: the session's trained tenants and one torch thread come from ``tests/_trained.py``."""

from tests._trained import SHORT_SERIES, WINDOWS, Tenants

__all__ = ["SHORT_SERIES", "WINDOWS", "Tenants"]
