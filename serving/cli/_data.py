"""Data commands: ``replenish ingest KIND FILE``, ``replenish quarantine list``, ``replenish synth``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

#: Files at least this large get a progress bar.
PROGRESS_BYTES = 20 << 20

quarantine_app = typer.Typer(help="Rows rejected by ingest, with the reason.", no_args_is_help=True)
alias_app = typer.Typer(help="External codes of SKUs, locations, channels and suppliers.",
                        no_args_is_help=True)


def _store():
    from features.settings import get_settings
    from features.store import make_engine
    from serving.migrations import migrate_store

    settings = get_settings()
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    return settings, engine


def ingest_cmd(
    kind: Annotated[str, typer.Argument(help="sales, inventory, skus, locations, channels, suppliers, "
                                             "supplier_terms, planning_units, lead_times, promotions, "
                                             "purchase_orders")],
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                                  help="Progress bar (default: files over 20 MB).")] = None,
) -> None:
    """Validate FILE against the contract of KIND, quarantine bad rows, store the rest.

    Exit code 0: all rows stored; 1: some rows quarantined; 2: nothing usable (refused file or every row bad).
    """
    from rich.console import Console

    from features.contracts import KINDS
    from features.ingest import STAGES
    from serving.ingest import ingest_and_announce as ingest

    console = Console(stderr=False)
    if kind not in KINDS:
        console.print(f"[red]unknown KIND {kind!r}: expected one of {', '.join(KINDS)}[/red]")
        raise typer.Exit(2)
    if not file.is_file():
        console.print(f"[red]{file}: no such file[/red]")
        raise typer.Exit(2)
    settings, engine = _store()
    show = progress if progress is not None else file.stat().st_size >= PROGRESS_BYTES
    try:
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description:<28}"), BarColumn(),
                       TextColumn("{task.completed}/{task.total} stages"), TimeElapsedColumn())
            with Progress(*columns, console=console, transient=False) as bar:
                task = bar.add_task(f"ingest {kind}", total=len(STAGES))

                def step(stage: str) -> None:
                    bar.update(task, completed=STAGES.index(stage), description=stage)

                result = ingest(kind, file, tenant=tenant, engine=engine, settings=settings, progress=step)
                bar.update(task, completed=len(STAGES), description="done")
        else:
            result = ingest(kind, file, tenant=tenant, engine=engine, settings=settings)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    colour = {0: "green", 1: "yellow", 2: "red"}[result.exit_code]
    console.print(f"[{colour}]{result.summary()}[/{colour}]", highlight=False)
    if result.rows_quarantined:
        console.print(f"see: replenish quarantine list --batch {result.batch_id}")
    raise typer.Exit(result.exit_code)


@quarantine_app.command("list")
def quarantine_list(
    batch: Annotated[str | None, typer.Option(help="Only this ingest batch.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this KIND.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most rows shown.")] = 50,
) -> None:
    """Show quarantined rows: file, row, field, value and the expected form."""
    from rich.console import Console
    from rich.table import Table

    from features.ingest import list_quarantine

    settings, engine = _store()
    try:
        rows = list_quarantine(engine, tenant or settings.tenant, batch_id=batch, kind=kind, limit=limit)
    finally:
        engine.dispose()
    console = Console()
    if not rows:
        console.print("quarantine is empty")
        return
    table = Table(title=f"quarantine of tenant {tenant or settings.tenant} ({len(rows)} shown)")
    for col in ("batch", "kind", "file", "row", "field", "value", "expected"):
        table.add_column(col, overflow="fold")
    for r in rows:
        value = "" if r["value"] is None else str(r["value"])
        table.add_row(r["batch_id"][:8], r["kind"], Path(r["file_name"]).name, str(r["row_number"]),
                      r["field"], value, r["expected"])
    console.print(table)


@alias_app.command("add")
def alias_add(
    entity: Annotated[str, typer.Argument(help="sku, location, channel or supplier.")],
    external_id: Annotated[str, typer.Argument(help="The code another system uses.")],
    internal_id: Annotated[str, typer.Argument(help="The stored id it stands for.")],
    source: Annotated[str, typer.Option(help="System the code comes from.")] = "default",
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
) -> None:
    """Record that EXTERNAL_ID (from --source) names the stored ENTITY INTERNAL_ID."""
    from rich.console import Console

    from features.identity import add_aliases
    from features.store import ensure_tenant, session_scope

    settings, engine = _store()
    console = Console()
    try:
        with session_scope(engine) as s:
            ensure_tenant(s, tenant or settings.tenant)
        n = add_aliases(engine, tenant or settings.tenant, entity, [(external_id, internal_id, source)])
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    outcome = "added" if n else "already known"
    console.print(f"{entity} alias {external_id!r} -> {internal_id!r}: {outcome}")


def synth(
    series: Annotated[int, typer.Option(min=1, help="Planning units (SKU x store x channel).")] = 100,
    periods: Annotated[int, typer.Option(min=1, help="Periods of sales history.")] = 365,
    freq: Annotated[str, typer.Option(help="D (daily), W (weekly) or M (monthly).")] = "D",
    out: Annotated[Path, typer.Option(help="Folder to write one file per ingest KIND.")] = Path("synth"),
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    seed: Annotated[int, typer.Option(help="Seed of the random generator.")] = 0,
) -> None:
    """Generate M5-like synthetic data (one file per ingest KIND) into --out."""
    from rich.console import Console

    from features.synth import FREQS, generate

    console = Console()
    if freq not in FREQS:
        console.print(f"[red]--freq {freq!r}: expected one of {', '.join(FREQS)}[/red]")
        raise typer.Exit(2)
    if fmt not in ("csv", "parquet"):
        console.print(f"[red]--format {fmt!r}: expected csv or parquet[/red]")
        raise typer.Exit(2)
    data = generate(series, periods, freq=freq, seed=seed)
    paths = data.write(out, fmt=fmt)
    for kind, path in paths.items():
        console.print(f"{kind:16s} {data.tables()[kind].height:>12,d} rows  {path}")


def register(app: typer.Typer) -> None:
    """Add the data commands to the ``replenish`` app."""
    app.command("ingest")(ingest_cmd)
    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(alias_app, name="alias")
    app.command("synth")(synth)
