"""Plan runs' exceptions into the lifecycle: one per key, opened or updated; cleared when no longer found.

The planning stage writes its exceptions as rows of a plan run (``plan_exceptions``); this module takes every
plan run newer than the last one taken in (``wf_exception_sync``), oldest first, through
:func:`workflow.exceptions.open_exception` (``source="plan"``), links each exception to the unit's
recommendations proposed from that run, and, for a run of the whole plan, clears the active plan exceptions
of the detector types the plan stage runs (:data:`PLAN_TYPES`) that the run no longer found (resolved with
``resolution="cleared"``), and marks closed ones cleared (so a later finding opens a new exception).

A run is taken as the whole plan when it planned more than half as many units as the last whole plan (the
first run with units is one). A re-plan of a few units (after a supplier response) opens and updates the
exceptions it found and clears nothing: it did not look at the other units.

The first sync of a tenant takes only its newest run (older runs are superseded by it). The tenant's sync row
is locked for the whole transaction (``UPDATE`` first: PostgreSQL's row lock, SQLite's writer lock), so two
callers never take the same run in twice.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from features.store import session_scope, utcnow
from workflow._exception_schemas import ExceptionIn
from workflow._exception_tables import ACTIVE_STATES, ExceptionRecord, ExceptionSync
from workflow._journal import flush
from workflow._models import Recommendation
from workflow.schemas import as_utc

__all__ = ["PLAN_TYPES", "sync_plan_exceptions"]

#: Exception types the plan stage checks on every unit each run: a run that does not find one has cleared it.
PLAN_TYPES = (
    "stockout_risk",
    "overstock",
    "ageing_stock",
    "forecast_anomaly",
    "bias_drift",
    "late_po",
    "lead_time_drift",
    "identity",
)
_E = ExceptionRecord.__table__
_S = ExceptionSync.__table__


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _exception_in(row: dict[str, Any]) -> ExceptionIn:
    return ExceptionIn(
        exception_type=row["exception_type"],
        severity=row["severity"] if row.get("severity") in ("high", "medium", "low") else "medium",
        message=(row.get("message") or row["exception_type"])[:4000],
        sku_id=row.get("sku_id"),
        location_id=row.get("location_id"),
        supplier_id=row.get("supplier_id"),
        po_id=row.get("po_id"),
        value=_clean(row.get("value")),
        threshold=_clean(row.get("threshold")),
        customer_impacting=bool(row.get("customer_impacting")),
        exception_key=row.get("exception_key") or None,
        route_queue=row.get("route_queue"),
        route_role=row.get("route_role"),
        owner_team=row.get("owner_team"),
    )


def _lock(session, tenant_id: str) -> tuple[str | None, datetime | None, int | None]:
    """Lock the tenant's sync row (made if missing): last run id and time, the whole plan's units."""
    dialect = session.get_bind().dialect.name
    ins = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        ins(_S)
        .values(tenant_id=tenant_id, synced_at=utcnow())
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    session.execute(update(_S).where(_S.c.tenant_id == tenant_id).values(synced_at=utcnow()))
    q = select(_S.c.last_run_id, _S.c.last_run_at, _S.c.full_units).where(_S.c.tenant_id == tenant_id)
    row = session.execute(q).one()
    return row[0], None if row[1] is None else as_utc(row[1]), row[2]


def _links(session, tenant_id: str, run_id: str) -> dict[tuple[str, str], list[str]]:
    """Recommendations proposed from this plan run, by (sku, location) (proposal keys ``plan:<run>:...``)."""
    q = select(Recommendation.id, Recommendation.sku_id, Recommendation.location_id).where(
        Recommendation.tenant_id == tenant_id, Recommendation.proposal_key.like(f"plan:{run_id}:%")
    )
    out: dict[tuple[str, str], list[str]] = {}
    for rid, sku, loc in session.execute(q):
        out.setdefault((sku, loc), []).append(rid)
    return out


def _clear(session, tenant_id: str, run_id: str, seen: set[str], at: datetime, journal: dict) -> int:
    from workflow.exceptions import _act

    q = select(_E).where(
        _E.c.tenant_id == tenant_id,
        _E.c.source == "plan",
        _E.c.exception_type.in_(PLAN_TYPES),
        _E.c.cleared_at.is_(None),
    )
    n = 0
    for row in session.execute(q).mappings().all():
        if row["exception_key"] in seen:
            continue
        if row["state"] in ACTIVE_STATES:
            changes = {
                "resolution": "cleared",
                "cleared_at": at,
                "closed_at": at,
                "closed_by": f"planning:{run_id}",
            }
            why = f"plan run {run_id} no longer finds it"
            actor = f"planning:{run_id}"
            _act(session, tenant_id, row["id"], "clear", changes, actor=actor, expected_version=None,
                 reason=why, verb="cleared", row=row, journal=journal)  # fmt: skip
            n += 1
        else:
            session.execute(update(_E).where(_E.c.id == row["id"]).values(cleared_at=at))
    return n


def sync_plan_exceptions(engine: Engine, tenant_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Take the tenant's plan runs newer than the last one taken in into the lifecycle (see the module doc).

    Returns:
        Counts: runs, opened, updated, quiet (closed by a person, condition persisting), cleared.
    """
    from planning import load_run, plan_runs

    counts = {"runs": 0, "opened": 0, "updated": 0, "quiet": 0, "cleared": 0}
    with session_scope(engine) as s:  # a read: nothing is written unless there is a new run
        row = s.execute(select(_S.c.last_run_id, _S.c.last_run_at).where(_S.c.tenant_id == tenant_id)).first()
        last_id, last_at = (
            (None, None) if row is None else (row[0], None if row[1] is None else as_utc(row[1]))
        )
    runs = (
        plan_runs(engine, tenant_id, after=last_at)
        if last_at is not None
        else plan_runs(engine, tenant_id)[-1:]
    )
    runs = [r for r in runs if r["run_id"] != last_id]
    if not runs:
        return counts
    loaded = [(r, load_run(engine, tenant_id, r["run_id"])) for r in runs]
    from workflow.exceptions import open_exception

    with session_scope(engine) as s:
        locked_id, locked_at, full_units = _lock(s, tenant_id)
        if (locked_id, locked_at) != (last_id, last_at):  # another caller took these runs in meanwhile
            return counts
        journal: dict[str, tuple[list, list]] = {}
        for meta, run in loaded:
            run_id, at = meta["run_id"], now or utcnow()
            links = _links(s, tenant_id, run_id)
            seen: set[str] = set()
            for row in run["exceptions"].iter_rows(named=True) if run["exceptions"].height else ():
                exc = _exception_in(row)
                exc.recommendation_ids = links.get((row.get("sku_id"), row.get("location_id")), [])
                out, what = open_exception(s, tenant_id, exc, actor=f"planning:{run_id}", source="plan",
                                           run_id=run_id, now=at, journal=journal)  # fmt: skip
                seen.add(out.exception_key)
                counts[what] += 1
            n_units = int(meta.get("n_units") or 0)
            if n_units > 0 and (full_units is None or n_units > full_units / 2):  # a whole plan: it clears
                counts["cleared"] += _clear(s, tenant_id, run_id, seen, at, journal)
                full_units = n_units
            counts["runs"] += 1
            s.execute(
                update(_S)
                .where(_S.c.tenant_id == tenant_id)
                .values(
                    last_run_id=run_id,
                    last_run_at=meta["created_at"],
                    full_units=full_units,
                    synced_at=utcnow(),
                )
            )
        flush(s, journal)
    return counts
