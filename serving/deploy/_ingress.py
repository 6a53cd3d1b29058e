"""The ingress deployment: the FastAPI decision API, forecasting through a handle to the model deployment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve.exceptions import BackPressureError

from serving.api.routes.forecasts import ForecasterUnavailable, Overloaded, UnknownUnits

__all__ = ["DecisionAPI", "HandleForecaster"]


class HandleForecaster:
    """A :class:`serving.api.routes.forecasts.Forecaster` calling the model deployment through its handle.

    Back-pressure of the model deployment (its ``max_queued_requests`` reached) becomes :class:`Overloaded`,
    which the route answers with 503 and ``Retry-After``; nothing waits without bound.
    """

    def __init__(self, handle, retry_after_s: float = 1.0) -> None:
        self._handle = handle
        self._retry_after_s = retry_after_s

    async def forecast(self, unit_ids: Sequence[str]) -> dict[str, Any]:
        """Forecast through the batched model deployment."""
        try:
            result = await self._handle.forecast.remote(list(unit_ids))
        except BackPressureError as exc:
            raise Overloaded(exc.retry_after_s or self._retry_after_s) from None
        if "unknown_units" in result:
            raise UnknownUnits(result["unknown_units"], result.get("version"))
        return result

    async def info(self) -> dict[str, Any]:
        """Version and batching figures of one model replica."""
        try:
            return await self._handle.info.remote()
        except BackPressureError as exc:
            raise Overloaded(exc.retry_after_s or self._retry_after_s) from None
        except Exception as exc:  # noqa: BLE001 - e.g. the model deployment failed to start
            raise ForecasterUnavailable(f"model deployment unavailable: {type(exc).__name__}: {exc}") from None


@serve.deployment(name="DecisionAPI", ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class DecisionAPI:
    """Ray Serve ingress running the decision API (built at replica start by ``__serve_build_asgi_app__``).

    Args:
        model: handle to the :class:`serving.deploy._model.ForecastModel` deployment (``None``: no model served).
        settings: overrides of :class:`features.settings.Settings` for this replica.
        retry_after_s: ``Retry-After`` sent when the model deployment refuses work.
    """

    def __init__(self, model=None, settings: dict[str, Any] | None = None, retry_after_s: float = 1.0) -> None:
        from features.settings import load_settings

        self._model = model
        self._settings = load_settings(**(settings or {}))
        self._retry_after_s = retry_after_s

    def __serve_build_asgi_app__(self):
        from serving.api._decision import build_decision_app

        forecaster = HandleForecaster(self._model, self._retry_after_s) if self._model is not None else None
        return build_decision_app(self._settings, forecaster)
