"""Webhook targets per tenant and system: each tenant reaches its own receiver, signed with its secret."""

from __future__ import annotations

import numpy as np
import pytest

from features.store._db import session_scope
from tests.workflow._helpers import Receiver, propose
from workflow import webhooks
from workflow.adapters import WebhookAdapter
from workflow.dispatcher import Dispatcher
from workflow.schemas import AutoApprove


def test_production_refuses_http_and_short_secrets():
    with pytest.raises(ValueError, match="https://"):
        WebhookAdapter("http://erp.example/hook", "s" * 40, production=True)
    with pytest.raises(ValueError, match="32 characters"):
        WebhookAdapter("https://erp.example/hook", "short", production=True)
    WebhookAdapter("https://erp.example/hook", "s" * 40, production=True).close()
    WebhookAdapter("http://127.0.0.1:9/hook", "short", production=False).close()


def test_each_tenant_is_delivered_to_its_own_target_with_its_own_secret(engine, tenants):
    ra, rb = Receiver(secret="a" * 40).start(), Receiver(secret="b" * 40).start()
    try:
        with session_scope(engine) as s:
            webhooks.set_target(s, "a", "erp", ra.url, "a" * 40, actor="test", https_only=False)
            webhooks.set_target(s, "b", "erp", rb.url, "b" * 40, actor="test", https_only=False)
            with pytest.raises(Exception, match="https"):
                webhooks.set_target(s, "a", "wms", ra.url, "a" * 40, actor="test", https_only=True)
            assert all("secret" not in t for t in webhooks.list_targets(s, "a"))
        ids = {
            t: propose(engine, t, route=None, auto_approve=AutoApprove(rule="small")).id for t in ("a", "b")
        }
        adapter = webhooks.TenantWebhookAdapter(engine)
        stats = Dispatcher(engine, adapter, rng=np.random.default_rng(0)).run(until_idle=True)
        adapter.close()
        assert stats.delivered == 2 and ra.rejected_signatures == 0 and rb.rejected_signatures == 0
        assert [b["recommendation_id"] for b in ra.bodies.values()] == [ids["a"]]
        assert [b["recommendation_id"] for b in rb.bodies.values()] == [ids["b"]]
    finally:
        ra.stop()
        rb.stop()


def test_replenish_outbox_dispatch_delivers_to_each_tenants_own_target(engine, tenants, monkeypatch):
    """The CLI dispatcher uses the tenants' targets by default; one global URL is refused in production."""
    from typer.testing import CliRunner

    from serving.cli import app

    monkeypatch.setenv("REPLENISH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    ra, rb = Receiver(secret="a" * 40).start(), Receiver(secret="b" * 40).start()
    try:
        with session_scope(engine) as s:
            webhooks.set_target(s, "a", "erp", ra.url, "a" * 40, actor="test", https_only=False)
            webhooks.set_target(s, "b", "erp", rb.url, "b" * 40, actor="test", https_only=False)
        ids = {
            t: propose(engine, t, route=None, auto_approve=AutoApprove(rule="small")).id for t in ("a", "b")
        }
        res = CliRunner().invoke(app, ["outbox", "dispatch", "--seed", "0"])
        assert res.exit_code == 0, res.output
        assert "delivered 2" in res.output
        assert [b["recommendation_id"] for b in ra.bodies.values()] == [ids["a"]]
        assert [b["recommendation_id"] for b in rb.bodies.values()] == [ids["b"]]
        assert ra.rejected_signatures == 0 and rb.rejected_signatures == 0
    finally:
        ra.stop()
        rb.stop()
    monkeypatch.setenv("REPLENISH_ENV", "production")
    monkeypatch.setenv("REPLENISH_WEBHOOK_SECRET", "p" * 40)
    monkeypatch.setenv("REPLENISH_DATABASE_URL", "postgresql+psycopg://u:p@127.0.0.1:9/none")  # never reached
    res = CliRunner().invoke(app, ["outbox", "dispatch", "--webhook-url", "https://erp.example/hook"])
    assert res.exit_code == 2 and "each tenant's targets are used" in res.output
