"""Constrained supply: a supplier confirms less than was asked; split the confirmed quantity across locations.

Customer commitments come first: each location gets its committed quantity (pro rata to the commitments, in
whole packs, when even those exceed the confirmed quantity). What is left goes one pack at a time to the
location where the pack adds the most expected units served over the protection interval, ``E[min(D_LR, y)]``
(the same greedy as budgets, :func:`kernels.allocate_increments`, with the confirmed quantity as
the budget), i.e. to the highest stockout risk first. No location gets more than it asked for.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kernels import Constraint, ProtectionSamples, allocate_increments, expected_served

__all__ = ["allocate_constrained_supply"]


def allocate_constrained_supply(
    requests: pl.DataFrame, confirmed: pl.DataFrame, samples: ProtectionSamples
) -> pl.DataFrame:
    """Allocate confirmed supply per SKU across the locations that asked for it.

    Args:
        requests: one row per (sku_id, location_id) in the order of ``samples``' rows, with ``requested_qty``,
            ``committed_qty`` (customer commitments, >= 0), ``position`` (inventory position before the order)
            and ``pack_size`` (>= 1). Requested quantities are whole packs.
        confirmed: one row per sku_id with ``confirmed_qty`` (>= 0); SKUs not listed are confirmed in full.
        samples: (N, P) protection-interval demand samples of the request rows.

    Returns:
        ``requests`` with ``allocated_qty``, ``constrained`` (the location got less than asked) and
        ``commitment_covered`` (allocated >= committed) added, in the same row order.
    """
    need = {"sku_id", "location_id", "requested_qty", "committed_qty", "position", "pack_size"}
    missing = need - set(requests.columns)
    if missing:
        raise ValueError(f"supply requests: missing column(s) {sorted(missing)}")
    n = requests.height
    if samples.d_lr.shape[0] != n:
        raise ValueError(f"samples: {samples.d_lr.shape[0]} rows, expected one per request ({n})")
    req = (
        requests.with_row_index("_row")
        .join(confirmed.select("sku_id", "confirmed_qty"), on="sku_id", how="left")
        .sort("_row")
    )
    req = req.with_columns(pl.col("confirmed_qty").fill_null(pl.col("requested_qty").sum().over("sku_id")))
    bad = req.filter(
        (pl.col("confirmed_qty") < 0) | (pl.col("pack_size") < 1) | (pl.col("committed_qty") < 0)
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise ValueError(
            f"supply row {r['_row']} (sku {r['sku_id']}, location {r['location_id']}): confirmed_qty, "
            "committed_qty must be >= 0 and pack_size >= 1"
        )
    pack = req["pack_size"].to_numpy().astype(np.float64)
    asked = req["requested_qty"].to_numpy().astype(np.float64)
    committed = np.minimum(req["committed_qty"].to_numpy().astype(np.float64), asked)
    # Phase 1: commitments, pro rata within the SKU when they exceed the confirmed quantity, whole packs.
    req = req.with_columns(pl.Series("_commit", committed))
    share = (
        req.select(
            (pl.col("confirmed_qty") / pl.col("_commit").sum().over("sku_id"))
            .clip(upper_bound=1.0)
            .fill_nan(1.0)
            .fill_null(1.0)
        )
        .to_series()
        .to_numpy()
    )
    first = np.minimum(np.floor(committed * share / pack) * pack, asked)
    first = np.where(share >= 1.0, np.minimum(np.ceil(committed / pack) * pack, asked), first)
    sku_codes, sku_idx = np.unique(req["sku_id"].to_numpy().astype(str), return_inverse=True)
    confirmed_per_sku = np.zeros(len(sku_codes))
    confirmed_per_sku[sku_idx] = req["confirmed_qty"].to_numpy()
    used = np.bincount(sku_idx, weights=first, minlength=len(sku_codes))
    left = np.maximum(confirmed_per_sku - used, 0.0)
    # Phase 2: remaining packs by expected units served.
    n_inc = np.maximum(np.rint((asked - first) / pack), 0).astype(np.int64)
    unit_of = np.repeat(np.arange(n), n_inc)
    starts = np.cumsum(n_inc) - n_inc
    step = np.arange(unit_of.shape[0]) - np.repeat(starts, n_inc)
    base = req["position"].to_numpy().astype(np.float64) + first
    y_hi = base[unit_of] + (step + 1) * pack[unit_of]
    gain = expected_served(samples, unit_of, y_hi) - expected_served(samples, unit_of, y_hi - pack[unit_of])
    alloc = allocate_increments(
        unit_of, step, np.maximum(gain, 0.0), [Constraint("supply", pack[unit_of], sku_idx[unit_of], left)], n
    )
    allocated = first + alloc.taken * pack
    return requests.with_columns(
        pl.Series("allocated_qty", allocated),
        pl.Series("constrained", allocated < asked - 1e-9),
        pl.Series("commitment_covered", allocated >= committed - 1e-9),
    )
