"""Forecast routes: quantile forecasts for a list of planning units, batched by the model deployment.

The route does not know where the model runs: it awaits ``app.state.forecaster``, a :class:`Forecaster`. Under
Ray Serve that is a handle to the batched model deployment (:mod:`serving.deploy._ingress`); in-process
(tests,
``replenish demo --no-serve``) it is a :class:`LocalForecaster` over a predictor.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from workflow.access import Principal

__all__ = ["Forecaster", "ForecasterUnavailable", "LocalForecaster", "Overloaded", "UnknownUnits", "router"]

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"])

_UNIT = r"^[A-Za-z0-9][A-Za-z0-9_.:|/-]{0,127}$"


class UnknownUnits(LookupError):
    """Raised by a forecaster for units the served model has no inputs for."""

    def __init__(self, units: Sequence[str], version: str | None = None) -> None:
        super().__init__(f"unknown planning unit(s): {', '.join(list(units)[:10])}")
        self.units, self.version = list(units), version


class Overloaded(RuntimeError):
    """Raised by a forecaster when the model deployment's queue is full."""

    def __init__(self, retry_after_s: float | None = 1.0) -> None:
        super().__init__("the forecast model is overloaded; retry later")
        self.retry_after_s = retry_after_s


class ForecasterUnavailable(RuntimeError):
    """No model is being served (nothing registered as champion, or the deployment is down)."""


class Forecaster(Protocol):
    """Where forecasts come from: the model deployment (via a handle) or a predictor in this process."""

    async def forecast(self, unit_ids: Sequence[str]) -> dict[str, Any]:
        """``{"version", "quantiles", "values"}``; ``values`` shaped ``(n_units, horizon, n_quantiles)``."""

    async def info(self) -> dict[str, Any]:
        """Version and shape of the served model."""


class LocalForecaster:
    """A :class:`Forecaster` over a predictor in this process; blocking work runs in a worker thread."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor

    async def forecast(self, unit_ids: Sequence[str]) -> dict[str, Any]:
        """Forecast ``unit_ids`` with the local predictor."""
        p = self.predictor
        missing = [u for u in unit_ids if not p.has_unit(u)]
        if missing:
            raise UnknownUnits(missing, p.version)
        y = await asyncio.to_thread(p.predict, list(unit_ids))
        return {"version": p.version, "quantiles": tuple(p.quantiles), "values": y}

    async def info(self) -> dict[str, Any]:
        """Version, quantiles and horizon of the local predictor."""
        p = self.predictor
        return {"version": p.version, "quantiles": list(p.quantiles), "horizon": p.horizon}


class ForecastRequest(BaseModel):
    """Planning units to forecast."""

    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(pattern=_UNIT)]] = Field(
        min_length=1, max_length=10_000, description="Planning-unit ids, e.g. 'Agency_01|SKU_01'."
    )


class UnitForecast(BaseModel):
    """Quantile paths of one planning unit: ``quantiles['p50'][h]`` is the median ``h + 1`` periods ahead."""

    unit: str
    quantiles: dict[str, list[float]]


class ForecastResponse(BaseModel):
    """Forecasts of the requested units, in request order, from one model version."""

    model_version: str
    levels: list[float]
    horizon: int
    forecasts: list[UnitForecast]


def _label(q: float) -> str:
    return f"p{round(q * 100):02d}"


def shape_response(units: Sequence[str], result: dict[str, Any]) -> dict[str, Any]:
    """Turn a forecaster result into a :class:`ForecastResponse` body, checking its shape against the request.

    Built as plain data (and sent by :func:`run_forecast` without a second validation pass): this is the hot
    path of the API, and its shape is checked here against the request instead.
    """
    values = np.asarray(result["values"], dtype=np.float64)  # (n, H, Q)
    levels = [float(q) for q in result["quantiles"]]
    if values.ndim != 3 or values.shape[0] != len(units) or values.shape[2] != len(levels):
        raise RuntimeError(
            f"forecaster returned shape {values.shape} for {len(units)} units and "
            f"{len(levels)} quantile levels"
        )
    labels = [_label(q) for q in levels]
    cols = np.round(values, 4).transpose(0, 2, 1).tolist()  # (n, Q, H)
    out = [
        {"unit": u, "quantiles": dict(zip(labels, c, strict=True))} for u, c in zip(units, cols, strict=True)
    ]
    return {
        "model_version": str(result["version"]),
        "levels": levels,
        "horizon": int(values.shape[1]),
        "forecasts": out,
    }


#: How long a verified key is trusted on the forecast routes without asking the state store again; a revoked
#: key stops working on them within this time (on every other route at once).
KEY_CACHE_TTL_S = 5.0
_READ_ROLES = ("viewer", "planner", "approver", "service")


class _KeyCache:
    """Verified keys -> principal, for ``KEY_CACHE_TTL_S`` seconds (the forecast routes are the hot path)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key: str) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: str, principal: Principal) -> None:
        if len(self._entries) > 10_000:  # bounded: forget everything rather than grow without limit
            self._entries.clear()
        self._entries[key] = (time.monotonic(), principal)


async def reader(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="API key: rpk_<id>_<secret>")] = None,
) -> Principal:
    """The caller, from ``X-API-Key``, with a read role (401 / 403 as on every route; cached briefly).

    ``async`` on purpose: a cache hit costs no thread hop; a miss asks the state store in a worker thread.
    """
    cache = getattr(request.app.state, "key_cache", None)
    if cache is None:
        cache = request.app.state.key_cache = _KeyCache(KEY_CACHE_TTL_S)
    principal = cache.get(x_api_key) if x_api_key else None
    if principal is None:
        principal = await asyncio.to_thread(_authenticate, request.app.state.engine, x_api_key)
        if principal is None:
            raise HTTPException(
                status_code=401,
                detail="missing or invalid X-API-Key header",
                headers={"WWW-Authenticate": "X-API-Key"},
            )
        cache.put(x_api_key, principal)
    principal.require(*_READ_ROLES)
    request.state.tenant_id = principal.tenant_id
    return principal


def _authenticate(engine, presented: str | None) -> Principal | None:
    from features.store._db import session_scope
    from workflow.access import authenticate

    with session_scope(engine) as session:
        return authenticate(session, presented)


Reader = Annotated[Principal, Depends(reader)]


async def get_forecaster(request: Request) -> Forecaster:
    """The app's forecaster; 503 when no model is being served."""
    forecaster = getattr(request.app.state, "forecaster", None)
    if forecaster is None:
        raise HTTPException(
            status_code=503,
            detail="no forecasting model is served by this instance "
            "(register and promote a model, then start `replenish serve`)",
            headers={"Retry-After": "30"},
        )
    return forecaster


ForecasterDep = Annotated[Forecaster, Depends(get_forecaster)]


async def run_forecast(forecaster: Forecaster, units: list[str]) -> Response:
    """Call the forecaster and map its failures to HTTP answers (404 unknown unit, 503 overload)."""
    try:
        result = await forecaster.forecast(units)
    except UnknownUnits as exc:
        raise HTTPException(
            status_code=404,
            detail={
                "msg": "unknown planning units for the served model",
                "units": exc.units,
                "model_version": exc.version,
            },
        ) from None
    except Overloaded as exc:
        retry = str(max(1, round(exc.retry_after_s or 1)))
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": retry})
    except ForecasterUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc), headers={"Retry-After": "30"}) from None
    body = json.dumps(shape_response(units, result), separators=(",", ":"), allow_nan=False)
    return Response(content=body, media_type="application/json")


@router.post("", response_model=ForecastResponse, responses={401: {}, 404: {}, 422: {}, 503: {}})
async def forecast_units(principal: Reader, body: ForecastRequest, forecaster: ForecasterDep):
    """Quantile forecasts for a list of planning units (batched with concurrent requests)."""
    return await run_forecast(forecaster, body.units)


@router.get("/model", response_model=dict)
async def served_model(principal: Reader, forecaster: ForecasterDep):
    """Version, quantile levels and horizon of the model being served."""
    return await forecaster.info()


@router.get("/{unit_id}", response_model=ForecastResponse, responses={404: {}, 503: {}})
async def forecast_unit(
    principal: Reader, unit_id: Annotated[str, Path(pattern=_UNIT)], forecaster: ForecasterDep
):
    """Quantile forecast for one planning unit."""
    return await run_forecast(forecaster, [unit_id])
