"""The decision API's app builder: it only assembles (engine, routers, error mapping, guards, metering).

``create_app(settings)`` serves every route of the decision API (:data:`ROUTERS`: the control plane under
``/v1``, forecasts, risk, plans, cycles, health, metrics and the pages) on the state store named by
``settings.database_url`` (migrated at start-up). :func:`build_decision_app` is the same app with the
simulation engine warmed up and an optional on-the-fly forecaster attached; Ray Serve mounts it.

App-wide protections live here so that every builder gets them (``docs/security.md``):

* :class:`serving.api._limits.RequestGuard`: bodies over ``settings.max_body_bytes`` answer 413; NUL or an
  integer outside int64 in a query or path value answers 422;
* rate limits per API key and per tenant and the tenant's daily quota (checked where the key is, in
  :mod:`serving.api.deps`): 429 with ``Retry-After``;
* durable usage metering per tenant, route and day (:class:`workflow.usage.UsageMeter`);
* a JSON 500 handler that names no internals (the error is logged with a request id the answer carries);
* the decision rights of ``settings`` (:class:`workflow.rights.DecisionPolicy`) in ``app.state``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from features.settings import Settings, get_settings
from features.store import make_engine, session_scope
from serving import pages
from serving.api._limits import RequestGuard, TokenBuckets
from serving.api.routes import (
    audit,
    cycles,
    events,
    evidence,
    forecasts,
    health,
    keys,
    outbox,
    plans,
    recommendations,
    risk,
    suppliers,
    telemetry,
    webhooks,
)
from serving.api.routes import exceptions as exception_routes
from serving.api.routes import metrics as metrics_routes
from serving.migrations import migrate_store
from workflow.errors import InvalidInput, WorkflowError
from workflow.rights import DecisionPolicy
from workflow.telemetry import RequestMeter, prometheus_text
from workflow.usage import UsageMeter

__all__ = ["ROUTERS", "build_decision_app", "create_app"]

log = logging.getLogger("replenish.api")

#: Every router of the decision API, in one place. ``/metrics`` is added last by :func:`create_app` (it
#: carries the control plane's collector).
ROUTERS = (
    health.router,
    forecasts.router,
    risk.router,
    plans.router,
    cycles.router,
    pages.router,
    recommendations.router,
    exception_routes.router,
    evidence.router,
    events.router,
    outbox.router,
    audit.router,
    keys.router,
    telemetry.router,
    webhooks.router,
    suppliers.router,
)


async def _workflow_error(request: Request, exc: WorkflowError) -> JSONResponse:
    if isinstance(exc, InvalidInput):  # the documented 422 body: a list of field errors, like FastAPI's own
        return JSONResponse(status_code=422, content={"detail": exc.errors()})
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail()})


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler echoes the input back, which fails to encode when it holds NaN or Infinity (a
    # 500); location, message and type are what a client needs.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        status_code=500,
        content={"detail": {"error": "InternalError", "message": "internal error", "reference": ref}},
    )


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Assemble the decision API.

    Args:
        settings: service settings (default :func:`features.settings.get_settings`).
        engine: an existing engine for ``settings.database_url`` (default: a new one, disposed at shutdown).
    """
    settings = settings or get_settings()
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    usage = UsageMeter(engine, flush_s=settings.usage_flush_s, daily_quota=settings.tenant_daily_quota)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate_store(engine)
        yield
        with contextlib.suppress(Exception):  # a store that went away must not hide the shutdown
            usage.flush()
        if own_engine:
            engine.dispose()

    app = FastAPI(title="replenish decision API", version="1", lifespan=lifespan)
    app.state.settings, app.state.engine = settings, engine
    app.state.meter, app.state.usage = RequestMeter(), usage
    app.state.decision_policy = DecisionPolicy.from_settings(settings)
    app.state.key_buckets = TokenBuckets(settings.rate_limit_per_key, settings.rate_burst_per_key)
    app.state.tenant_buckets = TokenBuckets(settings.rate_limit_per_tenant, settings.rate_burst_per_tenant)
    app.add_exception_handler(WorkflowError, _workflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    metrics_routes.install(app)
    for router in ROUTERS:
        app.include_router(router)
    pages.setup_app(app)

    async def meter(scope, status: int, seconds: float) -> None:
        # Per tenant: the tenant the key dependency noted; unauthenticated requests are not metered here.
        tenant = (scope.get("state") or {}).get("tenant_id")
        if tenant is None:
            return
        route = getattr(scope.get("route"), "path", "unmatched")
        app.state.meter.observe(tenant, route, status, seconds)
        usage.observe(tenant, route, status, seconds)
        if usage.due():
            with contextlib.suppress(Exception):  # metering must never fail a request
                await run_in_threadpool(usage.flush)

    app.add_middleware(metrics_routes.ObserveASGI, observe=meter)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)
    app.include_router(metrics_routes.router)

    def _collector() -> list[str]:
        with session_scope(engine) as s:
            return prometheus_text(s, app.state.meter).rstrip("\n").split("\n")

    metrics_routes.add_collector(app, _collector)
    return app


def build_decision_app(
    settings: Settings | None = None,
    forecaster: Any = None,
    *,
    forecast_check_interval_s: float | None = None,
) -> FastAPI:
    """The decision API of :func:`create_app`, with the simulation engine warmed up first.

    Forecasts, risk and what-if answer each caller's tenant from its stored forecasts and plan inputs
    (:mod:`serving.api.routes.forecasts`); nothing global is attached for them.

    Args:
        settings: :class:`features.settings.Settings` (default: ``get_settings()``).
        forecaster: an on-the-fly :class:`serving.api.routes.forecasts.Forecaster` (the model deployment's
            handle under Serve) as ``app.state.forecaster``, or ``None``.
        forecast_check_interval_s: most seconds between two checks of a tenant's stored forecasts for a
            newer run or newer sales (default :data:`serving.api.routes.forecasts.DEFAULT_CHECK_INTERVAL_S`).
    """
    from planning import warmup

    # the simulation engine's kernels are compiled (or loaded from Numba's cache) here, at API / Serve replica
    # start (DecisionAPI builds its app in the replica), never on the first what-if request
    warmup()
    app = create_app(settings or get_settings())
    app.state.forecaster = forecaster
    interval = forecast_check_interval_s
    app.state.forecast_check_interval_s = (
        forecasts.DEFAULT_CHECK_INTERVAL_S if interval is None else float(interval)
    )
    return app
