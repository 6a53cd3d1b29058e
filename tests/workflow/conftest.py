"""Fixtures of the control-plane tests (``engine``, SQLite and PostgreSQL, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.workflow._helpers import Receiver, make_tenant


@pytest.fixture
def tenants(engine):
    """Tenants ``a`` and ``b`` with admin, approver, planner, service and viewer principals."""
    out = {}
    for t in ("a", "b"):
        for role in ("admin", "approver", "planner", "service", "viewer"):
            out[(t, role)] = make_tenant(engine, t, roles=(role,), name=f"{t}-{role}")
    return out


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()
