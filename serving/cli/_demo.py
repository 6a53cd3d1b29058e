"""``replenish demo``: the bundled Stallion data as one tenant's files, through the same cycle as any tenant.

1. write the demo's files (Stallion demand plus its generated, seeded supply side) into
   ``$REPLENISH_HOME/demo-files/`` and ingest them through the ordinary ingest path (master data first);
2. set the tenant's profile: a CPU-sized TFT (:data:`DEMO_TRAIN`) and the agency/SKU hierarchy;
3. run exactly :func:`serving.cycle.run_cycle` (training first when the tenant has no champion yet, or with
   ``--retrain``): forecast, reconcile, plan, propose, each recorded in the cycle run;
4. create an API key for the tenant and start Serve (``--no-serve`` stops before).

Ctrl-C stops everything (Serve and Ray included) cleanly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["DEMO_HIERARCHY", "DEMO_TRAIN", "register"]

#: The demo tenant's training settings (profile ``train``): all 350 Stallion series, a small TFT, a few short
#: epochs (CPU, about a minute). Grid (MS), encoder and season defaults come from the data.
DEMO_TRAIN: dict[str, Any] = {
    "model": {
        "hidden_size": 16,
        "attention_head_size": 2,
        "hidden_continuous_size": 8,
        "dropout": 0.1,
        "quantiles": [0.1, 0.25, 0.5, 0.75, 0.9],
    },
    "fit": {
        "encoder_length": 24,
        "min_encoder_length": 12,
        "horizon": 6,
        "season": 12,
        "batch_size": 64,
        "batches_per_epoch": 12,
        "max_epochs": 2,
        "patience": 1,
        "learning_rate": 0.01,
        "refit": False,
        "seed": 42,
        "progress": False,
    },
    "backtest": {"origins": 1, "step": 6},
    "holdout": 6,
}
#: Reconciliation levels of the demo tenant: total, per agency (location), per SKU, over agency x SKU units.
DEMO_HIERARCHY = [[], ["location_id"], ["sku_id"]]
#: Training-config keys a ``--train-config`` file may set for the demo tenant (the rest is the tenant's).
_TRAIN_KEYS = ("model", "fit", "backtest", "holdout", "data")


def _train_overrides(train_config: Path | None) -> dict[str, Any]:
    """The profile's training overrides: :data:`DEMO_TRAIN`, or those of a training config file."""
    if train_config is None:
        return DEMO_TRAIN
    import yaml

    raw = yaml.safe_load(Path(train_config).read_text()) or {}
    out = {k: v for k, v in raw.items() if k in _TRAIN_KEYS}
    data = {k: v for k, v in (out.pop("data", None) or {}).items() if k not in ("source", "tenant", "path")}
    return {**out, **({"data": data} if data else {})}


def _ingest(settings, engine, tenant: str, echo) -> None:
    from serving.cli._demo_data import DEMO_FILES, ingest_demo_files, write_demo_files

    t0 = time.perf_counter()
    folder = Path(settings.home) / DEMO_FILES
    files = write_demo_files(folder, seed=0)
    summary = ingest_demo_files(files, tenant, engine=engine, settings=settings)
    count = {
        k: sum((v.get(k) or 0) for v in summary["kinds"].values()) for k in ("stored", "quarantined")
    }
    echo(
        f"      {len(files)} files in {folder} ingested in {time.perf_counter() - t0:.1f} s: "
        f"{summary['series']} series x {summary['periods']} periods ({summary['first']} .. "
        f"{summary['last']}); {count['stored']} rows stored, {count['quarantined']} quarantined; "
        f"generated (marked): {', '.join(summary['generated'])}"
    )


def _profile(engine, tenant: str, train_config: Path | None, echo) -> None:
    from features.profile import update_profile

    profile = update_profile(engine, tenant, train=_train_overrides(train_config), hierarchy=DEMO_HIERARCHY)
    fit = profile.train.get("fit", {})
    echo(
        f"      training: TFT hidden {profile.train.get('model', {}).get('hidden_size', '?')}, "
        f"encoder {fit.get('encoder_length', '?')}, horizon {fit.get('horizon', '?')}, "
        f"{fit.get('max_epochs', '?')} epochs; hierarchy: total, location, SKU"
    )


def _cycle(settings, engine, tenant: str, retrain: bool, verbose: bool):
    """``run_cycle`` with a progress bar per stage; training when there is no champion yet or asked."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from serving.cli._cycle import print_summary, quiet_output
    from serving.cycle import has_champion, run_cycle

    console = Console(soft_wrap=True)
    train = retrain or not has_champion(tenant, settings, engine)
    if not train:
        console.print("      the tenant has a champion in this home: reusing it (--retrain trains a new one)")
    columns = (
        TextColumn("      {task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    with quiet_output(verbose), Progress(*columns, console=console) as bars:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=max(total, 1))
            bars.update(tasks[name], completed=done, total=max(total, 1))

        # As any tenant's cycle; a first version the gate refuses is made champion by hand (recorded as
        # forced) so that the demo always reaches serving on a fresh home.
        run = run_cycle(tenant, train=train, settings=settings, engine=engine, progress=progress,
                        requested_by="demo", promote_first=True)
    print_summary(console, run)
    return run


def _api_key(engine, tenant: str) -> str:
    """A demo API key (planner + approver) for the tenant; shown once, stored hashed."""
    from features.store import session_scope
    from workflow.access import create_key, ensure_tenant

    with session_scope(engine) as s:
        ensure_tenant(s, tenant)
        _, key = create_key(s, tenant, ["planner", "approver"], name="demo", actor="demo")
    return key


def _example_unit(settings, tenant: str) -> str:
    from features.forecasts import read_forecasts

    fc = read_forecasts(tenant, "reconciled", facts_dir=settings.facts_dir)
    return fc["unique_id"][0] if fc.height else "SKU_01|Agency_01|wholesale"


def run_demo(settings, tenant: str, echo, *, retrain: bool = False, train_config: Path | None = None,
             verbose: bool = False) -> dict[str, Any]:
    """Ingest the demo files, set the profile, run the cycle, create a key (no Serve).

    Returns:
        ``{"run": CycleRun, "api_key": str | None}`` (no key when the cycle failed).
    """
    from features.store import make_engine
    from serving.migrations import migrate_store

    engine = make_engine(settings.database_url)
    migrate_store(engine)
    try:
        echo("[1/5] ingest the demo files (Stallion demand + generated supply side) ...")
        _ingest(settings, engine, tenant, echo)
        echo(f"[2/5] profile of tenant {tenant!r} ...")
        _profile(engine, tenant, train_config, echo)
        echo("[3/5] cycle: train? -> forecast -> reconcile -> plan -> propose ...")
        run = _cycle(settings, engine, tenant, retrain, verbose)
        if run.status != "succeeded":
            return {"run": run, "api_key": None}
        echo("[4/5] API key ...")
        key = _api_key(engine, tenant)
        echo(f"      tenant {tenant!r}: key {key}")
        return {"run": run, "api_key": key}
    finally:
        engine.dispose()


def demo(
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the cycle (do not start Serve).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="Serve config file (default configs/serve.yaml).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: the config's).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    retrain: Annotated[bool, typer.Option(help="Train a new version even if a champion exists.")] = False,
    train_config: Annotated[
        Path | None,
        typer.Option(help="Training settings file (model/fit/backtest/holdout; default: the demo's own)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show our dependencies' warnings and log lines.")
    ] = False,
) -> None:
    """Run the cycle on the bundled demo data and serve it (Ctrl-C stops everything)."""
    from features.settings import get_settings
    from serving.cli._serve import DEFAULT_SERVE_CONFIG, serve_until_interrupted, start_serving

    settings = get_settings()
    settings.ensure_home()
    tenant = tenant or settings.tenant
    t_start = time.perf_counter()
    typer.echo(f"replenish demo: home {settings.home} (delete it to remove the demo), tenant {tenant!r}")
    try:
        out = run_demo(
            settings, tenant, typer.echo, retrain=retrain, train_config=train_config, verbose=verbose
        )
        if out["run"].status != "succeeded":
            typer.echo(f"demo stopped: the cycle failed ({out['run'].error})", err=True)
            raise typer.Exit(1)
        if no_serve:
            typer.echo(f"demo finished without Serve in {time.perf_counter() - t_start:.0f} s")
            return
        from serving.deploy import load_serve_file

        typer.echo("[5/5] start Ray Serve ...")
        t0 = time.perf_counter()
        urls = start_serving(load_serve_file(config or DEFAULT_SERVE_CONFIG), settings, port=port)
    except KeyboardInterrupt:
        from serving.deploy import shutdown

        typer.echo("\ninterrupted: stopping ...")
        shutdown()
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except BaseException:
        from serving.deploy import shutdown

        shutdown()  # never leave a half-started Ray behind
        raise
    typer.echo(
        f"      done in {time.perf_counter() - t0:.1f} s; serving state reached "
        f"{time.perf_counter() - t_start:.0f} s after start"
    )
    for name in ("docs", "pages", "health", "ready", "metrics"):
        typer.echo(f"  {name:<8s} {urls[name]}")
    typer.echo("example API call:")
    unit = _example_unit(settings, tenant)
    typer.echo(
        f"  curl -s -X POST {urls['base']}/v1/forecasts -H 'X-API-Key: {out['api_key']}' \\\n"
        f"       -H 'Content-Type: application/json' -d '{{\"units\": [\"{unit}\"]}}'"
    )
    typer.echo("Ctrl-C stops everything.")
    serve_until_interrupted(urls)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``replenish`` command."""
    app.command("demo")(demo)
