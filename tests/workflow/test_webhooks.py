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
