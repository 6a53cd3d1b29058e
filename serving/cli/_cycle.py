"""``replenish cycle``: run a tenant's cycle (train? -> forecast -> reconcile -> plan -> propose), report it.

A caller of :func:`serving.cycle.run_cycle`, nothing more: it parses the flags, shows a progress bar per
stage, and prints the run record as a table (or one JSON line). Exit code 0 when every stage succeeded, 1
otherwise.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer

__all__ = ["print_summary", "quiet_output", "register"]

_STAGES = ("train", "forecast", "reconcile", "plan", "propose")


def quiet_output(verbose: bool = False):
    """Our dependencies' warnings and progress bars filtered (``training.quiet``), unless ``verbose``."""
    try:
        from training.quiet import quiet
    except ImportError:  # training without its quiet helper: show everything rather than guess
        return contextlib.nullcontext()
    return quiet(verbose=verbose)


#: The figures a planner looks at first, per stage; the others follow while there is room.
_KEY_COUNTS = {
    "train": ("gate", "series", "short_series", "train_seconds"),
    "forecast": ("units", "model_units", "baseline_units", "cold_start", "freq", "horizon"),
    "reconcile": ("nodes", "coherence", "horizon"),
    "plan": ("units", "recommendations", "routed_recommendations", "auto_approved", "exceptions"),
    "propose": ("total", "created", "by_state"),
}


def _short(stage: str, counts: dict[str, Any], limit: int = 110) -> str:
    """The stage's figures on one line (key figures first, nested dicts inline), cut at ``limit``."""
    first = [k for k in _KEY_COUNTS.get(stage, ()) if k in counts]
    parts = []
    for k in [*first, *(k for k in counts if k not in first)]:
        v = counts[k]
        if isinstance(v, dict):
            v = ", ".join(f"{a}: {b}" for a, b in v.items()) or "-"
            parts.append(f"{k} {{{v}}}")
        elif isinstance(v, float):
            parts.append(f"{k} {v:,.4g}")
        elif not isinstance(v, list):
            parts.append(f"{k} {v}")
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_summary(console, run) -> None:
    """The run record as a table plus the lines a planner looks for (model, reconciliation, plan, states)."""
    from rich.table import Table

    table = Table(title=f"cycle {run.run_id} for tenant {run.tenant_id}: {run.status}", title_justify="left")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("seconds", justify="right")
    table.add_column("counts / error", overflow="fold")
    colour = {"succeeded": "green", "failed": "red", "skipped": "yellow"}
    for s in run.stages:
        detail = s.error if s.status == "failed" else _short(s.stage, s.counts)
        seconds = f"{s.seconds:.1f}" if s.seconds is not None else "-"
        table.add_row(s.stage, f"[{colour.get(s.status, 'white')}]{s.status}[/]", seconds, detail or "")
    console.print(table)
    out = run.outputs()
    lines = []
    if out.get("model_version") or out.get("model_name"):
        lines.append(f"model: {out.get('model_name', '?')} version {out.get('model_version', '?')}")
    elif out.get("forecast_source"):
        lines.append(f"forecast source: {out['forecast_source']}")
    if out.get("reconciliation_method"):
        lines.append(f"reconciliation: {out['reconciliation_method']}")
    if out.get("forecast_run"):
        lines.append(f"forecast run: {out['forecast_run']}")
    if out.get("plan_run"):
        lines.append(f"plan run: {out['plan_run']}")
    for s in run.stages:
        if s.stage == "propose" and s.status == "succeeded":
            states = ", ".join(f"{k} {v}" for k, v in s.counts.get("by_state", {}).items()) or "none"
            lines.append(
                f"recommendations: {s.counts.get('total', 0)} ({s.counts.get('created', 0)} new), "
                f"by state: {states}"
            )
    for line in lines:
        console.print(line)
    if run.status == "failed":
        console.print(f"[red]cycle failed: {run.error}[/red]")


def cycle_cmd(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            "--stage",
            help=f"Run only this stage (repeat for several; in cycle order): {', '.join(_STAGES)}. "
            "Default: forecast, reconcile, plan, propose.",
        ),
    ] = None,
    train: Annotated[
        bool, typer.Option("--train", help="Train (and gate) a new model version before forecasting.")
    ] = False,
    promote_first: Annotated[
        bool,
        typer.Option(
            "--promote-first",
            help="With --train: when the gate refuses the tenant's first version (no champion at all), make "
            "it champion by hand, recorded on the version as forced.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as one JSON line.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show our dependencies' warnings and log lines.")
    ] = False,
) -> None:
    """Run the replenishment cycle on the tenant's ingested data and record it (exit 1 if a stage fails)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from features.settings import get_settings
    from serving.cycle import run_cycle

    console = Console(soft_wrap=True, stderr=as_json)
    bad = [s for s in stage or () if s not in _STAGES]
    if bad:
        console.print(f"[red]--stage {bad[0]!r}: expected one of {', '.join(_STAGES)}[/red]")
        raise typer.Exit(2)
    settings = get_settings()
    tenant = tenant or settings.tenant
    if verbose:  # a failed stage's traceback too (serving.cycle logs it at DEBUG)
        import logging

        logging.basicConfig(level=logging.INFO)
        logging.getLogger("serving.cycle").setLevel(logging.DEBUG)
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with quiet_output(verbose), Progress(*columns, console=console, disable=as_json) as bars:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=max(total, 1))
            bars.update(tasks[name], completed=done, total=max(total, 1))

        try:
            run = run_cycle(
                tenant, stages=stage or None, train=train, settings=settings, progress=progress,
                requested_by="cli", promote_first=promote_first,
            )
        except (LookupError, ValueError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(run.to_dict(), default=str))
    else:
        print_summary(console, run)
    raise typer.Exit(0 if run.status == "succeeded" else 1)


def register(app: typer.Typer) -> None:
    """Add ``replenish cycle`` to the app."""
    app.command("cycle")(cycle_cmd)
