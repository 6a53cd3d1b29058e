"""The plan runs of a tenant, oldest first: what the workflow's exception lifecycle takes in after a run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from features.store import session_scope
from planning._tables import PlanRun

__all__ = ["plan_runs"]


def plan_runs(
    engine: Engine, tenant_id: str, *, after: datetime | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The tenant's plan runs created after ``after`` (all when None), oldest first, at most ``limit`` newest.

    Returns:
        Dicts with run_id, created_at, as_of, n_units, n_exceptions.
    """
    with session_scope(engine) as s:
        q = select(
            PlanRun.run_id, PlanRun.created_at, PlanRun.as_of, PlanRun.n_units, PlanRun.n_exceptions
        ).where(PlanRun.tenant_id == tenant_id)
        if after is not None:
            q = q.where(PlanRun.created_at > after)
        rows = s.execute(q.order_by(PlanRun.created_at.desc(), PlanRun.run_id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows][::-1]
