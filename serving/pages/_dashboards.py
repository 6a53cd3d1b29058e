"""Planner dashboards under ``/ui/dashboards``: inventory health, forecast accuracy, planner adoption.

Plots (inline SVG with a title and a summary for screen readers, each followed by its figures as a table)
of what the monitoring job stored (:func:`workflow.monitoring.run_monitoring`: the newest run, and the last
runs over time), of the newest proposed plan run's evidence, and of the decisions recorded
(:mod:`workflow.dashboards`). Nothing is measured while a page renders. Any signed-in key of the tenant may
read them (viewer and up); each reads its own tenant only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from serving.api.deps import SessionDep
from serving.pages import _charts
from serving.pages._views import PagePrincipal, page

__all__ = ["router"]

router = APIRouter(prefix="/ui/dashboards", include_in_schema=False)

TABS = (
    ("inventory", "Inventory health"),
    ("accuracy", "Forecast accuracy"),
    ("adoption", "Planner adoption"),
)
RUN_HINT = "run the monitoring job: replenish monitoring run --tenant {tenant}"
_HORIZON_ORDER = ("1", "2-3", "4-6", "7-12", "13+")
_LEVEL_ORDER = ("bottom", "sku", "location", "total")


def _fmt(v: Any, kind: str = "num") -> str:
    if v is None:
        return "–"
    if kind == "pct":
        return f"{100 * float(v):.1f}%"
    if kind == "int":
        return f"{float(v):,.0f}"
    return f"{float(v):,.2f}"


def _section(
    sid: str, heading: str, svg: str, columns: list[str], rows: list[list[str]], note: str = ""
) -> dict:
    return {"id": sid, "heading": heading, "svg": svg, "columns": columns, "rows": rows, "note": note}


def _by_run(hist: list[dict[str, Any]], metrics: dict[str, str]) -> dict[str, tuple[list, list]]:
    """``label -> (run times, values)`` of the figures named in ``metrics`` (keys: metric names)."""
    out: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for p in hist:
        if p["metric"] in metrics:
            x, v = out[metrics[p["metric"]]]
            x.append(p["at"])
            v.append(p["value"])
    return dict(out)


def _time_table(series: dict[str, tuple[list, list]], kind: str) -> tuple[list[str], list[list[str]]]:
    """One row per time, one column per series (the chart's figures as a table)."""
    times = sorted({t for x, _ in series.values() for t in x})
    labels = sorted(series)
    cell = {(lab, t): v for lab, (x, vals) in series.items() for t, v in zip(x, vals, strict=True)}
    rows = [[str(t)[:16], *(_fmt(cell.get((lab, t)), kind) for lab in labels)] for t in times]
    return ["time", *labels], rows


def _tabbed(request: Request, p, tab: str, **ctx: Any) -> HTMLResponse:
    return page(request, "dashboard.html", p=p, tab=tab, tabs=TABS, title=dict(TABS)[tab], **ctx)


@router.get("", response_class=HTMLResponse)
def dashboards(p: PagePrincipal):
    """The dashboards' first tab."""
    return RedirectResponse("/ui/dashboards/inventory", status_code=303)


def _newest(session, tenant: str):
    from workflow.monitoring import monitoring_runs, run_points

    runs = monitoring_runs(session, tenant, limit=1)
    return (runs[0], run_points(session, tenant, runs[0]["run_id"])) if runs else (None, [])


def _service_sections(session, tenant: str) -> tuple[str | None, list[dict]]:
    from workflow.dashboards import service_by_group

    plan_run, out = None, []
    for by, label in (("location", "location"), ("category", "SKU category")):
        res = service_by_group(session, tenant, by)
        plan_run = res["plan_run"]
        groups = [
            g for g in res["groups"] if g["fill_target"] is not None or g["fill_with_order"] is not None
        ]
        if not groups or (by == "category" and all(g["group"] == "(none)" for g in groups)):
            continue
        names = [str(g["group"]) for g in groups]
        svg = _charts.grouped_bars(
            names,
            {
                "planned fill rate with the order": [g["fill_with_order"] for g in groups],
                "without the order": [g["fill_without_order"] for g in groups],
            },
            "fill rate (mean over the group's recommendations)",
            f"Service level vs target by {label} (plan run {plan_run})",
            targets=[g["fill_target"] for g in groups],
            target_label="fill target",
            percent=True,
        )
        rows = [
            [
                str(g["group"]),
                str(g["n"]),
                _fmt(g["fill_target"], "pct"),
                _fmt(g["fill_with_order"], "pct"),
                _fmt(g["fill_without_order"], "pct"),
                _fmt(g["stockout_probability"], "pct"),
                _fmt(g["value"], "int"),
            ]
            for g in groups
        ]
        cols = [
            label,
            "recommendations",
            "target",
            "with order",
            "without order",
            "stockout prob.",
            "order value",
        ]
        note = "Planned by the newest proposed plan run's simulation; without the order: if it is not placed."
        out.append(_section(f"service-{by}", f"Service level vs target by {label}", svg, cols, rows, note))
    return plan_run, out


_GROUP_KINDS = (("location", "location"), ("category", "SKU category"))
_GROUP_COLS = (
    ("units", "int", "units"),
    ("fill_rate", "pct", "fill rate"),
    ("fill_target", "pct", "target"),
    ("stockout_rate", "pct", "stockout rate"),
    ("lost_sales_units", "int", "lost sales (units)"),
    ("days_of_cover_median", "num", "days of cover (median)"),
    ("excess_units", "int", "excess (units)"),
    ("excess_value", "int", "excess value"),
    ("excess_units_without_cost", "int", "excess units without cost"),
)


def _measured_group_sections(points: list[dict[str, Any]]) -> list[dict]:
    """Measured inventory health per location and SKU category (the newest run's ``inventory_group_*``)."""
    cells: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for q in points:
        if q["metric"].startswith("inventory_group_"):
            key = (str(q["labels"].get("group_kind")), str(q["labels"].get("group")))
            cells[key][q["metric"].removeprefix("inventory_group_")] = q["value"]
    out = []
    for kind, label in _GROUP_KINDS:
        gs = [(g, f) for (k, g), f in cells.items() if k == kind]
        gs.sort(key=lambda x: -(x[1].get("stock_value") or 0.0))
        if not gs:
            continue
        names = [g for g, _ in gs]
        heading = f"Measured service level and excess by {label}"
        svg = _charts.grouped_bars(
            names,
            {"measured fill rate": [f.get("fill_rate") for _, f in gs]},
            "fill rate (sold / (sold + lost sales estimate))",
            heading,
            targets=[f.get("fill_target") for _, f in gs],
            target_label="fill target (planning units' service target)",
            percent=True,
        )
        rows = [[g, *(_fmt(f.get(k), kind) for k, kind, _ in _GROUP_COLS)] for g, f in gs]
        cols = [label, *(c for _, _, c in _GROUP_COLS)]
        note = (
            "Measured by the monitoring job from snapshots and sales; excess valued at the SKU's cheapest "
            "supplier unit cost (units without a supplier term are counted apart); at most 50 groups of each "
            "kind, highest stock value first."
        )
        out.append(_section(f"measured-{kind}", heading, svg, cols, rows, note))
    return out


@router.get("/inventory", response_class=HTMLResponse)
def inventory(request: Request, p: PagePrincipal, session: SessionDep):
    """Inventory health: cover, excess, stockouts and lost sales over runs; service vs target by group."""
    from workflow.dashboards import figure_history

    run, points = _newest(session, p.tenant_id)
    now = {
        q["metric"].removeprefix("inventory_"): q["value"]
        for q in points
        if q["metric"].startswith("inventory_") and not q["metric"].startswith("inventory_group_")
    }
    kpis = (
        [
            ("Days of cover (median)", _fmt(now.get("days_of_cover_median"))),
            ("Days of cover (P90)", _fmt(now.get("days_of_cover_p90"))),
            ("Units under 7 days of cover", _fmt(now.get("under_7_days_share"), "pct")),
            ("Excess units", _fmt(now.get("excess_units"), "int")),
            ("Excess value (at unit cost)", _fmt(now.get("excess_value"), "int")),
            ("Excess units without a cost", _fmt(now.get("excess_units_without_cost"), "int")),
            ("Units with excess", _fmt(now.get("excess_unit_share"), "pct")),
            ("Stockout rate (snapshots)", _fmt(now.get("stockout_rate"), "pct")),
            ("Lost sales estimate (units)", _fmt(now.get("lost_sales_units"), "int")),
        ]
        if now
        else []
    )
    hist = [q for q in figure_history(session, p.tenant_id, ("inventory_",)) if not q["labels"].get("group")]
    sections = []
    for sid, heading, metrics, ylabel, kind in (
        (
            "stockouts",
            "Stockouts and short cover over time",
            {
                "inventory_stockout_rate": "stockout rate",
                "inventory_under_7_days_share": "units under 7 days of cover",
                "inventory_excess_unit_share": "units with excess",
            },
            "share of units / snapshots",
            "pct",
        ),
        (
            "cover",
            "Days of cover over time",
            {"inventory_days_of_cover_median": "median", "inventory_days_of_cover_p90": "P90"},
            "days of cover",
            "num",
        ),
        (
            "lost-excess",
            "Lost sales estimate and excess over time",
            {"inventory_lost_sales_units": "lost sales (units)", "inventory_excess_units": "excess (units)"},
            "units",
            "int",
        ),
    ):
        series = _by_run(hist, metrics)
        if series:
            svg = _charts.lines_over_time(
                series, ylabel, heading, xlabel="monitoring run", percent=kind == "pct"
            )
            cols, rows = _time_table(series, kind)
            sections.append(_section(sid, heading, svg, cols, rows))
    sections += _measured_group_sections(points)
    plan_run, service = _service_sections(session, p.tenant_id)
    sections += service
    return _tabbed(
        request,
        p,
        "inventory",
        run=run,
        plan_run=plan_run,
        kpis=kpis,
        sections=sections,
        hint=RUN_HINT.format(tenant=p.tenant_id),
        note="Excess: stock above 90 days of demand on the latest snapshot; lost sales: demand rate times "
        "the days a unit stood at zero (inventory snapshots, from the monitoring job).",
    )


_METRICS = {
    "wape": ("WAPE", "pct"),
    "mae": ("MAE (units)", "num"),
    "bias": ("bias (positive: over-forecast)", "pct"),
    "mase": ("MASE", "num"),
    "coverage_p10_p90": ("P10-P90 coverage (nominal 80%)", "pct"),
}


def _by_period(points: list[dict[str, Any]], metric: str) -> dict[str, tuple[list, list]]:
    series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for q in sorted((q for q in points if q["metric"] == metric and q["period"]), key=lambda q: q["period"]):
        x, v = series[str(q["labels"].get("model_version", "?"))]
        x.append(date.fromisoformat(q["period"][:10]))
        v.append(q["value"])
    return dict(series)


def _accuracy_choice(points, metric: str | None, horizon: str | None) -> tuple[str, str, list[str]]:
    from fastapi import HTTPException

    metric = metric or "wape"
    if metric not in _METRICS:
        raise HTTPException(422, detail=f"metric: expected one of {', '.join(_METRICS)}")
    horizons = sorted(
        {str(q["labels"].get("horizon")) for q in points if q["metric"] == f"forecast_{metric}"},
        key=lambda h: (_HORIZON_ORDER.index(h) if h in _HORIZON_ORDER else 99, h),
    )
    if horizon and horizons and horizon not in horizons:
        raise HTTPException(422, detail=f"horizon: expected one of {', '.join(horizons)}")
    return metric, horizon or (horizons[0] if horizons else ""), horizons


@router.get("/accuracy", response_class=HTMLResponse)
def accuracy(
    request: Request,
    p: PagePrincipal,
    session: SessionDep,
    metric: str | None = None,
    horizon: str | None = None,
):
    """Forecast accuracy and coverage over time by model version, and by hierarchy level."""
    from workflow.dashboards import figure_history

    run, points = _newest(session, p.tenant_id)
    metric, horizon, horizons = _accuracy_choice(points, metric, horizon)
    label, kind = _METRICS[metric]
    sections = []
    for sid, m, heading, ylabel, ref in (
        ("wape-period", "forecast_wape_by_period", "WAPE by target period and model version", "WAPE", None),
        (
            "coverage-period",
            "forecast_coverage_by_period",
            "P10-P90 coverage by target period",
            "coverage",
            0.8,
        ),
        (
            "bias-period",
            "forecast_bias_by_period",
            "Bias by target period (positive: over-forecast)",
            "bias",
            0.0,
        ),
    ):
        series = _by_period(points, m)
        if series:
            svg = _charts.lines_over_time(
                series,
                ylabel,
                heading,
                xlabel="target period",
                reference=ref,
                reference_label="nominal" if ref else "no bias",
                percent=True,
            )
            cols, rows = _time_table(series, "pct")
            sections.append(_section(sid, heading, svg, ["target period", *cols[1:]], rows))
    at_h = [
        q
        for q in points
        if q["metric"] == f"forecast_{metric}" and str(q["labels"].get("horizon")) == horizon
    ]
    levels = [lv for lv in _LEVEL_ORDER if any(q["labels"].get("level") == lv for q in at_h)]
    versions = sorted({str(q["labels"].get("model_version")) for q in at_h})
    if levels and versions:
        cell = {(str(q["labels"].get("model_version")), q["labels"].get("level")): q for q in at_h}
        heading = f"{label} by hierarchy level and model version, horizon {horizon}"
        svg = _charts.grouped_bars(
            levels,
            {
                f"model {v}": [cell[(v, lv)]["value"] if (v, lv) in cell else None for lv in levels]
                for v in versions
            },
            label,
            heading,
            percent=kind == "pct",
        )
        rows = [
            [lv, v, str(cell[(v, lv)]["n"]), _fmt(cell[(v, lv)]["value"], kind)]
            for lv in levels
            for v in versions
            if (v, lv) in cell
        ]
        sections.append(_section("by-level", heading, svg, ["level", "model version", "n", label], rows))
    hist = [
        q
        for q in figure_history(session, p.tenant_id, (f"forecast_{metric}",))
        if q["metric"] == f"forecast_{metric}" and str(q["labels"].get("horizon")) == horizon
    ]
    series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for q in hist:
        x, v = series[f"{q['labels'].get('model_version')} · {q['labels'].get('level')}"]
        x.append(q["at"])
        v.append(q["value"])
    if series:
        heading = f"{label} over monitoring runs by model version and level, horizon {horizon}"
        svg = _charts.lines_over_time(
            dict(series), label, heading, xlabel="monitoring run", percent=kind == "pct"
        )
        cols, rows = _time_table(dict(series), kind)
        sections.append(_section("over-runs", heading, svg, cols, rows))
    return _tabbed(
        request,
        p,
        "accuracy",
        run=run,
        kpis=[],
        sections=sections,
        hint=RUN_HINT.format(tenant=p.tenant_id),
        choose={
            "metric": metric,
            "metrics": {k: v[0] for k, v in _METRICS.items()},
            "horizon": horizon,
            "horizons": horizons,
        },
        note="Stored forecasts joined with the actuals that have arrived; levels above the bottom sum their "
        "members' P50s and actuals; coverage is bottom-level only.",
    )


def _weekly(days: list[dict[str, Any]]) -> dict[date, dict[str, float]]:
    """Decisions per ISO week (Monday): counts per outcome and the decisions-weighted mean hours."""
    weeks: dict[date, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for d in days:
        w = weeks[d["day"] - timedelta(days=d["day"].weekday())]
        w[d["state"]] += d["n"]
        w["_n"] += d["n"]
        if d["mean_hours"] is not None:
            w["_hours"] += d["mean_hours"] * d["n"]
            w["_nh"] += d["n"]
    return dict(sorted(weeks.items()))


def _weekly_sections(days: list[dict[str, Any]]) -> list[dict]:
    """Acceptance, override share and hours to decision per week, drawn and tabled."""
    sections: list[dict] = []
    weeks = _weekly(days)
    if weeks:
        xs = list(weeks)
        rate = {
            "acceptance rate": (xs, [(w["_n"] - w.get("rejected", 0)) / w["_n"] for w in weeks.values()]),
            "override share": (xs, [w.get("overridden", 0) / w["_n"] for w in weeks.values()]),
        }
        svg = _charts.lines_over_time(
            rate,
            "share of decisions",
            "Acceptance and overrides per week",
            xlabel="week starting",
            percent=True,
        )
        rows = [
            [
                str(k),
                *(f"{w.get(s, 0):,.0f}" for s in ("approved", "overridden", "rejected")),
                _fmt((w["_n"] - w.get("rejected", 0)) / w["_n"], "pct"),
                _fmt(w["_hours"] / w["_nh"] if w.get("_nh") else None),
            ]
            for k, w in weeks.items()
        ]
        cols = ["week starting", "approved", "overridden", "rejected", "acceptance", "mean hours to decision"]
        sections.append(
            _section(
                "weekly",
                "Acceptance and overrides per week",
                svg,
                cols,
                rows,
                "Human decisions only (not those a policy or the system took).",
            )
        )
        hours = {
            "mean hours to decision": (
                xs,
                [w["_hours"] / w["_nh"] if w.get("_nh") else float("nan") for w in weeks.values()],
            )
        }
        svg = _charts.lines_over_time(hours, "hours", "Time to decision per week", xlabel="week starting")
        cols, rows = _time_table(hours, "num")
        sections.append(
            _section("hours", "Time to decision per week", svg, ["week starting", *cols[1:]], rows)
        )
    return sections


@router.get("/adoption", response_class=HTMLResponse)
def adoption(request: Request, p: PagePrincipal, session: SessionDep):
    """Planner adoption: acceptance rate, time to decision, overrides by reason and their value added."""
    from workflow.dashboards import decisions_by_day, figure_history, overrides_by_reason

    run, points = _newest(session, p.tenant_id)
    now = {
        q["metric"]: q["value"]
        for q in points
        if q["metric"].startswith("adoption_") or q["metric"] == "override_fva"
    }
    kpis = (
        [
            ("Acceptance rate", _fmt(now.get("adoption_acceptance_rate"), "pct")),
            ("Hours to decision (median)", _fmt(now.get("adoption_hours_to_decision_median"))),
            ("Hours to decision (P90)", _fmt(now.get("adoption_hours_to_decision_p90"))),
            ("Override rate", _fmt(now.get("adoption_override_rate"), "pct")),
            ("Forecast value added of overrides", _fmt(now.get("override_fva"), "pct")),
        ]
        if now
        else []
    )
    sections = _weekly_sections(decisions_by_day(session, p.tenant_id))
    reasons = overrides_by_reason(session, p.tenant_id)
    if reasons:
        names = [r["reason"] for r in reasons]
        svg = _charts.grouped_bars(
            names,
            {"overrides": [r["n"] for r in reasons], "raised the quantity": [r["up"] for r in reasons]},
            "overrides",
            "Overrides by reason code",
        )
        rows = [
            [
                r["reason"],
                str(r["n"]),
                str(r["up"]),
                _fmt(r["proposed"], "int"),
                _fmt(r["final"], "int"),
                _fmt((r["final"] - r["proposed"]) / r["proposed"] if r["proposed"] else None, "pct"),
            ]
            for r in reasons
        ]
        cols = ["reason code", "overrides", "raised", "proposed (units)", "final (units)", "change"]
        sections.append(_section("reasons", "Overrides by reason code", svg, cols, rows))
    by_reason = sorted((q for q in points if q["metric"] == "override_fva_by_reason"), key=lambda q: -q["n"])
    if by_reason:
        names = [str(q["labels"].get("reason")) for q in by_reason]
        heading = "Forecast value added of overrides by reason code"
        svg = _charts.grouped_bars(
            names, {"FVA": [q["value"] for q in by_reason]}, "forecast value added", heading, percent=True
        )
        rows = [[n, str(q["n"]), _fmt(q["value"], "pct")] for n, q in zip(names, by_reason, strict=True)]
        note = "Overrides whose window has passed, newest monitoring run; positive: the overrides helped."
        cols = ["reason code", "evaluated", "FVA"]
        sections.append(_section("fva-reasons", heading, svg, cols, rows, note))
    fva = _by_run(
        figure_history(session, p.tenant_id, ("override_fva", "adoption_")),
        {
            "override_fva": "forecast value added",
            "adoption_acceptance_rate": "acceptance rate",
            "adoption_override_rate": "override rate",
        },
    )
    if fva:
        svg = _charts.lines_over_time(
            fva,
            "share",
            "Adoption and forecast value added over monitoring runs",
            xlabel="monitoring run",
            reference=0.0,
            reference_label="no value added",
            percent=True,
        )
        cols, rows = _time_table(fva, "pct")
        sections.append(
            _section(
                "fva",
                "Adoption and forecast value added over monitoring runs",
                svg,
                cols,
                rows,
                "FVA = 1 - MAE(final) / MAE(proposed) against the quantity right in hindsight, "
                "over overrides whose window has passed; positive: overrides helped.",
            )
        )
    return _tabbed(
        request,
        p,
        "adoption",
        run=run,
        kpis=kpis,
        sections=sections,
        hint=RUN_HINT.format(tenant=p.tenant_id),
        note="",
    )
