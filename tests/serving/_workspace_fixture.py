"""Shared set-up of the planner-workspace page tests (item page, what-if): a tenant whose data entered through
the real ingest, two stored forecast runs of two model versions, a plan run proposed into the workflow, a
configured reason-code catalogue, and a second tenant with an item of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REASONS = ["promo_end", "supplier_short", "demand_shift"]
#: Every buy goes to the buyers' queue, so the planner has routed items to work.
ROUTING = """
version: 1
default: {action: auto_approve, reason: "within policy"}
rules:
  - name: every_buy
    applies_to: [purchase]
    when:
      order_value: {gt: 0}
    route: {queue: buyers, role: planner}
    reason: "every buy is reviewed in this test"
"""


@dataclass
class Workspace:
    app: object
    engine: object
    settings: object
    keys: dict
    rec_id: str  # a routed purchase order of tenant a with an inventory position in its evidence
    sku_id: str
    location_id: str
    other_item: tuple[str, str]  # an item only tenant b knows


def _send_one(engine, key: str, rec, folder: Path) -> None:
    """``rec`` approved by an approver and delivered to the ERP (a file drop): an order sent."""
    import numpy as np

    from features.store import session_scope
    from workflow import access, lifecycle
    from workflow.adapters import FileDropAdapter
    from workflow.dispatcher import Dispatcher
    from workflow.schemas import ApproveIn

    with session_scope(engine) as s:
        lifecycle.approve(s, access.authenticate(s, key), rec.id, ApproveIn(version=rec.version))
    folder.mkdir(parents=True, exist_ok=True)
    Dispatcher(engine, FileDropAdapter(str(folder)), rng=np.random.default_rng(0)).run(until_idle=True)


def make_workspace(home: Path) -> Workspace:
    from features.settings import load_settings
    from features.store import session_scope
    from planning import parse_rules, plan_stage
    from serving.api.main import build_decision_app
    from tests.serving._serve_tenants import make_tenants, store_forecasts
    from workflow import access, lifecycle
    from workflow import queue as wq
    from workflow.proposals import propose_plan
    from workflow.schemas import RecommendationIn

    w = make_tenants(home, {"a": 1, "b": 2}, n_series=6, n_periods=80)
    fd = w.settings.facts_dir
    store_forecasts("a", w.data["a"], scale=0.8, run_id="a-1", model_version="6", facts_dir=fd)
    store_forecasts("a", w.data["a"], scale=1.0, run_id="a-2", model_version="7", facts_dir=fd)
    plan_stage(w.engine, "a", settings=w.settings, rules=parse_rules(ROUTING))
    propose_plan(w.engine, "a", None)
    keys = dict(w.keys)
    with session_scope(w.engine) as s:
        keys["a-planner"] = access.create_key(s, "a", ["planner"], actor="test")[1]
        other = lifecycle.propose(
            s,
            "b",
            RecommendationIn(
                kind="purchase_order",
                sku_id="ONLY-B",
                location_id="B-DC",
                supplier_id="SUP-B",
                quantity=5.0,
                unit_cost=1.0,
                route={"queue": "buyers", "role": "planner", "rule": "r", "reason": "b's own"},
            ),
            actor="test",
        )
        routed, _ = wq.page(s, "a", wq.QueueFilter(state="routed", kind="purchase_order"), limit=500)
        pick = next(r for r in routed if r.quantity > 0)
        approver = access.create_key(s, "a", ["approver"], actor="test")[1]
    _send_one(w.engine, approver, next(r for r in routed if r.id != pick.id), home / "erp-drop")
    settings = load_settings(home=home, reason_codes=REASONS)
    app = build_decision_app(settings, forecast_check_interval_s=0)
    return Workspace(
        app=app,
        engine=app.state.engine,
        settings=settings,
        keys=keys,
        rec_id=pick.id,
        sku_id=pick.sku_id,
        location_id=pick.location_id,
        other_item=(other.sku_id, other.location_id),
    )
