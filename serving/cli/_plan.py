"""Planning command: ``replenish plan`` (recommendations, PO drafts and exceptions to the state store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

_DEFAULT_ROUTING = Path(__file__).resolve().parents[2] / "configs" / "routing.yaml"
_WF_KIND = {"purchase": "purchase_order", "transfer": "transfer", "allocation": "allocation"}


def _frames_from_dir(directory: Path) -> dict:
    import polars as pl

    tables = {}
    for kind in (
        "sales",
        "skus",
        "locations",
        "supplier_terms",
        "lead_times",
        "inventory",
        "purchase_orders",
        "planning_units",
    ):
        pq, csv = directory / f"{kind}.parquet", directory / f"{kind}.csv"
        if pq.exists():
            tables[kind] = pl.read_parquet(pq)
        elif csv.exists():
            tables[kind] = pl.read_csv(csv, try_parse_dates=True)
        else:
            raise FileNotFoundError(
                f"{directory}: missing {kind}.csv or {kind}.parquet (as `replenish synth` writes them)"
            )
    return tables


def _propose(engine, tenant: str, run_id: str, recommendations) -> tuple[int, str | None]:
    """Hand the routed recommendations to the workflow lifecycle (proposed -> routed / auto-approved)."""
    try:
        from workflow.lifecycle import propose_many
        from workflow.schemas import AutoApprove, EvidenceIn, RecommendationIn, Route
    except ImportError as exc:  # the control plane is optional for planning
        return 0, f"workflow not available ({exc}); recommendations stay in plan_recommendations"
    from features.store._db import session_scope
    from planning._evidence import evidence_record

    recs = []
    for r in recommendations.iter_rows(named=True):
        doc = evidence_record(r)
        sim = doc.get("simulation", {})
        evidence = EvidenceIn(
            forecast_version=doc["forecast"]["version"],
            model_version=doc["forecast"]["model_version"],
            quantiles={
                k: v
                for k, v in (
                    ("p05", sim.get("protection_demand_p05")),
                    ("p50", sim.get("protection_demand_p50")),
                    ("p95", sim.get("protection_demand_p95")),
                )
                if v is not None
            },
            inventory_position=doc["inventory"]["position"],
            lead_time=doc["lead_time"],
            simulation=sim,
            constraints={"bound_by": doc["order"]["bound_by"], "lot_size": doc["order"].get("lot_size")},
            assumptions={"forecast_source": doc["forecast"]["source"], "plan_run": run_id},
            planning_evidence=doc,
        )
        decision = (
            {"route": Route(queue=r["route_queue"], role=r["route_role"], rule=r["rule"], reason=r["reason"])}
            if r["action"] == "route"
            else {"auto_approve": AutoApprove(rule=r["rule"], reason=r["reason"])}
        )
        recs.append(
            RecommendationIn(
                kind=_WF_KIND[r["kind"]],
                sku_id=r["sku_id"],
                location_id=r["location_id"],
                from_location_id=r.get("from_location_id"),
                supplier_id=r.get("supplier_id") if r["kind"] != "transfer" else None,
                quantity=float(r["order_qty"]),
                value=float(r["order_value"] or 0.0),
                need_by=r.get("expected_arrival"),
                evidence=evidence,
                proposal_key=f"{run_id}:{r['kind']}:{r['sku_id']}:{r['location_id']}:{r.get('from_location_id')}",
                **decision,
            )
        )
    with session_scope(engine) as s:  # the whole plan in one transaction
        propose_many(s, tenant, recs, actor=f"planning:{run_id}")
    n = len(recs)
    return n, None


def plan_cmd(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    synthetic: Annotated[
        int | None,
        typer.Option(
            "--synthetic", min=1, help="Plan a synthetic tenant of this many series (features.synth, weekly)."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Folder of files as `replenish synth` writes them (sales, skus, ... csv/parquet)."
        ),
    ] = None,
    periods: Annotated[int, typer.Option(min=12, help="Weeks of synthetic history.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data and of the simulation.")] = 0,
    routing: Annotated[
        Path | None, typer.Option(help="Routing rule file (default: configs/routing.yaml of the project).")
    ] = None,
    paths: Annotated[int, typer.Option(min=16, help="Monte-Carlo paths per unit.")] = 256,
    budget: Annotated[
        float | None,
        typer.Option(
            help="Budget per supplier for this review (currency); orders cut where they buy least service."
        ),
    ] = None,
    service_group: Annotated[
        str | None,
        typer.Option(
            help="Meet fill targets per group of units instead of in every unit: a unit column "
            "(location_id, region, ...) or 'all'; each unit's fill rate is allocated where stock buys most "
            "service."
        ),
    ] = None,
    fill_floor: Annotated[
        float,
        typer.Option(min=0.0, max=0.98, help="With --service-group: no unit's fill rate below this."),
    ] = 0.8,
    database_url: Annotated[
        str | None, typer.Option(help="State store URL (default: the configured one).")
    ] = None,
    propose: Annotated[
        bool,
        typer.Option(
            "--propose/--no-propose", help="Also put the recommendations into the workflow lifecycle."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON line.")] = False,
) -> None:
    """Plan replenishment: levels by simulation, orders, PO drafts, transfers, exceptions, routed, stored.

    Data: --synthetic N, --data DIR, or (neither) the tenant's ingested data in the stores.
    """
    from rich.console import Console

    from features.settings import get_settings
    from features.store._db import make_engine
    from features.store._migrate import migrate
    from planning._inputs import inputs_from_frames
    from planning._plan import Budget, PlanConfig, plan
    from planning._routing import RuleError, load_rules
    from planning._store import identity_issues, save_plan

    console = Console(soft_wrap=True)
    if synthetic is not None and data is not None:
        console.print(
            "[red]give at most one of --synthetic N or --data DIR (neither: the tenant's stored data)[/red]"
        )
        raise typer.Exit(2)
    try:
        rules = load_rules(routing or _DEFAULT_ROUTING)
    except RuleError as exc:
        console.print(f"[red]routing rules refused: {exc}[/red]")
        raise typer.Exit(2) from None
    settings = get_settings()
    tenant = tenant or settings.tenant
    if database_url is None:
        settings.ensure_home()
    engine = make_engine(database_url or settings.database_url)
    migrate(engine)
    if synthetic is not None:
        from features.synth import generate

        tables = generate(synthetic, periods, freq="W", seed=seed).tables()
    elif data is not None:
        try:
            tables = _frames_from_dir(data)
        except FileNotFoundError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    else:  # the tenant's ingested data: reference data from the state store, facts from the Parquet store
        import features.store._schema  # noqa: F401  (registers the data layer's tables)
        from features.tables import read_tables

        tables = read_tables(tenant, engine=engine, settings=settings)
        if tables["sales"].height == 0:
            console.print(
                f"[red]tenant {tenant!r} has no sales in the stores: ingest data (replenish ingest) "
                "or give --synthetic N / --data DIR[/red]"
            )
            raise typer.Exit(2)
    inputs = inputs_from_frames(**tables, ingest_issues=identity_issues(engine, tenant))
    budgets = ()
    if budget is not None:
        sups = inputs.units["supplier_id"].unique().to_list()
        budgets = (Budget("supplier_id", {s: budget for s in sups}),)
    if service_group not in (None, "all") and service_group not in inputs.units.columns:
        console.print(
            f"[red]--service-group {service_group!r}: not a planning-unit column; use 'all' or one of "
            f"{', '.join(sorted(inputs.units.columns))}[/red]"
        )
        raise typer.Exit(2)
    result = plan(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        lead_time_counts=inputs.lead_time_counts,
        config=PlanConfig(n_paths=paths, seed=seed, service_group=service_group, unit_fill_floor=fill_floor),
        rules=rules,
        budgets=budgets,
        extra_exceptions=inputs.exceptions,
    )
    run_id = save_plan(engine, tenant, result, create_tenant=True)
    proposed, note = _propose(engine, tenant, run_id, result.recommendations) if propose else (0, None)
    recs, exc = result.recommendations, result.exceptions
    summary = {
        "run_id": run_id,
        "tenant": tenant,
        "as_of": result.meta["as_of"],
        "units": result.meta["n_units"],
        "recommendations": recs.height,
        "by_kind": {k: n for k, n in recs.group_by("kind").len().sort("kind").iter_rows()},
        "routed_recommendations": int((recs["action"] == "route").sum()),
        "routed_exceptions": int((exc["action"] == "route").sum()),
        "auto_approved": int((recs["action"] == "auto_approve").sum()),
        "exceptions": {
            k: n for k, n in exc.group_by("exception_type").len().sort("exception_type").iter_rows()
        },
        "po_drafts": result.po_drafts.height,
        "order_value": round(float(recs["order_value"].sum()), 2),
        "forecast_source": result.meta["forecast_source"],
        "service_group": service_group,
        "proposed_to_workflow": proposed,
    }
    if note:
        summary["note"] = note
    if as_json:
        print(json.dumps(summary, default=str))
        return
    console.print(
        f"plan run [bold]{run_id}[/bold] for tenant {tenant}, as of {summary['as_of']}: "
        f"{summary['units']} units, forecast {summary['forecast_source']}"
    )
    console.print(
        f"recommendations: {summary['by_kind']} (value {summary['order_value']:,.2f}), "
        f"{summary['po_drafts']} PO drafts"
    )
    console.print(f"exceptions: {summary['exceptions']}")
    console.print(
        f"recommendations routed to planners: {summary['routed_recommendations']}, auto-approved: "
        f"{summary['auto_approved']}; exceptions routed: {summary['routed_exceptions']}"
    )
    for rule, n in recs.group_by("rule").len().sort("rule").iter_rows():
        console.print(f"  rule {rule}: {n} recommendations")
    if propose:
        console.print(f"proposed to the workflow: {proposed}" + (f" ({note})" if note else ""))


def register(app: typer.Typer) -> None:
    """Add ``replenish plan`` to the app."""
    app.command("plan")(plan_cmd)
