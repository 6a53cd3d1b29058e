"""Prometheus text endpoint (``/metrics``) with the HTTP request counters and latency of this app.

``/metrics`` needs a key with the ``metrics`` role (``X-API-Key: rpk_...`` or ``Authorization: Bearer
rpk_...``, which Prometheus sends with ``authorization: {credentials: ...}``): 401 without one, 403 with
another role. It carries no tenant labels; business figures per tenant are at ``/v1/telemetry/metrics``
behind the tenant's own key.

:class:`RequestMetrics` is installed as a middleware by :func:`install`; it keys samples by route template
(``/v1/forecasts/{unit_id}``), never by raw path, and by a fixed set of methods, so label cardinality stays
bounded. Other packages may add their own exposition text with :func:`add_collector` (a callable returning
Prometheus text lines); collector output is cached for ``settings.metrics_cache_s`` seconds so that the scrape
cost is bounded whatever the scrape rate.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

__all__ = ["ObserveASGI", "RequestMetrics", "add_collector", "install", "router"]

router = APIRouter(tags=["metrics"])

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Request counts by (method, route, status) and a latency histogram by (method, route)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sum_s: dict[tuple[str, str], float] = defaultdict(float)
        self.collectors: list[Callable[[], list[str]]] = []
        self.cache_s = 0.0
        self._cached: tuple[float, list[str]] | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request (methods outside the standard set count as ``OTHER``)."""
        method = method if method in _METHODS else "OTHER"
        with self._lock:
            self.count[(method, route, status)] += 1
            b = self.buckets.setdefault((method, route), [0] * (len(_BUCKETS_S) + 1))
            b[bisect.bisect_left(_BUCKETS_S, seconds)] += 1
            self.sum_s[(method, route)] += seconds

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        lines = [
            "# HELP replenish_http_requests_total HTTP requests answered, by route and status.",
            "# TYPE replenish_http_requests_total counter",
        ]
        with self._lock:
            for (m, r, s), n in sorted(self.count.items()):
                lines.append(f'replenish_http_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}')
            lines += [
                "# HELP replenish_http_request_seconds Time to answer an HTTP request.",
                "# TYPE replenish_http_request_seconds histogram",
            ]
            for (m, r), b in sorted(self.buckets.items()):
                cum = 0
                for le, n in zip([*map(str, _BUCKETS_S), "+Inf"], b, strict=True):
                    cum += n
                    lines.append(
                        f'replenish_http_request_seconds_bucket{{method="{m}",route="{r}",le="{le}"}} {cum}'
                    )
                lines.append(
                    f'replenish_http_request_seconds_sum{{method="{m}",route="{r}"}} {self.sum_s[(m, r)]:.6f}'
                )
                lines.append(f'replenish_http_request_seconds_count{{method="{m}",route="{r}"}} {cum}')
            collectors = list(self.collectors)
            cached = self._cached
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.cache_s:
            extra = cached[1]
        else:
            extra = []
            for c in collectors:
                try:
                    extra += c()
                except Exception as exc:  # noqa: BLE001 - one broken collector must not hide the others
                    extra.append(f"# collector {getattr(c, '__name__', c)!s} failed: {type(exc).__name__}")
            with self._lock:
                self._cached = (now, extra)
        return "\n".join(lines + extra) + "\n"


class ObserveASGI:
    """Pure ASGI middleware calling ``await observe(scope, status, seconds)`` after each HTTP request.

    No per-request task or body copy, unlike ``BaseHTTPMiddleware``, which costs throughput on the hot path.
    ``scope["route"]`` (the matched route) and ``scope["state"]`` (what dependencies noted on the request)
    are set by then; ``status`` is 500 when the app raised before answering.
    """

    def __init__(self, app, observe: Callable[[dict, int, float], Awaitable[None]]) -> None:
        self.app, self.observe = app, observe

    async def __call__(self, scope, receive, send):
        """Pass the request on, noting the status it answers with, then observe it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            await self.observe(scope, status[0], time.perf_counter() - t0)


def install(app: FastAPI) -> RequestMetrics:
    """Attach a :class:`RequestMetrics` to ``app`` (once) and return it."""
    existing = getattr(app.state, "request_metrics", None)
    if existing is not None:
        return existing
    metrics = app.state.request_metrics = RequestMetrics()
    settings = getattr(app.state, "settings", None)
    metrics.cache_s = float(getattr(settings, "metrics_cache_s", 0.0) or 0.0)

    async def observe(scope, status: int, seconds: float) -> None:
        path = getattr(scope.get("route"), "path", None) or "unmatched"
        metrics.observe(scope.get("method", "GET"), path, status, seconds)

    app.add_middleware(ObserveASGI, observe=observe)
    return metrics


def add_collector(app: FastAPI, collector: Callable[[], list[str]]) -> None:
    """Append Prometheus text lines produced by ``collector`` to ``/metrics``."""
    install(app).collectors.append(collector)


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, cred = request.headers.get("authorization", "").partition(" ")
    return cred.strip() if scheme.lower() == "bearer" and cred.strip() else None


def _check_metrics_key(request: Request) -> None:
    from features.store import session_scope
    from workflow.access import authenticate

    engine = getattr(request.app.state, "engine", None)
    presented = _presented_key(request)
    principal = None
    if engine is not None and presented:
        with session_scope(engine) as s:
            principal = authenticate(s, presented)
    if principal is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid key: send X-API-Key or Authorization: Bearer with a metrics key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if "metrics" not in principal.roles:
        raise HTTPException(status_code=403, detail="/metrics needs a key with the role metrics")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={401: {"description": "No valid key"}, 403: {"description": "Not a metrics key"}},
)
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics of this replica (metrics role): requests by route and status, latency."""
    await run_in_threadpool(_check_metrics_key, request)
    m = getattr(request.app.state, "request_metrics", None)
    text = await run_in_threadpool(m.render) if m is not None else ""
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
