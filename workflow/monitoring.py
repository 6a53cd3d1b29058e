"""The monitoring job: stored forecasts joined with ingested actuals, inventory health, suppliers, adoption.

:func:`run_monitoring` measures one tenant from its stores and records the figures as telemetry points of one
monitoring run (``run_id``); :func:`workflow.telemetry.tenant_prometheus_text` exports the latest of each and
the ``/ui/monitoring`` page draws them. Every figure is computed with Polars over whole columns (no Python
loop over rows), so a million forecast-actual pairs take seconds (``benchmarks/monitoring.py``).

What is measured and how:

* **Forecast accuracy** (:func:`accuracy_table`): each stored forecast run's bottom rows (one per unit, target
  period and horizon) are joined with the tenant's sales summed onto the run's grid. A target period up to the
  last period with sales that has no sales row for the unit counts as zero demand (sales files omit zero
  days); later periods have no actual yet and are left out. Per model version (``baseline`` when a
  baseline made the row), hierarchy level and horizon bucket (``1``, ``2-3``, ``4-6``, ``7-12``, ``13+``):
  MAE; WAPE ``sum|y - p50| / sum|y|``; bias ``sum(p50 - y) / sum|y|`` (positive: over-forecast); MASE, the
  mean of ``|y - p50| / s_u`` with ``s_u`` the unit's mean absolute one-period change of its sales history
  (Hyndman & Koehler 2006; units with ``s_u = 0`` left out); P10..P90 coverage (share of actuals inside
  ``[p10, p90]``, nominal 0.8) and the mean pinball loss over the stored quantile levels; each as
  :mod:`kernels.accuracy` defines it (the same functions as the backtests and the posted telemetry).
  Levels above the bottom (``sku``, ``location``, ``total``) sum the bottom p50 forecasts and actuals of
  their members (coherent for reconciled runs); coverage and pinball are bottom-level only (quantiles do
  not add up).
* **Accuracy over time** (:func:`accuracy_over_time`): bottom-level WAPE, bias and coverage per model version
  and target period.
* **Inventory health** (:func:`inventory_health`): from inventory snapshots and sales. A unit's demand rate is
  its mean daily sales over the last ``rate_days`` days of sales. Days of cover: on hand / demand rate on the
  latest snapshot. A stockout is a snapshot with nothing on hand for a unit with demand; the lost-sales
  estimate is the demand rate times the days until the unit's next snapshot (one day for the last).
  Excess: units on hand above ``excess_days`` of demand on the latest snapshot, valued at the SKU's cheapest
  supplier unit cost. The same figures with the measured fill rate vs target per location and SKU category
  (at most 50 groups of each kind): :mod:`workflow._monitoring_groups`.
* **Suppliers**: OTIF and lead-time drift from the recorded responses (:func:`workflow.telemetry.
  supplier_performance`).
* **Exceptions**: counts per type and state from the exception lifecycle's table, with the age of the
  oldest active one.
* **Planner adoption** (:func:`adoption`): acceptance rate (approved, overridden included, per human
  decision), hours to decision (median, p90), override rate; and the forecast value added of overrides
  (Gilliland 2010): for each overridden recommendation whose window (its plan's date, the ``as_of`` of its
  proposal's evidence, else the day it was proposed -> need-by) has passed, the
  quantity right in hindsight is ``max(0, proposed + actual - forecast)`` with actual and forecast the
  unit's sales and newest stored p50 over that window; ``FVA = 1 - MAE(final) / MAE(proposed)``, overall
  and per override reason code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import kernels
from features.store import session_scope, utcnow
from workflow import _monitoring_groups as groups
from workflow._exception_tables import ACTIVE_STATES, ExceptionRecord
from workflow._models import Recommendation

__all__ = [
    "HORIZON_BUCKETS",
    "LEVELS",
    "MonitoringResult",
    "accuracy_over_time",
    "actuals_on_grid",
    "accuracy_table",
    "adoption",
    "forecast_pairs",
    "inventory_health",
    "override_fva",
    "monitoring_runs",
    "run_monitoring",
    "run_points",
    "scales",
]

#: Hierarchy levels measured (bottom: the planning unit).
LEVELS = ("bottom", "sku", "location", "total")
#: Horizon buckets (upper bounds inclusive) and their labels: bounded Prometheus labels.
HORIZON_BUCKETS = ((1, "1"), (3, "2-3"), (6, "4-6"), (12, "7-12"), (10**9, "13+"))
#: Most model versions exported (the newest); older ones stay in the stored figures.
MAX_MODEL_VERSIONS = 5
_KEY = ["sku_id", "location_id", "channel_id"]
_LEVEL_KEYS = {"bottom": _KEY, "sku": ["sku_id"], "location": ["location_id"], "total": []}


@dataclass
class MonitoringResult:
    """One monitoring run of one tenant."""

    run_id: str
    tenant: str
    counts: dict[str, Any] = field(default_factory=dict)
    accuracy: pl.DataFrame | None = None
    over_time: pl.DataFrame | None = None
    inventory: dict[str, Any] = field(default_factory=dict)
    inventory_groups: list[dict[str, Any]] = field(default_factory=list)
    adoption: dict[str, Any] = field(default_factory=dict)
    suppliers: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)


def _bucket(h: pl.Expr) -> pl.Expr:
    expr = pl.when(h <= HORIZON_BUCKETS[0][0]).then(pl.lit(HORIZON_BUCKETS[0][1]))
    for hi, label in HORIZON_BUCKETS[1:]:
        expr = expr.when(h <= hi).then(pl.lit(label))
    return expr.otherwise(pl.lit(HORIZON_BUCKETS[-1][1]))


def actuals_on_grid(sales: pl.LazyFrame, freq: str) -> pl.LazyFrame:
    """Sales summed per unit and period of the grid ``freq``: ``sku_id, location_id, channel_id, date, y``."""
    d = pl.col("date").dt.month_start() if freq == "MS" else pl.col("date")
    return sales.with_columns(d.alias("date")).group_by([*_KEY, "date"]).agg(pl.col("qty").sum().alias("y"))


def forecast_pairs(forecasts: pl.LazyFrame, actuals: pl.LazyFrame) -> pl.LazyFrame:
    """Bottom forecast rows with their actual ``y`` (zero-filled up to the last period with sales).

    Args:
        forecasts: rows of :data:`features.forecasts.FORECAST_SCHEMA` plus quantile columns (``p50`` needed)
            and ``run_id``, of one grid.
        actuals: :func:`actuals_on_grid` of the tenant's sales on that grid.
    """
    last = actuals.select(pl.col("date").max().alias("last"))
    fc = forecasts.filter(pl.col("level") == "bottom").with_columns(
        pl.col("model_version").fill_null("baseline")
    )
    return (
        fc.join(last, how="cross")
        .filter(pl.col("date") <= pl.col("last"))
        .drop("last")
        .join(actuals, on=[*_KEY, "date"], how="left", nulls_equal=True)
        .with_columns(pl.col("y").fill_null(0.0))
    )


def scales(actuals: pl.LazyFrame) -> pl.LazyFrame:
    """Per unit: mean absolute one-period change of its :func:`actuals_on_grid` (MASE's scale)."""
    return actuals.group_by(_KEY).agg(pl.col("y").sort_by("date").diff().abs().mean().alias("scale"))


def _figures(df: pl.DataFrame, by: list[str], levels: tuple[float, ...] = ()) -> pl.DataFrame:
    """The :mod:`kernels.accuracy` figures of each group of ``df`` (the project's one definition of them).

    ``df`` has ``y`` and ``p50``; with ``scale`` the MASE, with ``p10``/``p90`` the coverage, with ``levels``
    (their quantile columns present) the pinball loss.
    """
    qcols = [f"p{int(round(q * 100)):02d}" for q in levels]
    rows = []
    for key, g in df.group_by(by):
        y, f = g["y"].to_numpy(), g["p50"].to_numpy()
        r: dict[str, Any] = dict(zip(by, key, strict=True))
        r.update(n=g.height, mae=kernels.mae(y, f), wape=kernels.wape(y, f), bias=kernels.bias(y, f))
        if "scale" in g.columns:
            s_u = g["scale"].fill_null(0.0).to_numpy()
            ok = s_u > 0
            r["mase"] = kernels.mae(y[ok] / s_u[ok], f[ok] / s_u[ok]) if ok.any() else None
        if "p10" in g.columns and "p90" in g.columns:
            r["coverage_p10_p90"] = kernels.coverage(y, g["p10"].to_numpy(), g["p90"].to_numpy())
        if levels:
            r["pinball"] = kernels.pinball(y, g.select(qcols).to_numpy(), np.asarray(levels))
        rows.append(r)
    return pl.DataFrame(rows).fill_nan(None) if rows else pl.DataFrame(schema={c: pl.String for c in by})


def accuracy_table(pairs: pl.LazyFrame, scales: pl.LazyFrame, levels: tuple[float, ...]) -> pl.DataFrame:
    """MAE, WAPE, bias, MASE, P10..P90 coverage and pinball per model version, level and horizon bucket."""
    base = pairs.with_columns(_bucket(pl.col("horizon")).alias("horizon_bucket"))
    group = ["model_version", "horizon_bucket"]
    out = []
    for level in LEVELS:
        keys = _LEVEL_KEYS[level]
        if level == "bottom":
            frame = base.join(scales, on=_KEY, how="left", nulls_equal=True).collect()
            res = _figures(frame, group, levels)
        else:
            summed = base.group_by(["run_id", *group, "date", "horizon", *keys]).agg(
                pl.col("p50").sum(), pl.col("y").sum()
            )
            res = _figures(summed.collect(), group)
        out.append(res.with_columns(pl.lit(level).alias("level")))
    cols = ["model_version", "level", "horizon_bucket", "n", "mae", "wape", "bias", "mase",
            "coverage_p10_p90", "pinball"]
    res = pl.concat(out, how="diagonal_relaxed")
    for c in cols:
        if c not in res.columns:
            res = res.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    return res.select(cols).sort(["model_version", "level", "horizon_bucket"])


def accuracy_over_time(pairs: pl.LazyFrame) -> pl.DataFrame:
    """Bottom-level WAPE, bias and P10..P90 coverage per model version and target period."""
    names = pairs.collect_schema().names()
    cols = ["model_version", "date", "y", "p50", *(c for c in ("p10", "p90") if c in names)]
    res = _figures(pairs.select(cols).collect(), ["model_version", "date"])
    if "coverage_p10_p90" in res.columns:
        res = res.rename({"coverage_p10_p90": "coverage"})
    return res.sort(["model_version", "date"])


def inventory_health(
    inventory: pl.LazyFrame,
    sales: pl.LazyFrame,
    *,
    rate_days: int = 28,
    excess_days: float = 90.0,
    units: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Stockouts, lost-sales estimate, excess and days of cover from snapshots (see the module docstring).

    Args:
        inventory: ``sku_id, location_id, date, on_hand`` snapshots.
        sales: ``sku_id, location_id, date, qty``.
        rate_days: days of recent sales giving each unit's demand rate.
        excess_days: stock above this many days of demand is excess.
        units: :func:`workflow._monitoring_groups.unit_health` when already computed.
    """
    u = units if units is not None else groups.unit_health(
        inventory, sales, rate_days=rate_days, excess_days=excess_days
    )
    return u.select(
        pl.col("snapshots").sum(),
        pl.col("stockouts").sum().alias("stockout_snapshots"),
        (pl.col("stockouts").sum() / pl.col("snapshots").sum()).alias("stockout_rate"),
        pl.col("lost").sum().alias("lost_sales_units"),
        pl.len().alias("units"),
        pl.col("excess").sum().alias("excess_units"),
        (pl.col("excess") > 0).mean().alias("excess_unit_share"),
        pl.col("days_of_cover").median().alias("days_of_cover_median"),
        pl.col("days_of_cover").quantile(0.9, "nearest").alias("days_of_cover_p90"),
        (pl.col("days_of_cover") < 7).mean().alias("under_7_days_share"),
    ).row(0, named=True)


def adoption(session: Session, tenant_id: str) -> dict[str, Any]:
    """Acceptance rate, hours to decision (median, p90) and override rate of human decisions."""
    from workflow.telemetry import override_stats

    R = Recommendation
    rows = session.execute(
        select(R.state, R.created_at, R.decided_at).where(
            R.tenant_id == tenant_id,
            R.decided_by.is_not(None),
            ~R.decided_by.like("policy:%"),
            ~R.decided_by.like("system:%"),
        )
    ).all()
    if not rows:
        return {"human_decisions": 0, **override_stats(session, tenant_id)}
    df = pl.DataFrame(
        {
            "state": [r[0] for r in rows],
            "hours": [(r[2] - r[1]).total_seconds() / 3600 if r[1] and r[2] else None for r in rows],
        },
        schema={"state": pl.String, "hours": pl.Float64},
    )
    accepted = df.filter(pl.col("state") != "rejected").height
    return {
        **override_stats(session, tenant_id),
        "acceptance_rate": accepted / df.height,
        "hours_to_decision_median": df["hours"].median(),
        "hours_to_decision_p90": df["hours"].quantile(0.9, "nearest"),
    }


def override_fva(session: Session, tenant_id: str, sales: pl.LazyFrame, p50: pl.LazyFrame) -> dict[str, Any]:
    """Forecast value added of overrides whose window has passed (see the module docstring).

    Args:
        session: open session.
        tenant_id: the tenant.
        sales: ``sku_id, location_id, date, qty``.
        p50: the newest bottom forecast per unit and target date: ``sku_id, location_id, date, p50``.

    Returns:
        ``overrides_evaluated``, ``fva`` (None when none could be evaluated), ``mae_proposed``, ``mae_final``
        and ``fva_by_reason`` (rows ``reason, n, mae_proposed, mae_final, fva``, most overrides first).
    """
    R = Recommendation
    rows = session.execute(
        select(
            R.id, R.sku_id, R.location_id, R.created_at, R.need_by, R.quantity, R.final_quantity,
            R.override_reason_code,
        ).where(
            R.tenant_id == tenant_id,
            R.override_reason_code.is_not(None),
            R.final_quantity.is_not(None),
            R.need_by.is_not(None),
        )
    ).all()
    empty: dict[str, Any] = {"overrides_evaluated": 0, "fva": None, "mae_proposed": None, "mae_final": None}
    empty["fva_by_reason"] = []
    if not rows:
        return empty
    as_of = _plan_dates(session, tenant_id, [r[0] for r in rows])
    rows = [(r[0], r[1], r[2], as_of.get(r[0]) or r[3].date(), *r[4:]) for r in rows]
    last = sales.select(pl.col("date").max()).collect().item()
    if last is None:
        return empty
    recs = pl.DataFrame(
        [(r[0], r[1], r[2], r[3], r[4], float(r[5]), float(r[6]), r[7]) for r in rows],
        schema={
            "id": pl.String,
            "sku_id": pl.String,
            "location_id": pl.String,
            "start": pl.Date,
            "end": pl.Date,
            "proposed": pl.Float64,
            "final": pl.Float64,
            "reason": pl.String,
        },
        orient="row",
    ).filter(pl.col("end") <= last)
    if recs.is_empty():
        return empty
    loc = ["sku_id", "location_id"]

    def window_sum(frame: pl.LazyFrame, col: str, name: str) -> pl.LazyFrame:
        return (
            recs.lazy()
            .join(frame.select([*loc, "date", col]), on=loc, how="left")
            .filter(pl.col("date").is_between(pl.col("start"), pl.col("end")))
            .group_by("id")
            .agg(pl.col(col).sum().alias(name))
        )

    res = (
        recs.lazy()
        .join(window_sum(sales, "qty", "actual"), on="id", how="left")
        .join(window_sum(p50, "p50", "forecast"), on="id", how="left")
        .with_columns(pl.col("actual").fill_null(0.0), pl.col("forecast").fill_null(0.0))
        .with_columns((pl.col("proposed") + pl.col("actual") - pl.col("forecast")).clip(0).alias("right"))
        .collect()
    )
    (total,) = groups.fva_table(res, [])
    return {
        "overrides_evaluated": total["n"],
        "fva": total["fva"],
        "mae_proposed": total["mae_proposed"],
        "mae_final": total["mae_final"],
        "fva_by_reason": groups.fva_table(res, ["reason"]),
    }


def _plan_dates(session: Session, tenant_id: str, rec_ids: list[str]) -> dict[str, date]:
    """The planning date (``as_of`` of the plan run) of each recommendation, from its proposal evidence.

    A recommendation's demand window starts on the date its plan planned from, which is the data's date, not
    the wall clock's (a plan over last year's files proposes today what it needed then).
    """
    from workflow._models import Evidence as E
    from workflow._models import RecommendationEvidence as L

    out: dict[str, date] = {}
    for rid, body in session.execute(
        select(L.recommendation_id, E.body)
        .join(E, (E.tenant_id == L.tenant_id) & (E.sha256 == L.evidence_sha256))
        .where(L.tenant_id == tenant_id, L.recommendation_id.in_(rec_ids), L.kind == "proposal")
    ):
        raw = ((body or {}).get("assumptions") or {}).get("as_of")
        try:
            out.setdefault(rid, date.fromisoformat(str(raw)[:10]))
        except ValueError:  # no plan date ("None"): the window starts when it was proposed
            continue
    return out


def _exception_stats(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """Counts of the tenant's exceptions per type and state, with the age of the oldest active one (hours)."""
    e = ExceptionRecord.__table__
    rows = session.execute(
        select(e.c.exception_type, e.c.state, func.count(), func.min(e.c.opened_at))
        .where(e.c.tenant_id == tenant_id)
        .group_by(e.c.exception_type, e.c.state)
        .order_by(e.c.exception_type, e.c.state)
    ).all()
    now = utcnow()
    out = []
    for kind, state, count, oldest in rows:
        age = None
        if state in ACTIVE_STATES and oldest is not None:
            oldest = oldest if oldest.tzinfo is not None else oldest.replace(tzinfo=now.tzinfo)
            age = round((now - oldest).total_seconds() / 3600.0, 3)
        out.append({"type": kind, "state": state, "count": int(count), "max_age_hours": age})
    return out


def _load(tenant: str, facts_dir: Path | None):
    from features.facts import scan_facts
    from features.forecasts import forecast_runs

    sales = scan_facts(
        "sales", tenant, columns=["sku_id", "location_id", "channel_id", "date", "qty"], facts_dir=facts_dir
    )
    inventory = scan_facts(
        "inventory", tenant, columns=["sku_id", "location_id", "date", "on_hand"], facts_dir=facts_dir
    )
    # one stage per run id: the reconciled run when there is one (what planning used), else the base run
    metas = {}
    for m in sorted(forecast_runs(tenant, facts_dir=facts_dir), key=lambda m: m.stage != "reconciled"):
        metas.setdefault(m.run_id, m)
    return sales, inventory, list(metas.values())


def _has_rows(lf: pl.LazyFrame) -> bool:
    try:
        return lf.select(pl.len()).collect().item() > 0
    except (pl.exceptions.ComputeError, FileNotFoundError, OSError):
        return False


def _accuracy(sales: pl.LazyFrame, metas: list, tenant: str, facts_dir: Path | None):
    """Accuracy tables, over-time table, the newest p50 per unit and date, and the pairs counted."""
    from features.forecasts import read_forecasts

    tables, times, newest, n_pairs = [], [], [], 0
    for freq in sorted({m.freq for m in metas}):
        ms = [m for m in metas if m.freq == freq]
        levels = tuple(sorted(set.intersection(*(set(m.levels) for m in ms))))
        if 0.5 not in levels:
            continue
        fc = pl.concat(
            [
                read_forecasts(tenant, m.stage, m.run_id, level="bottom", facts_dir=facts_dir).with_columns(
                    pl.lit(rank).alias("rank")
                )
                for rank, m in enumerate(ms)  # newest first
            ],
            how="diagonal_relaxed",
        ).lazy()
        actuals = actuals_on_grid(sales, freq).collect().lazy()  # once: the join and the scales share it
        pairs = forecast_pairs(fc, actuals).collect()
        n_pairs += pairs.height
        tables.append(accuracy_table(pairs.lazy(), scales(actuals), levels))
        times.append(accuracy_over_time(pairs.lazy()))
        newest.append(
            fc.sort("rank")
            .group_by([*_KEY, "date"])
            .agg(pl.col("p50").first())
            .group_by(["sku_id", "location_id", "date"])
            .agg(pl.col("p50").sum())
        )
    if not tables:
        return None, None, None, 0
    p50 = pl.concat(newest) if len(newest) > 1 else newest[0]
    return pl.concat(tables), pl.concat(times), p50, n_pairs


def _points(res: MonitoringResult, version_order: list[str]) -> list[dict[str, Any]]:
    """The figures of a run as telemetry rows (labels from bounded sets: newest model versions only)."""
    pts: list[dict[str, Any]] = []

    def add(metric, labels, value, n=0, period=None):
        if value is not None and value == value:  # not None, not NaN
            pts.append(
                {"metric": metric, "labels": labels, "value": float(value), "n": int(n), "period": period}
            )

    # group figures first: a Prometheus scrape reads the newest rows first, so they are the first left out
    for args in groups.extra_points(res.inventory_groups, res.adoption.get("fva_by_reason") or []):
        add(*args)
    keep = set(version_order[:MAX_MODEL_VERSIONS])
    if res.accuracy is not None:
        for r in res.accuracy.filter(pl.col("model_version").is_in(list(keep))).iter_rows(named=True):
            labels = {
                "model_version": r["model_version"],
                "level": r["level"],
                "horizon": r["horizon_bucket"],
            }
            for m in ("mae", "wape", "bias", "mase", "coverage_p10_p90", "pinball"):
                add(f"forecast_{m}", labels, r[m], r["n"])
    if res.over_time is not None:
        for r in res.over_time.filter(pl.col("model_version").is_in(list(keep))).iter_rows(named=True):
            for m in ("wape", "bias", "coverage"):
                add(
                    f"forecast_{m}_by_period",
                    {"model_version": r["model_version"]},
                    r.get(m),
                    r["n"],
                    r["date"].isoformat(),
                )
    for k, v in res.inventory.items():
        if k not in ("snapshots", "units"):
            add(f"inventory_{k}", {"source": "snapshots"}, v, res.inventory.get("units", 0))
    for k, v in res.adoption.items():
        if k in ("overrides", "human_decisions", "overrides_evaluated", "mae_proposed", "mae_final",
                 "fva_by_reason"):
            continue
        add("override_fva" if k == "fva" else f"adoption_{k}", {}, v, res.adoption.get("human_decisions", 0))
    for e in res.exceptions:
        labels = {"type": str(e.get("type")), "state": str(e.get("state"))}
        add("exceptions_count", labels, e.get("count"))
        add("exceptions_age_hours_max", labels, e.get("max_age_hours"))
    add("monitoring_pairs", {}, res.counts.get("pairs", 0), res.counts.get("pairs", 0))
    return pts


def run_monitoring(
    engine: Engine,
    tenant: str,
    *,
    facts_dir: Path | str | None = None,
    rate_days: int = 28,
    excess_days: float = 90.0,
) -> MonitoringResult:
    """Measure ``tenant`` from its stores and record the figures as telemetry points of one run.

    The run's figures are stored with its ``run_id`` in one transaction, with a ``monitoring.completed``
    event (topic ``monitoring``) carrying the counts. A tenant without forecasts, sales or snapshots gets the
    figures it has data for.

    Returns:
        The run: its id, counts and every table and figure.
    """
    from workflow.events import publish
    from workflow.telemetry import supplier_performance

    fdir = Path(facts_dir) if facts_dir is not None else None
    res = MonitoringResult(f"mon-{uuid.uuid4().hex[:16]}", tenant)
    sales, inventory, metas = _load(tenant, fdir)
    has_sales = _has_rows(sales)
    p50 = units = None
    if has_sales and metas:
        res.accuracy, res.over_time, p50, res.counts["pairs"] = _accuracy(sales, metas, tenant, fdir)
    if has_sales and _has_rows(inventory):
        units = groups.unit_health(inventory, sales, rate_days=rate_days, excess_days=excess_days)
        res.inventory = inventory_health(inventory, sales, units=units)
    versions = list(dict.fromkeys((m.model_version or "baseline") for m in metas))
    with session_scope(engine) as s:
        if units is not None:
            lookups = groups.store_lookups(s, tenant)
            res.inventory.update(groups.excess_value(units, lookups["costs"]))
            res.inventory_groups = groups.group_health(units, lookups)
        res.adoption = adoption(s, tenant)
        if p50 is not None:
            res.adoption.update(override_fva(s, tenant, sales, p50))
        res.suppliers = supplier_performance(s, tenant)
        res.exceptions = _exception_stats(s, tenant)
        res.counts.update(
            forecast_runs=len(metas),
            model_versions=len(versions),
            units_with_snapshots=res.inventory.get("units", 0),
            suppliers=len(res.suppliers),
        )
        pts = _points(res, versions)
        res.counts["figures"] = len(pts)
        now = utcnow()
        if pts:
            from workflow._models import TelemetryPoint

            s.execute(
                TelemetryPoint.__table__.insert(),
                [{**p, "tenant_id": tenant, "at": now, "run_id": res.run_id} for p in pts],
            )
        publish(
            s, tenant, "monitoring", "monitoring.completed", res.run_id, {"run_id": res.run_id, **res.counts}
        )
    return res


def monitoring_runs(session: Session, tenant_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """The tenant's monitoring runs, newest first: ``run_id``, ``at``, ``figures``."""
    from workflow._models import TelemetryPoint as T

    rows = session.execute(
        select(T.run_id, func.max(T.at), func.count())
        .where(T.tenant_id == tenant_id, T.run_id.is_not(None))
        .group_by(T.run_id)
        .order_by(func.max(T.at).desc())
        .limit(limit)
    ).all()
    return [{"run_id": r[0], "at": r[1], "figures": int(r[2])} for r in rows]


def run_points(session: Session, tenant_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every figure of one monitoring run (the newest when ``run_id`` is None), for the pages."""
    from workflow._models import TelemetryPoint as T

    if run_id is None:
        runs = monitoring_runs(session, tenant_id, limit=1)
        if not runs:
            return []
        run_id = runs[0]["run_id"]
    rows = session.execute(
        select(T.metric, T.labels, T.value, T.n, T.period).where(T.tenant_id == tenant_id, T.run_id == run_id)
    ).all()
    return [{"metric": r[0], "labels": r[1], "value": r[2], "n": r[3], "period": r[4]} for r in rows]
