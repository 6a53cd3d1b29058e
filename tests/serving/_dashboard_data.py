"""Dashboard test data: a small real tenant's facts, plan proposals, decisions and two monitoring runs.

Sales, inventory snapshots and two stored forecast runs (model versions ``v1`` and ``v2``) go in through the
fact stores, with the catalogue the monitoring job values and groups by (SKU-9 in category ``snacks`` at
2.0 from its cheaper supplier, SKU-8 without a category at 4.0; service targets 95 % at DC-1, 90 % at
DC-2); six recommendations are proposed as a plan run's hand-off would (proposal key
``plan:<run>:...``, planning's simulation section in the evidence); a planner approves, overrides with
reason codes and rejects through the lifecycle; then the real monitoring job runs twice.
"""

from __future__ import annotations

from datetime import date, timedelta

D0 = date(2026, 3, 1)
DAYS = 40


def fill(engine, tenant: str, facts_dir, planner) -> dict:
    """Store the facts, propose, decide and run monitoring twice; returns the ids and run ids."""
    import polars as pl

    from features.facts import write_facts
    from features.forecasts import ForecastRunMeta, write_forecasts
    from features.store import session_scope
    from workflow import lifecycle
    from workflow.monitoring import run_monitoring
    from workflow.schemas import ApproveIn, OverrideIn, RecommendationIn, RejectIn

    units = [("SKU-9", "DC-1"), ("SKU-8", "DC-1"), ("SKU-9", "DC-2")]
    _catalogue(engine, tenant, units)
    sales = pl.DataFrame(
        [
            (s, loc, "c", D0 + timedelta(days=d), float(5 + 3 * u + (d * 7 + u) % 5))
            for u, (s, loc) in enumerate(units)
            for d in range(DAYS)
        ],
        schema=["sku_id", "location_id", "channel_id", "date", "qty"],
        orient="row",
    )
    write_facts("sales", tenant, sales, "dash-sales", facts_dir=facts_dir)
    inv = pl.DataFrame(
        [
            (s, loc, D0 + timedelta(days=d), 0.0 if (u == 1 and d == 30) else (40.0, 240.0, 1600.0)[u])
            for u, (s, loc) in enumerate(units)
            for d in (28, 30, 33, 39)
        ],
        schema=["sku_id", "location_id", "date", "on_hand"],
        orient="row",
    ).with_columns(pl.lit(0.0).alias("on_order"), pl.lit(0.0).alias("backorders"))
    write_facts("inventory", tenant, inv, "dash-inv", facts_dir=facts_dir)
    for run, version, origin, bias in (("f1", "v1", 20, 2.0), ("f2", "v2", 27, -1.0)):
        rows = [
            dict(
                unique_id=f"{s}|{loc}|c",
                level="bottom",
                sku_id=s,
                location_id=loc,
                channel_id="c",
                date=D0 + timedelta(days=origin + h),
                horizon=h,
                source="model:m",
                model_version=version,
                cold_start=False,
                p10=4.0 + 3 * u,
                p50=7.0 + 3 * u + bias,
                p90=11.0 + 3 * u + h,
            )
            for u, (s, loc) in enumerate(units)
            for h in range(1, 9)
        ]
        meta = ForecastRunMeta(
            run_id=run,
            tenant=tenant,
            stage="base",
            freq="D",
            horizon=8,
            levels=(0.1, 0.5, 0.9),
            data_watermark="w",
            model_version=version,
        )
        write_forecasts(tenant, pl.DataFrame(rows), meta, facts_dir=facts_dir)
    recs_in = [
        RecommendationIn(
            kind="purchase_order",
            sku_id=s,
            location_id=loc,
            supplier_id="SUP-1",
            quantity=100.0 + 10 * i,
            unit_cost=2.5,
            need_by=D0 + timedelta(days=10 + i),
            promised_lead_time_days=7,
            route={"queue": "buyers", "role": "planner", "rule": "value>100", "reason": "dashboard data"},
            evidence={
                "model_version": "v2",
                "assumptions": {"as_of": D0.isoformat()},  # the overrides' windows start on the plan date
                "simulation": {
                    "fill_target": 0.95 if loc == "DC-1" else 0.9,
                    "fill_rate_at_level": 0.93 + 0.01 * (i % 3),
                    "fill_rate_no_order": 0.6 + 0.05 * i,
                    "stockout_probability": 0.3 - 0.02 * i,
                },
            },
            proposal_key=f"plan:dash-plan:purchase:{s}|{loc}|{i}",
        )
        for i, (s, loc) in enumerate(units * 2)
    ]
    with session_scope(engine) as s:
        recs = lifecycle.propose_many(s, tenant, recs_in, actor="planning:test")
        lifecycle.approve(s, planner, recs[0].id, ApproveIn(version=recs[0].version))
        lifecycle.override(
            s,
            planner,
            recs[1].id,
            OverrideIn(version=recs[1].version, quantity=150.0, reason_code="promotion"),
        )
        lifecycle.override(
            s,
            planner,
            recs[2].id,
            OverrideIn(version=recs[2].version, quantity=60.0, reason_code="promotion"),
        )
        lifecycle.override(
            s, planner, recs[3].id, OverrideIn(version=recs[3].version, quantity=90.0, reason_code="capacity")
        )
        lifecycle.reject(s, planner, recs[4].id, RejectIn(version=recs[4].version, reason_code="duplicate"))
    runs = [run_monitoring(engine, tenant, facts_dir=facts_dir).run_id for _ in range(2)]
    return {"recs": [r.id for r in recs], "runs": runs}


def _catalogue(engine, tenant: str, units) -> None:
    """SKUs, locations, suppliers, terms and planning units, as ingest would store them."""
    from sqlalchemy import delete

    from features.store import Base, Channel, Location, Sku, Supplier, SupplierTerm, session_scope

    pu = Base.metadata.tables["planning_units"]
    with session_scope(engine) as s:
        s.merge(Sku(tenant_id=tenant, sku_id="SKU-9", category="snacks"))
        s.merge(Sku(tenant_id=tenant, sku_id="SKU-8", category=None))
        for loc in ("DC-1", "DC-2"):
            s.merge(Location(tenant_id=tenant, location_id=loc, kind="dc"))
        s.merge(Channel(tenant_id=tenant, channel_id="c"))
        for sup in ("SUP-1", "SUP-2"):
            s.merge(Supplier(tenant_id=tenant, supplier_id=sup))
        s.flush()
        for sup, sku, cost in (("SUP-1", "SKU-9", 2.0), ("SUP-2", "SKU-9", 3.0), ("SUP-1", "SKU-8", 4.0)):
            s.merge(
                SupplierTerm(
                    tenant_id=tenant, supplier_id=sup, sku_id=sku, unit_cost=cost, moq=0, pack_size=1,
                    promised_lead_time_days=7,
                )
            )
        s.execute(delete(pu).where(pu.c.tenant_id == tenant))
        s.execute(
            pu.insert(),
            [
                dict(
                    tenant_id=tenant, sku_id=sku, location_id=loc, channel_id="c",
                    policy_kind="periodic_review", review_period_days=7,
                    service_target=0.95 if loc == "DC-1" else 0.9,
                )
                for sku, loc in units
            ],
        )
