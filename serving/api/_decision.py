"""Assemble the decision API with the serving routes (forecasts, risk, plans, health, metrics, pages).

``build_decision_app`` starts from the control plane's ``serving.api.main.create_app(settings)`` and adds the
serving routers it does not include yet, and optionally attaches an on-the-fly forecaster (the model
deployment's handle under Serve). Routers already present are not added twice.
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
    settings: Any = None, forecaster: Any = None, *, forecast_check_interval_s: float | None = None
) -> FastAPI:
    """The decision API with every route of this checkout; warms the simulation engine up first.

    Forecasts, risk and what-if answer each caller's tenant from its stored forecasts and plan inputs
    (:mod:`serving.api.routes.forecasts`); nothing global is attached for them.

    Args:
        settings: :class:`features.settings.Settings` (default: ``get_settings()``).
        forecaster: an on-the-fly :class:`serving.api.routes.forecasts.Forecaster` (the model deployment's
            handle under Serve) as ``app.state.forecaster``, or ``None``.
        forecast_check_interval_s: most seconds between two checks of a tenant's stored forecasts for a
            newer run or newer sales (default :data:`serving.api.routes.forecasts.DEFAULT_CHECK_INTERVAL_S`).
    """
    from features.settings import get_settings
    from planning import warmup
    from serving.api.main import create_app
    from serving.api.routes.forecasts import DEFAULT_CHECK_INTERVAL_S

    # the simulation engine's kernels are compiled (or loaded from Numba's cache) here, at API / Serve replica
    # start (DecisionAPI builds its app in the replica), never on the first what-if request
    warmup()
    settings = settings or get_settings()
    app = create_app(settings)
    include_serving_routes(app)
    app.state.forecaster = forecaster
    app.state.forecast_check_interval_s = (
        DEFAULT_CHECK_INTERVAL_S if forecast_check_interval_s is None else float(forecast_check_interval_s)
    )
    return app
