"""Cycle run records on a real state store (SQLite, and PostgreSQL when REPLENISH_TEST_PG_URL is set)."""

from __future__ import annotations

import pytest

from features.runs import (
    create_run,
    fail_run,
    fail_stage,
    finish_run,
    finish_stage,
    get_run,
    list_runs,
    start_run,
    start_stage,
)
from features.store._db import session_scope
from features.store._tenants import Tenant


@pytest.fixture
def tenants(engine):
    with session_scope(engine) as s:
        s.add_all([Tenant(tenant_id="acme", name="acme"), Tenant(tenant_id="other", name="other")])
    return engine


def test_a_succeeded_run_records_each_stage_with_counts_and_outputs(tenants):
    engine = tenants
    run_id = create_run(engine, "acme", ["forecast", "plan"], requested_by="cli", options={"train": False})
    queued = get_run(engine, "acme", run_id)
    assert queued.status == "queued" and [s.status for s in queued.stages] == ["pending", "pending"]
    start_run(engine, "acme", run_id)
    start_stage(engine, "acme", run_id, "forecast")
    assert get_run(engine, "acme", run_id).stage("forecast").status == "running"
    finish_stage(engine, "acme", run_id, "forecast", counts={"units": 12}, outputs={"forecast_run": "f1"})
    start_stage(engine, "acme", run_id, "plan")
    finish_stage(engine, "acme", run_id, "plan", counts={"recommendations": 3}, outputs={"plan_run": "p1"},
                 seconds=1.5)
    finish_run(engine, "acme", run_id)

    run = get_run(engine, "acme", run_id)
    assert run.status == "succeeded" and run.error is None and run.requested_by == "cli"
    assert run.options == {"train": False}
    assert [s.stage for s in run.stages] == ["forecast", "plan"]
    fc = run.stage("forecast")
    assert fc.status == "succeeded" and fc.counts == {"units": 12} and fc.seconds is not None
    assert fc.started_at <= fc.finished_at and fc.started_at.tzinfo is not None
    assert run.stage("plan").seconds == 1.5
    assert run.outputs() == {"forecast_run": "f1", "plan_run": "p1"}
    assert run.started_at <= run.finished_at
    assert run.to_dict()["stages"][1]["outputs"] == {"plan_run": "p1"}


def test_a_failed_stage_fails_the_run_with_its_message_and_skips_the_rest(tenants):
    engine = tenants
    run_id = create_run(engine, "acme", ["forecast", "reconcile", "plan"])
    start_run(engine, "acme", run_id)
    start_stage(engine, "acme", run_id, "forecast")
    message = "tenant 'acme' has no champion: run replenish cycle --train"
    fail_stage(engine, "acme", run_id, "forecast", message)
    run = get_run(engine, "acme", run_id)
    assert run.status == "failed"
    assert run.error == "forecast: tenant 'acme' has no champion: run replenish cycle --train"
    assert [(s.stage, s.status) for s in run.stages] == [
        ("forecast", "failed"), ("reconcile", "skipped"), ("plan", "skipped")]
    assert "no champion" in run.stage("forecast").error and run.finished_at is not None


def test_fail_run_outside_a_stage_fails_the_running_stage(tenants):
    engine = tenants
    run_id = create_run(engine, "acme", ["plan", "propose"])
    start_run(engine, "acme", run_id)
    start_stage(engine, "acme", run_id, "plan")
    fail_run(engine, "acme", run_id, "interrupted")
    run = get_run(engine, "acme", run_id)
    assert run.status == "failed" and run.error == "interrupted"
    assert [s.status for s in run.stages] == ["failed", "skipped"]


def test_runs_are_per_tenant_and_listed_newest_first(tenants):
    engine = tenants
    first = create_run(engine, "acme", ["plan"])
    second = create_run(engine, "acme", ["forecast"])
    create_run(engine, "other", ["plan"])
    assert [r.run_id for r in list_runs(engine, "acme")] == [second, first]
    assert {r.run_id for r in list_runs(engine, "acme")} == {first, second}
    assert len(list_runs(engine, "acme", limit=1)) == 1
    with pytest.raises(LookupError, match="no cycle run"):
        get_run(engine, "other", first)
    with pytest.raises(LookupError):
        start_stage(engine, "other", first, "plan")
    assert list_runs(engine, "nobody") == []


def test_create_run_refuses_unknown_stages_and_unknown_tenants(tenants):
    with pytest.raises(ValueError, match="expected one or more distinct names"):
        create_run(tenants, "acme", ["forecast", "bake"])
    with pytest.raises(ValueError):
        create_run(tenants, "acme", [])
    with pytest.raises(ValueError):
        create_run(tenants, "acme", ["plan", "plan"])
    with pytest.raises(LookupError, match="tenant 'ghost' does not exist"):
        create_run(tenants, "ghost", ["plan"])
