"""Exceptions as workflow objects (workflow.exceptions) on real stores, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from features.store._db import session_scope, utcnow
from workflow import events
from workflow import exceptions as wx
from workflow.errors import InvalidInput, NotFound


def _exc(kind="stockout_risk", sku="SKU-1", loc="DC-1", severity="medium", **kw) -> wx.ExceptionIn:
    return wx.ExceptionIn(
        exception_type=kind, severity=severity, sku_id=sku, location_id=loc, message=f"{kind} at {sku}", **kw
    )


def _exception_events(engine, tenant):
    with session_scope(engine) as s:
        page = events.read(s, tenant, after=0, limit=1000)
    return [(e.type, e.payload["id"], e.payload["state"]) for e in page.events if e.topic == "exception"]


def test_lifecycle_open_assign_acknowledge_resolve_with_events_and_audit(engine):
    from workflow import access

    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
        access.ensure_tenant(s, "b")
    with session_scope(engine) as s:
        opened, what = wx.open_exception(
            s, "a", _exc(owner_team="buyers"), actor="planning:r1", source="plan"
        )
    assert what == "opened" and opened.state == "open" and opened.owner_team == "buyers"
    assert opened.exception_key == "a|SKU-1|DC-1|stockout_risk"
    # a medium stockout risk is due one default SLA (8 h) after opening
    assert opened.due_at - opened.opened_at == timedelta(hours=wx.DEFAULT_SLA_HOURS["stockout_risk"])
    with session_scope(engine) as s:
        assigned = wx.assign(s, "a", opened.id, assignee="pat", actor="key:lead", expected_version=1)
        assert (assigned.state, assigned.assignee, assigned.version) == ("assigned", "pat", 2)
        with pytest.raises(wx.ExceptionVersionConflict):  # someone acting on what they saw before the assign
            wx.acknowledge(s, "a", opened.id, actor="key:pat", expected_version=1)
    with session_scope(engine) as s:
        acked = wx.acknowledge(s, "a", opened.id, actor="key:pat", note="on it", expected_version=2)
        assert acked.state == "acknowledged" and acked.acknowledged_at is not None
        with pytest.raises(wx.ExceptionIllegalTransition) as err:
            wx.acknowledge(s, "a", opened.id, actor="key:pat")
        assert err.value.status_code == 409 and "acknowledged" in str(err.value)
    with session_scope(engine) as s:
        with pytest.raises(NotFound):  # another tenant's id does not exist for b
            wx.resolve(s, "b", opened.id, actor="key:x")
    with session_scope(engine) as s:
        done = wx.resolve(s, "a", opened.id, actor="key:pat", reason="expedited PO 17")
    assert (done.state, done.resolution, done.closed_by) == ("resolved", "resolved", "key:pat")
    with session_scope(engine) as s:
        with pytest.raises(wx.ExceptionIllegalTransition):
            wx.dismiss(s, "a", opened.id, actor="key:pat", reason="too late")
        trail = [(e.action, e.actor, e.reason) for e in wx.history(s, "a", opened.id)]
    assert trail == [
        ("exception.opened", "planning:r1", None),
        ("exception.assigned", "key:lead", None),
        ("exception.acknowledged", "key:pat", "on it"),
        ("exception.resolved", "key:pat", "expedited PO 17"),
    ]
    evs = _exception_events(engine, "a")
    assert [(t, st) for t, _, st in evs] == [
        ("exception.opened", "open"),
        ("exception.assigned", "assigned"),
        ("exception.acknowledged", "acknowledged"),
        ("exception.resolved", "resolved"),
    ]
    assert _exception_events(engine, "b") == []


def test_dismiss_needs_a_reason_and_upsert_keeps_one_active_per_key(engine):
    from workflow import access

    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
    with session_scope(engine) as s:
        first, _ = wx.open_exception(s, "a", _exc(), actor="supplier:S1", source="supplier")
        again, what = wx.open_exception(
            s, "a", _exc(severity="high", value=0.7), actor="supplier:S1", source="supplier"
        )
    assert what == "updated" and again.id == first.id and again.occurrences == 2 and again.severity == "high"
    # worse severity: due at most half the SLA after opening
    assert again.due_at <= first.opened_at + timedelta(hours=wx.DEFAULT_SLA_HOURS["stockout_risk"] / 2)
    with session_scope(engine) as s:
        with pytest.raises(InvalidInput) as err:
            wx.dismiss(s, "a", first.id, actor="key:pat", reason=" ")
        assert err.value.field == "reason"
    with session_scope(engine) as s:
        gone = wx.dismiss(s, "a", first.id, actor="key:pat", reason="supplier called: arrives tomorrow")
    assert (gone.state, gone.reason) == ("dismissed", "supplier called: arrives tomorrow")
    with session_scope(engine) as s:  # not a plan exception: raising it again after closing opens a new one
        new, what = wx.open_exception(s, "a", _exc(), actor="supplier:S1", source="supplier")
        assert what == "opened" and new.id != first.id
        active = wx.list_exceptions(s, "a", active=True)
    assert [e.id for e in active] == [new.id]


def test_escalate_overdue_moves_owner_role_and_due_once_per_sla(engine):
    from workflow import access

    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
        wx.set_rule(s, "a", "late_po", sla_hours=2, escalate_to="supply-leads", actor="key:admin")
    with session_scope(engine) as s:
        late, _ = wx.open_exception(s, "a", _exc("late_po", owner_team="buyers"), actor="t", source="plan")
        calm, _ = wx.open_exception(s, "a", _exc("overstock"), actor="t", source="plan")
    assert late.due_at - late.opened_at == timedelta(hours=2)
    later = utcnow() + timedelta(hours=3)
    with session_scope(engine) as s:
        up = wx.escalate_overdue(s, now=later)
        assert [e.id for e in up] == [late.id]
        assert (up[0].escalation_level, up[0].owner_team, up[0].route_role) == (1, "supply-leads", "approver")
        assert wx.escalate_overdue(s, "a", now=later) == []  # due again one SLA later, not on every tick
        assert [e.id for e in wx.list_exceptions(s, "a", overdue=False, active=True)] != []
    with session_scope(engine) as s:
        again = wx.escalate_overdue(s, "a", now=later + timedelta(hours=2, minutes=1))
    assert [(e.id, e.escalation_level) for e in again] == [(late.id, 2)]
    assert ("exception.escalated", late.id, "open") in _exception_events(engine, "a")
    assert calm.id not in {e[1] for e in _exception_events(engine, "a") if e[0] == "exception.escalated"}


def test_two_cycles_on_the_same_data_leave_one_open_exception_per_unit_and_type(engine, plan_result):
    from planning import save_plan
    from workflow.proposals import propose_plan

    exc = plan_result.exceptions
    assert exc.height >= 3, "the fixture must raise exceptions"
    run1 = save_plan(engine, "acme", plan_result, create_tenant=True)
    propose_plan(engine, "acme", run1)  # the hand-off takes the run's exceptions in
    first = wx.sync_plan_exceptions(engine, "acme")  # nothing new since the hand-off
    assert first["runs"] == 0
    with session_scope(engine) as s:
        after_one = wx.list_exceptions(s, "acme", active=True, limit=1000)
    assert len(after_one) == exc.height and {e.state for e in after_one} == {"open"}
    linked = [e for e in after_one if e.recommendation_ids]
    assert linked, "exceptions of units with a recommendation link it"

    run2 = save_plan(engine, "acme", plan_result)  # the second cycle finds the same problems
    second = wx.sync_plan_exceptions(engine, "acme")
    assert (second["runs"], second["opened"], second["updated"], second["cleared"]) == (1, 0, exc.height, 0)
    with session_scope(engine) as s:
        active = wx.list_exceptions(s, "acme", active=True, limit=1000)
        every = wx.list_exceptions(s, "acme", limit=1000)
    keys = [e.exception_key for e in active]
    assert len(keys) == len(set(keys)) == exc.height == len(every)
    assert {e.occurrences for e in active} == {2} and {e.last_run_id for e in active} == {run2}

    # a planner dismisses one; a third run without another one clears it; the dismissed one stays quiet
    gone, kept = active[0], active[1]
    with session_scope(engine) as s:
        wx.dismiss(s, "acme", gone.id, actor="key:pat", reason="known: seasonal")
    fewer = plan_result.exceptions.filter(
        ~((pl.col("sku_id") == kept.sku_id) & (pl.col("exception_type") == kept.exception_type)
          & (pl.col("location_id").eq_missing(kept.location_id)))
    )  # fmt: skip
    import dataclasses

    save_plan(engine, "acme", dataclasses.replace(plan_result, exceptions=fewer))
    third = wx.sync_plan_exceptions(engine, "acme")
    assert third["cleared"] == 1 and third["quiet"] == 1 and third["opened"] == 0
    with session_scope(engine) as s:
        cleared = wx.get(s, "acme", kept.id)
        quiet = wx.get(s, "acme", gone.id)
    assert (cleared.state, cleared.resolution) == ("resolved", "cleared")
    assert quiet.state == "dismissed" and quiet.occurrences == 3 and quiet.cleared_at is None
    types = [t for t, i, _ in _exception_events(engine, "acme") if i == kept.id]
    assert types == ["exception.opened", "exception.updated", "exception.cleared"]

    # a re-plan of a few units (after a supplier response) updates what it finds and clears nothing
    found = fewer.filter(pl.col("location_id").is_not_null()).head(1)
    few = plan_result.units.join(
        found.select("sku_id", "location_id"), on=["sku_id", "location_id"], how="semi"
    )
    meta = {**plan_result.meta, "n_units": few.height}
    save_plan(engine, "acme", dataclasses.replace(plan_result, units=few, exceptions=found, meta=meta))
    fourth = wx.sync_plan_exceptions(engine, "acme")
    taken = fourth["opened"] + fourth["updated"] + fourth["quiet"]
    assert (fourth["runs"], fourth["cleared"], taken) == (1, 0, found.height)
    with session_scope(engine) as s:
        assert len(wx.list_exceptions(s, "acme", active=True, limit=1000)) == exc.height - 2
    assert found.height == 1 and few.height == 1


def test_exception_updates_go_through_the_outbox_where_the_tenant_rule_asks(engine, tmp_path):
    import numpy as np

    from workflow import access, outbox
    from workflow.adapters import FileDropAdapter
    from workflow.dispatcher import Dispatcher

    with session_scope(engine) as s:
        access.ensure_tenant(s, "a")
        wx.set_rule(s, "a", "short_shipment", writeback=True, actor="key:admin")
    with session_scope(engine) as s:
        sent, _ = wx.open_exception(
            s, "a", _exc("short_shipment", po_id="PO-7"), actor="supplier:S1", source="supplier"
        )
        quiet, _ = wx.open_exception(s, "a", _exc("overstock"), actor="planning:r1", source="plan")  # no rule
    with session_scope(engine) as s:
        wx.acknowledge(s, "a", sent.id, actor="key:pat")
        wx.resolve(s, "a", quiet.id, actor="key:pat")
        items = outbox.list_items(s, "a")
    assert [(i.kind, i.idempotency_key, i.recommendation_id) for i in items] == [
        ("exception_update", f"exc-{sent.id}-v1", None),
        ("exception_update", f"exc-{sent.id}-v2", None),
    ]
    assert [i.payload["change"] for i in items] == ["opened", "acknowledged"]
    assert items[1].payload["state"] == "acknowledged" and items[1].payload["po_id"] == "PO-7"

    stats = Dispatcher(engine, FileDropAdapter(tmp_path / "drop"), rng=np.random.default_rng(0)).run(
        until_idle=True
    )
    assert stats.delivered == 2, stats
    with session_scope(engine) as s:
        assert {i.status for i in outbox.list_items(s, "a")} == {"delivered"}
        assert wx.get(s, "a", sent.id).state == "acknowledged"  # delivering changes no state
    assert [t for t, i, _ in _exception_events(engine, "a") if i == sent.id or t.endswith("update_sent")] == [
        "exception.opened", "exception.acknowledged", "exception.update_sent", "exception.update_sent",
    ]  # fmt: skip
    assert list((tmp_path / "drop" / "a" / "exception_update").glob("*.json"))
