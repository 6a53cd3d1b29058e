"""Telemetry: forecast accuracy, inventory outcomes, supplier performance, overrides, request metering.

Measures (all per tenant):

* forecast accuracy when actuals arrive, by hierarchy level and model version: WAPE ``sum|y - y_hat| /
  sum|y|``, bias ``sum(y_hat - y) / sum|y|`` (positive: over-forecast) and interval coverage (share of actuals
  inside ``[lo, hi]``), as :mod:`kernels.accuracy` defines them (the monitoring job's figures too);
* stockouts (share of unit-periods whose demand exceeded what was available; lost units) and excess inventory
  (units and value above the policy's maximum);
* supplier on-time-in-full (share of received orders both on time and in full) and lead-time drift (mean
  observed minus promised lead time, days), from :func:`workflow.lifecycle.record_supplier_response`;
* planner override rate (overrides / human decisions) and forecast value added of overrides
  (Gilliland, *The Business Forecasting Deal*, 2010): ``FVA = 1 - MAE(override) / MAE(system)`` against the
  quantity that proved right in hindsight; positive means overrides helped;
* request metering per tenant (:class:`RequestMeter`, in process).

Figures are stored as :class:`~workflow._models.TelemetryPoint` rows, queryable through :func:`summary` and
exported in Prometheus text format by :func:`prometheus_text`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

import kernels
from features.store import utcnow
from workflow._models import OutboxItem, Recommendation, SupplierResponse, TelemetryPoint
from workflow.errors import InvalidInput

__all__ = [
    "RequestMeter",
    "accuracy_by_group",
    "forecast_value_added",
    "inventory_outcomes",
    "override_stats",
    "prometheus_text",
    "tenant_prometheus_text",
    "record_accuracy",
    "record_inventory",
    "record_override_outcomes",
    "summary",
    "supplier_performance",
]


def _arr(name: str, v: Any, n: int | None = None) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 1:
        raise InvalidInput(name, f"expected a 1-d sequence of numbers, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise InvalidInput(name, f"expected {n} values (one per row), got {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        raise InvalidInput(name, f"non-finite value at row {int(np.flatnonzero(~np.isfinite(a))[0])}")
    return a


def accuracy_by_group(
    level: Sequence[str],
    model_version: Sequence[str],
    y: Sequence[float],
    y_hat: Sequence[float],
    lo: Sequence[float] | None = None,
    hi: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """WAPE, bias and interval coverage per ``(level, model_version)``.

    Args:
        level: (n,) hierarchy level of each row, e.g. ``"sku"``, ``"agency"``, ``"total"``.
        model_version: (n,) model version that made each forecast.
        y: (n,) actuals.
        y_hat: (n,) point forecasts.
        lo: (n,) lower interval bounds (give both bounds or neither).
        hi: (n,) upper interval bounds.

    Returns:
        One dict per group: ``level, model_version, n, wape, bias, coverage`` (coverage None without bounds).
    """
    y_a = _arr("y", y)
    n = y_a.shape[0]
    yh = _arr("y_hat", y_hat, n)
    if (lo is None) != (hi is None):
        raise InvalidInput("lo", "give both lo and hi, or neither")
    lo_a = _arr("lo", lo, n) if lo is not None else None
    hi_a = _arr("hi", hi, n) if hi is not None else None
    if len(level) != n or len(model_version) != n:
        raise InvalidInput("level", f"level and model_version need {n} values (one per row)")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(level, model_version, strict=True)):
        groups[key].append(i)
    out = []
    for (lvl, mv), idx in sorted(groups.items()):
        ix = np.asarray(idx)
        a, f = y_a[ix], yh[ix]
        wape, bias = kernels.wape(a, f), kernels.bias(a, f)
        cov = kernels.coverage(a, lo_a[ix], hi_a[ix]) if lo_a is not None else None
        out.append(
            {
                "level": str(lvl),
                "model_version": str(mv),
                "n": len(idx),
                "wape": wape,
                "bias": bias,
                "coverage": cov,
            }
        )
    return out


def _store(
    session: Session, tenant_id: str, metric: str, labels: dict, value: float, n: int, period: str | None
) -> None:
    if not np.isfinite(value):
        return
    session.execute(
        insert(TelemetryPoint.__table__).values(
            tenant_id=tenant_id,
            metric=metric,
            labels=labels,
            value=float(value),
            n=int(n),
            period=period,
            at=utcnow(),
        )
    )


def record_accuracy(
    session: Session,
    tenant_id: str,
    *,
    level,
    model_version,
    y,
    y_hat,
    lo=None,
    hi=None,
    period: str | None = None,
) -> list[dict[str, Any]]:
    """Compute :func:`accuracy_by_group` on arrived actuals and store it; returns the groups."""
    rows = accuracy_by_group(level, model_version, y, y_hat, lo, hi)
    for r in rows:
        labels = {"level": r["level"], "model_version": r["model_version"]}
        _store(session, tenant_id, "forecast_wape", labels, r["wape"], r["n"], period)
        _store(session, tenant_id, "forecast_bias", labels, r["bias"], r["n"], period)
        if r["coverage"] is not None:
            _store(session, tenant_id, "forecast_coverage", labels, r["coverage"], r["n"], period)
    return rows


def inventory_outcomes(available, demand, max_stock=None, unit_cost=None) -> dict[str, float]:
    """Stockouts and excess over unit-periods.

    Args:
        available: (n,) units available to serve demand in each unit-period.
        demand: (n,) demand in each unit-period.
        max_stock: (n,) policy maximum; units left above it are excess.
        unit_cost: (n,) cost per unit, to value the excess.

    Returns:
        ``n, stockout_rate, lost_units, fill_rate, excess_units, excess_value``.
    """
    av = _arr("available", available)
    n = av.shape[0]
    d = _arr("demand", demand, n)
    served = np.minimum(np.maximum(av, 0.0), d)
    lost = d - served
    out = {
        "n": float(n),
        "stockout_rate": float(np.mean(d > av)) if n else 0.0,
        "lost_units": float(lost.sum()),
        "fill_rate": float(served.sum() / d.sum()) if d.sum() > 0 else 1.0,
        "excess_units": 0.0,
        "excess_value": 0.0,
    }
    if max_stock is not None:
        left = np.maximum(av - d, 0.0)
        excess = np.maximum(left - _arr("max_stock", max_stock, n), 0.0)
        out["excess_units"] = float(excess.sum())
        if unit_cost is not None:
            out["excess_value"] = float((excess * _arr("unit_cost", unit_cost, n)).sum())
    return out


def record_inventory(
    session: Session,
    tenant_id: str,
    *,
    available,
    demand,
    max_stock=None,
    unit_cost=None,
    location: str = "all",
    period: str | None = None,
) -> dict[str, float]:
    """Compute :func:`inventory_outcomes` and store it under the ``location`` label."""
    res = inventory_outcomes(available, demand, max_stock, unit_cost)
    for k in ("stockout_rate", "lost_units", "fill_rate", "excess_units", "excess_value"):
        _store(session, tenant_id, f"inventory_{k}", {"location": location}, res[k], int(res["n"]), period)
    return res


def supplier_performance(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """Per supplier: received orders, OTIF, and lead-time drift (observed minus promised, days)."""
    S = SupplierResponse
    rows = session.execute(
        select(
            S.supplier_id,
            func.count(),
            func.avg(S.on_time * S.in_full),
            func.avg(S.observed_lead_time_days - S.promised_lead_time_days),
            func.avg(S.observed_lead_time_days),
        )
        .where(S.tenant_id == tenant_id, S.status == "received")
        .group_by(S.supplier_id)
        .order_by(S.supplier_id)
    ).all()
    return [
        {
            "supplier_id": r[0],
            "received": int(r[1]),
            "otif": None if r[2] is None else float(r[2]),
            "lead_time_drift_days": None if r[3] is None else float(r[3]),
            "observed_lead_time_days": None if r[4] is None else float(r[4]),
        }
        for r in rows
    ]


def forecast_value_added(actual, system, override) -> float:
    """``1 - MAE(override) / MAE(system)`` (shapes (n,)); NaN when the system was already exact."""
    a = _arr("actual", actual)
    n = a.shape[0]
    mae_sys = kernels.mae(a, _arr("system", system, n)) if n else float("nan")
    mae_ovr = kernels.mae(a, _arr("override", override, n)) if n else float("nan")
    return 1.0 - mae_ovr / mae_sys if mae_sys > 0 else float("nan")


def override_stats(session: Session, tenant_id: str) -> dict[str, Any]:
    """Human decisions, overrides and override rate (decisions by policy are not counted)."""
    R = Recommendation
    decided = session.execute(
        select(R.override_reason_code.is_not(None) & (R.final_quantity.is_not(None)), func.count())
        .where(
            R.tenant_id == tenant_id,
            R.decided_by.is_not(None),
            ~R.decided_by.like("policy:%"),
            R.state != "rejected",
        )
        .group_by(R.override_reason_code.is_not(None) & (R.final_quantity.is_not(None)))
    ).all()
    rejected = (
        session.scalar(select(func.count()).where(R.tenant_id == tenant_id, R.state == "rejected")) or 0
    )
    overridden = sum(int(n) for is_ovr, n in decided if is_ovr)
    human = sum(int(n) for _, n in decided) + int(rejected)
    return {
        "human_decisions": human,
        "overrides": overridden,
        "override_rate": overridden / human if human else 0.0,
    }


def record_override_outcomes(
    session: Session, tenant_id: str, hindsight: Mapping[str, float], period: str | None = None
) -> dict[str, Any]:
    """Forecast value added of overrides, given the quantity that proved right for each overridden id.

    Args:
        session: open session.
        tenant_id: the tenant.
        hindsight: ``recommendation id -> quantity that was right in hindsight`` (from actual demand).
        period: label of the period evaluated.

    Returns:
        ``n`` (overrides evaluated) and ``fva``.
    """
    R = Recommendation
    rows = session.execute(
        select(R.id, R.quantity, R.final_quantity).where(
            R.tenant_id == tenant_id,
            R.id.in_(list(hindsight)),
            R.override_reason_code.is_not(None),
            R.final_quantity.is_not(None),
        )
    ).all()
    if not rows:
        return {"n": 0, "fva": None}
    fva = forecast_value_added([hindsight[r[0]] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    _store(session, tenant_id, "override_fva", {}, fva, len(rows), period)
    return {"n": len(rows), "fva": fva}


class RequestMeter:
    """Thread-safe request counters per ``(tenant, route, status)`` with summed latency (per process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, int], int] = defaultdict(int)
        self._seconds: dict[tuple[str, str, int], float] = defaultdict(float)

    def observe(self, tenant: str, route: str, status: int, seconds: float) -> None:
        """Count one request."""
        with self._lock:
            self._count[(tenant, route, status)] += 1
            self._seconds[(tenant, route, status)] += seconds

    def snapshot(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Counters, optionally of one tenant."""
        with self._lock:
            items = [(k, v, self._seconds[k]) for k, v in self._count.items()]
        return [
            {"tenant": t, "route": r, "status": s, "count": n, "seconds": sec}
            for (t, r, s), n, sec in sorted(items)
            if tenant is None or t == tenant
        ]


def _latest_points(
    session: Session,
    tenant_id: str,
    *,
    max_series: int | None = None,
    max_rows: int | None = None,
    skip_prefix: str | None = None,
) -> list[TelemetryPoint]:
    """The latest point of each (metric, labels) series of ``tenant_id``, newest rows read first.

    ``max_series`` / ``max_rows`` bound the answer and the rows read (a scrape must cost a bounded amount,
    whatever clients posted); metrics starting with ``skip_prefix`` are left out.
    """
    T = TelemetryPoint
    stmt = select(T).where(T.tenant_id == tenant_id).order_by(T.id.desc())
    if skip_prefix is not None:
        stmt = stmt.where(~T.metric.startswith(skip_prefix, autoescape=True))
    if max_rows is not None:
        stmt = stmt.limit(max_rows)
    latest: dict[tuple, TelemetryPoint] = {}
    for p in session.scalars(stmt):
        key = (p.metric, tuple(sorted(p.labels.items())))
        if key not in latest:
            if max_series is not None and len(latest) >= max_series:
                break
            latest[key] = p
    return sorted(latest.values(), key=lambda p: p.id)


def summary(session: Session, tenant_id: str) -> dict[str, Any]:
    """Everything above for one tenant: latest stored figures plus live counts."""
    R, OB = Recommendation, OutboxItem
    by_state = dict(
        session.execute(select(R.state, func.count()).where(R.tenant_id == tenant_id).group_by(R.state)).all()
    )
    outbox = dict(
        session.execute(
            select(OB.status, func.count()).where(OB.tenant_id == tenant_id).group_by(OB.status)
        ).all()
    )
    return {
        "recommendations_by_state": {k: int(v) for k, v in by_state.items()},
        "outbox_by_status": {k: int(v) for k, v in outbox.items()},
        "overrides": override_stats(session, tenant_id),
        "suppliers": supplier_performance(session, tenant_id),
        "metrics": [
            {
                "metric": p.metric,
                "labels": p.labels,
                "value": p.value,
                "n": p.n,
                "period": p.period,
                "at": p.at,
            }
            for p in _latest_points(
                session, tenant_id, max_series=MAX_TENANT_SERIES, max_rows=50 * MAX_TENANT_SERIES
            )
        ],
    }


def _esc(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(name: str, labels: Mapping[str, Any], value: float) -> str:
    lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
    return f"{name}{{{lab}}} {float(value)!r}" if lab else f"{name} {float(value)!r}"


def _family(out: list[str], name: str, typ: str, help_: str, samples) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} {typ}")
    out.extend(_line(name, lab, v) for lab, v in samples)


def prometheus_text(session: Session, meter: RequestMeter | None = None) -> str:
    """Operational figures of the whole service in Prometheus text format (0.0.4), without tenant labels.

    Recommendations by state and outbox items by status (summed over tenants), and, with ``meter``, requests
    by route template and status. The label values come from fixed sets (states, statuses, route templates),
    so the number of lines is bounded whatever clients post. Business figures per tenant (accuracy,
    suppliers, overrides) are in :func:`tenant_prometheus_text`, behind the tenant's key.
    """
    out: list[str] = []
    R, OB = Recommendation, OutboxItem
    _family(
        out,
        "replenish_recommendations",
        "gauge",
        "Recommendations by state (all tenants).",
        [
            ({"state": s}, n)
            for s, n in session.execute(select(R.state, func.count()).group_by(R.state).order_by(R.state))
        ],
    )
    _family(
        out,
        "replenish_outbox_items",
        "gauge",
        "Outbox items by status (dead = dead letters; all tenants).",
        [
            ({"status": s}, n)
            for s, n in session.execute(
                select(OB.status, func.count()).group_by(OB.status).order_by(OB.status)
            )
        ],
    )
    _job_families(session, out)
    if meter is not None:
        counts: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0])
        for r in meter.snapshot():
            c = counts[(r["route"], r["status"])]
            c[0] += r["count"]
            c[1] += r["seconds"]
        _family(
            out,
            "replenish_requests_total",
            "counter",
            "API requests by route template and status.",
            [({"route": r, "status": st}, c[0]) for (r, st), c in sorted(counts.items())],
        )
        _family(
            out,
            "replenish_request_seconds_total",
            "counter",
            "Summed API request latency.",
            [({"route": r, "status": st}, c[1]) for (r, st), c in sorted(counts.items())],
        )
    return "\n".join(out) + "\n"


def _job_families(session: Session, out: list[str]) -> None:
    """Scheduled jobs: runs kept by status, the last success's time, and the leader lease's fence.

    Labels are the job's base name (``cycle:<tenant>`` counts as ``cycle``: no tenant label here) and the
    run status, both from fixed sets.
    """
    from workflow._job_models import JobLease, JobRun

    base = {}
    runs: dict[tuple[str, str], int] = defaultdict(int)
    for job, status, n, last_ok in session.execute(
        select(JobRun.job, JobRun.status, func.count(), func.max(JobRun.finished_at)).group_by(
            JobRun.job, JobRun.status
        )
    ):
        name = job.split(":", 1)[0]
        runs[(name, status)] += int(n)
        if status == "succeeded" and last_ok is not None:
            ts = last_ok.timestamp() if last_ok.tzinfo else last_ok.replace(tzinfo=UTC).timestamp()
            base[name] = max(base.get(name, 0.0), ts)
    _family(
        out,
        "replenish_job_runs",
        "gauge",
        "Scheduled job runs kept (retention window), by job and status.",
        [({"job": j, "status": st}, n) for (j, st), n in sorted(runs.items())],
    )
    _family(
        out,
        "replenish_job_last_success_timestamp_seconds",
        "gauge",
        "When each scheduled job last finished successfully (Unix time).",
        [({"job": j}, ts) for j, ts in sorted(base.items())],
    )
    _family(
        out,
        "replenish_scheduler_lease_fence",
        "gauge",
        "Times the scheduler's leadership changed hands (grows on each fail-over).",
        [({}, f) for (f,) in session.execute(select(JobLease.fence).where(JobLease.name == "scheduler"))],
    )


#: Most series one tenant's business scrape returns (further ones are counted, not listed).
MAX_TENANT_SERIES = 500


#: Metrics of the monitoring job's per-group inventory figures, left out of the Prometheus export.
GROUP_PREFIX = "inventory_group_"


def tenant_prometheus_text(session: Session, tenant_id: str, *, max_series: int = MAX_TENANT_SERIES) -> str:
    """One tenant's business figures in Prometheus text: no tenant label, at most ``max_series`` series.

    Override rate, supplier OTIF and lead-time drift, and the latest stored telemetry points (accuracy,
    inventory, FVA). ``replenish_series_truncated`` says whether series were left out.
    """
    out: list[str] = []
    _family(
        out,
        "replenish_override_rate",
        "gauge",
        "Planner overrides per human decision.",
        [({}, override_stats(session, tenant_id)["override_rate"])],
    )
    sups = supplier_performance(session, tenant_id)[:max_series]
    _family(
        out,
        "replenish_supplier_otif",
        "gauge",
        "Supplier on-time-in-full share of received orders.",
        [({"supplier": sp["supplier_id"]}, sp["otif"]) for sp in sups if sp["otif"] is not None],
    )
    _family(
        out,
        "replenish_supplier_lead_time_drift_days",
        "gauge",
        "Mean observed minus promised lead time.",
        [
            ({"supplier": sp["supplier_id"]}, sp["lead_time_drift_days"])
            for sp in sups
            if sp["lead_time_drift_days"] is not None
        ],
    )
    budget = max(0, max_series - len(sups))
    # the monitoring job's per-group inventory figures (up to 50 locations and 50 categories each) stay on the
    # dashboards and GET /v1/telemetry/monitoring: a scrape keeps the tenant-wide series, bounded in labels
    pts = _latest_points(
        session, tenant_id, max_series=budget + 1, max_rows=50 * max_series, skip_prefix=GROUP_PREFIX
    )
    truncated = len(pts) > budget
    points: dict[str, list] = defaultdict(list)
    for p in pts[:budget]:
        points[p.metric].append((p.labels, p.value))
    for metric in sorted(points):
        _family(
            out,
            f"replenish_{metric}",
            "gauge",
            f"Latest measured {metric.replace('_', ' ')}.",
            points[metric],
        )
    _family(
        out,
        "replenish_series_truncated",
        "gauge",
        "1 when series were left out of this scrape.",
        [({}, float(truncated))],
    )
    return "\n".join(out) + "\n"
