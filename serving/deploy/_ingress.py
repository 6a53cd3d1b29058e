"""The ingress deployment: the FastAPI decision API, forecasting through a handle to the model deployment."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ray import serve
from ray.serve.exceptions import BackPressureError

from serving.api.routes.forecasts import ForecasterUnavailable, Overloaded, UnknownUnits

__all__ = ["Coalescer", "DecisionAPI", "HandleForecaster"]


class Coalescer:
    """Merges concurrent calls into few round trips, adding no wait of its own.

    While ``max_in_flight`` calls are out, new requests queue; each time a call returns, everything queued
    leaves together in one ``call_many(list_of_requests)``. Under light load every request goes alone at once;
    under heavy load the round trips (a Ray task each, the dominant per-request cost) are shared.

    Args:
        call_many: ``async f(list[request]) -> list[answer]`` answering each request in order.
        max_in_flight: concurrent calls.
        max_items: most requests merged into one call.
    """

    def __init__(self, call_many, max_in_flight: int = 2, max_items: int = 256) -> None:
        self._call_many = call_many
        self._max_in_flight = max_in_flight
        self._max_items = max_items
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self._in_flight = 0
        self.calls = 0
        self.items = 0

    async def submit(self, request: Any) -> Any:
        """Answer of ``request`` (raises what its call raised)."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._pump()
        return await future

    def _pump(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            batch, self._queue = self._queue[: self._max_items], self._queue[self._max_items :]
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        self.calls += 1
        self.items += len(batch)
        try:
            answers = await self._call_many([r for r, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"call_many answered {len(answers)} of {len(batch)} requests")
            for (_, fut), ans in zip(batch, answers, strict=True):
                if not fut.done():
                    fut.set_result(ans)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure, none hangs
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        finally:
            self._in_flight -= 1
            self._pump()


class HandleForecaster:
    """A :class:`serving.api.routes.forecasts.Forecaster` calling the model deployment through its handle.

    Concurrent requests of this replica share round trips to the model deployment (:class:`Coalescer`); the
    model deployment then batches them into forward passes. Back-pressure of the model deployment (its
    ``max_queued_requests`` reached) becomes :class:`Overloaded`, which the route answers with 503 and
    ``Retry-After``; nothing waits without bound.
    """

    def __init__(self, handle, retry_after_s: float = 1.0, max_in_flight: int = 2) -> None:
        self._handle = handle
        self._retry_after_s = retry_after_s
        self._coalescer = Coalescer(self._call_many, max_in_flight=max_in_flight)

    async def _call_many(self, requests: list[list[str]]) -> list[dict[str, Any]]:
        if len(requests) == 1:
            return [await self._handle.forecast.remote(requests[0])]
        return await self._handle.forecast_many.remote(requests)

    async def forecast(self, unit_ids: Sequence[str]) -> dict[str, Any]:
        """Forecast through the batched model deployment."""
        try:
            result = await self._coalescer.submit(list(unit_ids))
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
            raise ForecasterUnavailable(
                f"model deployment unavailable: {type(exc).__name__}: {exc}"
            ) from None


@serve.deployment(name="DecisionAPI", ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class DecisionAPI:
    """Ray Serve ingress running the decision API (built at replica start by ``__serve_build_asgi_app__``).

    Each replica answers forecasts, risk and what-if per caller tenant from the stored facts, cached in the
    replica (:class:`serving.api.routes.forecasts.ForecastStore`).

    Args:
        model: handle to an optional :class:`serving.deploy._model.ForecastModel` deployment for on-the-fly
            forecasts (``app.state.forecaster``), or ``None``.
        settings: overrides of :class:`features.settings.Settings` for this replica.
        retry_after_s: ``Retry-After`` sent when the model deployment refuses work.
        forecast_check_interval_s: most seconds between two checks of a tenant's stored forecasts.
        jobs: handle to the optional :class:`serving.deploy._jobs.Jobs` deployment (bound here so that the
            application deploys it; its runs are read from the state store at ``/v1/jobs``).
    """

    def __init__(
        self,
        model=None,
        settings: dict[str, Any] | None = None,
        retry_after_s: float = 1.0,
        forecast_check_interval_s: float | None = None,
        jobs=None,
    ) -> None:
        from features.settings import load_settings

        self._model = model
        self._settings = load_settings(**(settings or {}))
        self._retry_after_s = retry_after_s
        self._check_s = forecast_check_interval_s
        self._jobs = jobs

    def __serve_build_asgi_app__(self):
        from serving.api.main import build_decision_app

        forecaster = HandleForecaster(self._model, self._retry_after_s) if self._model is not None else None
        return build_decision_app(self._settings, forecaster, forecast_check_interval_s=self._check_s)
