"""Scheduled jobs: the lease, one run per window, run records (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from features.store._db import utcnow
from workflow.jobs import (
    JobSpec,
    JobUnavailable,
    Scheduler,
    acquire_lease,
    claim_window,
    list_runs,
    release_lease,
    window_start,
)


def test_lease_goes_to_one_owner_until_it_expires(engine):
    now = utcnow()
    assert acquire_lease(engine, "L", "a", 10, now=now) == 1
    assert acquire_lease(engine, "L", "b", 10, now=now + timedelta(seconds=5)) == 0  # a holds it
    assert acquire_lease(engine, "L", "a", 10, now=now + timedelta(seconds=8)) == 1  # renewal: same fence
    assert acquire_lease(engine, "L", "b", 10, now=now + timedelta(seconds=17)) == 0  # renewed until 18
    assert acquire_lease(engine, "L", "b", 10, now=now + timedelta(seconds=19)) == 2  # expired: b, new fence
    release_lease(engine, "L", "b")
    assert acquire_lease(engine, "L", "a", 10, now=now + timedelta(seconds=20)) == 3  # released: a at once


def test_one_run_per_window(engine):
    w = window_start(60)
    assert w <= utcnow() < w + timedelta(seconds=60) and w.timestamp() % 60 == 0
    first = claim_window(engine, "job", w, "a")
    assert first is not None
    assert claim_window(engine, "job", w, "b") is None
    assert claim_window(engine, "job", w + timedelta(seconds=60), "b") is not None
    assert claim_window(engine, "other", w, "b") is not None


def test_scheduler_records_runs_with_status(engine):
    calls = []

    def boom():
        raise RuntimeError("store unreachable")

    def missing():
        raise JobUnavailable("no webhook target is configured")

    specs = [
        JobSpec("ok", 60, lambda: calls.append(1) or {"n": 3}),
        JobSpec("bad", 60, boom),
        JobSpec("gone", 60, missing),
    ]
    leader = Scheduler(engine, specs, owner="leader", lease_s=30, tick_s=1)
    follower = Scheduler(engine, specs, owner="follower", lease_s=30, tick_s=1)
    now = utcnow()
    assert sorted(leader.tick(now)) == ["bad", "gone", "ok"]
    assert follower.tick(now) == [] and not follower.is_leader
    assert leader.tick(now + timedelta(seconds=1)) == []  # same window: nothing again
    leader.stop()
    runs = {r["job"]: r for r in list_runs(engine)}
    assert runs["ok"]["status"] == "succeeded" and runs["ok"]["counts"] == {"n": 3}
    assert runs["bad"]["status"] == "failed" and "store unreachable" in runs["bad"]["error"]
    assert runs["gone"]["status"] == "skipped"
    assert {r["owner"] for r in runs.values()} == {"leader"}
    assert calls == [1]
    # the leader gave the lease up: the follower leads at once, but the window is already run
    assert follower.tick(now + timedelta(seconds=2)) == []
    assert follower.is_leader
    follower.stop()


def test_jobspec_refuses_bad_values():
    with pytest.raises(ValueError, match="interval_s"):
        JobSpec("x", 0.1, dict)
    with pytest.raises(ValueError, match="unique"):
        Scheduler(None, [JobSpec("x", 5, dict), JobSpec("x", 5, dict)])


def test_job_runs_are_exported_to_prometheus_without_tenant_labels(engine):
    from features.store._db import session_scope
    from workflow import telemetry

    specs = [JobSpec("expire", 60, lambda: {"n": 1}), JobSpec("cycle:acme", 60, lambda: {}, tenant_id="acme")]
    sched = Scheduler(engine, specs, owner="r1", lease_s=30, tick_s=1)
    sched.tick()
    sched.stop()
    with session_scope(engine) as s:
        text = telemetry.prometheus_text(s)
    assert 'replenish_job_runs{job="expire",status="succeeded"} 1.0' in text
    assert 'replenish_job_runs{job="cycle",status="succeeded"} 1.0' in text and "acme" not in text
    assert 'replenish_job_last_success_timestamp_seconds{job="expire"}' in text
    assert "replenish_scheduler_lease_fence 1.0" in text
