"""Durable usage metering per tenant, UTC day, route and status class, and daily request quotas.

Requests are counted in memory (:class:`UsageMeter`, thread-safe) and added to ``wf_usage`` every
``flush_s`` seconds, at shutdown and before usage is read, with one upsert per counter
(``requests = requests + :n``), so several replicas add up and the figures survive a restart. A tenant's
daily quota counts what is stored for the day plus what this replica has not written yet.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store import session_scope
from workflow._models import UsageCounter

__all__ = ["UsageMeter", "read_usage", "seconds_to_midnight", "status_class"]

_U = UsageCounter.__table__


def status_class(status: int) -> str:
    """``429`` stays itself (quota and rate refusals are worth telling apart); others become ``2xx`` etc."""
    return "429" if status == 429 else f"{status // 100}xx"


def _today() -> date:
    return datetime.now(UTC).date()


def seconds_to_midnight() -> int:
    """Whole seconds until the next UTC day (when daily quotas reset)."""
    now = datetime.now(UTC)
    nxt = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(1, int((nxt - now).total_seconds()) + 1)


class UsageMeter:
    """In-memory counters flushed to ``wf_usage`` (see the module docstring)."""

    def __init__(self, engine: Engine, *, flush_s: float = 5.0, daily_quota: int | None = None):
        self.engine, self.flush_s, self.daily_quota = engine, flush_s, daily_quota
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[tuple[str, date, str, str], list] = defaultdict(lambda: [0, 0.0])
        self._stored_today: dict[tuple[str, date], int] = {}
        self._last_flush = time.monotonic()

    def observe(self, tenant: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request of ``tenant``."""
        key = (tenant, _today(), route[:200], status_class(status))
        with self._lock:
            c = self._pending[key]
            c[0] += 1
            c[1] += seconds

    def due(self) -> bool:
        """True when the counters should be written now."""
        return time.monotonic() - self._last_flush >= self.flush_s

    def flush(self) -> int:
        """Add the pending counters to the store; returns how many counters were written."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, defaultdict(lambda: [0, 0.0])
                self._last_flush = time.monotonic()
            if not pending:
                return 0
            rows = [
                {"tenant_id": t, "day": d, "route": r, "status_class": c, "requests": n, "seconds": sec}
                for (t, d, r, c), (n, sec) in sorted(pending.items())
            ]
            try:
                with session_scope(self.engine) as s:
                    ins = (pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert)(_U)
                    stmt = ins.on_conflict_do_update(
                        index_elements=["tenant_id", "day", "route", "status_class"],
                        set_={
                            "requests": _U.c.requests + ins.excluded.requests,
                            "seconds": _U.c.seconds + ins.excluded.seconds,
                        },
                    )
                    s.execute(stmt, rows)
            except Exception:
                with self._lock:  # keep the counts for the next flush rather than losing them
                    for (t, d, r, c), (n, sec) in pending.items():
                        cur = self._pending[(t, d, r, c)]
                        cur[0] += n
                        cur[1] += sec
                raise
            with self._lock:
                for (t, d, _r, _c), (n, _sec) in pending.items():
                    if (t, d) in self._stored_today:
                        self._stored_today[(t, d)] += n
            return len(rows)

    def over_quota(self, tenant: str) -> bool:
        """True when ``tenant`` has used its daily quota (always False without a quota)."""
        if self.daily_quota is None:
            return False
        day = _today()
        with self._lock:
            stored = self._stored_today.get((tenant, day))
        if stored is None:
            with session_scope(self.engine) as s:
                stored = sum(
                    s.scalars(select(_U.c.requests).where(_U.c.tenant_id == tenant, _U.c.day == day))
                )
            with self._lock:
                self._stored_today = {k: v for k, v in self._stored_today.items() if k[1] == day}
                self._stored_today.setdefault((tenant, day), stored)
                stored = self._stored_today[(tenant, day)]
        with self._lock:
            pending = sum(v[0] for k, v in self._pending.items() if k[0] == tenant and k[1] == day)
        return stored + pending >= self.daily_quota


def read_usage(session: Session, tenant_id: str, *, days: int = 31) -> list[dict[str, Any]]:
    """The tenant's stored usage of the last ``days`` days, newest day first."""
    since = _today() - timedelta(days=days - 1)
    rows = session.execute(
        select(_U.c.day, _U.c.route, _U.c.status_class, _U.c.requests, _U.c.seconds)
        .where(_U.c.tenant_id == tenant_id, _U.c.day >= since)
        .order_by(_U.c.day.desc(), _U.c.route, _U.c.status_class)
    )
    return [
        {"day": d, "route": r, "status_class": c, "requests": int(n), "seconds": float(sec)}
        for d, r, c, n, sec in rows
    ]
