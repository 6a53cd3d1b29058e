"""Scheduled jobs: a leader-elected scheduler running each job at most once per window, recorded with status.

Every replica that serves (``replenish serve``, each Serve replica of the KubeRay ``RayService``) may run a
:class:`Scheduler` over the same state store; two guards, both in the database, keep them from doing the same
work twice:

* **Leadership** (:func:`acquire_lease`): one row of ``wf_job_leases`` names the replica that holds the lease
  until ``lease_until``. The holder renews it every ``lease_s / 3``; another replica takes it only once it
  has expired (a replica that died or stalled). Only the holder starts jobs, so the others stay idle.
  Taking the lease is one conditional ``UPDATE`` (or an ``INSERT ... ON CONFLICT DO NOTHING`` for the first
  holder), atomic on SQLite and PostgreSQL alike; ``fence`` grows by one each time the lease changes hands.
* **One run per window** (:func:`claim_window`): a job of interval ``T`` has windows ``[kT, (k+1)T)`` on the
  UTC epoch; a run begins by inserting its ``(job, window_start)`` row into ``wf_job_runs``, which is unique.
  Should two replicas both believe they lead (a stalled leader waking after its lease expired), the second
  insert fails and that replica skips the window. So a job never runs twice in a window, whatever the clocks
  and leases do; the lease only keeps the non-leaders from trying.

Each run's row goes ``running`` -> ``succeeded`` / ``failed`` (with the error) / ``skipped`` (the job's
function is not available), with the counts the job returned; :func:`list_runs` reads them. Rows older than
``retain_s`` are pruned by the leader.

Clocks: windows and lease expiry use each replica's UTC clock; clocks within a fraction of ``lease_s`` of each
other (NTP) are assumed. A skewed clock can make a replica start a window early, never run one twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from features.store import session_scope, utcnow
from workflow._job_models import JobLease, JobRun

__all__ = [
    "JobSpec",
    "JobUnavailable",
    "Scheduler",
    "acquire_lease",
    "claim_window",
    "finish_run",
    "list_runs",
    "release_lease",
    "window_start",
]

_log = logging.getLogger(__name__)
_L = JobLease.__table__
_RUNS = JobRun.__table__
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JobUnavailable(RuntimeError):
    """The job cannot run in this window (e.g. what it needs is not configured): recorded as ``skipped``."""


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job.

    Attributes:
        name: unique job name (``dispatch``, ``monitoring``, ``cycle:<tenant>``); 1-100 characters.
        interval_s: window length; the job runs at most once per window.
        run: the work; returns counts (JSON-ready) recorded with the run. Raising fails the run (recorded with
            the message); raising :class:`JobUnavailable` records it as skipped.
        tenant_id: the tenant a per-tenant job works for (recorded on the run), or None.
    """

    name: str
    interval_s: float
    run: Callable[[], dict[str, Any]]
    tenant_id: str | None = None

    def __post_init__(self):
        if not 1 <= len(self.name) <= 100:
            raise ValueError(f"JobSpec.name={self.name!r}: expected 1-100 characters")
        if not self.interval_s >= 1:
            raise ValueError(f"JobSpec {self.name}: interval_s={self.interval_s!r}; expected >= 1 second")


def window_start(interval_s: float, now: datetime | None = None) -> datetime:
    """Start of the window of length ``interval_s`` (on the UTC epoch grid) that contains ``now``."""
    now = now or utcnow()
    k = (now - _EPOCH).total_seconds() // interval_s
    return _EPOCH + timedelta(seconds=k * interval_s)


def _insert(session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def acquire_lease(
    engine: Engine, name: str, owner: str, lease_s: float, *, now: datetime | None = None
) -> int:
    """Take or renew lease ``name`` for ``owner``; returns the lease's fence, or 0 when another holds it.

    The holder renews by calling again before ``lease_s`` runs out; a lease whose time has passed goes to the
    first caller (its fence grows by one).
    """
    now = now or utcnow()
    until = now + timedelta(seconds=lease_s)
    with session_scope(engine) as s:
        res = s.execute(
            update(_L)
            .where(_L.c.name == name, (_L.c.owner == owner) | (_L.c.lease_until < now))
            .values(
                owner=owner,
                lease_until=until,
                fence=case((_L.c.owner == owner, _L.c.fence), else_=_L.c.fence + 1),
                acquired_at=now,
            )
        )
        if res.rowcount == 0:
            ins = (
                _insert(s)(_L)
                .values(name=name, owner=owner, lease_until=until, fence=1, acquired_at=now)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            if s.execute(ins).rowcount == 0:
                return 0
        return int(s.scalar(select(_L.c.fence).where(_L.c.name == name, _L.c.owner == owner)) or 0)


def release_lease(engine: Engine, name: str, owner: str) -> None:
    """Give lease ``name`` up at once (a stopping replica), so another takes it without waiting."""
    with session_scope(engine) as s:
        s.execute(update(_L).where(_L.c.name == name, _L.c.owner == owner).values(lease_until=_EPOCH))


def claim_window(
    engine: Engine, job: str, window: datetime, owner: str, *, fence: int = 0, tenant_id: str | None = None
) -> int | None:
    """Record the start of ``job``'s run for ``window``: its run id, or None when the window is taken."""
    try:
        with session_scope(engine) as s:
            return int(
                s.execute(
                    insert(_RUNS)
                    .values(
                        job=job,
                        tenant_id=tenant_id,
                        window_start=window,
                        owner=owner,
                        fence=fence,
                        status="running",
                        started_at=utcnow(),
                    )
                    .returning(_RUNS.c.id)
                ).scalar_one()
            )
    except IntegrityError:
        return None


def finish_run(
    engine: Engine, run_id: int, status: str, *, counts: dict | None = None, error: str | None = None
) -> None:
    """Record how a run ended: ``succeeded``, ``failed`` (with ``error``) or ``skipped``."""
    if status not in ("succeeded", "failed", "skipped"):
        raise ValueError(f"status={status!r}: expected succeeded, failed or skipped")
    with session_scope(engine) as s:
        s.execute(
            update(_RUNS)
            .where(_RUNS.c.id == run_id)
            .values(status=status, finished_at=utcnow(), counts=counts, error=error)
        )


def list_runs(
    engine: Engine, *, job: str | None = None, tenant_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest job runs (of one job / tenant), newest first, as dicts of the ``wf_job_runs`` columns."""
    stmt = select(_RUNS)
    if job is not None:
        stmt = stmt.where(_RUNS.c.job == job)
    if tenant_id is not None:
        stmt = stmt.where(_RUNS.c.tenant_id == tenant_id)
    with session_scope(engine) as s:
        rows = s.execute(stmt.order_by(_RUNS.c.started_at.desc(), _RUNS.c.id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]


def _prune(engine: Engine, older_than: datetime) -> int:
    with session_scope(engine) as s:
        return s.execute(
            delete(_RUNS).where(_RUNS.c.started_at < older_than, _RUNS.c.status != "running")
        ).rowcount


@dataclass
class _State:
    window: datetime | None = None  # the last window this replica tried
    future: Future | None = None


@dataclass
class Scheduler:
    """Runs :class:`JobSpec` s while this replica holds the lease; see the module docstring.

    Args:
        engine: the state store (SQLite file or PostgreSQL) every replica shares.
        specs: the jobs (unique names).
        owner: this replica's name (default ``host:pid:random``).
        lease_name: the lease the replicas compete for.
        lease_s: how long a lease lasts without renewal (a dead leader is replaced after at most this).
        tick_s: how often the loop renews the lease and looks for due windows.
        retain_s: job runs older than this are pruned (by the leader, hourly).
    """

    engine: Engine
    specs: list[JobSpec]
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    lease_name: str = "scheduler"
    lease_s: float = 30.0
    tick_s: float = 1.0
    retain_s: float = 7 * 86400.0

    def __post_init__(self):
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"Scheduler: job names must be unique, got {sorted(names)}")
        if not self.lease_s > 3 * self.tick_s:
            raise ValueError(f"Scheduler: lease_s={self.lease_s} must exceed 3 * tick_s={self.tick_s}")
        self.fence = 0
        self._state = {s.name: _State() for s in self.specs}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.specs)), thread_name_prefix="job")
        self._renewed_at: datetime | None = None
        self._pruned_at: datetime | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this replica held the lease at its last renewal (and that renewal has not run out)."""
        return (
            self.fence > 0
            and self._renewed_at is not None
            and utcnow() < self._renewed_at + timedelta(seconds=self.lease_s)
        )

    def _renew(self, now: datetime) -> None:
        if (
            self._renewed_at is not None
            and self.fence
            and now < self._renewed_at + timedelta(seconds=self.lease_s / 3)
        ):
            return
        try:
            self.fence = acquire_lease(self.engine, self.lease_name, self.owner, self.lease_s, now=now)
        except Exception:  # the store is down: stop leading until it answers again
            _log.warning("scheduler %s: lease renewal failed", self.owner, exc_info=True)
            self.fence = 0
        self._renewed_at = now if self.fence else None

    def _run(self, spec: JobSpec, run_id: int) -> None:
        try:
            counts = spec.run() or {}
        except JobUnavailable as exc:
            finish_run(self.engine, run_id, "skipped", error=str(exc))
        except Exception as exc:  # a job's error is recorded on its run; the scheduler goes on
            _log.warning("job %s failed", spec.name, exc_info=True)
            finish_run(self.engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        else:
            finish_run(self.engine, run_id, "succeeded", counts=counts)

    def tick(self, now: datetime | None = None) -> list[str]:
        """One pass: renew the lease; as leader, start every job whose window is due and not running here.

        Returns:
            Names of the jobs started in this pass.
        """
        now = now or utcnow()
        self._renew(now)
        if not self.is_leader:
            return []
        started = []
        for spec in self.specs:
            st = self._state[spec.name]
            w = window_start(spec.interval_s, now)
            if st.window == w or (st.future is not None and not st.future.done()):
                continue  # tried this window already, or the last run is still going (the window passes)
            st.window = w
            run_id = claim_window(
                self.engine, spec.name, w, self.owner, fence=self.fence, tenant_id=spec.tenant_id
            )
            if run_id is None:
                continue  # another replica ran this window
            st.future = self._pool.submit(self._run, spec, run_id)
            started.append(spec.name)
        if self._pruned_at is None or now - self._pruned_at > timedelta(hours=1):
            self._pruned_at = now
            _prune(self.engine, now - timedelta(seconds=self.retain_s))
        return started

    @property
    def alive(self) -> bool:
        """Whether the loop started by :meth:`start` is running."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Scheduler:
        """Run :meth:`tick` every ``tick_s`` on a daemon thread until :meth:`stop`."""

        def loop():
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # never let one bad pass end the loop
                    _log.warning("scheduler %s: tick failed", self.owner, exc_info=True)
                self._stop.wait(self.tick_s)

        self._thread = threading.Thread(target=loop, name=f"scheduler-{self.owner}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop starting jobs, let the runs already claimed finish, and give the lease up.

        ``timeout_s`` bounds the wait for the loop's current pass. Every claimed window's run goes to its end
        (none is cancelled: its row would stay ``running``); a replica killed meanwhile leaves its row
        ``running``, and the next window runs as usual.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=True)
        if self.fence:
            try:
                release_lease(self.engine, self.lease_name, self.owner)
            except Exception:
                _log.warning("scheduler %s: lease release failed", self.owner, exc_info=True)
        self.fence = 0
