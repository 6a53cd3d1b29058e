"""Forecasting commands: ``train``, ``backtest``, ``forecast``, ``models list|promote``, ``forecasts export``.

Every command works on a tenant (``--tenant``, default the configured one) and its profile: ``train -c FILE``
remembers the file's settings (and its model ``name``) in the tenant's profile, so later commands need no
repeated flags. Output is quiet by default (``--verbose`` shows our dependencies' warnings and logs).
Heavy imports (torch, lightning, mlflow) happen inside the commands.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

models_app = typer.Typer(help="Registered forecasting models (MLflow registry).", no_args_is_help=True)
forecasts_app = typer.Typer(help="Stored forecast runs.", no_args_is_help=True)

Tenant = Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant (default: the configured one).")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show dependencies' warnings and logs.")]
#: Top-level keys of a ``--config`` file that are profile settings, not ``TrainConfig`` fields.
PROFILE_KEYS = ("freq", "horizon", "hierarchy", "reconcile_method", "routing")


@contextlib.contextmanager
def _session(tenant: str | None, verbose: bool):
    """(settings, engine, tenant) inside the quiet filter; errors of ours printed in red, exit 1 or 2."""
    from rich.console import Console

    from features.settings import get_settings
    from features.store import make_engine
    from serving.migrations import migrate_store
    from training.config import TrainConfigError
    from training.quiet import quiet

    settings = get_settings()
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    err = Console(stderr=True, width=140)
    try:
        with quiet(verbose):
            yield settings, engine, tenant or settings.tenant
    except TrainConfigError as exc:
        err.print(f"[red]{exc}[/red]", markup=True, highlight=False)
        raise typer.Exit(2) from None
    except (LookupError, ValueError, FileNotFoundError) as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _read_yaml(path: Path) -> dict:
    import yaml

    from training.config import TrainConfigError

    if not path.exists():
        raise TrainConfigError(f"training config {path}: file not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise TrainConfigError(f"training config {path}: expected a mapping at the top level")
    return data


def _remember(settings, engine, tenant: str, config: Path | None, name: str | None):
    """Store ``--config`` (its ``name`` as the model name) and ``--name`` in the tenant's profile.

    The settings are checked first (resolved with the tenant's grid and profile): an invalid file changes
    nothing and raises ``TrainConfigError``.
    """
    from features.profile import get_profile, update_profile
    from training.stage import tenant_config

    changes: dict = {}
    if config is not None:
        raw = _read_yaml(config)
        model = raw.pop("name", None)
        if model:
            changes["model_name"] = model
        for key in PROFILE_KEYS:  # the tenant's cycle settings beside the training ones
            if key in raw:
                changes[key] = raw.pop(key)
        (raw.get("data") or {}).pop("tenant", None)
        if raw:
            changes["train"] = raw
    if name:
        changes["model_name"] = name
    if not changes:
        return get_profile(engine, tenant)
    tenant_config(tenant, settings=settings, engine=engine, overrides=changes.get("train"))
    return update_profile(engine, tenant, **changes)


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


def _progress(console, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[bold]" + label,
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    return bar


def train_cmd(
    tenant: Tenant = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Training settings YAML, remembered in the tenant's profile."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name (remembered).")] = None,
    verbose: Verbose = False,
) -> None:
    """Train the tenant's TFT on its ingested facts, backtest it beside the baselines, register, gate it."""
    from rich.console import Console

    from features.profile import get_profile, save_profile
    from training.config import TrainConfigError
    from training.quiet import ShortSeriesWarning
    from training.stage import train_tenant

    console = Console(width=140)
    with _session(tenant, verbose) as (settings, engine, t):
        before = get_profile(engine, t)
        _remember(settings, engine, t, config, name)
        with _progress(console, f"training {t}") as bar, warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortSeriesWarning)  # printed below from the result
            task = bar.add_task("train", total=6)
            try:
                r = train_tenant(
                    t,
                    settings=settings,
                    engine=engine,
                    progress=lambda d, n: bar.update(task, completed=d, total=n),
                )
            except TrainConfigError:  # refused by the data checks (e.g. encoder longer than any series)
                save_profile(engine, t, before)  # so a refused file is not remembered either
                raise
    console.print(
        _summary_table(r.summary, f"backtest of {r.model_name} version {r.version} ({r.freq}, H={r.horizon})")
    )
    if r.short_series:
        ids = ", ".join(r.short_series[:5]) + (" ..." if len(r.short_series) > 5 else "")
        console.print(
            f"[yellow]{len(r.short_series)} series too short to train on (still forecast): {ids}[/yellow]"
        )
    verdict = "[green]promoted to champion[/green]" if r.promoted else "[yellow]not promoted[/yellow]"
    console.print(
        f"tenant {t}: {r.n_series} series, version {r.version} (run {r.run_id}): {verdict}: {r.reason}; "
        f"trained in {r.train_seconds:.1f} s; {r.residuals} backtest residuals stored"
    )


def backtest_cmd(
    tenant: Tenant = None,
    version: Annotated[str, typer.Option(help="Version number or alias.")] = "champion",
    verbose: Verbose = False,
) -> None:
    """Rolling-origin backtest of a registered version of the tenant's model (by model, level and series)."""
    from rich.console import Console

    from training.pipeline import backtest_version
    from training.stage import tenant_config

    console = Console(width=140)
    with _session(tenant, verbose) as (settings, engine, t):
        cfg = tenant_config(t, settings=settings, engine=engine)
        res = backtest_version(cfg, version)
    console.print(_summary_table(res.summary, f"backtest of {cfg.name} {version}, origins {res.origins}"))
    lvl = res.by_level.pivot(index="level", columns="model", values="wape")
    console.print("WAPE by hierarchy level:\n" + lvl.round(4).to_string())
    worst = res.by_series.sort_values("wape", ascending=False).head(5)
    console.print("worst series:\n" + worst.round(4).to_string(index=False))


def forecast_cmd(
    tenant: Tenant = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Run id (default: forecast-<time>); reused = replaced.")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Forecast every planning unit of the tenant with its champion and store the run (stage base)."""
    from datetime import UTC, datetime

    from rich.console import Console

    from training.stage import forecast_stage

    console = Console(width=140)
    run_id = run or f"forecast-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    with _session(tenant, verbose) as (settings, engine, t):
        with _progress(console, f"forecasting {t}") as bar:
            task = bar.add_task("units", total=None)
            meta = forecast_stage(
                t,
                run_id=run_id,
                settings=settings,
                engine=engine,
                progress=lambda d, n: bar.update(task, completed=d, total=n),
            )
    x = meta.extra
    console.print(
        f"run {meta.run_id}: {x.get('units')} units x {meta.horizon} periods ({meta.freq}) from "
        f"{meta.model_name} version {x.get('champion_version')}; {x.get('baseline_units')} by the baseline "
        f"{x.get('baseline')} (cold start: {x.get('unknown_to_model')} unknown to the model, "
        f"{x.get('short_history')} with too little history); data watermark {meta.data_watermark}"
    )
    console.print(
        f"export: replenish forecasts export --tenant {t} --stage base --run {meta.run_id} --out FILE.csv"
    )


def list_cmd(
    name: Annotated[str | None, typer.Option(help="Registered model name (default: every model).")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="The tenant's model.")] = None,
    verbose: Verbose = False,
) -> None:
    """List registered models (with their tenant), or one model's versions with aliases and gate figures."""
    from rich.console import Console
    from rich.table import Table

    from training.registry import list_models, list_versions

    with _session(None, verbose) as (_settings, engine, _t):
        if tenant and not name:
            from features.profile import get_profile, model_name_for

            name = model_name_for(tenant, get_profile(engine, tenant))
        rows = list_versions(name) if name else list_models()
    if not rows:
        Console().print(f"no registered versions of {name!r}" if name else "no registered models")
        return
    t = Table()
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*(str(v) for v in r.values()))
    Console(width=140).print(t)


def promote_cmd(
    version: Annotated[str, typer.Argument(help="Version number to make champion.")],
    tenant: Tenant = None,
    name: Annotated[str | None, typer.Option(help="Registered model name (default: the tenant's).")] = None,
    verbose: Verbose = False,
) -> None:
    """Make VERSION champion by hand (recorded on the version, as forced when the gate would refuse)."""
    from rich.console import Console

    from features.profile import get_profile, model_name_for
    from training.pipeline import promote

    with _session(tenant, verbose) as (_settings, engine, t):
        model = name or model_name_for(t, get_profile(engine, t))
        try:
            d = promote(version, model)
        except Exception as exc:
            raise LookupError(f"cannot promote version {version} of {model!r}: {exc}") from None
    Console().print(f"version {version} of {model} is champion: {d.reason}")


def export_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .csv or .parquet.")],
    tenant: Tenant = None,
    stage: Annotated[str, typer.Option(help="base or reconciled.")] = "base",
    run: Annotated[
        str | None, typer.Option("--run", help="Run id (default: the newest of the stage).")
    ] = None,
    level: Annotated[
        str | None, typer.Option(help="Hierarchy level (default bottom; 'all' for every level).")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Export a stored forecast run: key columns, dates, quantiles, run id and model version."""
    from rich.console import Console

    from features.forecasts import forecast_runs, read_forecasts

    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        Console(stderr=True).print(f"[red]--out {out}: expected a .csv or .parquet file[/red]")
        raise typer.Exit(2)
    with _session(tenant, verbose) as (settings, _engine, t):
        if stage not in ("base", "reconciled"):
            raise ValueError(f"--stage {stage!r}: expected base or reconciled")
        lv = None if level == "all" else (level or "bottom")
        runs = forecast_runs(t, stage, facts_dir=settings.facts_dir)
        meta = next((m for m in runs if m.run_id == run), None) if run else (runs[0] if runs else None)
        if meta is None:
            raise LookupError(
                f"tenant {t!r} has no {stage} forecast run{f' {run!r}' if run else ''}; run "
                f"`replenish forecast --tenant {t}` (or `replenish cycle --tenant {t}`) first"
            )
        rows = read_forecasts(t, stage, meta.run_id, level=lv, facts_dir=settings.facts_dir)
        import polars as pl

        rows = rows.with_columns(  # model_version stays empty on rows a baseline forecast (see source)
            pl.lit(meta.model_name or "").alias("model_name"),
            pl.lit(meta.data_watermark).alias("data_watermark"),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        rows.write_csv(out) if suffix == ".csv" else rows.write_parquet(out)
    Console().print(f"{rows.height} rows of {stage} run {meta.run_id} ({t}) written to {out}")


def register(app: typer.Typer) -> None:
    """Attach the forecasting commands to the ``replenish`` app."""
    app.command("train")(train_cmd)
    app.command("backtest")(backtest_cmd)
    app.command("forecast")(forecast_cmd)
    models_app.command("list")(list_cmd)
    models_app.command("promote")(promote_cmd)
    forecasts_app.command("export")(export_cmd)
    app.add_typer(models_app, name="models")
    app.add_typer(forecasts_app, name="forecasts")
