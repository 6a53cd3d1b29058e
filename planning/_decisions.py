"""A plan's decisions from its planned units: recommendations, exceptions, routes and PO drafts.

The last stage of :func:`planning._plan.plan`: purchases (units with an order), allocations where a supplier
confirmed less than asked (:mod:`planning._supply`, on the engine's paths), transfers between a region's
locations (:mod:`planning._transfers`), each with its evidence (:func:`planning._evidence.with_evidence`);
stock-out and overstock exceptions with the run's extra ones, each with its owner team; everything routed by
the rules (:mod:`planning._routing`); purchase-order drafts from the purchase lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from kernels import policy_samples
from planning._evidence import with_evidence
from planning._exceptions import EXCEPTION_SCHEMA, dedup_exceptions, overstock, stockout_risk
from planning._routing import RuleSet, apply_rules
from planning._supplier import draft_purchase_orders
from planning._supply import allocate_constrained_supply
from planning._transfers import POSITION_COLUMNS, propose_transfers

if TYPE_CHECKING:
    pass

__all__ = ["decisions"]


def decisions(
    unit_frame, supply_inputs, d_l_risk, forecast, config, rules, confirmed_supply, extra_exceptions
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Recommendations (purchases, supply allocations, transfers), exceptions, routes and PO drafts."""
    purchases = with_evidence(unit_frame.filter(pl.col("order_qty") > 0), forecast, config, "purchase")
    recs = [purchases]
    if confirmed_supply is not None and confirmed_supply.height:
        recs.append(_constrained(unit_frame, confirmed_supply, forecast, *supply_inputs, config))
    if "region" in unit_frame.columns:
        recs.append(_transfers(unit_frame, d_l_risk, forecast, config))
    recommendations = (
        pl.concat([r for r in recs if r.height], how="diagonal_relaxed")
        if any(r.height for r in recs)
        else purchases
    )
    exc = [
        stockout_risk(unit_frame, config.stockout_threshold),
        overstock(unit_frame, config.overstock_cover_periods),
    ]
    if extra_exceptions is not None and extra_exceptions.height:
        exc.append(extra_exceptions.select(list(EXCEPTION_SCHEMA)))
    exceptions = _with_owner(
        dedup_exceptions(pl.concat(exc)).with_columns(pl.col("exception_type").alias("kind")), unit_frame
    )
    recommendations, exceptions = _route_items(recommendations, rules), _route_items(exceptions, rules)
    po_lines = recommendations.filter(pl.col("kind") == "purchase")
    po_drafts = (
        draft_purchase_orders(po_lines)
        if po_lines.height
        else draft_purchase_orders(po_lines.with_columns(pl.col("expected_arrival").cast(pl.Date)))
    )
    return recommendations, exceptions, po_drafts


def _with_owner(exceptions: pl.DataFrame, unit_frame: pl.DataFrame) -> pl.DataFrame:
    """Exceptions with the ``owner_team`` of their stocking point (null where they name none)."""
    if "owner_team" not in unit_frame.columns:
        return exceptions.with_columns(pl.lit(None, dtype=pl.String).alias("owner_team"))
    owners = unit_frame.select("sku_id", "location_id", pl.col("owner_team").cast(pl.String)).unique(
        ["sku_id", "location_id"], keep="first", maintain_order=True
    )
    return exceptions.join(owners, on=["sku_id", "location_id"], how="left", maintain_order="left")


def _route_items(items: pl.DataFrame, rules: RuleSet | None) -> pl.DataFrame:
    """Route by ``rules``; without rules every item is auto-approved by the built-in default."""
    if rules is not None:
        return apply_rules(items, rules)
    return items.with_columns(
        pl.lit("auto_approve").alias("action"),
        pl.lit(None, pl.String).alias("route_queue"),
        pl.lit(None, pl.String).alias("route_role"),
        pl.lit("default").alias("rule"),
        pl.lit("no routing rules given: auto-approved by policy").alias("reason"),
    )


def _constrained(unit_frame, confirmed, forecast, pmf, counts, review, unit_ids, config):
    """Allocation recommendations for SKUs whose supplier confirmed less than the plan asks.

    ``unit_ids`` (N,): the units' rows in the whole run, the keys of their paths (a partition draws the
    paths one call over all units draws).
    """
    ids = unit_frame.with_row_index("_i").filter(
        (pl.col("order_qty") > 0) & pl.col("sku_id").is_in(confirmed["sku_id"].implode())
    )
    if not ids.height:
        return pl.DataFrame()
    idx = ids["_i"].to_numpy().astype(np.int64)
    smp = policy_samples(
        forecast.demand().rows(idx),
        pmf[idx],
        review[idx],
        config.n_paths,
        config.seed,
        unit_ids=unit_ids[idx],
        crossing=config.crossing,
        lead_time_counts=None if counts is None else counts[idx],
    )
    req = ids.select(
        "sku_id",
        "location_id",
        pl.col("order_qty").alias("requested_qty"),
        pl.col("customer_committed").alias("committed_qty"),
        pl.col("inventory_position").alias("position"),
        "pack_size",
    )
    alloc = allocate_constrained_supply(req, confirmed, smp)
    rec = ids.drop("_i").with_columns(
        alloc["allocated_qty"].alias("allocated_qty"),
        alloc["constrained"].alias("constrained"),
        pl.col("order_qty").alias("requested_qty"),
    )
    rec = rec.with_columns(
        pl.col("allocated_qty").alias("order_qty"),
        (pl.col("allocated_qty") * pl.col("unit_cost")).alias("order_value"),
        pl.lit("supply").alias("bound_by"),
    )
    return with_evidence(rec, forecast, config, "allocation")


def _transfers(unit_frame, d_l_risk, forecast, config):
    """Transfer recommendations between locations of a region (see :mod:`planning._transfers`)."""
    pos = unit_frame.with_columns(
        pl.Series(
            "shortfall", np.maximum(np.ceil(d_l_risk - unit_frame["inventory_position"].to_numpy()), 0.0)
        ),
        (pl.col("unit_cost") * config.transfer_cost_rate).alias("transfer_cost_per_unit"),
        (pl.col("unit_cost") * config.expedite_premium).alias("alternative_cost_per_unit"),
    )
    t = propose_transfers(pos.select(POSITION_COLUMNS))
    if not t.height:
        return pl.DataFrame()
    # Evidence of a transfer: the receiver's simulation and inventory, plus the donor and the cost comparison.
    receiver = unit_frame.drop("order_qty", "order_value", "region", "bound_by")
    rec = t.join(
        receiver, left_on=["sku_id", "to_location_id"], right_on=["sku_id", "location_id"], how="left"
    )
    if "policy_kind" in rec.columns:  # a manual unit gets no automatic action, transfers included
        rec = rec.filter(pl.col("policy_kind") != "manual")
    rec = rec.with_columns(
        pl.col("to_location_id").alias("location_id"),
        pl.col("transfer_qty").alias("order_qty"),
        pl.col("transfer_cost").alias("order_value"),
        pl.lit("transfer").alias("bound_by"),
        pl.lit(None, dtype=pl.String).alias("supplier_id"),
    )
    return with_evidence(rec, forecast, config, "transfer")
