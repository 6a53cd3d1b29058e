"""Request guards of the decision API: body size, hostile query/path values, and rate limits.

* :class:`RequestGuard` (pure ASGI middleware): a body larger than ``max_body_bytes`` answers 413 (by its
  ``Content-Length``, or while it streams); a query or path value holding NUL, or a paging/cursor query
  integer outside int64 (:data:`INT_QUERY_PARAMS`), answers 422 naming the parameter, before any handler or
  database sees it. Integer path parameters carry their own bounds (``le=INT64_MAX``).
* :class:`TokenBuckets`: one token bucket per key (rate ``rate``/s, capacity ``burst``); the API keeps one per
  API key and one per tenant and answers 429 with ``Retry-After`` when either is empty.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from urllib.parse import parse_qsl, unquote

__all__ = ["RequestGuard", "TokenBuckets"]

_INT = re.compile(r"^[+-]?\d+$")
_INT64_MAX = 2**63 - 1


class TokenBuckets:
    """Token buckets by key: ``take(key)`` returns 0 when allowed, else the seconds until a token is free."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000):
        self.rate, self.burst, self.max_keys = float(rate), float(burst), max_keys
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s bucket; 0.0 when allowed, else seconds to wait (Retry-After)."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                allowed = 0.0
            else:
                self._state[key] = (tokens, now)
                allowed = (1.0 - tokens) / self.rate
            if len(self._state) > self.max_keys:  # forget full buckets first: they carry no state
                full = [k for k, (t, _a) in self._state.items() if t >= self.burst - 1e-9]
                for k in full[: len(self._state) - self.max_keys // 2]:
                    del self._state[k]
        return allowed


def _json(status: int, detail: dict | list, headers: list | None = None):
    body = json.dumps({"detail": detail}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        + (headers or []),
    }
    return start, {"type": "http.response.body", "body": body}


#: Query parameters that are integers on every route (paging and cursors): a value outside int64 is refused
#: here, before a route without its own bound passes it to the database. Other parameters may be strings of
#: digits (ids), so only their NUL is checked.
INT_QUERY_PARAMS = frozenset({"after", "offset", "limit", "position", "seq"})


def _bad_value(where: str, name: str, value: str) -> list | None:
    # The documented 422 body (FastAPI's): a list of {loc, msg, type}.
    has_nul = "\x00" in value or "\x00" in name
    name = name.replace("\x00", "\\0")
    if has_nul:
        return [{"loc": [where, name], "msg": "NUL characters are not allowed", "type": "value_error"}]
    if where == "query" and name in INT_QUERY_PARAMS and _INT.match(value) and abs(int(value)) > _INT64_MAX:
        msg = "integers must lie within int64 (-2**63 .. 2**63-1)"
        return [{"loc": [where, name], "msg": msg, "type": "value_error"}]
    return None


class RequestGuard:
    """Pure ASGI middleware: body-size limit (413) and query/path checks (422); see the module docstring."""

    def __init__(self, app, max_body_bytes: int = 1_048_576):
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._check_target(scope)
        if problem is not None:
            for m in _json(422, problem):
                await send(m)
            return
        length = None
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    length = int(v)
                except ValueError:
                    length = math.inf
        if length is not None and length > self.max_body_bytes:
            await self._too_large(send)
            return
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            # No Content-Length (a chunked body): read it here, up to the limit, and replay it to the app, so
            # that an oversized body is a 413 (a parser failing half-way would answer 400).
            chunks, seen, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                seen += len(chunks[-1])
                more = message.get("more_body", False)
                if seen > self.max_body_bytes:
                    await self._too_large(send)
                    return
            body = b"".join(chunks)
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        seen = 0
        limit = self.max_body_bytes
        sent_start = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # more than its Content-Length said
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal sent_start
            if message["type"] == "http.response.start":
                sent_start = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not sent_start:
                await self._too_large(send)

    async def _too_large(self, send) -> None:
        msg = f"request body larger than {self.max_body_bytes} bytes"
        for m in _json(413, {"error": "PayloadTooLarge", "message": msg}):
            await send(m)

    @staticmethod
    def _check_target(scope) -> list | None:
        path = scope.get("path", "")
        for seg in path.split("/"):
            bad = _bad_value("path", seg[:40], unquote(seg))
            if bad is not None:
                return bad
        qs = scope.get("query_string", b"")
        if qs:
            try:
                pairs = parse_qsl(qs.decode("latin-1"), keep_blank_values=True)
            except ValueError:
                pairs = []
            for name, value in pairs:
                bad = _bad_value("query", name, value)
                if bad is not None:
                    return bad
        return None


class _TooLarge(Exception):
    """The streamed body passed the limit."""
