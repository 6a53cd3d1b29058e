"""Tables of the scheduled jobs: the leader lease and one row per job run (see :mod:`workflow.jobs`).

Kept apart from :mod:`workflow._models` (which imports this module so that one metadata holds every table);
the migration is ``workflow/migrations/versions/w0003_jobs.py``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from features.store import Base

__all__ = ["JobLease", "JobRun"]

_BigId = BigInteger().with_variant(Integer(), "sqlite")
_TZ = DateTime(timezone=True)


class JobLease(Base):
    """A named lease (the scheduler's leadership): held by ``owner`` until ``lease_until``.

    ``fence`` grows by one each time the lease changes hands, so a stale holder can be told apart.
    """

    __tablename__ = "wf_job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    lease_until: Mapped[datetime] = mapped_column(_TZ)
    fence: Mapped[int] = mapped_column(BigInteger, default=1)
    acquired_at: Mapped[datetime] = mapped_column(_TZ)


class JobRun(Base):
    """One run of a scheduled job in one window; ``(job, window_start)`` is unique: one run per window."""

    __tablename__ = "wf_job_runs"
    __table_args__ = (
        UniqueConstraint("job", "window_start"),
        Index("ix_wf_job_runs_job_started", "job", "started_at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    window_start: Mapped[datetime] = mapped_column(_TZ)
    owner: Mapped[str] = mapped_column(String(200))
    fence: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed | skipped
    started_at: Mapped[datetime] = mapped_column(_TZ)
    finished_at: Mapped[datetime | None] = mapped_column(_TZ, nullable=True)
    counts: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
