"""Inventory health per unit and per group, excess value, and forecast value added per reason code.

Pieces of the monitoring job (:func:`workflow.monitoring.run_monitoring`), kept apart from it:

* :func:`unit_health`: one row per SKU x location from inventory snapshots and sales: demand rate (mean daily
  sales over the last ``rate_days`` days of sales), latest on hand, days of cover, excess (on hand above
  ``excess_days`` of demand), snapshots, stockout snapshots (nothing on hand with demand), lost-sales
  estimate (the rate times the days to the next snapshot, one day for the last) and the units sold between
  the unit's first and last snapshot. :func:`workflow.monitoring.inventory_health` sums it tenant-wide.
* :func:`excess_value`: excess units times unit cost, the cheapest of the SKU's supplier terms
  (:class:`features.store.SupplierTerm`); excess units of SKUs without a supplier term are counted apart
  (``excess_units_without_cost``) and not valued.
* :func:`group_health`: the same figures per location and per SKU category (when SKUs carry one), with the
  measured fill rate ``sold / (sold + lost)`` against the fill target (the mean of the group's planning units'
  ``service_target``, the highest over channels per SKU x location). At most :data:`MAX_GROUPS` groups of
  each kind are kept, those with the highest stock value (on hand x unit cost), then excess units: the group
  label is bounded (``group_kind`` x ``group``).
* :func:`fva_table`: FVA ``1 - MAE(final) / MAE(proposed)`` of evaluated overrides, overall or per group
  (per override reason code in the monitoring job).
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from features.store import Base, Sku, SupplierTerm

__all__ = [
    "GROUP_FIGURES",
    "MAX_GROUPS",
    "MAX_REASONS",
    "excess_value",
    "extra_points",
    "fva_table",
    "group_health",
    "store_lookups",
    "unit_health",
]

#: Most groups of each kind stored per monitoring run (highest stock value first).
MAX_GROUPS = 50
#: Most override reason codes stored per monitoring run (most overrides first).
MAX_REASONS = 30
#: Figures stored per group (metric ``inventory_group_<figure>``).
GROUP_FIGURES = (
    "units",
    "days_of_cover_median",
    "excess_units",
    "excess_value",
    "excess_units_without_cost",
    "stockout_rate",
    "lost_sales_units",
    "fill_rate",
    "fill_target",
    "stock_value",
)
_LOC = ["sku_id", "location_id"]


def unit_health(
    inventory: pl.LazyFrame, sales: pl.LazyFrame, *, rate_days: int = 28, excess_days: float = 90.0
) -> pl.DataFrame:
    """Per SKU x location: ``rate, on_hand, days_of_cover, excess, snapshots, stockouts, lost, sold``.

    Args:
        inventory: ``sku_id, location_id, date, on_hand`` snapshots.
        sales: ``sku_id, location_id, date, qty``.
        rate_days: days of recent sales giving each unit's demand rate.
        excess_days: stock above this many days of demand is excess.
    """
    last_day = sales.select(pl.col("date").max().alias("last"))
    rate = (
        sales.join(last_day, how="cross")
        .filter(pl.col("date") > pl.col("last") - pl.duration(days=rate_days))
        .group_by(_LOC)
        .agg((pl.col("qty").sum() / rate_days).alias("rate"))
    )
    snaps = (
        inventory.select([*_LOC, "date", "on_hand"])
        .sort([*_LOC, "date"])
        .with_columns(
            (pl.col("date").shift(-1).over(_LOC) - pl.col("date")).dt.total_days().fill_null(1).alias("gap")
        )
        .join(rate, on=_LOC, how="left")
        .with_columns(pl.col("rate").fill_null(0.0))
        .with_columns(((pl.col("on_hand") <= 0) & (pl.col("rate") > 0)).alias("out"))
    )
    per_unit = snaps.group_by(_LOC).agg(
        pl.col("rate").first(),
        pl.col("on_hand").sort_by("date").last(),
        pl.len().alias("snapshots"),
        pl.col("out").sum().alias("stockouts"),
        (pl.col("rate") * pl.col("gap")).filter(pl.col("out")).sum().alias("lost"),
        pl.col("date").min().alias("first"),
        pl.col("date").max().alias("latest"),
    )
    sold = (
        sales.join(per_unit.select([*_LOC, "first", "latest"]), on=_LOC, how="inner")
        .filter(pl.col("date").is_between(pl.col("first"), pl.col("latest")))
        .group_by(_LOC)
        .agg(pl.col("qty").sum().alias("sold"))
    )
    return (
        per_unit.join(sold, on=_LOC, how="left")
        .with_columns(
            pl.col("sold").fill_null(0.0),
            pl.when(pl.col("rate") > 0)
            .then(pl.col("on_hand").clip(0) / pl.col("rate"))
            .alias("days_of_cover"),
            (pl.col("on_hand").clip(0) - excess_days * pl.col("rate")).clip(0).alias("excess"),
        )
        .drop("first", "latest")
        .sort(_LOC)
        .collect()
    )


def store_lookups(session: Session, tenant_id: str) -> dict[str, pl.DataFrame]:
    """The tenant's ``costs`` (cheapest unit cost per SKU), SKU ``categories`` and unit ``targets``."""
    T, S = SupplierTerm, Sku
    P = Base.metadata.tables["planning_units"].c  # the store's planning units (service target per unit)
    costs = session.execute(
        select(T.sku_id, func.min(T.unit_cost)).where(T.tenant_id == tenant_id).group_by(T.sku_id)
    ).all()
    cats = session.execute(
        select(S.sku_id, S.category).where(S.tenant_id == tenant_id, S.category.is_not(None))
    ).all()
    targets = session.execute(
        select(P.sku_id, P.location_id, func.max(P.service_target))
        .where(P.tenant_id == tenant_id)
        .group_by(P.sku_id, P.location_id)
    ).all()
    return {
        "costs": pl.DataFrame(costs, schema={"sku_id": pl.String, "unit_cost": pl.Float64}, orient="row"),
        "categories": pl.DataFrame(cats, schema={"sku_id": pl.String, "category": pl.String}, orient="row"),
        "targets": pl.DataFrame(
            targets,
            schema={"sku_id": pl.String, "location_id": pl.String, "service_target": pl.Float64},
            orient="row",
        ),
    }


def _valued(units: pl.DataFrame, costs: pl.DataFrame) -> pl.DataFrame:
    return units.join(costs, on="sku_id", how="left").with_columns(
        (pl.col("excess") * pl.col("unit_cost")).alias("excess_value"),
        (pl.col("on_hand").clip(0) * pl.col("unit_cost")).alias("stock_value"),
    )


def excess_value(units: pl.DataFrame, costs: pl.DataFrame) -> dict[str, float]:
    """Tenant-wide ``excess_value`` (valued at unit cost) and ``excess_units_without_cost`` (not valued)."""
    v = _valued(units, costs)
    return {
        "excess_value": float(v["excess_value"].fill_null(0.0).sum()),
        "excess_units_without_cost": float(v.filter(pl.col("unit_cost").is_null())["excess"].sum()),
    }


def group_health(
    units: pl.DataFrame, lookups: dict[str, pl.DataFrame], *, max_groups: int = MAX_GROUPS
) -> list[dict[str, Any]]:
    """Inventory health per location and per SKU category (see the module docstring).

    Args:
        units: :func:`unit_health`.
        lookups: :func:`store_lookups` (``costs``, ``categories``, ``targets``).
        max_groups: most groups kept per kind.

    Returns:
        Rows ``group_kind`` (``location``, ``category``), ``group`` and :data:`GROUP_FIGURES`; SKUs without a
        category are in ``(none)``; no category rows when no SKU has a category.
    """
    v = (
        _valued(units, lookups["costs"])
        .join(lookups["categories"], on="sku_id", how="left")
        .join(lookups["targets"], on=_LOC, how="left")
        .with_columns(pl.col("category").fill_null("(none)"))
    )
    kinds = [("location", "location_id")]
    if not lookups["categories"].is_empty():
        kinds.append(("category", "category"))
    out: list[dict[str, Any]] = []
    for kind, col in kinds:
        g = (
            v.group_by(col)
            .agg(
                pl.len().alias("units"),
                pl.col("days_of_cover").median().alias("days_of_cover_median"),
                pl.col("excess").sum().alias("excess_units"),
                pl.col("excess_value").fill_null(0.0).sum().alias("excess_value"),
                pl.col("excess")
                .filter(pl.col("unit_cost").is_null())
                .sum()
                .alias("excess_units_without_cost"),
                (pl.col("stockouts").sum() / pl.col("snapshots").sum()).alias("stockout_rate"),
                pl.col("lost").sum().alias("lost_sales_units"),
                pl.col("sold").sum().alias("_sold"),
                pl.col("service_target").mean().alias("fill_target"),
                pl.col("stock_value").fill_null(0.0).sum().alias("stock_value"),
            )
            .with_columns(
                pl.when(pl.col("_sold") + pl.col("lost_sales_units") > 0)
                .then(pl.col("_sold") / (pl.col("_sold") + pl.col("lost_sales_units")))
                .alias("fill_rate")
            )
            .sort(["stock_value", "excess_units", col], descending=[True, True, False])
            .head(max_groups)
        )
        for r in g.iter_rows(named=True):
            out.append({"group_kind": kind, "group": str(r[col]), **{k: r[k] for k in GROUP_FIGURES}})
    return out


def fva_table(frame: pl.DataFrame, by: list[str]) -> list[dict[str, Any]]:
    """FVA of overrides: ``n, mae_proposed, mae_final, fva`` per group of ``by`` (one row when empty).

    ``frame`` has ``proposed``, ``final`` and ``right`` (the quantity right in hindsight) per override.
    """
    aggs = [
        pl.len().alias("n"),
        (pl.col("proposed") - pl.col("right")).abs().mean().alias("mae_proposed"),
        (pl.col("final") - pl.col("right")).abs().mean().alias("mae_final"),
    ]
    res = (
        frame.group_by(by).agg(aggs).sort(["n", *by], descending=[True] + [False] * len(by))
        if by
        else (frame.select(aggs))
    )
    rows = []
    for r in res.iter_rows(named=True):
        r["fva"] = 1.0 - r["mae_final"] / r["mae_proposed"] if r["mae_proposed"] else None
        rows.append(r)
    return rows


def extra_points(groups: list[dict[str, Any]], by_reason: list[dict[str, Any]]) -> list[tuple]:
    """``(metric, labels, value, n)`` of the group figures and of FVA per reason code (bounded labels)."""
    pts: list[tuple] = []
    for g in groups:
        labels = {"group_kind": g["group_kind"], "group": g["group"]}
        for k in GROUP_FIGURES:
            pts.append((f"inventory_group_{k}", labels, g[k], g["units"]))
    for r in by_reason[:MAX_REASONS]:
        pts.append(("override_fva_by_reason", {"reason": str(r["reason"])}, r["fva"], r["n"]))
    return pts
