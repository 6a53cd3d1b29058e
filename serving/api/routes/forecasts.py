"""Forecast routes: the caller tenant's stored quantile forecasts, answered from a per-replica cache.

Forecasts are versioned facts written by the cycle's forecast and reconcile stages
(:mod:`features.forecasts`); this route only reads them. Per tenant it serves the newest reconciled run
(the newest base run when no reconciled run derives from it), loaded once into a :class:`StoredForecast`
(one array of quantile rows, an index per unit, JSON fragments rendered on first use), so a request does
no model pass and no file read: a dict lookup and a string join.

:class:`ForecastStore` keeps one entry per tenant and checks at most every ``check_interval_s`` seconds
whether a newer run appeared (reload) or newer sales were ingested (stale). It never serves a forecast
whose ``data_watermark`` differs from the tenant's current :func:`features.forecasts.sales_watermark` as
of the last check: such a tenant gets 409 naming ``replenish cycle --tenant T``; a tenant without stored
forecasts, or whose forecasts were made without a champion model, gets 409 naming
``replenish cycle --tenant T --train``.

The model deployment (:mod:`serving.deploy._model`, reached through a :class:`Forecaster`) is not on this
path; :class:`LocalForecaster` and the :class:`Forecaster` protocol remain for callers of on-the-fly
predictors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from workflow.access import Principal

__all__ = [
    "DEFAULT_CHECK_INTERVAL_S",
    "Forecaster",
    "ForecasterUnavailable",
    "ForecastStore",
    "LocalForecaster",
    "NotServable",
    "Overloaded",
    "StoredForecast",
    "UnknownUnits",
    "current_forecast",
    "forecast_store",
    "router",
]

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"])

#: A unit id: ``sku|location|channel`` at the bottom, a node id (``total``, ``region=R1``,
#: ``sku_id=S/location_id=L``) above it.
_UNIT = r"^[A-Za-z0-9][A-Za-z0-9_.:|/=-]{0,255}$"
_UNIT_RE = re.compile(_UNIT)
#: How often a replica asks the fact store, per tenant, whether a newer run or newer sales exist.
DEFAULT_CHECK_INTERVAL_S = 2.0


# ------------------------------------------------------------------------------------------------------------
# On-the-fly predictors (the model deployment's contract); not used by the stored-forecast routes.
# ------------------------------------------------------------------------------------------------------------


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
    """Where on-the-fly forecasts come from: the model deployment (via a handle) or a local predictor."""

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


# ------------------------------------------------------------------------------------------------------------
# Stored forecasts of a tenant, ready to answer.
# ------------------------------------------------------------------------------------------------------------


class NotServable(Exception):
    """The tenant's forecasts cannot be served now (none, made without a champion, or stale): HTTP 409.

    Attributes:
        detail: the JSON body's ``detail``: ``msg``, ``command`` (what to run) and the run's facts.
    """

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__(detail["msg"])
        self.detail = detail

    def http(self) -> HTTPException:
        """The 409 answer."""
        return HTTPException(status_code=409, detail=self.detail)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


@dataclasses.dataclass
class StoredForecast:
    """One stored forecast run of a tenant held in memory: quantile rows, a unit index, rendered fragments.

    Attributes:
        meta: the run's :class:`features.forecasts.ForecastRunMeta`.
        index: unit id -> ``(start, stop)`` rows of ``q`` and ``dates``.
        q: quantile values, shape ``(rows, Q)``, rows grouped by unit and ordered by horizon.
        dates: period start of each row, shape ``(rows,)``, ``datetime64[D]``.
        units: unit id -> ``(level, source, model_version, cold_start)``.
    """

    meta: Any
    index: dict[str, tuple[int, int]]
    q: np.ndarray
    dates: np.ndarray
    units: dict[str, tuple[str, str, str | None, bool]]
    _head: str = ""
    _rendered: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def load(cls, meta, facts_dir: Path | None = None) -> StoredForecast:
        """Read every level of the run ``meta`` names (one Parquet read) and index it by unit."""
        import polars as pl

        from features.forecasts import read_forecasts

        qcols = list(meta.quantile_columns)
        frame = read_forecasts(meta.tenant, meta.stage, meta.run_id, level=None, facts_dir=facts_dir)
        # Stored runs are written sorted by (level, unique_id, horizon): each unit's rows are one stretch in
        # horizon order. Sort only when that does not hold (sorting a 100k-unit daily run costs seconds).
        ordered = frame.select(
            ((pl.col("horizon").diff() > 0) | (pl.col("unique_id") != pl.col("unique_id").shift())).all()
        ).item()
        for attempt in range(2):
            if attempt or not ordered:
                frame = frame.sort("level", "unique_id", "horizon")
            spans = (
                frame.with_row_index("row")
                .group_by(pl.col("unique_id").rle_id().alias("run"), maintain_order=True)
                .agg(
                    pl.col("unique_id").first(),
                    pl.col("level").first(),
                    pl.col("row").min().alias("start"),
                    (pl.col("row").max() + 1).alias("stop"),
                    pl.col("source").first(),
                    pl.col("model_version").first(),
                    pl.col("cold_start").first().fill_null(False),
                )
            )
            if spans.height == spans.select(pl.struct("level", "unique_id").n_unique()).item():
                break  # one stretch per (level, unit)
        # Bottom rows win should a node id of another level repeat a bottom id.
        spans = spans.sort(pl.col("level") == "bottom", maintain_order=True)
        ids = spans["unique_id"].to_list()
        index = dict(
            zip(ids, zip(spans["start"].to_list(), spans["stop"].to_list(), strict=True), strict=True)
        )
        units = dict(
            zip(
                ids,
                zip(
                    spans["level"].to_list(),
                    spans["source"].to_list(),
                    spans["model_version"].to_list(),
                    spans["cold_start"].to_list(),
                    strict=True,
                ),
                strict=True,
            )
        )
        out = cls(
            meta=meta,
            index=index,
            q=frame.select(qcols).to_numpy().astype(np.float64, copy=False),
            dates=frame["date"].to_numpy().astype("datetime64[D]"),
            units=units,
        )
        out._head = _dumps(out.describe())[:-1] + ',"forecasts":['
        return out

    def describe(self) -> dict[str, Any]:
        """The run's facts as the response names them (run id, stage, model, watermark, grid, levels)."""
        m = self.meta
        return {
            "tenant": m.tenant,
            "run_id": m.run_id,
            "stage": m.stage,
            "model_name": m.model_name,
            "model_version": m.model_version,
            "method": m.method,
            "base_run": m.base_run,
            "data_watermark": m.data_watermark,
            "created_at": m.created_at,
            "freq": m.freq,
            "horizon": int(m.horizon),
            "levels": list(m.levels),
        }

    def missing(self, units: Sequence[str]) -> list[str]:
        """The ids among ``units`` this run has no rows for."""
        return [u for u in units if u not in self.index]

    def fragment(self, unit: str) -> str:
        """The JSON object of one unit (rendered once per run, then reused)."""
        hit = self._rendered.get(unit)
        if hit is not None:
            return hit
        start, stop = self.index[unit]
        level, source, version, cold = self.units[unit]
        q = np.round(self.q[start:stop], 4).T.tolist()  # (Q, h)
        body = {
            "unit": unit,
            "level": level,
            "source": source,
            "model_version": version,
            "cold_start": cold,
            "dates": np.datetime_as_string(self.dates[start:stop], unit="D").tolist(),
            "quantiles": dict(zip(self.meta.quantile_columns, q, strict=True)),
        }
        text = self._rendered[unit] = _dumps(body)
        return text

    def body(self, units: Sequence[str]) -> bytes:
        """The response body for ``units`` (all known), in request order."""
        return (self._head + ",".join(self.fragment(u) for u in units) + "]}").encode()


def _choose_run(tenant: str, facts_dir: Path | None):
    """The run to serve, or None when nothing is stored.

    The newest reconciled run, unless a newer base run exists that it does not derive from: that base run
    was made from newer data (the forecast stage ran again, the reconcile stage not yet).
    """
    from features.forecasts import latest_forecast_run

    rec = latest_forecast_run(tenant, "reconciled", facts_dir=facts_dir)
    base = latest_forecast_run(tenant, "base", facts_dir=facts_dir)
    if rec is not None and (base is None or rec.base_run == base.run_id or rec.created_at >= base.created_at):
        return rec
    return base


def _train_command(tenant: str) -> str:
    return f"replenish cycle --tenant {tenant} --train"


def _cycle_command(tenant: str) -> str:
    return f"replenish cycle --tenant {tenant}"


@dataclasses.dataclass
class _Entry:
    checked_at: float
    forecast: StoredForecast | None = None
    problem: NotServable | None = None
    watermark: str | None = None


class ForecastStore:
    """Per-replica cache of each tenant's current stored forecast.

    An entry is keyed by tenant and holds the run (which names the model version and the data watermark it
    was made from). Every ``check_interval_s`` seconds at most, the next request of a tenant asks the fact
    store (off the event loop, one check per tenant at a time; tenants do not wait for each other) for the
    run to serve and the tenant's sales
    watermark: a new run is loaded, newer sales make the entry stale (409), a missing run or one made
    without a model gives 409 naming the command to run. Between checks a request costs no I/O.

    Args:
        facts_dir: the fact store root (``settings.facts_dir``).
        check_interval_s: most seconds between two checks of one tenant (0: check on every request).
    """

    def __init__(self, facts_dir: Path | None, check_interval_s: float = DEFAULT_CHECK_INTERVAL_S) -> None:
        self.facts_dir = facts_dir
        self.check_interval_s = float(check_interval_s)
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}  # one refresh per tenant at a time; others wait, reuse it
        self._locks_lock = threading.Lock()
        self.loads = 0
        self.checks = 0

    def _due(self, entry: _Entry | None) -> bool:
        return entry is None or time.monotonic() - entry.checked_at >= self.check_interval_s

    async def get(self, tenant: str) -> StoredForecast:
        """The tenant's servable forecast run.

        Raises:
            NotServable: nothing stored, made without a champion, or older than the tenant's sales.
        """
        entry = self._entries.get(tenant)
        if self._due(entry):
            entry = await asyncio.to_thread(self.refresh, tenant)
        if entry.problem is not None:
            raise entry.problem
        return entry.forecast

    def refresh(self, tenant: str, force: bool = False) -> _Entry:
        """Check the fact store for ``tenant`` now (blocking; called in a worker thread)."""
        from features.forecasts import sales_watermark

        with self._locks_lock:
            lock = self._locks.setdefault(tenant, threading.Lock())
        with lock:
            entry = self._entries.get(tenant)
            if not force and not self._due(entry):
                return entry  # another request checked while this one waited
            self.checks += 1
            now = time.monotonic()
            meta = _choose_run(tenant, self.facts_dir)
            watermark = sales_watermark(tenant, facts_dir=self.facts_dir)
            new = _Entry(checked_at=now, watermark=watermark)
            if meta is None:
                new.problem = NotServable(
                    {
                        "msg": f"tenant {tenant!r} has no stored forecasts yet: train its model and run its "
                        f"cycle with `{_train_command(tenant)}`",
                        "command": _train_command(tenant),
                        "tenant": tenant,
                    }
                )
            elif meta.model_version is None:
                new.problem = NotServable(
                    {
                        "msg": f"tenant {tenant!r} has no champion model: its forecast run {meta.run_id!r} "
                        f"was made by baselines only; train and promote a model with "
                        f"`{_train_command(tenant)}`",
                        "command": _train_command(tenant),
                        "tenant": tenant,
                        "run_id": meta.run_id,
                    }
                )
            elif meta.data_watermark != watermark:
                new.problem = NotServable(
                    {
                        "msg": f"the stored forecasts of tenant {tenant!r} (run {meta.run_id!r}) were made "
                        f"before its latest sales were ingested (data watermark {meta.data_watermark!r}, "
                        f"sales now {watermark!r}); refresh them with `{_cycle_command(tenant)}`",
                        "command": _cycle_command(tenant),
                        "tenant": tenant,
                        "run_id": meta.run_id,
                        "data_watermark": meta.data_watermark,
                        "sales_watermark": watermark,
                    }
                )
            else:
                old = entry.forecast if entry is not None else None
                same = old is not None and (old.meta.stage, old.meta.run_id, old.meta.created_at) == (
                    meta.stage,
                    meta.run_id,
                    meta.created_at,
                )
                if same:
                    new.forecast = old
                else:
                    new.forecast = StoredForecast.load(meta, self.facts_dir)
                    self.loads += 1
            self._entries[tenant] = new
            return new

    def stats(self) -> dict[str, Any]:
        """Tenants held, loads and checks done (for ``/v1/forecasts/run`` and tests)."""
        return {"tenants": len(self._entries), "loads": self.loads, "checks": self.checks}


def forecast_store(app) -> ForecastStore:
    """The app's :class:`ForecastStore` (made on first use from the app's settings)."""
    store = getattr(app.state, "forecast_store", None)
    if store is None:
        settings = app.state.settings
        interval = getattr(app.state, "forecast_check_interval_s", DEFAULT_CHECK_INTERVAL_S)
        store = app.state.forecast_store = ForecastStore(settings.facts_dir, interval)
    return store


async def current_forecast(request: Request, tenant: str) -> StoredForecast:
    """The tenant's servable forecast run, or the 409 answer (for the forecast, risk and what-if routes)."""
    try:
        return await forecast_store(request.app).get(tenant)
    except NotServable as exc:
        raise exc.http() from None


# ------------------------------------------------------------------------------------------------------------
# Authentication on the hot path.
# ------------------------------------------------------------------------------------------------------------

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
    from features.store import session_scope
    from workflow.access import authenticate

    with session_scope(engine) as session:
        return authenticate(session, presented)


Reader = Annotated[Principal, Depends(reader)]


# ------------------------------------------------------------------------------------------------------------
# Routes.
# ------------------------------------------------------------------------------------------------------------


class ForecastRequest(BaseModel):
    """Planning units (or hierarchy nodes) to forecast."""

    model_config = ConfigDict(extra="forbid")

    units: list[Annotated[str, Field(pattern=_UNIT)]] = Field(
        min_length=1,
        max_length=10_000,
        description="Unit ids 'sku|location|channel', or node ids of the reconciled hierarchy ('total').",
    )


class UnitForecast(BaseModel):
    """Quantile paths of one unit: ``quantiles['p50'][h]`` is the median of the period ``dates[h]``."""

    unit: str
    level: str
    source: str
    model_version: str | None
    cold_start: bool
    dates: list[str]
    quantiles: dict[str, list[float]]


class ForecastRun(BaseModel):
    """The stored forecast run a tenant is served from."""

    tenant: str
    run_id: str
    stage: str
    model_name: str | None
    model_version: str | None
    method: str | None
    base_run: str | None
    data_watermark: str
    created_at: str
    freq: str
    horizon: int
    levels: list[float]


class ForecastResponse(ForecastRun):
    """Forecasts of the requested units, in request order, from one stored run of the caller's tenant."""

    forecasts: list[UnitForecast]


async def _answer(request: Request, principal: Principal, units: list[str]) -> Response:
    fc = await current_forecast(request, principal.tenant_id)
    missing = fc.missing(units)
    if missing:
        raise HTTPException(
            status_code=404,
            detail={
                "msg": f"unknown unit(s) for tenant {principal.tenant_id!r} in forecast run "
                f"{fc.meta.run_id!r}: {', '.join(missing[:10])}",
                "units": missing[:100],
                "run_id": fc.meta.run_id,
            },
        )
    return Response(content=fc.body(units), media_type="application/json")


_ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}, 422: {}}


@router.post("", response_model=ForecastResponse, responses=_ERRORS)
async def forecast_units(principal: Reader, body: ForecastRequest, request: Request):
    """Stored quantile forecasts of the caller tenant's units (409 when none are current)."""
    return await _answer(request, principal, body.units)


@router.get("/run", response_model=ForecastRun, responses=_ERRORS)
async def served_run(principal: Reader, request: Request):
    """The stored run the caller's tenant is served from: run id, stage, model version, data watermark."""
    return (await current_forecast(request, principal.tenant_id)).describe()


@router.get("/{unit_id:path}", response_model=ForecastResponse, responses=_ERRORS)
async def forecast_unit(principal: Reader, unit_id: str, request: Request):
    """Stored quantile forecast of one unit of the caller's tenant."""
    if not _UNIT_RE.match(unit_id):
        raise HTTPException(
            422,
            detail=[{"loc": ["path", "unit_id"], "msg": f"expected {_UNIT}", "type": "value_error"}],
        )
    return await _answer(request, principal, [unit_id])
