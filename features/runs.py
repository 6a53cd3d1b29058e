"""Cycle run records: one row per cycle run of a tenant and one per stage, in the state store.

A cycle run (``serving.cycle.run_cycle``) is recorded here as it goes, so the CLI, the API and a batch job
report the same facts: which stages were asked for, when each started and finished, what it counted, which
outputs it wrote (forecast run, plan run, ...) and, when one failed, its error message. Every change is one
transaction, so a reader never sees a half-written stage.

Statuses: a run is ``queued`` -> ``running`` -> ``succeeded`` | ``failed``; a stage is ``pending`` ->
``running`` -> ``succeeded`` | ``failed``, or ``skipped`` when an earlier stage failed.

Example::

    run_id = create_run(engine, "acme", ["forecast", "plan"], requested_by="cli")
    start_run(engine, "acme", run_id)
    start_stage(engine, "acme", run_id, "forecast")
    finish_stage(engine, "acme", run_id, "forecast", counts={"units": 120}, outputs={"forecast_run": "f1"})
    fail_stage(engine, "acme", run_id, "plan", "no inventory for tenant 'acme'")   # the run is failed too
    get_run(engine, "acme", run_id).status                                          # "failed"
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from features.store import Base, Tenant, session_scope, utcnow

__all__ = [
    "CYCLE_STAGES",
    "RUN_STATUSES",
    "STAGE_STATUSES",
    "CycleRun",
    "CycleRunRow",
    "CycleStageRow",
    "StageRecord",
    "create_run",
    "fail_run",
    "fail_stage",
    "finish_run",
    "finish_stage",
    "get_run",
    "list_runs",
    "start_run",
    "start_stage",
]

#: The stages of a cycle, in the order they run.
CYCLE_STAGES = ("train", "forecast", "reconcile", "plan", "propose")
RUN_STATUSES = ("queued", "running", "succeeded", "failed")
STAGE_STATUSES = ("pending", "running", "succeeded", "failed", "skipped")
_ERROR_MAX = 4000


class CycleRunRow(Base):
    """One cycle run of a tenant."""

    __tablename__ = "cycle_runs"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.tenant_id"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    stages: Mapped[list[str]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CycleStageRow(Base):
    """One stage of a cycle run."""

    __tablename__ = "cycle_stages"

    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("cycle_runs.run_id"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True)
class StageRecord:
    """A stage of a cycle run as stored."""

    stage: str
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    seconds: float | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class CycleRun:
    """A cycle run as stored, with its stages in run order."""

    run_id: str
    tenant_id: str
    status: str
    requested_by: str | None
    stages: tuple[StageRecord, ...]
    options: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    def stage(self, name: str) -> StageRecord:
        """The record of stage ``name``.

        Raises:
            KeyError: the run did not ask for that stage.
        """
        for s in self.stages:
            if s.stage == name:
                return s
        have = [s.stage for s in self.stages]
        raise KeyError(f"cycle run {self.run_id} has no stage {name!r}; it has {have}")

    def outputs(self) -> dict[str, Any]:
        """Every stage's outputs merged (later stages win on equal keys)."""
        out: dict[str, Any] = {}
        for s in self.stages:
            out.update(s.outputs)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (datetimes as ISO strings)."""
        return _jsonable(asdict(self))


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _utc(v: datetime | None) -> datetime | None:
    # SQLite hands timezone-aware columns back naive; they were stored as UTC.
    if v is not None and v.tzinfo is None:
        from datetime import UTC

        return v.replace(tzinfo=UTC)
    return v


def _record(run: CycleRunRow, stages: list[CycleStageRow]) -> CycleRun:
    return CycleRun(
        run_id=run.run_id,
        tenant_id=run.tenant_id,
        status=run.status,
        requested_by=run.requested_by,
        stages=tuple(
            StageRecord(
                stage=s.stage,
                status=s.status,
                started_at=_utc(s.started_at),
                finished_at=_utc(s.finished_at),
                seconds=s.seconds,
                counts=dict(s.counts or {}),
                outputs=dict(s.outputs or {}),
                error=s.error,
            )
            for s in sorted(stages, key=lambda s: s.position)
        ),
        options=dict(run.options or {}),
        created_at=_utc(run.created_at),
        started_at=_utc(run.started_at),
        finished_at=_utc(run.finished_at),
        error=run.error,
    )


def _run_row(s: Session, tenant: str, run_id: str) -> CycleRunRow:
    row = s.get(CycleRunRow, run_id)
    if row is None or row.tenant_id != tenant:  # another tenant's run is never revealed
        raise LookupError(f"no cycle run {run_id!r} for tenant {tenant!r}")
    return row


def _stage_row(s: Session, tenant: str, run_id: str, stage: str) -> CycleStageRow:
    _run_row(s, tenant, run_id)
    row = s.get(CycleStageRow, (run_id, stage))
    if row is None:
        raise LookupError(f"cycle run {run_id!r} has no stage {stage!r}")
    return row


def _clip(message: str) -> str:
    return message if len(message) <= _ERROR_MAX else message[: _ERROR_MAX - 3] + "..."


def create_run(
    engine: Engine,
    tenant: str,
    stages: list[str] | tuple[str, ...],
    *,
    requested_by: str | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """Record a new ``queued`` cycle run of ``tenant`` with its stages ``pending``.

    Args:
        engine: a migrated state store.
        tenant: an existing tenant.
        stages: stage names from :data:`CYCLE_STAGES`, in the order they will run.
        requested_by: who asked (an API key id, ``cli``, ``demo``).
        options: the run's options as given (JSON-ready), e.g. ``{"train": True}``.

    Returns:
        The run id.

    Raises:
        ValueError: an unknown or repeated stage, or no stage at all.
        LookupError: the tenant does not exist.
    """
    stages = list(stages)
    unknown = [s for s in stages if s not in CYCLE_STAGES]
    if unknown or not stages or len(set(stages)) != len(stages):
        raise ValueError(
            f"stages={stages!r}: expected one or more distinct names from {list(CYCLE_STAGES)}"
        )
    run_id = uuid.uuid4().hex
    with session_scope(engine) as s:
        if s.get(Tenant, tenant) is None:
            raise LookupError(f"tenant {tenant!r} does not exist (ingest its data first)")
        s.add(
            CycleRunRow(
                run_id=run_id,
                tenant_id=tenant,
                status="queued",
                requested_by=requested_by,
                stages=stages,
                options=dict(options or {}),
            )
        )
        s.flush()
        for i, name in enumerate(stages):
            s.add(
                CycleStageRow(
                    run_id=run_id, stage=name, position=i, status="pending", counts={}, outputs={}
                )
            )
    return run_id


def start_run(engine: Engine, tenant: str, run_id: str) -> None:
    """Mark the run ``running`` (now)."""
    with session_scope(engine) as s:
        row = _run_row(s, tenant, run_id)
        row.status, row.started_at = "running", utcnow()


def start_stage(engine: Engine, tenant: str, run_id: str, stage: str) -> None:
    """Mark ``stage`` ``running`` (now)."""
    with session_scope(engine) as s:
        row = _stage_row(s, tenant, run_id, stage)
        row.status, row.started_at = "running", utcnow()


def finish_stage(
    engine: Engine,
    tenant: str,
    run_id: str,
    stage: str,
    *,
    counts: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> None:
    """Mark ``stage`` ``succeeded`` with what it counted and wrote.

    Args:
        engine: a migrated state store.
        tenant: the run's tenant.
        run_id: from :func:`create_run`.
        stage: one of the run's stages.
        counts: JSON-ready figures (units forecast, recommendations by state, ...).
        outputs: ids of what the stage wrote (``forecast_run``, ``plan_run``, ``model_version``, ...).
        seconds: measured duration (default: from the recorded start to now).
    """
    with session_scope(engine) as s:
        row = _stage_row(s, tenant, run_id, stage)
        now = utcnow()
        row.status, row.finished_at = "succeeded", now
        row.counts, row.outputs = _jsonable(dict(counts or {})), _jsonable(dict(outputs or {}))
        row.seconds = seconds if seconds is not None else _elapsed(row.started_at, now)


def _elapsed(start: datetime | None, end: datetime) -> float | None:
    start = _utc(start)
    return None if start is None else round((end - start).total_seconds(), 3)


def fail_stage(
    engine: Engine, tenant: str, run_id: str, stage: str, error: str, *, seconds: float | None = None
) -> None:
    """Mark ``stage`` ``failed`` with ``error``; the run fails with it and its pending stages are skipped.

    One transaction: a reader sees the stage and the run fail together.
    """
    message = _clip(str(error))
    with session_scope(engine) as s:
        row = _stage_row(s, tenant, run_id, stage)
        now = utcnow()
        row.status, row.finished_at, row.error = "failed", now, message
        row.seconds = seconds if seconds is not None else _elapsed(row.started_at, now)
        run = _run_row(s, tenant, run_id)
        run.status, run.finished_at, run.error = "failed", now, _clip(f"{stage}: {message}")
        _skip_pending(s, run_id)


def _skip_pending(s: Session, run_id: str) -> None:
    for other in s.execute(
        select(CycleStageRow).where(CycleStageRow.run_id == run_id, CycleStageRow.status == "pending")
    ).scalars():
        other.status = "skipped"


def finish_run(engine: Engine, tenant: str, run_id: str) -> None:
    """Mark the run ``succeeded`` (now)."""
    with session_scope(engine) as s:
        row = _run_row(s, tenant, run_id)
        row.status, row.finished_at = "succeeded", utcnow()


def fail_run(engine: Engine, tenant: str, run_id: str, error: str) -> None:
    """Mark the run ``failed`` with ``error`` outside any stage (a running stage fails with it)."""
    message = _clip(str(error))
    with session_scope(engine) as s:
        run = _run_row(s, tenant, run_id)
        now = utcnow()
        run.status, run.finished_at, run.error = "failed", now, message
        for st in s.execute(
            select(CycleStageRow).where(CycleStageRow.run_id == run_id, CycleStageRow.status == "running")
        ).scalars():
            st.status, st.finished_at, st.error = "failed", now, message
            st.seconds = _elapsed(st.started_at, now)
        _skip_pending(s, run_id)


def get_run(engine: Engine, tenant: str, run_id: str) -> CycleRun:
    """The run ``run_id`` of ``tenant``.

    Raises:
        LookupError: no such run for this tenant (another tenant's run is not found either).
    """
    with session_scope(engine) as s:
        run = _run_row(s, tenant, run_id)
        stages = list(s.execute(select(CycleStageRow).where(CycleStageRow.run_id == run_id)).scalars())
        return _record(run, stages)


def list_runs(engine: Engine, tenant: str, *, limit: int = 20) -> list[CycleRun]:
    """The tenant's most recent runs, newest first (at most ``limit``)."""
    with session_scope(engine) as s:
        runs = list(
            s.execute(
                select(CycleRunRow)
                .where(CycleRunRow.tenant_id == tenant)
                .order_by(CycleRunRow.created_at.desc(), CycleRunRow.run_id)
                .limit(limit)
            ).scalars()
        )
        if not runs:
            return []
        stages: dict[str, list[CycleStageRow]] = {r.run_id: [] for r in runs}
        for st in s.execute(
            select(CycleStageRow).where(CycleStageRow.run_id.in_(list(stages)))
        ).scalars():
            stages[st.run_id].append(st)
        return [_record(r, stages[r.run_id]) for r in runs]
