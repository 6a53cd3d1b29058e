"""Planning command: ``replenish plan`` runs the plan stage for a tenant (``planning.plan_stage``).

The command only parses arguments, calls the stage and prints its summary: the tenant's stored forecasts
(reconciled when current, else base; the history bootstrap when none) and tables are planned and the run is
stored. ``--synthetic N`` and ``--data DIR`` first ingest files into the tenant through the same ingest as
``replenish ingest`` (so they are planned by the very same stage), ``--propose`` hands the stored run to the
workflow (``workflow.proposals.propose_plan``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

#: Files ``--data DIR`` needs (as ``replenish synth`` writes them); the other kinds are ingested when present.
_REQUIRED_FILES = (
    "sales",
    "skus",
    "locations",
    "supplier_terms",
    "lead_times",
    "inventory",
    "purchase_orders",
    "planning_units",
)


def _files_in(directory: Path) -> dict[str, Path]:
    """``{kind: file}`` of the ingest kinds found in ``directory`` (``<kind>.parquet`` or ``<kind>.csv``)."""
    from features.synth import SynthData

    found = {}
    for kind in SynthData.INGEST_ORDER:
        for ext in ("parquet", "csv"):
            if (directory / f"{kind}.{ext}").exists():
                found[kind] = directory / f"{kind}.{ext}"
                break
    missing = [k for k in _REQUIRED_FILES if k not in found]
    if missing:
        raise FileNotFoundError(
            f"{directory}: missing {missing[0]}.csv or {missing[0]}.parquet "
            "(as `replenish synth` writes them)"
        )
    return found


def _ingest_files(files: dict[str, Path], tenant: str, engine, settings) -> None:
    """Ingest every file into the tenant, master data first (``SynthData.INGEST_ORDER``).

    Refused when the tenant already has sales other than these files' (re-running the same command is
    fine: ingest is idempotent), so that generated rows never mix into a tenant's own data.
    """
    from features.facts import list_periods
    from features.ingest import list_batches
    from serving.ingest import ingest_and_announce as ingest

    if list_periods("sales", tenant, facts_dir=settings.facts_dir):
        digest = hashlib.sha256(files["sales"].read_bytes()).hexdigest()
        known = {
            b["content_hash"] for b in list_batches(engine, tenant, limit=10_000) if b["kind"] == "sales"
        }
        if digest not in known:
            raise ValueError(
                f"tenant {tenant!r} already has other sales: --synthetic / --data ingest files into the "
                "tenant and would mix them in; use a new tenant (or `replenish ingest` to add files)"
            )

    for kind, path in files.items():
        if not _has_rows(path):  # e.g. no open purchase order: nothing to ingest
            continue
        res = ingest(kind, path, tenant=tenant, engine=engine, settings=settings)
        if res.status in ("refused", "rejected"):
            raise ValueError(f"ingest of {path.name} into tenant {tenant!r}: {res.status}: {res.message}")


def _has_rows(path: Path) -> bool:
    import polars as pl

    frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, n_rows=1)
    return frame.height > 0


def plan_cmd(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    synthetic: Annotated[
        int | None,
        typer.Option(
            "--synthetic",
            min=1,
            help="First ingest a synthetic data set of this many series (features.synth, weekly) into the "
            "tenant.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="First ingest a folder of files as `replenish synth` writes them (sales, skus, ... "
            "csv/parquet) into the tenant.",
        ),
    ] = None,
    periods: Annotated[int, typer.Option(min=12, help="Weeks of synthetic history.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data and of the simulation.")] = 0,
    forecast_run: Annotated[
        str | None,
        typer.Option(help="Plan on this stored forecast run (default: the newest, reconciled when current)."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Id of the plan run (an existing run of the tenant is replaced).")
    ] = None,
    routing: Annotated[
        Path | None,
        typer.Option(help="Routing rule file (default: the tenant profile's, else configs/routing.yaml)."),
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
    """Plan replenishment for a tenant on its stored forecasts: levels, orders, PO drafts, exceptions, routed.

    Without stored forecasts the tenant is planned on the history bootstrap baseline (and the summary says
    so). --synthetic N / --data DIR ingest files into the tenant first.
    """
    from rich.console import Console

    from features.settings import get_settings
    from features.store import make_engine
    from planning import Budget, PlanConfig, RuleError, load_rules, plan_stage
    from serving.migrations import migrate_store

    console = Console(soft_wrap=True)
    if synthetic is not None and data is not None:
        console.print(
            "[red]give at most one of --synthetic N or --data DIR (neither: the tenant's stored data)[/red]"
        )
        raise typer.Exit(2)
    try:
        rules = load_rules(routing) if routing is not None else None
    except RuleError as exc:
        console.print(f"[red]routing rules refused: {exc}[/red]")
        raise typer.Exit(2) from None
    settings = get_settings()
    tenant = tenant or settings.tenant
    settings.ensure_home()  # the fact store lives in the home whatever the state store
    engine = make_engine(database_url or settings.database_url)
    migrate_store(engine)
    try:
        if data is not None:
            _ingest_files(_files_in(data), tenant, engine, settings)
        elif synthetic is not None:
            from features.synth import generate

            with tempfile.TemporaryDirectory() as tmp:
                written = generate(synthetic, periods, freq="W", seed=seed).write(tmp, fmt="parquet")
                _ingest_files(written, tenant, engine, settings)
        budgets = ()
        if budget is not None:
            from features.tables import read_table

            sups = read_table("supplier_terms", tenant, engine=engine, settings=settings)["supplier_id"]
            budgets = (
                Budget("supplier_id", {s: budget for s in [*sups.unique().sort().to_list(), "UNKNOWN"]}),
            )
        staged = plan_stage(
            engine,
            tenant,
            run_id=run_id,
            forecast_run=forecast_run,
            config=PlanConfig(
                n_paths=paths, seed=seed, service_group=service_group, unit_fill_floor=fill_floor
            ),
            rules=rules,
            settings=settings,
            budgets=budgets,
        )
    except (FileNotFoundError, LookupError, ValueError) as exc:  # RuleError is a ValueError
        msg = str(exc)
        if "not a planning-unit column" in msg and service_group:
            msg = f"--service-group {service_group!r}: {msg}"
        console.print(f"[red]{msg}[/red]")
        raise typer.Exit(2) from None
    proposed, note = 0, None
    if propose:
        try:
            from workflow.proposals import propose_plan
        except ImportError as exc:  # the control plane is optional for planning
            note = f"workflow not available ({exc}); recommendations stay in plan_recommendations"
        else:
            proposed = propose_plan(engine, tenant, staged.run_id).total
    _print_summary(console, staged, service_group, proposed, note, propose, as_json)


def _print_summary(console, staged, service_group, proposed, note, propose, as_json) -> None:
    result, c = staged.result, staged.counts
    summary = {
        "run_id": staged.run_id,
        "tenant": staged.tenant,
        "as_of": result.meta["as_of"],
        "units": c["units"],
        "recommendations": c["recommendations"],
        "by_kind": c["by_kind"],
        "routed_recommendations": c["routed_recommendations"],
        "routed_exceptions": c["routed_exceptions"],
        "auto_approved": c["auto_approved"],
        "exceptions": c["exceptions"],
        "po_drafts": c["po_drafts"],
        "order_value": c["order_value"],
        "forecast_source": staged.forecast_source,
        "forecast_run": staged.forecast.run_id if staged.forecast else None,
        "forecast_stage": staged.forecast.stage if staged.forecast else None,
        "period_days": staged.period_days,
        "policy_kinds": c["policy_kinds"],
        "service_group": service_group,
        "proposed_to_workflow": proposed,
        "notes": list(staged.notes),
    }
    if note:
        summary["note"] = note
    if as_json:
        print(json.dumps(summary, default=str))
        return
    fc = (
        f"forecast run {summary['forecast_run']} ({summary['forecast_stage']})"
        if staged.forecast
        else "no forecast"
    )
    console.print(
        f"plan run [bold]{staged.run_id}[/bold] for tenant {staged.tenant}, as of {summary['as_of']}: "
        f"{summary['units']} units, {fc}, source {summary['forecast_source']}, "
        f"periods of {summary['period_days']:g} day(s)"
    )
    for n in staged.notes:
        console.print(f"[yellow]note:[/yellow] {n}")
    console.print(
        f"recommendations: {summary['by_kind']} (value {summary['order_value']:,.2f}), "
        f"{summary['po_drafts']} PO drafts; policies {summary['policy_kinds']}"
    )
    console.print(f"exceptions: {summary['exceptions']}")
    console.print(
        f"recommendations routed to planners: {summary['routed_recommendations']}, auto-approved: "
        f"{summary['auto_approved']}; exceptions routed: {summary['routed_exceptions']}"
    )
    recs = result.recommendations
    for rule, n in recs.group_by("rule").len().sort("rule").iter_rows():
        console.print(f"  rule {rule}: {n} recommendations")
    if propose:
        console.print(f"proposed to the workflow: {proposed}" + (f" ({note})" if note else ""))


def register(app: typer.Typer) -> None:
    """Add ``replenish plan`` to the app."""
    app.command("plan")(plan_cmd)
