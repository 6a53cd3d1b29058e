"""Shared set-up of the page tests: a migrated state store with two tenants, keys, a routed recommendation,
and
the decision app with a real torch predictor that knows the recommendation's unit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PagesWorld:
    app: object
    engine: object
    keys: dict
    rec_id: str
    rec_version: int


def make_world(settings) -> PagesWorld:
    from features.store._db import session_scope
    from serving.api.main import build_decision_app
    from serving.api.routes.forecasts import LocalForecaster
    from tests.serving._mlp_predictor import MLPSpec, QuantileMLP, TorchQuantilePredictor, synthetic_histories
    from tests.workflow._helpers import seed_catalogue
    from workflow import access, lifecycle
    from workflow.schemas import RecommendationIn

    spec = MLPSpec(n_units=3, lookback=24, horizon=6, hidden=16)
    _, hist = synthetic_histories(spec)
    predictor = TorchQuantilePredictor(
        QuantileMLP(spec, 1),
        ["DC-1|SKU-9", "DC-2|SKU-9", "DC-1|SKU-8"],
        hist,
        spec.quantiles,
        spec.horizon,
        "7",
    )
    app = build_decision_app(settings, LocalForecaster(predictor))
    engine = app.state.engine
    from features.store._migrate import migrate

    migrate(engine)
    keys = {}
    with session_scope(engine) as s:
        for tenant, roles in (("a", ["planner"]), ("a", ["viewer"]), ("b", ["planner", "approver"])):
            access.ensure_tenant(s, tenant)
            seed_catalogue(s, tenant, skus=("SKU-8", "SKU-9"))
            keys[f"{tenant}-{roles[0]}"] = access.create_key(s, tenant, roles, actor="test")[1]
        rec = lifecycle.propose(
            s,
            "a",
            RecommendationIn(
                kind="purchase_order",
                sku_id="SKU-9",
                location_id="DC-1",
                supplier_id="SUP-1",
                quantity=300.0,
                unit_cost=2.5,
                need_by="2026-12-20",
                promised_lead_time_days=45,
                route={"queue": "buyers", "role": "planner", "rule": "value>100", "reason": "needs review"},
                evidence={
                    "model_version": "7",
                    "quantiles": {"p50": 90.0},
                    "inventory_position": 250.0,
                    "simulation": {"safety_stock": 60.0, "reorder_point": 180.0},
                },
            ),
            actor="planning:test",
        )
    return PagesWorld(app=app, engine=engine, keys=keys, rec_id=rec.id, rec_version=rec.version)


def outbox_for(engine, tenant: str, rec_id: str) -> list:
    from sqlalchemy import select

    from features.store._db import session_scope
    from workflow._models import OutboxItem

    with session_scope(engine) as s:
        return list(
            s.scalars(
                select(OutboxItem).where(
                    OutboxItem.tenant_id == tenant, OutboxItem.recommendation_id == rec_id
                )
            )
        )
