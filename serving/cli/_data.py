"""Data commands: ``replenish ingest KIND FILE``, ``replenish quarantine list``, ``replenish synth``."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def synth(
    series: int = typer.Option(100, "--series", min=1, help="Planning units (SKU x store x channel)."),
    periods: int = typer.Option(365, "--periods", min=1, help="Periods of sales history."),
    freq: str = typer.Option("D", "--freq", help="D (daily), W (weekly) or M (monthly)."),
    out: Path = typer.Option(Path("synth"), "--out", help="Folder to write one file per ingest KIND."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random generator."),
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
    app.command("synth")(synth)
