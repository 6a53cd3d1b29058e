"""The replenishment cycle of one tenant: train? -> forecast -> reconcile -> plan -> propose.

:func:`run_cycle` only wires the stages together; each stage is a public function of the package that owns it
and hands off to the next through versioned facts in the stores, never through objects:

=========  ============================================  ===================================================
stage      function                                      hands on (recorded as the stage's outputs)
=========  ============================================  ===================================================
train      ``training.stage.train_tenant``               model name and version (the tenant's champion gate)
forecast   ``training.stage.forecast_stage``             ``forecast_run`` (stored base forecasts)
reconcile  ``training.reconcile_stage.reconcile_stage``  ``reconciled_run`` and the reconciliation method
plan       ``planning.plan_stage``                       ``plan_run`` (a plan run in the state store)
propose    ``workflow.proposals.propose_plan``           recommendations in the workflow, by state
=========  ============================================  ===================================================

Every stage of a cycle writes under the cycle run's id (the forecast run, the reconciled run and the plan run
of cycle ``c`` are all ``c``), so one id traces a recommendation back to its forecast; a stage run alone
(``stages=["plan"]``) reads the newest upstream facts. The run and each stage are recorded in
:mod:`features.runs` (status, times, counts, outputs, error) as they go: the CLI, the API and batch jobs
report the same record. A failing stage fails the run with the stage's message; the later stages are
skipped.

This is the one module that imports training, planning and workflow together; it holds no stage logic.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from features.runs import (
    CYCLE_STAGES,
    CycleRun,
    create_run,
    fail_run,
    fail_stage,
    finish_run,
    finish_stage,
    get_run,
    start_run,
    start_stage,
)

__all__ = [
    "CYCLE_STAGES",
    "DEFAULT_STAGES",
    "STAGE_FUNCTIONS",
    "CycleRun",
    "has_champion",
    "resolve_function",
    "run_cycle",
    "start_cycle",
]

_log = logging.getLogger(__name__)

#: The stages a cycle runs when none are named (``train`` is added by ``train=True``).
DEFAULT_STAGES = ("forecast", "reconcile", "plan", "propose")
#: Where each stage's function lives (module, name); resolved when the stage runs.
STAGE_FUNCTIONS: dict[str, tuple[str, str]] = {
    "train": ("training.stage", "train_tenant"),
    "forecast": ("training.stage", "forecast_stage"),
    "reconcile": ("training.reconcile_stage", "reconcile_stage"),
    "plan": ("planning", "plan_stage"),
    "propose": ("workflow.proposals", "propose_plan"),
}

Progress = Callable[[str, int, int], None]


@dataclass
class _Context:
    """What the stages of one cycle share: ids and stores, never stage objects."""

    tenant: str
    run_id: str
    settings: Any
    engine: Any
    actor: str
    promote_first: bool = False
    cluster: Any = None  # serving.cluster.ClusterOptions: the heavy stages over partitions on Ray
    ran: dict[str, dict[str, Any]] = field(default_factory=dict)  # outputs of this cycle's stages


def resolve_function(target: tuple[str, str], what: str) -> Callable[..., Any]:
    """The function ``(module, name)`` names, imported when first called (the stages' and the jobs' tables).

    Every entry of :data:`STAGE_FUNCTIONS` and ``serving.jobs.JOB_FUNCTIONS`` resolves (a test checks it);
    importing on first use keeps ``import serving.cycle`` light.

    Raises:
        AttributeError: the module has no such function (``what`` says which stage or job).
    """
    module, name = target
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise AttributeError(f"{module} has no function {name!r} ({what})")
    return fn


def _function(stage: str) -> Callable[..., Any]:
    return resolve_function(STAGE_FUNCTIONS[stage], f"stage {stage!r}")


def _present(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _get(obj: Any, *names: str) -> Any:
    for n in names:
        v = obj.get(n) if isinstance(obj, dict) else getattr(obj, n, None)
        if v is not None:
            return v
    return None


def _scalars(d: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON-small part of a stage's ``extra``: numbers, strings, flags and small dicts of them."""
    out: dict[str, Any] = {}
    for k, v in (d or {}).items():
        if isinstance(v, bool | int | float | str) or v is None:
            out[k] = v
        elif isinstance(v, dict) and len(v) <= 12 and all(
            isinstance(x, bool | int | float | str) or x is None for x in v.values()
        ):
            out[k] = dict(v)
    return out


# -- one adapter per stage: call it with ids, return (counts, outputs) ------------------------------------


def _train(ctx: _Context, cb: Callable[[int, int], None]) -> tuple[dict, dict]:
    res = _function("train")(ctx.tenant, settings=ctx.settings, engine=ctx.engine, progress=cb)
    outputs = {
        "model_name": res.model_name,
        "model_version": str(res.version),
        "promoted": bool(res.promoted),
        "mlflow_run": _get(res, "run_id"),
    }
    short = _get(res, "short_series") or ()
    gate = "promoted to champion" if res.promoted else f"not promoted: {res.reason}"
    if not res.promoted and ctx.promote_first and not has_champion(ctx.tenant, ctx.settings, ctx.engine):
        from training.pipeline import promote

        promote(str(res.version), res.model_name, ctx.settings.mlflow_tracking_uri)
        outputs["promoted"] = outputs["forced"] = True
        gate = f"not promoted by the gate ({res.reason}); promoted by hand as the first champion (forced)"
    counts = {
        "series": _get(res, "n_series"),
        "short_series": len(short),
        "freq": _get(res, "freq"),
        "horizon": _get(res, "horizon"),
        "train_seconds": round(float(res.train_seconds), 1) if _get(res, "train_seconds") else None,
        "best_baseline": _get(res, "best_baseline"),
        "residuals": _get(res, "residuals"),
        "gate": gate,
    }
    return _present(counts), _present(outputs)


def _forecast(ctx: _Context, cb: Callable[[int, int], None]) -> tuple[dict, dict]:
    fn = _function("forecast")
    if ctx.cluster is not None:
        from serving import cluster

        fn = functools.partial(cluster.forecast, ctx.cluster)
    meta = fn(ctx.tenant, run_id=ctx.run_id, settings=ctx.settings, engine=ctx.engine, progress=cb)
    outputs = {
        "forecast_run": meta.run_id,
        "model_name": meta.model_name,
        "model_version": meta.model_version,
        "data_watermark": meta.data_watermark,
    }
    counts = {"freq": meta.freq, "horizon": meta.horizon, **_scalars(meta.extra)}
    return counts, outputs


def _reconcile(ctx: _Context, cb: Callable[[int, int], None]) -> tuple[dict, dict]:
    base = ctx.ran.get("forecast", {}).get("forecast_run")  # None: the newest stored base run
    meta = _function("reconcile")(
        ctx.tenant, run_id=ctx.run_id, base_run=base, settings=ctx.settings, engine=ctx.engine, progress=cb
    )
    extra = dict(meta.extra or {})
    outputs = {
        "reconciled_run": meta.run_id,
        "reconciliation_method": meta.method,
        "base_run": meta.base_run,
        "model_version": meta.model_version,
    }
    counts = {"nodes": extra.get("nodes"), "horizon": meta.horizon, **_scalars(extra)}
    if isinstance(extra.get("coherence"), dict):
        counts["coherence"] = extra["coherence"]
    return _present(counts), _present(outputs)


def _plan(ctx: _Context, cb: Callable[[int, int], None]) -> tuple[dict, dict]:
    # The forecast this cycle made, reconciled if it was; none made here: the newest stored one.
    forecast_run = ctx.ran.get("reconcile", {}).get("reconciled_run") or ctx.ran.get("forecast", {}).get(
        "forecast_run"
    )
    from workflow.confirmations import confirmed_supply

    # open orders a supplier confirmed short: planned as confirmed, the sent order counted once
    kwargs = {"confirmed_supply": confirmed_supply(ctx.engine, ctx.tenant)}
    if ctx.cluster is not None:
        from serving import cluster

        kwargs["planner"] = cluster.planner(ctx.cluster)
    res = _function("plan")(
        ctx.engine,
        ctx.tenant,
        run_id=ctx.run_id,
        forecast_run=forecast_run,
        settings=ctx.settings,
        progress=cb,
        **kwargs,
    )
    fc = res.forecast  # None: planned on the history bootstrap
    outputs = {
        "plan_run": res.run_id,
        "forecast_run": fc.run_id if fc is not None else None,
        "forecast_stage": fc.stage if fc is not None else None,
        "forecast_source": res.forecast_source,
        "model_name": fc.model_name if fc is not None else None,
        "model_version": fc.model_version if fc is not None else None,
        "reconciliation_method": fc.method if fc is not None else None,
    }
    counts = {**res.counts, "period_days": res.period_days}
    if res.notes:
        counts["notes"] = list(res.notes)
    return counts, _present(outputs)


def _propose(ctx: _Context, cb: Callable[[int, int], None]) -> tuple[dict, dict]:
    plan_run = ctx.ran.get("plan", {}).get("plan_run")  # None (run alone): the tenant's newest plan run
    cb(0, 1)
    res = _function("propose")(ctx.engine, ctx.tenant, plan_run, actor=ctx.actor)
    cb(1, 1)
    counts = {k: v for k, v in res.to_dict().items() if k not in ("plan_run_id", "tenant")}
    return counts, {"plan_run": res.plan_run_id}


_ADAPTERS: dict[str, Callable[[_Context, Callable[[int, int], None]], tuple[dict, dict]]] = {
    "train": _train,
    "forecast": _forecast,
    "reconcile": _reconcile,
    "plan": _plan,
    "propose": _propose,
}


# -- the cycle --------------------------------------------------------------------------------------------


def has_champion(tenant: str, settings: Any = None, engine: Any = None) -> bool:
    """Whether the tenant's registered model has a ``champion`` version (so forecasting needs no training)."""
    from features.profile import get_profile, model_name_for
    from serving.deploy import mlflow_alias_version

    settings = settings or _settings()
    eng, own = _engine(settings, engine)
    try:
        name = model_name_for(tenant, get_profile(eng, tenant))
    finally:
        if own:
            eng.dispose()
    try:
        mlflow_alias_version(name, "champion", settings.mlflow_tracking_uri)
    except LookupError:
        return False
    return True


def _settings():
    from features.settings import get_settings

    return get_settings()


def _engine(settings: Any, engine: Any) -> tuple[Any, bool]:
    if engine is not None:
        return engine, False
    from features.store import make_engine
    from serving.migrations import migrate_store

    settings.ensure_home()
    eng = make_engine(settings.database_url)
    migrate_store(eng)
    return eng, True


def _stages(stages: Sequence[str] | None, train: bool | Literal["auto"], needs_training: Callable[[], bool]):
    chosen = list(DEFAULT_STAGES) if not stages else list(dict.fromkeys(stages))
    unknown = [s for s in chosen if s not in CYCLE_STAGES]
    if unknown:
        raise ValueError(
            f"stages={list(stages or ())!r}: unknown {unknown}; expected names from {list(CYCLE_STAGES)}"
        )
    if train is True or (train == "auto" and "train" not in chosen and needs_training()):
        chosen.append("train")
    return [s for s in CYCLE_STAGES if s in chosen]


def start_cycle(
    tenant: str,
    *,
    stages: Sequence[str] | None = None,
    train: bool | Literal["auto"] = False,
    settings: Any = None,
    engine: Any = None,
    requested_by: str | None = None,
) -> str:
    """Record a queued cycle run (what :func:`run_cycle` will do) and return its id, without running it.

    The API answers with this id at once and runs the cycle in the background (``run_cycle(run_id=...)``).

    Raises:
        ValueError: an unknown stage.
        LookupError: the tenant does not exist.
    """
    settings = settings or _settings()
    eng, own = _engine(settings, engine)
    try:
        chosen = _stages(stages, train, lambda: not has_champion(tenant, settings, eng))
        options = {"stages": list(stages or []), "train": train}
        return create_run(eng, tenant, chosen, requested_by=requested_by, options=options)
    finally:
        if own:
            eng.dispose()


def _message(exc: BaseException) -> str:
    """The error as a planner reads it: the message, with the type only where the type says something."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    if isinstance(exc, ValueError | LookupError | RuntimeError | OSError):
        return text
    return f"{type(exc).__name__}: {text}"


def run_cycle(
    tenant: str,
    *,
    stages: Sequence[str] | None = None,
    train: bool | Literal["auto"] = False,
    settings: Any = None,
    engine: Any = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    requested_by: str | None = None,
    promote_first: bool = False,
    cluster: Any = None,
) -> CycleRun:
    """Run the cycle for ``tenant`` and record it; return the run record.

    Args:
        tenant: an existing tenant with ingested data.
        stages: a subset of :data:`CYCLE_STAGES` (run in the cycle's order, each on the newest upstream facts
            when its upstream stage is not in the subset); None: :data:`DEFAULT_STAGES`.
        train: ``True`` adds the ``train`` stage; ``"auto"`` adds it only when the tenant has no champion.
        settings: ``features.settings.Settings`` (default ``get_settings()``).
        engine: the state store (default: ``settings.database_url``, migrated).
        progress: ``progress(stage, done, total)``, called as each stage starts (0 of 1), as it reports, and
            as it ends (total of total).
        run_id: a run already recorded by :func:`start_cycle` (its stages are the ones run); None: a new run.
        requested_by: who asked, for a new run's record (``cli``, ``demo``, an API key id).
        promote_first: when training leaves the tenant without any champion (the gate refused its first
            version), make that version champion by hand, recorded on it as forced
            (``training.pipeline.promote``), so the cycle can go on; the gate still guards every later
            version. Off by default: a tenant without a champion fails the forecast stage, naming the command.
        cluster: a ``serving.cluster.ClusterOptions``: forecast and plan over partitions on that Ray cluster;
            None: the settings' ``ray_address`` when set, else everything in this process (the default).

    Returns:
        The stored :class:`features.runs.CycleRun`: ``succeeded``, or ``failed`` with the failing stage's
        message in ``error`` (the cycle never raises for a stage's error; the traceback is logged at DEBUG).

    Raises:
        ValueError: an unknown stage.
        LookupError: the tenant does not exist, or no run ``run_id`` for it.
    """
    settings = settings or _settings()
    eng, own = _engine(settings, engine)
    report = progress or (lambda _s, _d, _t: None)
    try:
        if run_id is None:
            run_id = start_cycle(
                tenant, stages=stages, train=train, settings=settings, engine=eng, requested_by=requested_by
            )
        record = get_run(eng, tenant, run_id)
        actor = f"cycle:{run_id}"
        from serving.cluster import cluster_options

        ctx = _Context(tenant, run_id, settings, eng, actor, promote_first=promote_first)
        ctx.cluster = cluster_options(settings, cluster)
        start_run(eng, tenant, run_id)
        try:
            for stage in (s.stage for s in record.stages):
                if not _run_stage(ctx, stage, report):
                    break
            else:
                finish_run(eng, tenant, run_id)
        except BaseException as exc:  # interrupted (Ctrl-C, shutdown): the record must not stay "running"
            fail_run(eng, tenant, run_id, f"interrupted: {_message(exc)}")
            raise
        return get_run(eng, tenant, run_id)
    finally:
        if own:
            eng.dispose()


def _announce(eng: Any, tenant: str, run_id: str, stage: str, outputs: dict, counts: dict) -> None:
    """Put the finished stage on the tenant's event log (forecast and plan topics); never fails the cycle."""
    from features.store import session_scope
    from workflow.events import publish_cycle_stage

    try:
        with session_scope(eng) as s:
            publish_cycle_stage(s, tenant, run_id, stage, outputs, counts)
    except Exception:  # the stage's facts are stored; a missing event is logged, not a failed cycle
        _log.warning("cycle %s: the %s event was not published", run_id, stage, exc_info=True)


def _run_stage(ctx: _Context, stage: str, report: Progress) -> bool:
    """Run one stage and record it; False when it failed (the run is then failed)."""
    eng, tenant, run_id = ctx.engine, ctx.tenant, ctx.run_id
    last = {"total": 1, "steps": 0}

    def cb(done: Any, total: int | None = None, *_: Any, **__: Any) -> None:
        if isinstance(done, str):  # a stage that names its steps: count them
            done, last["steps"] = last["steps"], last["steps"] + 1
            total = max(last["total"], last["steps"])
        if total:
            last["total"] = int(total)
        report(stage, int(done), last["total"])

    start_stage(eng, tenant, run_id, stage)
    report(stage, 0, 1)
    t0 = time.perf_counter()
    try:
        counts, outputs = _ADAPTERS[stage](ctx, cb)
    except Exception as exc:  # a stage's error fails the run with its message; the cycle goes no further
        _log.debug("cycle %s: stage %s failed", run_id, stage, exc_info=True)
        fail_stage(eng, tenant, run_id, stage, _message(exc), seconds=round(time.perf_counter() - t0, 3))
        return False
    ctx.ran[stage] = outputs
    finish_stage(
        eng, tenant, run_id, stage, counts=counts, outputs=outputs, seconds=round(time.perf_counter() - t0, 3)
    )
    _announce(eng, tenant, run_id, stage, outputs, counts)
    report(stage, last["total"], last["total"])
    return True
