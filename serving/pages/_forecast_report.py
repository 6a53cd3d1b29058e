"""The forecast quality page (``/ui/forecast-quality``): the per-level report of the tenant's champion.

What training measured on the holdout when it built the champion version's served selection
(``training.served.gate_version``, stored with the version as ``levels.json``): per level of the hierarchy
(total, each key column, the series), MAE, WAPE, MASE, mean pinball loss and P10..P90 coverage of the
served forecast, the TFT and every statistical model; after reconciliation (bottom-up sums of the unit
forecasts) and before it (the statistical models fitted on each aggregate's own history). The served
forecast is compared with each model as a ratio of the chosen metric (below 1: the served one is better).
Nothing is computed while the page renders beyond reading the stored report.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from serving.api.deps import EngineDep
from serving.pages import _plots
from serving.pages._views import PagePrincipal, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: The report's figures, in the table's order, with their column titles.
METRICS = {"mae": "MAE", "wape": "WAPE", "mase": "MASE", "pinball": "pinball",
           "coverage_p10_p90": "P10-P90 coverage"}
#: Where a smaller figure is better (coverage is read against its nominal 0.8 instead).
_SMALLER = ("mae", "wape", "mase", "pinball")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _rows(part: dict[str, dict], levels: list[str], metric: str, served: dict | None) -> list[dict[str, Any]]:
    """One row per level and model: the figures and ``vs_served`` = served / model on ``metric``."""
    out = []
    for lvl in levels:
        for model, per in part.items():
            figs = per.get(lvl)
            if figs is None:
                continue
            row = {"level": lvl, "model": model, **{k: _num(figs.get(k)) for k in METRICS}}
            ref = _num(((served or {}).get(lvl) or {}).get(metric))
            own = row.get(metric)
            row["vs_served"] = ref / own if ref is not None and own else None
            out.append(row)
    return out


@router.get("/forecast-quality", response_class=HTMLResponse)
def forecast_quality(request: Request, p: PagePrincipal, engine: EngineDep, metric: str = "wape"):
    """Per-level accuracy of the champion's served forecast against the TFT and each statistical model."""
    from training.level_report import champion_level_report

    if metric not in METRICS:
        return page(request, "forecast_report.html", 422, p=p, doc=None, metrics=METRICS, metric="wape",
                    error=f"metric={metric!r}: expected one of {', '.join(METRICS)}")
    doc = champion_level_report(p.tenant_id, engine=engine)
    if doc is None:
        return page(request, "forecast_report.html", p=p, doc=None, metrics=METRICS, metric=metric,
                    error=None)
    rep = doc["report"]
    levels = list(rep.get("levels", []))
    after, before = rep.get("after", {}), rep.get("before", {})
    served = after.get("served")
    rows_after = _rows(after, levels, metric, served)
    chart_rows = [r for r in rows_after if r[metric] is not None]
    chart = None
    if chart_rows:
        chart = _plots.accuracy_bars([f"{r['level']} / {r['model']}" for r in chart_rows],
                                     [r[metric] for r in chart_rows],
                                     f"{METRICS[metric]} (holdout, after reconciliation)")
    return page(request, "forecast_report.html", p=p, doc=doc, metrics=METRICS, metric=metric, error=None,
                after=rows_after, before=_rows(before, levels, metric, served), chart=chart,
                smaller_is_better=metric in _SMALLER)
