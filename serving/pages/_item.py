"""The item page ``/ui/items?sku_id=..&location_id=..``: one SKU x location, all a planner asks about it.

Sales history with the stored forecast runs over it (by model version, the newest run's P10..P90 band),
inventory snapshots, open purchase order lines and the orders sent to suppliers with their responses, the
unit's exceptions and its recommendations with their states and audit trail. Read-only, any role of the
tenant; an item the tenant does not know (another tenant's) answers 404. Each section reads what it needs
and no more: the facts filtered to the item in the scan, the SQL queries to the item, and at most
:data:`MAX_RUNS` forecast runs.
"""

from __future__ import annotations

from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from features.store import Base, Location, Sku
from serving.api.deps import EngineDep, SessionDep
from serving.pages import _plots
from serving.pages._links import item_link
from serving.pages._views import PagePrincipal, page

__all__ = ["MAX_RUNS", "router"]

router = APIRouter(prefix="/ui", include_in_schema=False)
#: Forecast runs drawn over the history (newest first); older ones are listed, not read.
MAX_RUNS = 10
#: Recommendations shown, newest first (their audit trail for the first :data:`AUDITED`).
MAX_DECISIONS = 50
AUDITED = 10
_ID = Annotated[str, Query(min_length=1, max_length=128)]


def _known(session, tenant: str, sku: str, loc: str) -> bool:
    """The tenant's master data names both, or the tenant has a recommendation for the pair."""
    from workflow import queue as wq

    if session.get(Sku, (tenant, sku)) is not None and session.get(Location, (tenant, loc)) is not None:
        return True
    _, n = wq.page(session, tenant, wq.QueueFilter(state=None, sku_id=sku, location_id=loc), limit=1)
    return n > 0


def _sales(tenant: str, sku: str, loc: str, facts_dir) -> pl.DataFrame:
    """Units sold per date (all channels), and the channels seen."""
    from features.facts import scan_facts

    lf = scan_facts(
        "sales", tenant, columns=["sku_id", "location_id", "channel_id", "date", "qty"], facts_dir=facts_dir
    )
    return lf.filter((pl.col("sku_id") == sku) & (pl.col("location_id") == loc)).collect()


def _forecasts(tenant: str, sku: str, loc: str, channels: list[str], facts_dir) -> tuple[list, list, list]:
    """``(runs listed, runs drawn as (label, version, dates, q), levels of the newest)``."""
    from features.forecasts import forecast_runs, read_forecasts

    metas = forecast_runs(tenant, facts_dir=facts_dir)
    units = [f"{sku}|{loc}|{c}" for c in channels]
    drawn, listed, levels = [], [], []
    for meta in metas:
        row: dict[str, Any] = {"meta": meta, "total_p50": None}
        listed.append(row)
        if len(drawn) >= MAX_RUNS or not units:
            continue
        cols = meta.quantile_columns
        try:
            f = read_forecasts(tenant, meta.stage, meta.run_id, units=units, facts_dir=facts_dir)
        except LookupError:  # removed between listing and reading
            continue
        if f.height == 0:
            continue
        g = f.group_by("date").agg([pl.col(c).sum() for c in cols]).sort("date")
        q = g.select(cols).to_numpy()
        if not levels:
            levels = list(meta.levels)
        mid = cols[len(cols) // 2]
        row["total_p50"] = float(g[mid].sum())
        label = f"{meta.stage} {meta.created_at[:10]}"
        drawn.append((label, meta.model_version or "baseline", g["date"].to_list(), q))
    return listed, drawn, levels


def _inventory(tenant: str, sku: str, loc: str, facts_dir) -> pl.DataFrame:
    from features.facts import scan_facts

    lf = scan_facts("inventory", tenant, facts_dir=facts_dir)
    return (
        lf.filter((pl.col("sku_id") == sku) & (pl.col("location_id") == loc))
        .select("date", "on_hand", "on_order", "backorders")
        .collect()
        .sort("date")
    )


def _po_lines(session, tenant: str, sku: str, loc: str) -> list[dict[str, Any]]:
    """Open purchase-order and transfer lines of the item from the systems of record, by ETA."""
    t = Base.metadata.tables["purchase_orders"]
    stmt = (
        select(
            t.c.po_id,
            t.c.kind,
            t.c.supplier_id,
            t.c.from_location_id,
            t.c.qty,
            t.c.order_date,
            t.c.eta,
            t.c.status,
        )
        .where(t.c.tenant_id == tenant, t.c.sku_id == sku, t.c.location_id == loc, t.c.status == "open")
        .order_by(t.c.eta, t.c.po_id)
        .limit(200)
    )
    return [dict(r) for r in session.execute(stmt).mappings()]


def _decisions(session, tenant: str, sku: str, loc: str) -> tuple[list, int, dict, dict]:
    """The unit's recommendations (newest first), how many in all, audit trails and supplier responses."""
    from workflow import queue as wq
    from workflow.audit import entries_of
    from workflow.supplier_responses import responses_of

    recs, total = wq.page(
        session,
        tenant,
        wq.QueueFilter(state=None, sku_id=sku, location_id=loc),
        sort="created",
        descending=True,
        limit=MAX_DECISIONS,
    )
    audits = entries_of(session, tenant, "recommendation", [r.id for r in recs[:AUDITED]])  # one query
    sent = [r.id for r in recs if r.kind == "purchase_order" and r.sent_at is not None]
    responses: dict[str, list] = {}
    for resp in responses_of(session, tenant, sent) if sent else []:
        responses.setdefault(resp.recommendation_id, []).append(resp)
    return recs, total, audits, responses


def _charts(
    sku: str, loc: str, sales: pl.DataFrame, drawn, levels, inv: pl.DataFrame
) -> dict[str, str | None]:
    by_date = sales.group_by("date").agg(pl.col("qty").sum()).sort("date") if sales.height else sales
    history_svg = None
    if sales.height or drawn:
        history_svg = _plots.item_history(
            by_date["date"].to_list() if sales.height else [],
            by_date["qty"].to_list() if sales.height else [],
            drawn,
            levels,
            title=f"sales and forecasts, {sku} at {loc}",
        )
    inv_svg = None
    if inv.height:
        inv_svg = _plots.inventory_history(
            inv["date"].to_list(),
            inv["on_hand"].to_list(),
            inv["on_order"].fill_null(0).to_list(),
            inv["backorders"].fill_null(0).to_list(),
            title=f"inventory snapshots, {sku} at {loc}",
        )
    return {"history_svg": history_svg, "inv_svg": inv_svg}


def _sales_summary(sales: pl.DataFrame) -> dict[str, Any] | None:
    if sales.height == 0:
        return None
    d = sales["date"]
    return {
        "first": d.min(),
        "last": d.max(),
        "periods": d.n_unique(),
        "total": float(sales["qty"].sum()),
        "channels": sorted(sales["channel_id"].unique().to_list()),
    }


@router.get("/items", response_class=HTMLResponse)
def item(
    request: Request,
    p: PagePrincipal,
    session: SessionDep,
    engine: EngineDep,
    sku_id: _ID,
    location_id: _ID,
):
    """One SKU x location: sales and forecasts, inventory, open orders, exceptions and decisions."""
    from workflow.exceptions import list_exceptions

    tenant = p.tenant_id
    if not _known(session, tenant, sku_id, location_id):
        raise HTTPException(404, detail=f"no item {sku_id!r} at {location_id!r} for this tenant")
    facts_dir = request.app.state.settings.facts_dir
    sales = _sales(tenant, sku_id, location_id, facts_dir)
    channels = sorted(sales["channel_id"].unique().to_list()) if sales.height else []
    listed, drawn, levels = _forecasts(tenant, sku_id, location_id, channels, facts_dir)
    inv = _inventory(tenant, sku_id, location_id, facts_dir)
    recs, total, audits, responses = _decisions(session, tenant, sku_id, location_id)
    latest_inv = inv.row(-1, named=True) if inv.height else None
    return page(
        request,
        "item.html",
        p=p,
        sku_id=sku_id,
        location_id=location_id,
        self_link=item_link(sku_id, location_id),
        sales=_sales_summary(sales),
        runs=listed,
        drawn=len(drawn),
        latest_inv=latest_inv,
        po_lines=_po_lines(session, tenant, sku_id, location_id),
        sent=[r for r in recs if r.kind == "purchase_order" and r.sent_at is not None],
        responses=responses,
        exceptions=list_exceptions(session, tenant, sku_id=sku_id, location_id=location_id, limit=50),
        recs=recs,
        total_recs=total,
        audits=audits,
        **_charts(sku_id, location_id, sales, drawn, levels, inv),
    )
