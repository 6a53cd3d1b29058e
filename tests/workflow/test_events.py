"""The ordered event log: gapless per-tenant order under concurrent writers, cursors, topics."""

from __future__ import annotations

import threading

import pytest

from features.store._db import session_scope
from workflow import events
from workflow.errors import InvalidInput


def test_concurrent_publishers_give_a_gapless_commit_ordered_log(engine, tenants):
    n_threads, per_thread = 6, 15
    seen_by_reader: list[int] = []
    stop = threading.Event()

    def publisher(i):
        for j in range(per_thread):
            with session_scope(engine) as s:
                events.publish(s, "a", "sales", "sale.recorded", f"SKU-{i}", {"qty": j, "writer": i})

    def reader():
        cursor = 0
        while True:
            # Writers are all done if stop was set before this read began; an empty page read before the
            # last commit proves nothing (checking stop after the read raced with the last writer).
            writers_done = stop.is_set()
            with session_scope(engine) as s:
                page = events.read(s, "a", after=cursor, limit=50)
            seen_by_reader.extend(e.seq for e in page.events)
            cursor = page.next_cursor
            if writers_done and not page.events:
                return

    r = threading.Thread(target=reader)
    r.start()
    ws = [threading.Thread(target=publisher, args=(i,)) for i in range(n_threads)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    stop.set()
    r.join()
    with session_scope(engine) as s:
        all_seqs = [e.seq for e in events.read(s, "a", limit=10_000).events]
    assert all_seqs == list(range(1, len(all_seqs) + 1))
    assert len(all_seqs) == n_threads * per_thread  # key creation writes audit entries, not events
    # a reader following the cursor while writers commit never skipped an event
    assert seen_by_reader == all_seqs
    # per writer, the order of its own events is kept
    with session_scope(engine) as s:
        evs = events.read(s, "a", limit=10_000).events
    for i in range(n_threads):
        assert [e.payload["qty"] for e in evs if e.payload["writer"] == i] == list(range(per_thread))


def test_cursor_commit_topics_and_tenant_scope(engine, tenants):
    with session_scope(engine) as s:
        for topic in ("sales", "inventory", "forecast", "sales"):
            events.publish(s, "a", topic, f"{topic}.x", "k", {})
        events.publish(s, "b", "sales", "sales.x", "k", {"tenant": "b"})
    with session_scope(engine) as s:
        page = events.read(s, "a", after=0, limit=2)
        assert [e.seq for e in page.events] == [1, 2] and page.next_cursor == 2
        assert events.commit_cursor(s, "a", "erp-sync", page.next_cursor) == 2
        assert events.commit_cursor(s, "a", "erp-sync", 1) == 2  # never moves back
        assert events.get_cursor(s, "b", "erp-sync") == 0
        rest = events.read(s, "a", after=events.get_cursor(s, "a", "erp-sync"), topics=["sales"])
        assert [(e.seq, e.topic) for e in rest.events] == [(4, "sales")]
        assert [e.seq for e in events.read(s, "a", types=["forecast.x", "sales.x"]).events] == [1, 3, 4]
        assert [e.payload for e in events.read(s, "b").events] == [{"tenant": "b"}]
        with pytest.raises(InvalidInput, match="unknown topic"):
            events.publish(s, "a", "gossip", "x", "k", {})
