"""Forecasting commands: ``replenish train``, ``backtest``, ``models list``, ``models promote``, ``forecast``.

Heavy imports (torch, lightning, mlflow) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

DEFAULT_CONFIG = Path("configs/train/stallion.yaml")

models_app = typer.Typer(help="Registered forecasting models (MLflow registry).", no_args_is_help=True)


def _config(path: Path):
    from rich.console import Console

    from training.config import TrainConfigError, load_train_config

    try:
        return load_train_config(path)
    except TrainConfigError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _summary_table(summary: dict, title: str):
    from rich.table import Table

    t = Table(title=title)
    cols = ["wape", "mae", "mase", "smape", "bias", "pinball", "coverage_p10_p90"]
    t.add_column("model")
    for c in cols:
        t.add_column(c, justify="right")
    for name, d in summary.items():
        t.add_row(name, *("" if d.get(c) is None else f"{d[c]:.4g}" for c in cols))
    return t


def train_cmd(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config YAML.")] = DEFAULT_CONFIG,
) -> None:
    """Train a TFT, backtest it beside the baselines, register a version and apply the champion gate."""
    from rich.console import Console

    from training.pipeline import train_and_register

    cfg = _config(config)
    console = Console(width=140)
    r = train_and_register(cfg)
    console.print(_summary_table(r.summary, f"backtest of {cfg.name} version {r.version}"))
    verdict = "[green]promoted to champion[/green]" if r.promoted else "[yellow]not promoted[/yellow]"
    console.print(
        f"version {r.version} (run {r.run_id}): {verdict}: {r.reason}; trained in {r.train_seconds:.1f} s"
    )


def backtest_cmd(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Training config YAML (data, origins).")
    ] = DEFAULT_CONFIG,
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
) -> None:
    """Rolling-origin backtest of a registered version against the baselines (by model, level and series)."""
    from rich.console import Console

    from training.pipeline import backtest_version

    cfg = _config(config)
    console = Console(width=140)
    try:
        res = backtest_version(cfg, version)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(_summary_table(res.summary, f"backtest of {cfg.name} {version}, origins {res.origins}"))
    lvl = res.by_level.pivot(index="level", columns="model", values="wape")
    console.print("WAPE by hierarchy level:\n" + lvl.round(4).to_string())
    worst = res.by_series.sort_values("wape", ascending=False).head(5)
    console.print("worst series:\n" + worst.round(4).to_string(index=False))


def list_cmd(
    name: Annotated[str | None, typer.Option(help="Registered model name (default: settings).")] = None,
) -> None:
    """List registered versions with aliases and gate figures."""
    from rich.console import Console
    from rich.table import Table

    from training.registry import list_versions

    rows = list_versions(name)
    if not rows:
        Console().print("no registered versions")
        return
    t = Table()
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(v) for v in r.values()))
    Console(width=140).print(t)


def promote_cmd(
    version: Annotated[str, typer.Argument(help="Version number to make champion.")],
    name: Annotated[str | None, typer.Option(help="Registered model name (default: settings).")] = None,
) -> None:
    """Make VERSION champion by hand (recorded on the version, as forced when the gate would refuse)."""
    from rich.console import Console

    from features.settings import get_settings
    from training.pipeline import promote

    try:
        d = promote(version, name or get_settings().model_name)
    except Exception as exc:
        Console(stderr=True).print(f"[red]cannot promote version {version}: {exc}[/red]")
        raise typer.Exit(1) from None
    Console().print(f"version {version} is champion: {d.reason}")


def forecast_cmd(
    horizon: Annotated[int, typer.Option("--horizon", min=1, help="Periods ahead (<= the model's).")] = 6,
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
    config: Annotated[Path, typer.Option("--config", "-c", help="Config naming the data.")] = DEFAULT_CONFIG,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
) -> None:
    """Forecast every series H periods past its history and write the forecasts to the fact store."""
    import uuid

    import polars as pl
    from rich.console import Console

    from features.facts import write_facts
    from features.settings import get_settings
    from training.pipeline import facts_frame, future_panel
    from training.predict import load_predictor

    cfg = _config(config)
    console = Console(width=140)
    try:
        pred = load_predictor(version, cfg.name, cfg.tracking_uri)
    except LookupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if horizon > pred.spec.horizon:
        console.print(
            f"[red]--horizon {horizon}: this model forecasts at most {pred.spec.horizon} periods[/red]"
        )
        raise typer.Exit(2)
    frame = facts_frame(cfg) if cfg.data.source == "facts" else None
    panel, skipped = future_panel(pred.spec, cfg.data.path, frame)
    if skipped:
        console.print(
            f"[yellow]{len(skipped)} series skipped: categories unknown to version {pred.version}[/yellow]"
        )
    fc = pred.forecast(panel).to_frame()
    fc = fc[fc.horizon <= horizon].assign(model=cfg.name, model_version=str(pred.version))
    out = pl.from_pandas(fc).with_columns(pl.col("date").cast(pl.Date))
    batch = f"forecast-{uuid.uuid4().hex[:12]}"
    paths = write_facts("forecasts", tenant or get_settings().tenant, out, batch)
    console.print(
        f"{len(out)} forecast rows ({out['series'].n_unique()} series x {horizon} periods, "
        f"{int(fc.cold_start.sum() / max(horizon, 1))} cold-start) from {cfg.name} version {pred.version} "
        f"written to {len(paths)} file(s), batch {batch}"
    )
    console.print(fc.head(8).round(1).to_string(index=False))


def register(app: typer.Typer) -> None:
    """Attach the forecasting commands to the ``replenish`` app."""
    app.command("train")(train_cmd)
    app.command("backtest")(backtest_cmd)
    app.command("forecast")(forecast_cmd)
    models_app.command("list")(list_cmd)
    models_app.command("promote")(promote_cmd)
    app.add_typer(models_app, name="models")
