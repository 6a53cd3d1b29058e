"""``replenish demo``: the whole flow on the embedded defaults, each step through its package's public API.

ingest the bundled Stallion data -> train a short CPU-sized TFT -> register and promote it -> forecast and
reconcile -> simulate and plan -> route -> start Serve and print the URLs and an example API call.

Each step prints what it did and how long it took. A step whose package does not provide its API in this
checkout says so plainly and the demo goes on with what exists; nothing is made up in its place. Ctrl-C stops
everything (Serve and Ray included) cleanly. ``--no-serve`` ends after planning (what the tests run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["DEMO_TRAIN", "DemoState", "register", "run_demo"]

#: The demo's training run: all 350 Stallion series, a small TFT, a few short epochs (CPU, about a minute).
DEMO_TRAIN: dict[str, Any] = {
    "name": "replenish-tft",
    "data": {"source": "stallion"},
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


class Missing(Exception):
    """A step's package does not provide the API the step needs in this checkout."""


@dataclass
class DemoState:
    """What the steps hand each other, and what each one reported."""

    settings: Any
    tenant: str
    log: Callable[[str], None]
    steps: list[dict[str, Any]] = field(default_factory=list)
    model_version: str | None = None
    predictor: Any = None
    forecasts: Any = None  # (N, H, Q) bottom-level quantiles
    reconciled: Any = None
    plan: Any = None
    api_key: str | None = None
    retrain: bool = False
    train_config: Any = None  # a training config file (default: DEMO_TRAIN)


def _require(module: str, *names: str):
    """Import ``names`` from ``module`` or raise :class:`Missing` naming what is absent."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise Missing(f"{module} is not in this checkout ({exc.name} missing)") from None
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        raise Missing(f"{module} does not provide {', '.join(missing)} yet")
    return [getattr(mod, n) for n in names]


# -- steps ---------------------------------------------------------------------------------------------------


def step_ingest(st: DemoState) -> str:
    """Ingest bundled Stallion (demand) and its generated supply side into the stores."""
    (load_into_store,) = _require("features.stallion", "load_into_store")
    summary = load_into_store(st.settings, st.tenant)
    count = {
        k: sum((v.get(k) or 0) for v in summary["kinds"].values())
        for k in ("rows", "stored", "duplicate", "quarantined")
    }
    statuses: dict[str, int] = {}
    for v in summary["kinds"].values():
        statuses[v["status"]] = statuses.get(v["status"], 0) + 1
    return (
        f"{summary['series']} series x {summary['periods']} periods ({summary['first']} .. "
        f"{summary['last']}); {len(summary['kinds'])} tables {statuses}: {count['stored']} rows stored, "
        f"{count['quarantined']} quarantined; generated (marked): {', '.join(summary['generated'])}"
    )


def step_train(st: DemoState) -> str:
    """Train a short TFT, backtest it beside the baselines, register it in MLflow, apply the champion gate."""
    from serving.deploy._predictors import mlflow_alias_version

    if not st.retrain:
        try:
            st.model_version = mlflow_alias_version(
                st.settings.model_name, "champion", st.settings.mlflow_tracking_uri
            )
            return (
                f"champion version {st.model_version} is already registered in this home; reusing it "
                "(--retrain trains a new version)"
            )
        except LookupError:
            pass
    load_train_config, train_and_register = (
        _require("training.config", "load_train_config")[0],
        _require("training.pipeline", "train_and_register")[0],
    )
    cfg = load_train_config(st.train_config or {**DEMO_TRAIN, "name": st.settings.model_name})
    result = train_and_register(cfg)
    st.model_version = str(result.version)
    wape = {
        k: round(float(v.get("wape", float("nan"))), 3)
        for k, v in result.summary.items()
        if isinstance(v, dict) and "wape" in v
    }
    gate = "promoted to champion" if result.promoted else "not promoted by the gate"
    return (
        f"version {result.version} registered in {result.train_seconds:.0f} s of training; backtest WAPE "
        f"{wape}; {gate} ({result.reason})"
    )


def step_promote(st: DemoState) -> str:
    """Make sure ``champion`` names a version (by the gate, or by hand, recorded as forced)."""
    from serving.deploy._predictors import mlflow_alias_version

    name, uri = st.settings.model_name, st.settings.mlflow_tracking_uri
    try:
        current = mlflow_alias_version(name, "champion", uri)
    except LookupError:
        current = None
    if current is not None and (st.model_version is None or current == st.model_version):
        st.model_version = current
        return f"champion = version {current}"
    if st.model_version is None:
        raise Missing("no model was trained, so there is nothing to promote")
    (promote,) = _require("training.pipeline", "promote")
    if current is None:
        decision = promote(st.model_version, name, uri)
        return (
            f"champion = version {st.model_version}, promoted by hand for the demo (recorded on the "
            f"version as forced: {getattr(decision, 'reason', decision)})"
        )
    st.model_version = current
    return f"champion stays version {current} (the gate kept it; the new version is registered beside it)"


def step_forecast(st: DemoState) -> str:
    """Forecast every planning unit with the champion's fast predictor, then reconcile agency/SKU totals."""
    import numpy as np

    from serving.deploy._predictors import load_tft_predictor

    t0 = time.perf_counter()
    st.predictor = load_tft_predictor("champion", st.settings.model_name, st.settings.mlflow_tracking_uri)
    units = st.predictor.unit_ids()
    st.forecasts = st.predictor.predict(units)  # (N, H, Q)
    fc_s = time.perf_counter() - t0
    msg = (
        f"{len(units)} units x {st.predictor.horizon} months x {len(st.predictor.quantiles)} quantiles "
        f"(model version {st.predictor.version}) in {fc_s:.1f} s"
    )
    try:
        frame_hierarchy, reconcile_frame = _require(
            "kernels.reconcile_frame", "frame_hierarchy", "reconcile_frame"
        )
    except Missing as exc:
        return msg + f"; reconciliation skipped: {exc}"
    import polars as pl

    keys = pl.DataFrame({"agency": [u.split("|")[0] for u in units], "sku": [u.split("|")[1] for u in units]})
    fh = frame_hierarchy(keys, [[], ["agency"], ["sku"], ["agency", "sku"]])
    q = st.predictor.quantiles
    mid = q.index(0.5) if 0.5 in q else len(q) // 2
    H = st.predictor.horizon
    ids = fh.ids.to_list()
    n_bottom = len(units)
    row = {u: i for i, u in enumerate(units)}
    bottom_rows = [row["|".join(p.split("=", 1)[1] for p in node.split("/"))] for node in ids[-n_bottom:]]
    y_bottom = st.forecasts[bottom_rows, :, mid]  # (m, H) median paths, in the hierarchy's bottom order
    base = np.zeros((len(ids), H))
    base[-n_bottom:] = y_bottom  # aggregates get no model of their own: bottom-up is the honest choice here
    base[:-n_bottom] = (fh.S @ y_bottom)[:-n_bottom]
    frame = pl.DataFrame(
        {"unique_id": np.repeat(ids, H), "ds": np.tile(np.arange(H), len(ids)), "y_hat": base.reshape(-1)}
    )
    st.reconciled = reconcile_frame(frame, fh, method="bottom_up")
    total = st.reconciled.filter(pl.col("unique_id") == "total").sort("ds")["y_hat"].to_numpy()
    coherent = bool(np.allclose(total, y_bottom.sum(axis=0), rtol=1e-6))
    return msg + (
        f"; reconciled bottom-up over {len(ids)} nodes (total, {keys['agency'].n_unique()} "
        f"agencies, {keys['sku'].n_unique()} SKUs, {n_bottom} agency x SKU); coherent: {coherent}"
    )


def _contract_complete(tables: dict[str, Any]) -> dict[str, Any]:
    """Add the optional contract columns a table leaves out, with the contract's default (as ingest does)."""
    import polars as pl

    (get_contract,) = _require("features.contracts", "get_contract")
    out = {}
    for kind, frame in tables.items():
        try:
            contract = get_contract(kind)
        except Exception:  # noqa: BLE001 - not a contract kind: pass through
            out[kind] = frame
            continue
        missing = [f for f in contract.fields if not f.required and f.name not in frame.columns]
        out[kind] = (
            frame.with_columns([pl.lit(f.default).alias(f.name) for f in missing]) if missing else frame
        )
    return out


def step_plan(st: DemoState) -> str:
    """Simulate demand and lead times and plan orders and transfers (planning's public API)."""
    import numpy as np

    plan, inputs_from_frames, Forecast, PlanConfig, load_rules, save_plan = _require(  # noqa: N806
        "planning", "plan", "inputs_from_frames", "Forecast", "PlanConfig", "load_rules", "save_plan"
    )
    (stallion_tables,) = _require("features.stallion", "stallion_tables")
    period_days = 30  # Stallion is monthly
    horizon = st.predictor.horizon if st.predictor is not None else 6
    # The same seeded tables that the ingest step stored (demand plus the generated supply side).
    inputs = inputs_from_frames(
        **_contract_complete(stallion_tables(seed=0)), period_days=period_days, horizon=horizon
    )
    forecast, source = inputs.forecast, "baseline (planning's own)"
    if st.predictor is not None:
        ids = [
            f"{loc}|{sku}"
            for sku, loc in zip(inputs.units["sku_id"], inputs.units["location_id"], strict=True)
        ]
        if all(st.predictor.has_unit(u) for u in ids):
            forecast = Forecast(
                levels=np.asarray(st.predictor.quantiles),
                values=st.predictor.predict(ids),
                version=f"{st.settings.model_name}:{st.predictor.version}:{inputs.as_of}",
                model_version=str(st.predictor.version),
                source=f"model:{st.settings.model_name}",
            )
            source = f"TFT champion version {st.predictor.version}"
        else:
            source += f" ({sum(not st.predictor.has_unit(u) for u in ids)} units unknown to the TFT)"
    rules_path = Path(__file__).resolve().parents[2] / "configs" / "routing.yaml"
    result = plan(
        inputs.units,
        forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        lead_time_counts=inputs.lead_time_counts,
        config=PlanConfig(period_days=period_days, seed=0),
        rules=load_rules(rules_path),
        extra_exceptions=inputs.exceptions,
    )
    from features.store._db import make_engine
    from features.store._migrate import migrate

    engine = make_engine(st.settings.database_url)
    migrate(engine)
    run_id = save_plan(engine, st.tenant, result, create_tenant=True)
    engine.dispose()
    st.plan = result
    recs = result.recommendations
    kinds = dict(recs.group_by("kind").len().iter_rows()) if recs.height else {}
    return (
        f"{inputs.units.height} units planned for the review of {inputs.as_of} with forecast {source}; "
        f"{recs.height} recommendations {kinds}, {result.exceptions.height} exceptions, "
        f"{result.po_drafts.height} PO drafts; run {run_id} stored"
    )


def _recommendation_ins(recs, period_days: int) -> list:
    """Planning's recommendation rows as the control plane's ``RecommendationIn``, evidence nested."""
    (RecommendationIn,) = _require("workflow.schemas", "RecommendationIn")  # noqa: N806
    (evidence_record,) = _require("planning", "evidence_record")
    kind_map = {"purchase": "purchase_order", "transfer": "transfer", "allocation": "allocation"}
    out = []
    for r in recs.iter_rows(named=True):
        doc = evidence_record(r)
        fc = doc.get("forecast", {})
        body: dict[str, Any] = {
            "kind": kind_map.get(r["kind"], r["kind"]),
            "sku_id": r["sku_id"],
            "location_id": r["location_id"],
            "from_location_id": r.get("from_location_id"),
            "supplier_id": r.get("supplier_id"),
            "quantity": float(r["order_qty"]),
            "unit_cost": r.get("unit_cost"),
            "need_by": r.get("expected_arrival"),
            "promised_lead_time_days": r.get("promised_lead_time_days"),
            "evidence": {
                "forecast_version": fc.get("version"),
                "model_version": fc.get("model_version"),
                "quantiles": {"p50_period0": fc.get("p50_period0")}
                if fc.get("p50_period0") is not None
                else None,
                "inventory_position": doc.get("inventory", {}).get("position"),
                "lead_time": {**doc.get("lead_time", {}), "period_days": period_days},
                "simulation": doc.get("simulation"),
                "constraints": {k: doc[k] for k in ("order", "supplier") if k in doc},
                "assumptions": {
                    **{k: doc[k] for k in ("transfer", "allocation", "inventory") if k in doc},
                    "forecast_source": fc.get("source"),
                    "supply_side": "generated with a fixed seed (Stallion has no supply data)",
                },
            },
        }
        if r.get("action") == "route":
            body["route"] = {
                "queue": r["route_queue"],
                "role": r["route_role"],
                "rule": r["rule"],
                "reason": r["reason"],
            }
        else:
            body["auto_approve"] = {
                "rule": r.get("rule") or "default",
                "reason": r.get("reason") or "within policy",
            }
        body["evidence"] = {k: v for k, v in body["evidence"].items() if v is not None}
        out.append(RecommendationIn(**{k: v for k, v in body.items() if v is not None}))
    return out


def step_route(st: DemoState) -> str:
    """Hand the plan to the control plane: routed items wait for planners, the rest are auto-approved."""
    if st.plan is None:
        raise Missing("no plan to route (the planning step did not run)")
    (propose_many,) = _require("workflow.lifecycle", "propose_many")
    from features.store._db import make_engine, session_scope
    from features.store._migrate import migrate

    recs = _recommendation_ins(st.plan.recommendations, st.plan.meta.get("period_days", 30))
    engine = make_engine(st.settings.database_url)
    migrate(engine)
    with session_scope(engine) as s:
        out = propose_many(s, st.tenant, recs, actor="planning:demo")
    engine.dispose()
    states: dict[str, int] = {}
    for r in out:
        states[r.state] = states.get(r.state, 0) + 1
    return f"{len(out)} recommendations handed to the control plane: {states}"


def step_key(st: DemoState) -> str:
    """Create a demo API key (planner + approver) for the tenant; shown once, stored hashed."""
    ensure_tenant, create_key = _require("workflow.access", "ensure_tenant", "create_key")
    from features.store._db import make_engine, session_scope
    from features.store._migrate import migrate

    engine = make_engine(st.settings.database_url)
    migrate(engine)
    with session_scope(engine) as s:
        ensure_tenant(s, st.tenant)
        _, st.api_key = create_key(s, st.tenant, ["planner", "approver"], name="demo", actor="demo")
    engine.dispose()
    return f"tenant {st.tenant!r}: key {st.api_key}"


STEPS: list[tuple[str, Callable[[DemoState], str]]] = [
    ("ingest Stallion", step_ingest),
    ("train a short TFT", step_train),
    ("register + promote", step_promote),
    ("forecast + reconcile", step_forecast),
    ("simulate + plan", step_plan),
    ("route", step_route),
    ("API key", step_key),
]


def run_demo(
    settings,
    tenant: str,
    log: Callable[[str], None],
    skip: set[str] = frozenset(),
    retrain: bool = False,
    train_config: Path | None = None,
) -> DemoState:
    """Run the steps in order; a :class:`Missing` step is reported and skipped, other errors stop it.

    Returns:
        The :class:`DemoState` with one entry per step in ``steps`` (``status``: done / missing / skipped).
    """
    st = DemoState(settings=settings, tenant=tenant, log=log, retrain=retrain, train_config=train_config)
    n = len(STEPS) + 1
    for i, (name, fn) in enumerate(STEPS, start=1):
        if name in skip:
            st.steps.append({"step": name, "status": "skipped"})
            log(f"[{i}/{n}] {name}: skipped")
            continue
        log(f"[{i}/{n}] {name} ...")
        t0 = time.perf_counter()
        try:
            detail = fn(st)
        except Missing as exc:
            st.steps.append({"step": name, "status": "missing", "detail": str(exc)})
            log(f"      not available: {exc}; continuing without it")
            continue
        dt = time.perf_counter() - t0
        st.steps.append({"step": name, "status": "done", "seconds": round(dt, 1), "detail": detail})
        log(f"      done in {dt:.1f} s: {detail}")
    return st


def _quiet() -> None:
    """Keep the demo's output to its steps: library warnings and progress bars off."""
    import logging
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.fabric",
        "pytorch_lightning",
        "mlflow",
        "alembic",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "mlflow.store.db.utils",
        "mlflow.tracking._model_registry.client",
        "alembic.runtime.migration",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def demo(
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after planning (do not start Serve).")
    ] = False,
    config: Annotated[
        Path | None, typer.Option(help="Serve config file (default configs/serve.yaml).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: the config's).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the configured one).")] = None,
    retrain: Annotated[bool, typer.Option(help="Train a new version even if a champion exists.")] = False,
    train_config: Annotated[
        Path | None,
        typer.Option(help="Training config (default: the demo's short CPU run on all Stallion series)."),
    ] = None,
) -> None:
    """Run the whole flow on the embedded defaults and serve it (Ctrl-C stops everything)."""
    from features.settings import get_settings
    from serving.cli._serve import DEFAULT_SERVE_CONFIG, serve_until_interrupted, start_serving

    settings = get_settings()
    settings.ensure_home()
    tenant = tenant or settings.tenant
    t_start = time.perf_counter()
    typer.echo(f"replenish demo: home {settings.home} (delete it to remove the demo), tenant {tenant!r}")
    try:
        _quiet()
        st = run_demo(settings, tenant, typer.echo, retrain=retrain, train_config=train_config)
        missing = [s["step"] for s in st.steps if s["status"] == "missing"]
        if no_serve:
            typer.echo(
                f"demo finished without Serve in {time.perf_counter() - t_start:.0f} s"
                + (f"; not available in this checkout: {', '.join(missing)}" if missing else "")
            )
            return
        from serving.deploy import load_serve_file

        n = len(STEPS) + 1
        typer.echo(f"[{n}/{n}] start Ray Serve ...")
        t0 = time.perf_counter()
        serve_file = load_serve_file(config or DEFAULT_SERVE_CONFIG)
        urls = start_serving(serve_file, settings, port=port)
    except KeyboardInterrupt:
        from serving.deploy._local import shutdown

        typer.echo("\ninterrupted: stopping ...")
        shutdown()
        raise typer.Exit(130) from None
    except BaseException:
        from serving.deploy._local import shutdown

        shutdown()  # never leave a half-started Ray behind
        raise
    typer.echo(
        f"      done in {time.perf_counter() - t0:.1f} s; serving state reached "
        f"{time.perf_counter() - t_start:.0f} s after start"
    )
    for name in ("docs", "pages", "health", "ready", "metrics"):
        typer.echo(f"  {name:<8s} {urls[name]}")
    unit = st.predictor.unit_ids()[0] if st.predictor is not None else "Agency_01|SKU_01"
    typer.echo("example API call:")
    typer.echo(
        f"  curl -s -X POST {urls['base']}/v1/forecasts -H 'X-API-Key: {st.api_key}' \\\n"
        f"       -H 'Content-Type: application/json' -d '{{\"units\": [\"{unit}\"]}}'"
    )
    if missing:
        typer.echo(f"not available in this checkout: {', '.join(missing)}")
    typer.echo("Ctrl-C stops everything.")
    serve_until_interrupted(urls)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``replenish`` command."""
    app.command("demo")(demo)
