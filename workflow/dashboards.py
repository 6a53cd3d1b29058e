"""Reads behind the planner dashboards: stored monitoring figures over runs, plan service by group, decisions.

Pure reads; every figure is an SQL aggregation over the tenant's rows (nothing is written, nothing measured
here: the monitoring job, :func:`workflow.monitoring.run_monitoring`, measures and stores):

* :func:`figure_history`: chosen figures of the tenant's last monitoring runs, with the time of each run;
* :func:`service_by_group`: the newest proposed plan run's planned fill rate (with the order, and without
  it) against its fill target, per location or per SKU category, from the evidence each recommendation
  carries (planning's simulation section);
* :func:`decisions_by_day`: human decisions per day and outcome, mean hours from proposal to decision;
* :func:`overrides_by_reason`: overrides per reason code, with the proposed and final quantities.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Float, case, cast, func, or_, select
from sqlalchemy.orm import Session

from features.store import Sku
from workflow._models import Evidence, Recommendation, TelemetryPoint

__all__ = ["GROUPS", "decisions_by_day", "figure_history", "overrides_by_reason", "service_by_group"]

#: What :func:`service_by_group` can group by.
GROUPS = ("location", "category")

_R = Recommendation


def _human(stmt):
    """Decisions taken by a person (not by a policy or the system)."""
    return stmt.where(
        _R.decided_by.is_not(None), ~_R.decided_by.like("policy:%"), ~_R.decided_by.like("system:%")
    )


def figure_history(
    session: Session, tenant_id: str, prefixes: tuple[str, ...], runs: int = 30
) -> list[dict[str, Any]]:
    """Figures whose metric starts with one of ``prefixes``, in the tenant's last ``runs`` monitoring runs.

    Returns:
        Rows ``run_id, at, metric, labels, value, n, period``, oldest run first.
    """
    T = TelemetryPoint
    last = (
        select(T.run_id)
        .where(T.tenant_id == tenant_id, T.run_id.is_not(None))
        .group_by(T.run_id)
        .order_by(func.max(T.at).desc())
        .limit(runs)
    )
    run_ids = list(session.scalars(last))
    if not run_ids or not prefixes:
        return []
    stmt = select(T.run_id, T.at, T.metric, T.labels, T.value, T.n, T.period).where(
        T.tenant_id == tenant_id,
        T.run_id.in_(run_ids),
        _any_prefix(T.metric, prefixes),
    )
    rows = session.execute(stmt.order_by(T.at, T.id)).all()
    return [
        {
            "run_id": r[0],
            "at": r[1],
            "metric": r[2],
            "labels": r[3] or {},
            "value": r[4],
            "n": r[5],
            "period": r[6],
        }
        for r in rows
    ]


def _any_prefix(col, prefixes: tuple[str, ...]):
    return or_(*(col.startswith(p, autoescape=True) for p in prefixes))


def _newest_plan_run(session: Session, tenant_id: str) -> str | None:
    key = session.scalars(
        select(_R.proposal_key)
        .where(_R.tenant_id == tenant_id, _R.proposal_key.like("plan:%"))
        .order_by(_R.created_at.desc(), _R.id.desc())
        .limit(1)
    ).first()
    return key.split(":")[1] if key else None


def service_by_group(session: Session, tenant_id: str, by: str = "location") -> dict[str, Any]:
    """Planned service of the newest proposed plan run per group, from each recommendation's evidence.

    Args:
        session: open session.
        tenant_id: the tenant.
        by: ``location`` or ``category`` (the SKU's category; ``(none)`` when the SKU has none).

    Returns:
        ``plan_run`` (None when no plan run was proposed) and ``groups``: per group ``group``, ``n``,
        ``fill_target``, ``fill_with_order``, ``fill_without_order``, ``stockout_probability`` (means over
        its recommendations) and ``value`` (sum of the orders' values).

    Raises:
        ValueError: ``by`` is not one of :data:`GROUPS`.
    """
    if by not in GROUPS:
        raise ValueError(f"by: expected one of {', '.join(GROUPS)}, got {by!r}")
    run = _newest_plan_run(session, tenant_id)
    if run is None:
        return {"plan_run": None, "groups": []}
    E = Evidence

    def sim(key: str):
        return cast(E.body[("simulation", key)].as_float(), Float)

    group = _R.location_id if by == "location" else func.coalesce(Sku.category, "(none)")
    stmt = (
        select(
            group.label("group"),
            func.count().label("n"),
            func.avg(sim("fill_target")).label("fill_target"),
            func.avg(sim("fill_rate_at_level")).label("fill_with_order"),
            func.avg(sim("fill_rate_no_order")).label("fill_without_order"),
            func.avg(sim("stockout_probability")).label("stockout_probability"),
            func.sum(_R.value).label("value"),
        )
        .select_from(_R)
        .join(E, (E.tenant_id == _R.tenant_id) & (E.sha256 == _R.evidence_sha256))
        .where(_R.tenant_id == tenant_id, _R.proposal_key.like(f"plan:{run}:%"))
        .group_by(group)
        .order_by(group)
    )
    if by == "category":
        stmt = stmt.outerjoin(Sku, (Sku.tenant_id == _R.tenant_id) & (Sku.sku_id == _R.sku_id))
    groups = [dict(r._mapping) for r in session.execute(stmt.limit(200))]
    return {"plan_run": run, "groups": groups}


def _hours(session: Session):
    """Hours from proposal to decision, in the dialect's date arithmetic."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(_R.decided_at) - func.julianday(_R.created_at)) * 24.0
    return func.extract("epoch", _R.decided_at - _R.created_at) / 3600.0


def decisions_by_day(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """Human decisions per day (UTC) and outcome: ``day, state, n, mean_hours`` (proposal to decision)."""
    day = func.date(_R.decided_at)
    stmt = _human(
        select(day, _R.state, func.count(), func.avg(_hours(session))).where(_R.tenant_id == tenant_id)
    ).group_by(day, _R.state)
    out = []
    for d, state, n, hours in session.execute(stmt.order_by(day)).all():
        if isinstance(d, datetime):
            d = d.date()
        elif isinstance(d, str):
            d = date.fromisoformat(d[:10])
        out.append(
            {"day": d, "state": state, "n": int(n), "mean_hours": None if hours is None else float(hours)}
        )
    return out


def overrides_by_reason(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """Overrides per reason code: ``reason, n, proposed, final`` (summed), ``up`` (raised); most first."""
    stmt = (
        select(
            _R.override_reason_code,
            func.count(),
            func.sum(_R.quantity),
            func.sum(_R.final_quantity),
            func.sum(case((_R.final_quantity > _R.quantity, 1), else_=0)),
        )
        .where(
            _R.tenant_id == tenant_id,
            _R.override_reason_code.is_not(None),
            _R.final_quantity.is_not(None),
        )
        .group_by(_R.override_reason_code)
        .order_by(func.count().desc(), _R.override_reason_code)
    )
    return [
        {
            "reason": r[0],
            "n": int(r[1]),
            "proposed": float(r[2] or 0),
            "final": float(r[3] or 0),
            "up": int(r[4]),
        }
        for r in session.execute(stmt.limit(100)).all()
    ]
