"""Replenishment policy kinds of the planning units (``planning_units.policy_kind``) and the orders they give.

* ``periodic_review`` and ``continuous_review``: at the review the order lifts the inventory position to the
  simulated order-up-to level ``S`` (continuous review is planned as a review every ``review_periods``,
  the unit's review period, like periodic review);
* ``min_max``: the levels come from the same simulation: max = ``S``, min (the reorder point) =
  ``S - E[demand over one review]``, the position that still covers the lead-time demand with the same
  protection. An order is placed only when the position has fallen to or below min, and then brings it up to
  max; between min and max nothing is ordered;
* ``manual``: planners order by hand; no automatic order is proposed, but the risks (stockout, overstock) are
  still computed and reported as exceptions.

Where a stocking point's channels name different kinds, the most restrictive holds (manual, then min_max,
then continuous_review, then periodic_review).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from planning._rounding import round_order_quantity

__all__ = [
    "DEFAULT_KIND",
    "MANUAL",
    "MIN_MAX",
    "POLICY_KINDS",
    "kind_codes",
    "policy_levels",
    "policy_orders",
    "reorder_point",
]

#: Policy kinds, least restrictive first (a stocking point takes the largest of its channels').
POLICY_KINDS = ("periodic_review", "continuous_review", "min_max", "manual")
DEFAULT_KIND = "periodic_review"
MIN_MAX = POLICY_KINDS.index("min_max")
MANUAL = POLICY_KINDS.index("manual")


def kind_codes(units: pl.DataFrame) -> np.ndarray:
    """(N,) int8 index into :data:`POLICY_KINDS` of each unit's ``policy_kind`` (periodic when absent).

    Raises:
        ValueError: an unknown kind, naming the row and the kinds allowed.
    """
    if "policy_kind" not in units.columns:
        return np.zeros(units.height, dtype=np.int8)
    kinds = units["policy_kind"].fill_null(DEFAULT_KIND).cast(pl.String)
    bad = ~kinds.is_in(list(POLICY_KINDS))
    if bad.any():
        i = int(bad.arg_true()[0])
        raise ValueError(
            f"planning units row {i}: policy_kind={kinds[i]!r}, expected one of {list(POLICY_KINDS)}"
        )
    return kinds.replace_strict(
        list(POLICY_KINDS), list(range(len(POLICY_KINDS))), return_dtype=pl.Int8
    ).to_numpy()


def reorder_point(order_up_to: np.ndarray, mean_review_demand: np.ndarray) -> np.ndarray:
    """The min of a min/max unit: ``max(S - E[review demand], 0)``."""
    return np.maximum(np.asarray(order_up_to) - np.asarray(mean_review_demand), 0.0)


def policy_orders(
    code: np.ndarray,
    order_up_to: np.ndarray,
    mean_review_demand: np.ndarray,
    position: np.ndarray,
    pack: np.ndarray,
    moq: np.ndarray,
    max_qty: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw and rounded order quantities of each unit under its policy kind.

    Args:
        code: (N,) :func:`kind_codes`.
        order_up_to: (N,) simulated order-up-to levels ``S`` (the max of a min/max unit).
        mean_review_demand: (N,) mean demand over one review period.
        position: (N,) inventory positions.
        pack: (N,) pack sizes.
        moq: (N,) minimum order quantities.
        max_qty: (N,) maximum order quantities (``inf``: none).

    Returns:
        ``(raw, q, bound)``: the quantity lifting the position to ``S`` (what a periodic unit would order; a
        min/max unit above its min and a manual unit keep it as information), the rounded order (0 for a
        manual unit and for a min/max unit above its min), and the binding-term code
        (:data:`planning._rounding.BOUND_NAMES`).
    """
    raw = order_up_to - position
    triggered = (code != MANUAL) & (
        (code != MIN_MAX) | (position <= reorder_point(order_up_to, mean_review_demand))
    )
    q, bound = round_order_quantity(np.where(triggered, raw, 0.0), pack, moq, max_qty)
    return raw, q, bound


def policy_levels(unit_frame: pl.DataFrame) -> pl.DataFrame:
    """Add ``policy_kind`` (filled), ``reorder_point`` (min of min/max units, else null) and ``max_level``."""
    kind = (
        pl.col("policy_kind").fill_null(DEFAULT_KIND)
        if "policy_kind" in unit_frame.columns
        else pl.lit(DEFAULT_KIND)
    )
    is_min_max = kind == "min_max"
    return unit_frame.with_columns(
        kind.alias("policy_kind"),
        pl.when(is_min_max)
        .then((pl.col("order_up_to") - pl.col("mean_review_demand")).clip(lower_bound=0.0))
        .otherwise(None)
        .alias("reorder_point"),
        pl.when(is_min_max).then(pl.col("order_up_to")).otherwise(None).alias("max_level"),
    )
