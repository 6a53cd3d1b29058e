"""Transfers within a region: excess at one location, a stockout before the next delivery at another.

A *donor* holds on-hand stock above its own order-up-to level (``excess = on_hand - S``, which it can give
without lowering its own protection). A *receiver* is short before its next delivery: ``shortfall`` units (the
demand quantile used for risk minus what it has). Within each (SKU, region), donors sorted by excess and
receivers by shortfall are matched by intersecting their cumulative intervals (the north-west-corner rule, one
vectorised join, no per-unit loop). A pair becomes a proposal only when moving the stock is cheaper per unit
than the alternative (expediting or a new order at the receiver), and the quantity is a whole number of packs.
"""

from __future__ import annotations

import polars as pl

__all__ = ["POSITION_COLUMNS", "propose_transfers"]

#: Columns of the positions frame :func:`propose_transfers` reads.
POSITION_COLUMNS = (
    "sku_id",
    "location_id",
    "region",
    "on_hand",
    "order_up_to",
    "shortfall",
    "transfer_cost_per_unit",
    "alternative_cost_per_unit",
)


def propose_transfers(positions: pl.DataFrame, pack_size: int = 1) -> pl.DataFrame:
    """Propose transfers from excess to short locations in the same region when cheaper than the alternative.

    Args:
        positions: one row per (sku_id, location_id) with ``region``, ``on_hand``, ``order_up_to``,
            ``shortfall`` (units short before the next delivery, >= 0), ``transfer_cost_per_unit`` (moving one
            unit into this location) and ``alternative_cost_per_unit`` (expedite / extra order cost per unit
            at this location).
        pack_size: transfers move whole multiples of this.

    Returns:
        One row per proposal: sku_id, region, from_location_id, to_location_id, transfer_qty,
        transfer_cost, alternative_cost, saving, receiver_shortfall, donor_excess.
    """
    missing = set(POSITION_COLUMNS) - set(positions.columns)
    if missing:
        raise ValueError(f"transfer positions: missing column(s) {sorted(missing)}")
    if pack_size < 1:
        raise ValueError(f"pack_size={pack_size}: expected >= 1")
    key = ["sku_id", "region"]
    pos = positions.filter(pl.col("region").is_not_null())
    donors = (
        pos.with_columns((pl.col("on_hand") - pl.col("order_up_to")).alias("excess"))
        .filter(pl.col("excess") >= pack_size)
        .with_columns((pl.col("excess") / pack_size).floor() * pack_size)
        .sort([*key, "excess", "location_id"], descending=[False, False, True, False])
        .with_columns(pl.col("excess").cum_sum().over(key).alias("d_hi"))
        .with_columns((pl.col("d_hi") - pl.col("excess")).alias("d_lo"))
        .select(*key, pl.col("location_id").alias("from_location_id"), "excess", "d_lo", "d_hi")
    )
    receivers = (
        pos.filter(pl.col("shortfall") > 0)
        .sort([*key, "shortfall", "location_id"], descending=[False, False, True, False])
        .with_columns(pl.col("shortfall").cum_sum().over(key).alias("r_hi"))
        .with_columns((pl.col("r_hi") - pl.col("shortfall")).alias("r_lo"))
        .select(
            *key,
            pl.col("location_id").alias("to_location_id"),
            "shortfall",
            "r_lo",
            "r_hi",
            "transfer_cost_per_unit",
            "alternative_cost_per_unit",
        )
    )
    pairs = donors.join(receivers, on=key, how="inner")
    pairs = pairs.with_columns(
        (pl.min_horizontal("d_hi", "r_hi") - pl.max_horizontal("d_lo", "r_lo")).alias("overlap")
    )
    pairs = pairs.filter(pl.col("overlap") > 0)
    # Whole packs, rounded down so that a donor never gives more than its excess across its receivers.
    pairs = pairs.with_columns(((pl.col("overlap") / pack_size).floor() * pack_size).alias("transfer_qty"))
    out = (
        pairs.filter(
            (pl.col("transfer_qty") > 0)
            & (pl.col("transfer_cost_per_unit") < pl.col("alternative_cost_per_unit"))
        )
        .with_columns(
            (pl.col("transfer_qty") * pl.col("transfer_cost_per_unit")).alias("transfer_cost"),
            (pl.col("transfer_qty") * pl.col("alternative_cost_per_unit")).alias("alternative_cost"),
        )
        .with_columns((pl.col("alternative_cost") - pl.col("transfer_cost")).alias("saving"))
        .select(
            "sku_id",
            "region",
            "from_location_id",
            "to_location_id",
            "transfer_qty",
            "transfer_cost",
            "alternative_cost",
            "saving",
            pl.col("shortfall").alias("receiver_shortfall"),
            pl.col("excess").alias("donor_excess"),
        )
        .sort("sku_id", "region", "from_location_id", "to_location_id")
    )
    return out
