"""``replenish serve``: start Ray Serve locally with the decision API (and an optional model deployment).

Each tenant is answered from its own stored forecasts; before starting, the command prints per tenant the
forecast run it will be served from, or why it cannot be yet and the command that fixes it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "serve_until_interrupted", "start_serving", "tenant_serving_status"]

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"


def _say(msg: str) -> None:
    typer.echo(msg, err=False)


def tenant_serving_status(settings) -> list[dict[str, Any]]:
    """Per tenant with sales or forecasts in the fact store: the run it is served from, or why not.

    Returns:
        One dict per tenant, sorted: ``tenant``, ``servable`` and either ``run_id``, ``stage``,
        ``model_version``, ``data_watermark``, ``units`` or ``msg`` and ``command``.
    """
    from serving.api.routes.forecasts import ForecastStore

    facts = Path(settings.facts_dir)
    tenants = sorted(
        {p.name.split("=", 1)[1] for sub in ("sales", "forecasts") for p in (facts / sub).glob("tenant=*")}
    )
    store = ForecastStore(facts, check_interval_s=0)
    out = []
    for tenant in tenants:
        entry = store.refresh(tenant, force=True)
        if entry.problem is not None:
            d = entry.problem.detail
            out.append({"tenant": tenant, "servable": False, "msg": d["msg"], "command": d["command"]})
            continue
        m = entry.forecast.meta
        out.append(
            {
                "tenant": tenant,
                "servable": True,
                "run_id": m.run_id,
                "stage": m.stage,
                "model_version": m.model_version,
                "data_watermark": m.data_watermark,
                "units": len(entry.forecast.index),
            }
        )
    return out


def _print_status(rows: list[dict[str, Any]]) -> None:
    if not rows:
        _say("  none has ingested data yet (`replenish ingest KIND FILE --tenant T`, then `replenish cycle`)")
    for r in rows:
        if r["servable"]:
            _say(
                f"  tenant {r['tenant']}: {r['units']} units from {r['stage']} forecast run {r['run_id']} "
                f"(model version {r['model_version']}, data {r['data_watermark']})"
            )
        else:
            _say(f"  tenant {r['tenant']}: not served yet (409): run `{r['command']}`")


def start_serving(
    serve_file,
    settings,
    *,
    host: str | None = None,
    port: int | None = None,
    args_override: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Start Ray + Serve and deploy the application of ``serve_file``; returns the URLs.

    The replicas inherit ``REPLENISH_HOME`` (made absolute) and the other ``REPLENISH_*`` variables of this
    process, so they read the same state store and registry.
    """
    from serving.deploy import ServeAppConfig, build_app, run_app, start_serve

    os.environ["REPLENISH_HOME"] = str(settings.home)
    args = serve_file.args
    if args_override:
        args = ServeAppConfig.parse({**args.model_dump(), **args_override})
    host = host or serve_file.http_host
    port = port or serve_file.http_port
    start_serve(host, port, ray_address=settings.ray_address)
    run_app(build_app(args), name=serve_file.app_name, route_prefix=serve_file.route_prefix)
    base = f"http://{host}:{port}{serve_file.route_prefix.rstrip('/')}"
    return {
        "base": base,
        "docs": f"{base}/docs",
        "health": f"{base}/healthz",
        "ready": f"{base}/readyz",
        "metrics": f"{base}/metrics",
        "pages": f"{base}/ui/queue",
    }


def serve_until_interrupted(urls: dict[str, Any], on_tick: Callable[[], None] | None = None) -> None:
    """Block until Ctrl-C (or SIGTERM), then stop Serve and Ray; prints the stop."""
    import signal

    from serving.deploy import shutdown

    def _term(signum, frame):  # SIGTERM (e.g. a container stop) ends like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _term)
    try:
        while True:
            time.sleep(1.0)
            if on_tick is not None:
                on_tick()
    except KeyboardInterrupt:
        _say("\nstopping: Serve and Ray are shutting down ...")
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutdown()
        _say("stopped.")


def serve(
    config: Annotated[
        Path, typer.Option(help="Ray Serve config file (the same one `serve deploy` takes).")
    ] = (DEFAULT_SERVE_CONFIG),
    host: Annotated[
        str | None, typer.Option(help="HTTP host (default: the file's http_options.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default: the file's http_options.port).")
    ] = None,
    app_name: Annotated[
        str | None, typer.Option(help="Application of the file (default: the first).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Print what each tenant would be served from, then exit.")
    ] = False,
) -> None:
    """Serve the decision API on a local Ray, each tenant from its stored forecasts (Ctrl-C stops)."""
    from features.settings import get_settings
    from serving.deploy import load_serve_file

    settings = get_settings()
    settings.ensure_home()
    try:
        serve_file = load_serve_file(config, app_name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    _say(f"serve: tenants in {settings.home}:")
    _print_status(tenant_serving_status(settings))
    jobs = serve_file.args.jobs
    if jobs is None:
        _say("serve: no scheduled jobs (the config has no `jobs` section)")
    else:
        cfg = jobs.scheduler_config()
        every = ", ".join(f"{k} every {v:g} s" for k, v in sorted(cfg["intervals_s"].items()) if v)
        cycles = ", ".join(f"cycle:{t} every {v:g} s" for t, v in sorted(cfg["cycle_interval_s"].items()))
        _say(f"serve: scheduled jobs ({jobs.num_replicas} leader-elected replica(s)): {every}"
             + (f", {cycles}" if cycles else "") + " (`replenish jobs runs` lists their runs)")
    if check:
        return
    t0 = time.perf_counter()
    _say(f"serve: starting Ray Serve from {config} ...")
    try:
        urls = start_serving(serve_file, settings, host=host, port=port)
    except BaseException:
        from serving.deploy import shutdown

        shutdown()
        raise
    _say(f"serve: ready in {time.perf_counter() - t0:.0f} s")
    for name in ("docs", "health", "ready", "metrics", "pages"):
        _say(f"  {name:<8s} {urls[name]}")
    _say("Ctrl-C stops.")
    serve_until_interrupted(urls)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the ``replenish`` command."""
    app.command("serve")(serve)
