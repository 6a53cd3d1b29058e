"""Concurrent decisions on one recommendation: exactly one winner (threads and processes, both stores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from features.store._db import session_scope
from tests.workflow._helpers import propose
from workflow import audit, events, lifecycle
from workflow._models import OutboxItem
from workflow.errors import IllegalTransition, VersionConflict
from workflow.schemas import ApproveIn, OverrideIn, RejectIn

ROOT = Path(__file__).resolve().parents[2]


def _decide(engine, principal, rid, i):
    with session_scope(engine) as s:
        if i % 3 == 0:
            return lifecycle.approve(s, principal, rid, ApproveIn(version=2))
        if i % 3 == 1:
            return lifecycle.override(
                s, principal, rid, OverrideIn(version=2, quantity=1 + i, reason_code="r")
            )
        return lifecycle.reject(s, principal, rid, RejectIn(version=2, reason_code="r"))


def test_thread_race_exactly_one_winner(engine, tenants):
    admin = tenants[("a", "admin")][0]
    n_threads, n_recs = 12, 4
    recs = [propose(engine, "a").id for _ in range(n_recs)]
    outcomes: dict[str, list[str]] = {r: [] for r in recs}
    lock = threading.Lock()
    for rid in recs:
        barrier = threading.Barrier(n_threads)

        def worker(i, rid=rid, barrier=barrier):
            barrier.wait()
            try:
                _decide(engine, admin, rid, i)
                res = "won"
            except (VersionConflict, IllegalTransition) as exc:
                res = type(exc).__name__
            with lock:
                outcomes[rid].append(res)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for rid, res in outcomes.items():
        c = Counter(res)
        print(f"{engine.dialect.name} {rid[:8]}: {dict(c)}")
        assert c["won"] == 1 and sum(c.values()) == n_threads, c
    with session_scope(engine) as s:
        states = {lifecycle.get(s, "a", r).state for r in recs}
        assert states <= {"approved", "overridden", "rejected"}
        decided_to_send = sum(lifecycle.get(s, "a", r).state != "rejected" for r in recs)
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == decided_to_send
        assert audit.verify(s, "a").ok
        page = events.read(s, "a", limit=10_000)
        assert [e.seq for e in page.events] == list(range(1, len(page.events) + 1))


@pytest.mark.slow
def test_process_race_exactly_one_winner(engine, db_url, tenants, tmp_path):
    _, key = tenants[("a", "admin")]
    recs = [propose(engine, "a").id for _ in range(6)]
    start = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests/workflow/_race_child.py"),
                db_url,
                key,
                str(start),
                ",".join(recs),
                action,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        for action in ("approve", "override", "reject", "approve")
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.ready.*"))) < len(procs):  # every child imported and connected
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a racer did not start"
        time.sleep(0.02)
    start.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    for rid in recs:
        c = Counter(r[rid] for r in results)
        print(f"{engine.dialect.name} processes {rid[:8]}: {dict(c)}")
        assert c["won"] == 1 and sum(c.values()) == len(procs), c
    with session_scope(engine) as s:
        assert audit.verify(s, "a").ok


def test_compare_and_set_catches_a_commit_between_read_and_write(engine, tenants):
    """The competitor commits after our read and before our UPDATE: only the version column can tell."""
    admin = tenants[("a", "admin")][0]
    rid = propose(engine, "a").id

    def competitor(row):
        assert row["version"] == 2  # we have read version 2 ...
        t = threading.Thread(target=lambda: _decide(engine, admin, rid, 0))  # ... and someone approves it now
        t.start()
        t.join()

    with session_scope(engine) as s:
        try:
            lifecycle._transition(s, "a", rid, "reject", actor="slow", expected_version=2, guard=competitor)
            raise AssertionError("the stale write went through")
        except VersionConflict as exc:
            assert (exc.expected, exc.current, exc.state) == (2, 3, "approved")
    with session_scope(engine) as s:
        assert lifecycle.get(s, "a", rid).state == "approved"
