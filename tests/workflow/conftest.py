"""Fixtures of the control-plane tests (``engine``, SQLite and PostgreSQL, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from features.store._db import session_scope
from tests.workflow._helpers import Receiver, seed_catalogue, small_plan
from workflow import access


@pytest.fixture
def tenants(engine):
    """Tenants ``a`` and ``b`` with admin, approver, planner, service and viewer principals."""
    keys = {}
    with session_scope(engine) as s:  # one transaction for the whole set-up
        for t in ("a", "b"):
            access.ensure_tenant(s, t)
            seed_catalogue(s, t)
            for role in ("admin", "approver", "planner", "service", "viewer"):
                keys[(t, role)] = access.create_key(s, t, [role], name=f"{t}-{role}", actor="test")[1]
    with session_scope(engine) as s:
        return {k: (access.authenticate(s, v), v) for k, v in keys.items()}


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def plan_result():
    """The small plan run of :func:`tests.workflow._helpers.small_plan`, made once per test module."""
    return small_plan()
