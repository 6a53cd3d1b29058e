"""Assemble the decision API with the serving routes (forecasts, risk, plans, health, metrics, pages).

``build_decision_app`` starts from the control plane's ``serving.api.main.create_app(settings)`` and adds the
serving routers it does not include yet, then attaches a forecaster (the model deployment's handle under
Serve,
a local predictor in-process). Routers already present are not added twice.
"""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI

__all__ = ["SERVING_ROUTERS", "build_decision_app", "include_serving_routes"]

#: Modules of this package whose ``router`` belongs on the decision app. ``/metrics`` is not here:
#: :func:`serving.api.main.create_app` already includes it (with the control plane's collector).
SERVING_ROUTERS = (
    "serving.api.routes.health",
    "serving.api.routes.forecasts",
    "serving.api.routes.risk",
    "serving.api.routes.plans",
    "serving.api.routes.cycles",
    "serving.pages",
)


def include_serving_routes(app: FastAPI) -> FastAPI:
    """Add the serving routers and the request-metrics middleware to ``app`` (built by ``create_app``)."""
    from serving.api.routes.metrics import install

    install(app)
    for name in SERVING_ROUTERS:
        module = importlib.import_module(name)
        app.include_router(module.router)
        setup = getattr(module, "setup_app", None)
        if setup is not None:
            setup(app)
    return app


def build_decision_app(
    settings: Any = None, forecaster: Any = None, plan_inputs: Any = None, plan_period_days: int = 30
) -> FastAPI:
    """The decision API with every route of this checkout and ``forecaster`` as ``app.state.forecaster``.

    Args:
        settings: :class:`features.settings.Settings` (default: ``get_settings()``).
        forecaster: a :class:`serving.api.routes.forecasts.Forecaster`, or ``None`` (forecast routes answer
        503).
        plan_inputs: zero-argument callable returning ``planning.PlanInputs`` for what-if re-plans (``None``:
            what-if answers 503).
        plan_period_days: days per period of those inputs.
    """
    from features.settings import get_settings
    from serving.api.main import create_app

    settings = settings or get_settings()
    app = create_app(settings)
    include_serving_routes(app)
    app.state.forecaster = forecaster
    app.state.plan_inputs = plan_inputs
    app.state.plan_period_days = plan_period_days
    return app
