"""The dashboards' reads (``workflow.dashboards``) on SQLite and PostgreSQL: figures over runs, plan service
by group, decisions per day, overrides by reason; each tenant sees its own only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from features.store import Sku
from features.store._db import session_scope, utcnow
from tests.workflow._helpers import rec_in
from workflow import dashboards as wd
from workflow import lifecycle
from workflow._models import TelemetryPoint
from workflow.schemas import ApproveIn, OverrideIn, RejectIn


def _plan(engine, run: str, rows):
    recs = [
        rec_in(
            sku_id=sku,
            location_id=loc,
            quantity=qty,
            proposal_key=f"plan:{run}:purchase:{sku}|{loc}",
            evidence={
                "model_version": "3",
                "simulation": {
                    "fill_target": target,
                    "fill_rate_at_level": with_order,
                    "fill_rate_no_order": without,
                    "stockout_probability": 1 - without,
                },
            },
        )
        for sku, loc, qty, target, with_order, without in rows
    ]
    with session_scope(engine) as s:
        return lifecycle.propose_many(s, "a", recs, actor="planning:test")


def test_service_by_group_reads_the_newest_plan_runs_evidence(engine, tenants):
    with session_scope(engine) as s:
        assert wd.service_by_group(s, "a") == {"plan_run": None, "groups": []}
    _plan(engine, "old", [("SKU-1", "DC-1", 10.0, 0.5, 0.5, 0.1)])
    _plan(
        engine,
        "new",
        [
            ("SKU-1", "DC-1", 100.0, 0.95, 0.96, 0.70),
            ("SKU-2", "DC-1", 50.0, 0.95, 0.94, 0.60),
            ("SKU-3", "DC-2", 20.0, 0.90, 0.91, 0.80),
        ],
    )
    with session_scope(engine) as s:
        s.execute(
            update(Sku)
            .where(Sku.tenant_id == "a", Sku.sku_id.in_(["SKU-1", "SKU-2"]))
            .values(category="cold")
        )
        got = wd.service_by_group(s, "a", "location")
        assert got["plan_run"] == "new"
        g = {r["group"]: r for r in got["groups"]}
        assert set(g) == {"DC-1", "DC-2"} and g["DC-1"]["n"] == 2
        assert g["DC-1"]["fill_target"] == pytest.approx(0.95)
        assert g["DC-1"]["fill_with_order"] == pytest.approx(0.95)
        assert g["DC-1"]["fill_without_order"] == pytest.approx(0.65)
        assert g["DC-1"]["value"] == pytest.approx(150 * 2.5)
        cat = {r["group"]: r for r in wd.service_by_group(s, "a", "category")["groups"]}
        assert set(cat) == {"cold", "(none)"} and cat["cold"]["n"] == 2 and cat["(none)"]["n"] == 1
        assert wd.service_by_group(s, "b")["groups"] == []
        with pytest.raises(ValueError, match="by: expected one of location, category"):
            wd.service_by_group(s, "a", "supplier")


def test_decisions_and_overrides_by_reason(engine, tenants):
    recs = _plan(engine, "r1", [(f"SKU-{i}", "DC-1", 100.0, 0.9, 0.9, 0.5) for i in range(5)])
    planner = tenants[("a", "planner")][0]
    with session_scope(engine) as s:
        lifecycle.approve(s, planner, recs[0].id, ApproveIn(version=recs[0].version))
        lifecycle.override(
            s, planner, recs[1].id, OverrideIn(version=recs[1].version, quantity=150, reason_code="promo")
        )
        lifecycle.override(
            s, planner, recs[2].id, OverrideIn(version=recs[2].version, quantity=40, reason_code="promo")
        )
        lifecycle.override(
            s, planner, recs[3].id, OverrideIn(version=recs[3].version, quantity=80, reason_code="cap")
        )
        lifecycle.reject(s, planner, recs[4].id, RejectIn(version=recs[4].version, reason_code="dup"))
    with session_scope(engine) as s:
        days = wd.decisions_by_day(s, "a")
        assert {r["state"]: r["n"] for r in days} == {"approved": 1, "overridden": 3, "rejected": 1}
        assert {r["day"] for r in days} == {utcnow().date()}
        assert all(r["mean_hours"] is not None and 0 <= r["mean_hours"] < 1 for r in days)
        by = wd.overrides_by_reason(s, "a")
        assert [r["reason"] for r in by] == ["promo", "cap"]
        assert by[0] == {"reason": "promo", "n": 2, "proposed": 200.0, "final": 190.0, "up": 1}
        assert wd.decisions_by_day(s, "b") == [] and wd.overrides_by_reason(s, "b") == []


def test_figure_history_keeps_the_last_runs_and_the_prefixes(engine, tenants):
    t0 = utcnow() - timedelta(days=3)
    with session_scope(engine) as s:
        for k in range(3):
            for metric, v in (
                ("inventory_stockout_rate", 0.1 * k),
                ("adoption_acceptance_rate", 0.5),
                ("other", 1),
            ):
                s.add(
                    TelemetryPoint(
                        tenant_id="a",
                        metric=metric,
                        labels={},
                        value=v,
                        n=1,
                        at=t0 + timedelta(days=k),
                        run_id=f"m{k}",
                    )
                )
    with session_scope(engine) as s:
        rows = wd.figure_history(s, "a", ("inventory_",), runs=2)
        assert [(r["run_id"], r["value"]) for r in rows] == [
            ("m1", pytest.approx(0.1)),
            ("m2", pytest.approx(0.2)),
        ]
        assert len(wd.figure_history(s, "a", ("inventory_", "adoption_"))) == 6
        assert wd.figure_history(s, "a", ("inventory%",)) == []  # a prefix, not a pattern
        assert wd.figure_history(s, "b", ("inventory_",)) == []
