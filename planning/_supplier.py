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

__all__ = ["SUPPLIER_EXCEPTION_TYPES", "choose_supplier", "draft_purchase_orders", "response_exceptions"]

#: Exception types a supplier's response raises: less confirmed than ordered, a date past the need-by date,
#: the order refused.
SUPPLIER_EXCEPTION_TYPES = ("short_shipment", "late_po", "supplier_rejected")

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


def response_exceptions(lines: pl.DataFrame, tolerance: float = 0.02) -> pl.DataFrame:
    """Exceptions raised by suppliers' responses to purchase-order lines.

    * ``supplier_rejected`` (high): the supplier refused the order (``status == "rejected"``);
    * ``short_shipment``: the confirmed (or received) quantity is short of the ordered one by more than
      ``tolerance`` (relative); high when more than 20% is missing;
    * ``late_po``: the confirmed (or receipt) date is after the date the order was needed by; value in days.

    Args:
        lines: one row per responded line: po_id, supplier_id, sku_id, location_id, status, ordered_qty,
            confirmed_qty (null: not stated), need_by and confirmed_date (dates, nullable).
        tolerance: relative shortfall tolerated.

    Returns:
        Rows of :data:`planning._exceptions.EXCEPTION_SCHEMA` (empty when every line is fine).
    """
    from planning._exceptions import EXCEPTION_SCHEMA

    need = {"po_id", "supplier_id", "sku_id", "location_id", "status", "ordered_qty", "confirmed_qty"}
    need |= {"need_by", "confirmed_date"}
    missing = need - set(lines.columns)
    if missing:
        raise ValueError(f"response lines: missing column(s) {sorted(missing)}")
    base = lines.with_columns(
        pl.col("ordered_qty").cast(pl.Float64),
        pl.col("confirmed_qty").cast(pl.Float64),
        pl.col("need_by").cast(pl.Date),
        pl.col("confirmed_date").cast(pl.Date),
    )
    short = 1.0 - pl.col("confirmed_qty") / pl.col("ordered_qty")
    late_days = (pl.col("confirmed_date") - pl.col("need_by")).dt.total_days().cast(pl.Float64)
    parts = [
        base.filter(pl.col("status") == "rejected").with_columns(
            pl.lit("supplier_rejected").alias("exception_type"),
            pl.lit("high").alias("severity"),
            pl.col("ordered_qty").alias("value"),
            pl.lit(0.0).alias("threshold"),
            pl.format(
                "PO {} refused by supplier {}: 0 of {} confirmed", "po_id", "supplier_id", "ordered_qty"
            ).alias("message"),
        ),
        base.filter(
            (pl.col("status") != "rejected")
            & pl.col("confirmed_qty").is_not_null()
            & (pl.col("ordered_qty") > 0)
            & (short > tolerance)
        ).with_columns(
            pl.lit("short_shipment").alias("exception_type"),
            pl.when(short > 0.2).then(pl.lit("high")).otherwise(pl.lit("medium")).alias("severity"),
            short.alias("value"),
            pl.lit(tolerance).alias("threshold"),
            pl.format(
                "PO {} {}: {} of {} ordered from supplier {}",
                "po_id",
                "status",
                "confirmed_qty",
                "ordered_qty",
                "supplier_id",
            ).alias("message"),
        ),
        base.filter((pl.col("status") != "rejected") & (late_days > 0)).with_columns(
            pl.lit("late_po").alias("exception_type"),
            pl.when(late_days > 7).then(pl.lit("high")).otherwise(pl.lit("medium")).alias("severity"),
            late_days.alias("value"),
            pl.lit(0.0).alias("threshold"),
            pl.format(
                "PO {} {} for {}, needed by {} ({} days late)",
                "po_id",
                "status",
                "confirmed_date",
                "need_by",
                late_days.cast(pl.Int64),
            ).alias("message"),
        ),
    ]
    out = [
        p.with_columns(pl.lit(False).alias("customer_impacting")).select(
            [pl.col(c).cast(t) for c, t in EXCEPTION_SCHEMA.items()]
        )
        for p in parts
    ]
    return pl.concat(out)
