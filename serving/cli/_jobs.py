"""``replenish jobs ...`` and ``replenish monitoring run``: job records, and monitoring run by hand."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]

jobs_app = typer.Typer(
    help="Scheduled jobs (run by `replenish serve`): their runs and status.", no_args_is_help=True
)
monitoring_app = typer.Typer(
    help="The monitoring job: accuracy, inventory health, adoption.", no_args_is_help=True
)


def _store():
    from features.settings import get_settings
    from features.store import make_engine
    from serving.migrations import migrate_store

    settings = get_settings()
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    return settings, engine


@jobs_app.command("runs")
def jobs_runs(
    job: Annotated[
        str | None,
        typer.Option(help="Only this job (dispatch, expire, monitoring, escalate, cycle:<tenant>)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most runs shown, newest first.")] = 30,
) -> None:
    """List recent job runs: job, window, replica, status, counts or error."""
    from workflow.jobs import list_runs

    _, engine = _store()
    try:
        runs = list_runs(engine, job=job, limit=limit)
    finally:
        engine.dispose()
    if not runs:
        typer.echo("no job runs recorded (jobs run while `replenish serve` runs with a jobs section)")
    for r in runs:
        detail = r["error"] if r["error"] else r["counts"]
        typer.echo(
            f"{r['started_at']:%Y-%m-%d %H:%M:%S}  {r['job']:<20} {r['status']:<9} {r['owner']:<30} "
            f"{detail if detail is not None else ''}"
        )


@monitoring_app.command("run")
def monitoring_run(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
) -> None:
    """Run the monitoring job for one tenant now and print its figures' counts."""
    from workflow.monitoring import run_monitoring

    settings, engine = _store()
    try:
        res = run_monitoring(engine, tenant or settings.tenant, facts_dir=settings.facts_dir)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(
        f"monitoring run {res.run_id} of tenant {res.tenant}: "
        + ", ".join(f"{k} {v}" for k, v in res.counts.items())
    )
    if res.accuracy is not None:
        bottom = res.accuracy.filter(res.accuracy["level"] == "bottom")
        for r in bottom.iter_rows(named=True):
            typer.echo(
                f"  model {r['model_version']:<12} horizon {r['horizon_bucket']:<5} n {r['n']:>8}  "
                f"WAPE {r['wape'] or float('nan'):.3f}  bias {r['bias'] or float('nan'):+.3f}  "
                f"coverage {r['coverage_p10_p90'] if r['coverage_p10_p90'] is not None else float('nan'):.2f}"
            )
    a = res.adoption
    if a.get("fva") is not None:
        typer.echo(f"  overrides: FVA {a['fva']:+.3f} over {a['overrides_evaluated']} evaluated")


def register(app: typer.Typer) -> None:
    """Add ``jobs`` and ``monitoring`` to the ``replenish`` command."""
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(monitoring_app, name="monitoring")
