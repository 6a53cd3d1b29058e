"""Supplier choice per SKU x location when several suppliers carry the SKU, and purchase-order drafts.

The chosen supplier minimises the *effective unit cost*

    c_eff = unit_cost * (1 + h * (mu_L + k * sigma_L))

where ``mu_L`` and ``sigma_L`` are the mean and standard deviation of the supplier's observed lead time in
periods, ``h`` the holding-cost rate per period and ``k`` a risk weight. The term in brackets prices the stock
tied up in the pipeline (``mu_L``) and the extra safety stock that lead-time spread forces (``k sigma_L``), so
a cheaper but slower or less reliable supplier only wins when the price difference pays for the extra stock.
Ties go to the shorter mean lead time, then to the supplier id (deterministic).
"""

from __future__ import annotations

import polars as pl

__all__ = ["choose_supplier", "draft_purchase_orders"]

_CANDIDATE_COLUMNS = {"sku_id", "supplier_id", "unit_cost", "lead_time_mean", "lead_time_std"}


def choose_supplier(
    candidates: pl.DataFrame, holding_rate: float = 0.005, risk_weight: float = 1.65
) -> pl.DataFrame:
    """Pick one supplier per SKU (or SKU x location when a ``location_id`` column is given).

    Args:
        candidates: one row per (sku_id[, location_id], supplier_id) with ``unit_cost`` (> 0),
            ``lead_time_mean`` and ``lead_time_std`` (periods, >= 0) and any further term columns (moq,
            pack_size, max_order_qty), which are carried through.
        holding_rate: holding cost per currency unit and period, >= 0.
        risk_weight: ``k``, weight of the lead-time standard deviation, >= 0.

    Returns:
        The chosen row per key with added ``effective_unit_cost``, ``n_candidates`` and ``runner_up_id`` (the
        next best supplier, null when there was one candidate).

    Raises:
        ValueError: a column is missing or a cost/lead time is out of range, naming the first bad row.
    """
    missing = _CANDIDATE_COLUMNS - set(candidates.columns)
    if missing:
        raise ValueError(f"supplier candidates: missing column(s) {sorted(missing)}")
    for col, lo in (("unit_cost", 0.0), ("lead_time_mean", 0.0), ("lead_time_std", 0.0)):
        bad = candidates.with_row_index("_row").filter(
            pl.col(col).is_null() | (pl.col(col) < lo) | ((pl.col(col) == 0) & (col == "unit_cost"))
        )
        if bad.height:
            row = bad.row(0, named=True)
            raise ValueError(
                f"supplier candidates row {row['_row']}: {col}={row[col]!r}, expected a number "
                f"{'> 0' if col == 'unit_cost' else '>= 0'}"
            )
    key = ["sku_id", "location_id"] if "location_id" in candidates.columns else ["sku_id"]
    scored = candidates.with_columns(
        (
            pl.col("unit_cost")
            * (1.0 + holding_rate * (pl.col("lead_time_mean") + risk_weight * pl.col("lead_time_std")))
        ).alias("effective_unit_cost")
    )
    ranked = scored.sort([*key, "effective_unit_cost", "lead_time_mean", "supplier_id"])
    ranked = ranked.with_columns(
        pl.int_range(pl.len()).over(key).alias("_rank"),
        pl.len().over(key).alias("n_candidates"),
        pl.col("supplier_id").shift(-1).over(key).alias("runner_up_id"),
    )
    return ranked.filter(pl.col("_rank") == 0).drop("_rank")


def draft_purchase_orders(lines: pl.DataFrame) -> pl.DataFrame:
    """Group recommended order lines into one purchase-order draft per supplier and location.

    Args:
        lines: one row per recommendation with ``supplier_id``, ``location_id``, ``sku_id``, ``order_qty``,
            ``order_value`` and ``expected_arrival`` (a date); rows with ``order_qty <= 0`` are ignored.

    Returns:
        One row per (supplier_id, location_id): ``draft_id`` (``"PO-<supplier>-<location>"``), ``n_lines``,
        ``total_qty``, ``total_value``, ``expected_arrival`` (the latest line arrival: the order is complete
        then) and ``lines`` (a list of {sku_id, order_qty, order_value} structs), sorted by supplier,
        location.
    """
    need = {"supplier_id", "location_id", "sku_id", "order_qty", "order_value", "expected_arrival"}
    missing = need - set(lines.columns)
    if missing:
        raise ValueError(f"order lines: missing column(s) {sorted(missing)}")
    buy = lines.filter(pl.col("order_qty") > 0)
    return (
        buy.group_by("supplier_id", "location_id")
        .agg(
            pl.len().alias("n_lines"),
            pl.col("order_qty").sum().alias("total_qty"),
            pl.col("order_value").sum().alias("total_value"),
            pl.col("expected_arrival").max().alias("expected_arrival"),
            pl.struct("sku_id", "order_qty", "order_value").sort_by("sku_id").alias("lines"),
        )
        .with_columns(pl.format("PO-{}-{}", "supplier_id", "location_id").alias("draft_id"))
        .sort("supplier_id", "location_id")
        .select(
            "draft_id",
            "supplier_id",
            "location_id",
            "n_lines",
            "total_qty",
            "total_value",
            "expected_arrival",
            "lines",
        )
    )
