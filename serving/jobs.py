"""The scheduled jobs of a serving replica: which jobs exist, what each calls, the scheduler running them.

``replenish serve`` (and each replica of the ``Jobs`` Serve deployment in the KubeRay ``RayService``) calls
:func:`start_scheduler`; the scheduler itself (leader lease, one run per window, run records) is
:class:`workflow.jobs.Scheduler`. This module only names the jobs and wires each to the stage that does the
work, like :mod:`serving.cycle` wires the cycle's stages:

==========  ==================================================  =========================================
job         calls                                               per
==========  ==================================================  =========================================
dispatch    ``workflow.dispatcher.Dispatcher`` (each tenant's   the service (items of every tenant)
            webhook targets, ``workflow.webhooks``)
expire      ``workflow.lifecycle.expire_due``                   tenant, in one run
monitoring  ``workflow.monitoring.run_monitoring``              tenant, in one run
escalate    ``workflow.exceptions.escalate_overdue``            tenant, in one run
cycle:<t>   ``serving.cycle.run_cycle``                         tenant ``t`` (its own interval)
==========  ==================================================  =========================================

Adding a job is one line in :data:`JOB_FUNCTIONS` plus its interval in :data:`DEFAULT_INTERVALS_S`; a job
that raises :class:`workflow.jobs.JobUnavailable` is recorded as ``skipped`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from workflow.jobs import JobSpec, Scheduler

__all__ = ["DEFAULT_INTERVALS_S", "JOB_FUNCTIONS", "build_specs", "start_scheduler", "tenants"]

#: Where each job's work lives: ``(module, function)`` resolved when the job runs.
JOB_FUNCTIONS: dict[str, tuple[str, str]] = {
    "dispatch": ("serving.jobs", "_dispatch"),
    "expire": ("workflow.lifecycle", "expire_due"),
    "monitoring": ("workflow.monitoring", "run_monitoring"),
    "escalate": ("workflow.exceptions", "escalate_overdue"),
    "cycle": ("serving.cycle", "run_cycle"),
}
#: Seconds between two runs of each service-wide job (``cycle`` is per tenant and off unless configured).
DEFAULT_INTERVALS_S: dict[str, float] = {
    "dispatch": 10.0,
    "expire": 300.0,
    "monitoring": 3600.0,
    "escalate": 300.0,
}


def _function(job: str) -> Callable[..., Any]:
    from serving.cycle import resolve_function

    return resolve_function(JOB_FUNCTIONS[job], f"job {job!r}")


def tenants(engine) -> list[str]:
    """Every tenant of the state store, sorted."""
    from features.store import Tenant, session_scope

    with session_scope(engine) as s:
        return list(s.scalars(select(Tenant.tenant_id).order_by(Tenant.tenant_id)))


def _dispatch(engine, settings) -> dict[str, Any]:
    """Deliver every due outbox item to its tenant's target (until nothing is due)."""
    from pathlib import Path

    import numpy as np

    from workflow.dispatcher import Dispatcher
    from workflow.webhooks import WritebackRouter

    # the same routing as `replenish outbox dispatch`: each kind to its system's target, supplier orders to
    # their supplier's channel
    drops = Path(settings.home) / "supplier-orders"
    adapter = WritebackRouter(engine, supplier_drop_root=drops, https_only=settings.env == "production")
    try:
        st = Dispatcher(engine, adapter, rng=np.random.default_rng()).run(until_idle=True, max_rounds=100)
    finally:
        adapter.close()  # its connection pools: one run per window must not leak them
    return {
        "claimed": st.claimed,
        "delivered": st.delivered,
        "retried": st.retried,
        "dead": st.dead,
        "lost_lease": st.lost_lease,
    }


def _per_tenant(job: str, engine) -> dict[str, Any]:
    """Run a ``fn(session, tenant_id)`` job for every tenant, each in its own transaction.

    The job's function takes an open session and a tenant id and returns a count (or anything with
    ``counts``), like ``workflow.lifecycle.expire_due``; ``escalate_overdue`` is called the same way.
    """
    from features.store import session_scope

    fn = _function(job)
    out: dict[str, Any] = {}
    for t in tenants(engine):
        with session_scope(engine) as s:
            res = fn(s, t)
        if isinstance(res, list | tuple):  # e.g. the escalated exceptions: their number
            res = len(res)
        out[t] = res if isinstance(res, int | float | None) else getattr(res, "counts", str(res)[:200])
    return out


def _monitoring(engine, settings) -> dict[str, Any]:
    fn = _function("monitoring")
    return {t: fn(engine, t, facts_dir=settings.facts_dir).counts for t in tenants(engine)}


def _cycle(tenant: str, engine, settings) -> dict[str, Any]:
    run = _function("cycle")(tenant, settings=settings, engine=engine, requested_by="scheduler")
    if run.status != "succeeded":
        raise RuntimeError(f"cycle {run.run_id} {run.status}: {run.error}")
    return {"cycle_run": run.run_id}


def build_specs(
    engine,
    settings,
    *,
    intervals_s: dict[str, float] | None = None,
    cycle_interval_s: dict[str, float] | None = None,
) -> list[JobSpec]:
    """The jobs of one replica.

    Args:
        engine: the shared state store.
        settings: ``features.settings.Settings`` (fact store, environment).
        intervals_s: ``job -> seconds`` for the service-wide jobs (default :data:`DEFAULT_INTERVALS_S`; a job
            left out or set to 0 does not run).
        cycle_interval_s: ``tenant -> seconds`` between two scheduled cycles of that tenant.

    Raises:
        ValueError: an unknown job name.
    """
    intervals = dict(DEFAULT_INTERVALS_S if intervals_s is None else intervals_s)
    unknown = sorted(set(intervals) - set(DEFAULT_INTERVALS_S))
    if unknown:
        raise ValueError(
            f"jobs intervals: unknown job(s) {unknown}; expected some of {sorted(DEFAULT_INTERVALS_S)}"
        )
    work: dict[str, Callable[[], dict[str, Any]]] = {
        "dispatch": lambda: _function("dispatch")(engine, settings),
        "expire": lambda: _per_tenant("expire", engine),
        "monitoring": lambda: _monitoring(engine, settings),
        "escalate": lambda: _per_tenant("escalate", engine),
    }
    specs = [JobSpec(name, float(s), work[name]) for name, s in sorted(intervals.items()) if s]
    for tenant, s in sorted((cycle_interval_s or {}).items()):
        specs.append(
            JobSpec(
                f"cycle:{tenant}", float(s), lambda t=tenant: _cycle(t, engine, settings), tenant_id=tenant
            )
        )
    return specs


def start_scheduler(
    settings,
    *,
    engine=None,
    intervals_s: dict[str, float] | None = None,
    cycle_interval_s: dict[str, float] | None = None,
    lease_s: float = 30.0,
    tick_s: float = 1.0,
    retain_days: float = 7.0,
    owner: str | None = None,
) -> Scheduler:
    """Open the state store (migrated), build the jobs and start the scheduler's loop; returns it running.

    Call :meth:`workflow.jobs.Scheduler.stop` to stop it (it gives the lease up).
    """
    if engine is None:
        from features.store import make_engine
        from serving.migrations import migrate_store

        settings.ensure_home()
        engine = make_engine(settings.database_url)
        migrate_store(engine)
    specs = build_specs(engine, settings, intervals_s=intervals_s, cycle_interval_s=cycle_interval_s)
    kw = {"owner": owner} if owner else {}
    return Scheduler(
        engine, specs, lease_s=lease_s, tick_s=tick_s, retain_s=retain_days * 86400.0, **kw
    ).start()
