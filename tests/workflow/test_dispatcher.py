"""Outbox delivery: signed webhooks, backoff with jitter, dead letters, replay, file drops, acks."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from features.store._db import session_scope
from tests.workflow._helpers import SECRET, propose
from workflow import audit, events, lifecycle, outbox
from workflow.adapters import FileDropAdapter, SignatureError, WebhookAdapter, sign, verify_signature
from workflow.dispatcher import Dispatcher, RetryPolicy
from workflow.errors import NotFound
from workflow.schemas import AckIn, AutoApprove

FAST = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02)


def _approved(engine, n, **kw):
    return [
        propose(engine, "a", route=None, auto_approve=AutoApprove(rule="small"), sku_id=f"S{i}", **kw).id
        for i in range(n)
    ]


def _drain(d, engine, until, timeout=20.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        d.run_once()
        with session_scope(engine) as s:
            c = outbox.counts(s, "a")
        if until(c):
            return c
        time.sleep(0.01)
    raise AssertionError(f"not reached: {c}")


def test_webhook_delivers_each_action_once_signed(engine, tenants, receiver):
    recs = _approved(engine, 5)
    d = Dispatcher(engine, WebhookAdapter(receiver.url, SECRET), rng=np.random.default_rng(0))
    st = d.run(until_idle=True)
    assert (st.claimed, st.delivered, st.retried, st.dead) == (5, 5, 0, 0)
    assert sorted(receiver.processed.values()) == [1] * 5 and receiver.duplicates == 0
    with session_scope(engine) as s:
        for rid in recs:
            r = lifecycle.get(s, "a", rid)
            assert r.state == "sent" and r.external_ref == f"ERP-{rid}-v2"
            body = receiver.bodies[f"{rid}-v2"]
            assert (body["recommendation_id"], body["quantity"], body["supplier_id"]) == (rid, 100.0, "SUP-1")
        types = [e.type for e in events.read(s, "a", limit=1000, topics=["replenishment"]).events]
        assert types.count("recommendation.sent") == 5
        assert audit.verify(s, "a").ok
    assert d.run_once().claimed == 0  # nothing left


def test_retries_then_dead_letter_then_replay(engine, tenants, receiver):
    (rid,) = _approved(engine, 1)
    receiver.fail_next = 10**6  # 503 until further notice
    d = Dispatcher(engine, WebhookAdapter(receiver.url, SECRET), rng=np.random.default_rng(0), policy=FAST)
    _drain(d, engine, lambda c: c["dead"] == 1)
    with session_scope(engine) as s:
        (item,) = outbox.list_items(s, "a", status="dead")
        assert item.attempts == 3 and "HTTP 503" in item.last_error
        assert lifecycle.get(s, "a", rid).state == "failed"
    assert receiver.requests == 3 and receiver.processed == {}
    receiver.fail_next = 0
    with session_scope(engine) as s:
        outbox.replay(s, "a", item.id, actor="ops")
    _drain(d, engine, lambda c: c["delivered"] == 1)
    with session_scope(engine) as s:
        assert lifecycle.get(s, "a", rid).state == "sent"
        hist = [h.action for h in lifecycle.history(s, "a", rid)]
    assert hist[-3:] == ["recommendation.fail", "recommendation.retry", "recommendation.send"]
    assert receiver.processed == {f"{rid}-v2": 1}


def test_permanent_error_dead_letters_at_once(engine, tenants, receiver):
    _approved(engine, 1)
    d = Dispatcher(
        engine, WebhookAdapter(receiver.url, "wrong-secret"), rng=np.random.default_rng(0), policy=FAST
    )
    st = d.run_once()
    assert (st.dead, st.retried) == (1, 0) and receiver.rejected_signatures == 1
    with session_scope(engine) as s:
        assert "HTTP 401" in outbox.list_items(s, "a", status="dead")[0].last_error


def test_backoff_grows_with_jitter_and_cap():
    p = RetryPolicy(max_attempts=10, base_delay_s=1.0, max_delay_s=30.0)
    rng = np.random.default_rng(42)
    for attempt in range(1, 9):
        d = min(30.0, 2.0 ** (attempt - 1))
        draws = np.array([p.delay(attempt, rng) for _ in range(500)])
        assert draws.min() >= d / 2 and draws.max() <= d
        assert draws.std() > d / 20  # really jittered
    a = [RetryPolicy().delay(3, np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]  # the randomness is passed in
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_signature_verification():
    body, now = b'{"a":1}', 1_800_000_000
    sig = sign(SECRET, now, body)
    verify_signature(SECRET, body, str(now), sig, now=now + 10)
    with pytest.raises(SignatureError, match="stale timestamp"):
        verify_signature(SECRET, body, str(now), sig, now=now + 301)
    with pytest.raises(SignatureError, match="stale timestamp"):
        verify_signature(SECRET, body, str(now), sig, now=now - 301)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, b'{"a":2}', str(now), sig, now=now)
    with pytest.raises(SignatureError, match="does not match"):  # the timestamp is signed too
        verify_signature(SECRET, body, str(now + 1), sig, now=now)
    with pytest.raises(SignatureError, match="missing"):
        verify_signature(SECRET, body, None, sig, now=now)


def test_file_drop_batches_are_idempotent(engine, tenants, tmp_path):
    _approved(engine, 3)
    propose(
        engine,
        "a",
        kind="transfer",
        from_location_id="DC-2",
        supplier_id=None,
        route=None,
        auto_approve=AutoApprove(rule="rebalance"),
    )
    root = tmp_path / "drop"
    adapter = FileDropAdapter(root)
    d = Dispatcher(engine, adapter, rng=np.random.default_rng(0))
    st = d.run(until_idle=True)
    assert st.delivered == 4
    po_files = sorted((root / "a" / "purchase_order").glob("*.csv"))
    tr_files = sorted((root / "a" / "transfer").glob("*.json"))
    assert len(po_files) == 1 and len(tr_files) == 1
    rows = list(csv.DictReader(po_files[0].open()))
    assert len(rows) == 3 and all(r["idempotency_key"].endswith("-v2") for r in rows)
    assert json.loads(tr_files[0].read_text())["items"][0]["from_location_id"] == "DC-2"
    # re-sending the same batch (a crash before recording) rewrites the same file, not a new one
    with session_scope(engine) as s:
        items = [
            outbox.Claimed(i.id, i.tenant_id, i.recommendation_id, i.idempotency_key, i.kind, i.payload, 1)
            for i in outbox.list_items(s, "a")
            if i.kind == "purchase_order"
        ]
    before = po_files[0].read_bytes()
    adapter.send_batch(items)
    assert sorted((root / "a" / "purchase_order").glob("*.csv")) == po_files
    assert po_files[0].read_bytes() == before
    assert not list(root.rglob(".tmp-*"))


def test_acknowledgements_by_key_are_idempotent(engine, tenants, receiver):
    (rid,) = _approved(engine, 1)
    Dispatcher(engine, WebhookAdapter(receiver.url, SECRET), rng=np.random.default_rng(0)).run(
        until_idle=True
    )
    ack = AckIn(status="accepted", external_ref="PO-778")
    with session_scope(engine) as s:
        rec, dup = outbox.acknowledge_by_key(s, "a", f"{rid}-v2", ack, actor="erp")
    assert (rec.state, rec.external_ref, dup) == ("acknowledged", "PO-778", False)
    with session_scope(engine) as s:
        rec2, dup2 = outbox.acknowledge_by_key(s, "a", f"{rid}-v2", ack, actor="erp")
    assert dup2 and rec2.version == rec.version


def test_batch_acknowledgements_bulk_and_repeated(engine, tenants, receiver):
    recs = _approved(engine, 4)
    Dispatcher(engine, WebhookAdapter(receiver.url, SECRET), rng=np.random.default_rng(0)).run(
        until_idle=True
    )
    keys = [f"{r}-v2" for r in recs]
    with session_scope(engine) as s:  # plain acceptances of three: the bulk path
        out = outbox.acknowledge_many(s, "a", [(k, AckIn(status="accepted")) for k in keys[:3]], actor="erp")
    assert [(r.state, dup) for r, dup in out] == [("acknowledged", False)] * 3
    with session_scope(engine) as s:  # a page that repeats two of them: item by item, repeats flagged
        out = outbox.acknowledge_many(s, "a", [(k, AckIn(status="accepted")) for k in keys[2:]], actor="erp")
    assert [dup for _, dup in out] == [True, False]
    with session_scope(engine) as s:
        assert {lifecycle.get(s, "a", r).state for r in recs} == {"acknowledged"}
        acks = [e for e in events.read(s, "a", limit=1000).events if e.type == "recommendation.acknowledged"]
        assert sorted(e.key for e in acks) == sorted(recs)  # one event per recommendation, none repeated
        assert audit.verify(s, "a").ok
        with pytest.raises(NotFound):
            outbox.acknowledge_many(s, "a", [("no-such-key", AckIn(status="accepted"))], actor="erp")
