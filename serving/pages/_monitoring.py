"""The monitoring page (``/ui/monitoring``): the newest monitoring run of the tenant, drawn.

Accuracy over time by model version (WAPE and P10-P90 coverage per target period), accuracy by hierarchy
level and horizon, planner adoption and the forecast value added of overrides, inventory health, suppliers
and exceptions. The figures are those :func:`workflow.monitoring.run_monitoring` stored (the scheduler's
``monitoring`` job, or ``POST /v1/telemetry/monitoring``); nothing is computed while the page renders.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from serving.api.deps import SessionDep
from serving.pages import _plots
from serving.pages._views import PagePrincipal, page, router
from workflow.monitoring import HORIZON_BUCKETS

__all__ = ["monitoring"]

_ACCURACY = ("wape", "bias", "mae", "mase", "coverage_p10_p90", "pinball")


def _over_time(points: list[dict[str, Any]], metric: str) -> dict[str, tuple[list, list]]:
    series: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for p in sorted((p for p in points if p["metric"] == metric), key=lambda p: p["period"] or ""):
        x, v = series[p["labels"].get("model_version", "?")]
        x.append(date.fromisoformat(p["period"]))
        v.append(p["value"])
    return dict(series)


def _accuracy_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[tuple, dict[str, Any]] = {}
    order = {"bottom": 0, "sku": 1, "location": 2, "total": 3}
    for p in points:
        name = p["metric"].removeprefix("forecast_")
        if not p["metric"].startswith("forecast_") or name not in _ACCURACY:
            continue
        lab = p["labels"]
        key = (lab.get("model_version"), lab.get("level"), lab.get("horizon"))
        rows.setdefault(key, {"model_version": key[0], "level": key[1], "horizon": key[2], "n": p["n"]})[
            name
        ] = p["value"]
    buckets = {label: i for i, (_, label) in enumerate(HORIZON_BUCKETS)}
    return sorted(
        rows.values(),
        key=lambda r: (str(r["model_version"]), order.get(r["level"], 9), buckets.get(r["horizon"], 99)),
    )


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring(request: Request, p: PagePrincipal, session: SessionDep):
    """Accuracy over time by model version, coverage, FVA and inventory health (the newest monitoring run)."""
    from workflow.monitoring import monitoring_runs, run_points
    from workflow.telemetry import supplier_performance

    runs = monitoring_runs(session, p.tenant_id, limit=1)
    points = run_points(session, p.tenant_id, runs[0]["run_id"]) if runs else []
    wape = _over_time(points, "forecast_wape_by_period")
    cover = _over_time(points, "forecast_coverage_by_period")
    flat = {p_["metric"]: p_["value"] for p_ in points if not p_["labels"] or "source" in p_["labels"]}
    return page(
        request,
        "monitoring.html",
        p=p,
        run=runs[0] if runs else None,
        wape_chart=_plots.lines_over_time(wape, "WAPE", "WAPE by target period and model version")
        if wape
        else None,
        coverage_chart=_plots.lines_over_time(cover, "P10-P90 coverage", "Interval coverage", reference=0.8)
        if cover
        else None,
        accuracy=_accuracy_rows(points),
        adoption={k: v for k, v in flat.items() if k.startswith("adoption_") or k == "override_fva"},
        inventory={k.removeprefix("inventory_"): v for k, v in flat.items() if k.startswith("inventory_")},
        exceptions=[p_ for p_ in points if p_["metric"].startswith("exceptions_")],
        suppliers=supplier_performance(session, p.tenant_id),
    )
