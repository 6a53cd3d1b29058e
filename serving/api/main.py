"""The decision API's app builder: it only assembles (engine, routers, error mapping, metering).

``create_app(settings)`` serves the control-plane routes under ``/v1`` on the state store named by
``settings.database_url`` (migrated at start-up). The serving layer adds its forecast/plan routes on top
(:func:`serving.api._decision.build_decision_app`) and mounts the result under Ray Serve.
"""

from __future__ import annotations

import contextlib
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from features.settings import Settings, get_settings
from features.store._db import make_engine, session_scope
from features.store._migrate import migrate
from serving.api.routes import audit, events, evidence, keys, outbox, recommendations, telemetry
from serving.api.routes import metrics as metrics_routes
from workflow.errors import WorkflowError
from workflow.telemetry import RequestMeter, prometheus_text

__all__ = ["create_app"]

ROUTERS = (
    recommendations.router,
    evidence.router,
    events.router,
    outbox.router,
    audit.router,
    keys.router,
    telemetry.router,
)


async def _workflow_error(request: Request, exc: WorkflowError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail()})


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Assemble the decision API.

    Args:
        settings: service settings (default :func:`features.settings.get_settings`).
        engine: an existing engine for ``settings.database_url`` (default: a new one, disposed at shutdown).
    """
    settings = settings or get_settings()
    own_engine = engine is None
    engine = engine or make_engine(settings.database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(engine)
        yield
        if own_engine:
            engine.dispose()

    app = FastAPI(title="replenish decision API", version="1", lifespan=lifespan)
    app.state.settings, app.state.engine, app.state.meter = settings, engine, RequestMeter()
    app.add_exception_handler(WorkflowError, _workflow_error)
    for router in ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def _meter(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        tenant = getattr(request.state, "tenant_id", None)
        if tenant is not None:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            app.state.meter.observe(tenant, route, response.status_code, time.perf_counter() - t0)
        return response

    app.include_router(metrics_routes.router)

    def _collector() -> list[str]:
        with session_scope(engine) as s:
            return prometheus_text(s, app.state.meter).rstrip("\n").split("\n")

    metrics_routes.add_collector(app, _collector)
    return app
