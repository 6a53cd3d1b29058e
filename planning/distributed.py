"""Planning over partitions of planning units: the same plan, computed piece by piece (on a Ray cluster).

:func:`plan_partitioned` has :func:`planning._plan.plan`'s signature plus a ``map_parts`` runner, so the plan
stage runs it in place of ``plan`` (``plan_stage(..., planner=...)``) without changing anything else:

* the units are split by SKU into ``partitions`` parts of about equal size (:func:`split_by_sku`): every
  decision that couples units stays inside one part (transfers between the locations of a SKU, allocations of
  a SKU's confirmed supply, the de-duplication of a SKU's exceptions);
* each part is planned by ``plan`` with ``unit_ids`` = its rows in the whole run, so each unit draws exactly
  the Monte-Carlo paths it draws in one call over all units: the levels, orders, risks and routes are the
  same (:func:`ray_map` runs the parts as Ray tasks; :func:`local_map` in this process);
* the parts are merged (:func:`merge_plans`): units back in the run's order, the purchase-order drafts made
  from the merged purchase lines (a supplier's draft spans parts), the run's meta recomputed.

Runs that couple every unit are planned in one piece, by ``plan`` itself (the meta says so): shared budgets
or capacities, a service group. A part is a pure function of its inputs, so a
part lost with a node is recomputed (Ray retries the task) with the same result; nothing is written until the
plan stage saves the merged run, which replaces an earlier save of the same run id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from planning._plan import Forecast, PlanConfig, PlanResult, plan
from planning._supplier import draft_purchase_orders

__all__ = ["local_map", "merge_plans", "plan_partitioned", "ray_map", "split_by_sku"]

#: Parts of a run: (global rows, arguments of ``plan``), planned by ``map_parts(plan_part, parts)``.
MapParts = Callable[[Callable[..., PlanResult], Sequence[dict]], list[PlanResult]]
_KIND_ORDER = {"purchase": 0, "allocation": 1, "transfer": 2}


def split_by_sku(sku: Sequence[str] | pl.Series, partitions: int) -> list[np.ndarray]:
    """Rows of each part: whole SKUs, parts of about equal numbers of units, in the run's order within a part.

    Args:
        sku: (N,) the SKU of each unit row.
        partitions: parts wanted (fewer when there are fewer SKUs); >= 1.

    Returns:
        Non-empty (n_p,) increasing row arrays covering 0..N-1 once.
    """
    if partitions < 1:
        raise ValueError(f"partitions={partitions}: expected an integer >= 1")
    s = pl.Series("sku", sku, dtype=pl.String)
    if s.len() == 0:
        return []
    sizes = pl.DataFrame({"sku": s}).group_by("sku").len().sort("sku")
    cum = np.cumsum(sizes["len"].to_numpy())
    # the part of a SKU: where the middle of its rows falls on the run's size cut into equal parts
    part = np.minimum(
        ((cum - sizes["len"].to_numpy() / 2) * partitions // cum[-1]).astype(np.int64), partitions - 1
    )
    of = pl.DataFrame({"sku": sizes["sku"], "_p": part})
    rows = pl.DataFrame({"sku": s}).with_row_index("_i").join(of, on="sku", how="left", maintain_order="left")
    out = []
    for p in np.unique(part):
        out.append(rows.filter(pl.col("_p") == p)["_i"].to_numpy().astype(np.int64))
    return out


def _writable(x):
    return x if x is None or np.asarray(x).flags.writeable else np.array(x)


def plan_part(ids: np.ndarray, kwargs: dict) -> PlanResult:
    """Plan one part (rows ``ids`` of the run): ``plan`` on its slice, drawing the run's paths.

    Arrays that came through Ray's object store are read-only; the kernels' compiled signatures take
    writable ones, so such arrays are copied first (a part's arrays are a part's size).
    """
    fc = kwargs["forecast"]
    history = None if fc.history is None else fc.history.rows(np.arange(fc.history.n_units))
    kwargs = {
        **kwargs,
        "forecast": dataclasses.replace(fc, values=_writable(fc.values), history=history),
        "lead_time_pmf": _writable(kwargs["lead_time_pmf"]),
        "lead_time_counts": _writable(kwargs.get("lead_time_counts")),
    }
    return plan(**kwargs, unit_ids=np.array(ids, dtype=np.int64))


def local_map(fn: Callable[..., PlanResult], parts: Sequence[dict]) -> list[PlanResult]:
    """Run the parts one after the other in this process (the reference of :func:`ray_map`)."""
    return [fn(p["ids"], p["kwargs"]) for p in parts]


def ray_map(
    fn: Callable[..., PlanResult], parts: Sequence[dict], *, max_retries: int = 5, num_cpus: float = 1
) -> list[PlanResult]:
    """Run the parts as Ray tasks on the connected cluster (``ray.init`` done by the caller), in order.

    A task lost with its node is retried (``max_retries``) on the nodes that remain; each part is a pure
    function of its inputs, so a retried part gives the same result.
    """
    import ray

    remote = ray.remote(num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=False)(fn)
    refs = [remote.remote(p["ids"], p["kwargs"]) for p in parts]
    return ray.get(refs)


def _slice_forecast(forecast: Forecast, ids: np.ndarray) -> Forecast:
    history = None if forecast.history is None else forecast.history.rows(ids)
    return dataclasses.replace(forecast, values=np.asarray(forecast.values)[ids], history=history)


def _slice_rows(frame: pl.DataFrame | None, skus: pl.Series, first: bool) -> pl.DataFrame | None:
    """Rows of ``frame`` of these SKUs (rows without a SKU go to the first part)."""
    if frame is None or not frame.height:
        return frame
    mine = pl.col("sku_id").is_in(skus.implode())
    return frame.filter(mine | pl.col("sku_id").is_null()) if first else frame.filter(mine)


def plan_partitioned(
    units: pl.DataFrame,
    forecast: Forecast,
    lead_time_pmf: np.ndarray,
    *,
    as_of,
    lead_time_counts: np.ndarray | None = None,
    config: PlanConfig | None = None,
    rules=None,
    budgets: tuple = (),
    capacities: tuple = (),
    confirmed_supply: pl.DataFrame | None = None,
    extra_exceptions: pl.DataFrame | None = None,
    partitions: int = 8,
    map_parts: MapParts = local_map,
    max_part_units: int | None = None,
) -> PlanResult:
    """:func:`planning._plan.plan` over ``partitions`` parts by SKU, run by ``map_parts``; the same plan.

    Args:
        units: as :func:`planning._plan.plan` (and so are the arguments up to ``extra_exceptions``).
        forecast: as ``plan``.
        lead_time_pmf: as ``plan``.
        as_of: as ``plan``.
        lead_time_counts: as ``plan``.
        config: as ``plan`` (None: ``PlanConfig()``).
        rules: as ``plan``.
        budgets: as ``plan`` (any: planned in one piece).
        capacities: as ``plan`` (any: planned in one piece).
        confirmed_supply: as ``plan``.
        extra_exceptions: as ``plan``.
        partitions: parts wanted (whole SKUs per part).
        map_parts: runs ``plan_part`` over the parts and returns their results in order (:func:`local_map`,
            :func:`ray_map`).
        max_part_units: more parts than ``partitions`` where needed to keep parts at about this many units
            (a part's memory grows with its units: about 0.8 GB per 100,000 units, measured).

    Returns:
        :class:`planning._plan.PlanResult`, ``meta["partitions"]`` = parts planned (1: planned in one piece,
        ``meta["partitions_note"]`` says why).
    """
    config = config or PlanConfig()
    common = dict(as_of=as_of, config=config, rules=rules, budgets=budgets, capacities=capacities)
    whole = None
    if budgets or capacities:
        whole = "shared budgets or capacities couple every unit"
    elif config.service_group is not None:
        whole = "a service group couples its units"
    if whole is not None or units.height == 0:
        res = plan(
            units,
            forecast,
            lead_time_pmf,
            lead_time_counts=lead_time_counts,
            confirmed_supply=confirmed_supply,
            extra_exceptions=extra_exceptions,
            **common,
        )
        res.meta.update(partitions=1, partitions_note=whole)
        return res
    if max_part_units:
        partitions = max(partitions, -(-units.height // max_part_units))
    pmf = np.asarray(lead_time_pmf)
    counts = None if lead_time_counts is None else np.asarray(lead_time_counts)
    parts = []
    for k, ids in enumerate(split_by_sku(units["sku_id"].cast(pl.String), partitions)):
        skus = units["sku_id"].cast(pl.String).gather(ids).unique()
        kwargs = dict(
            units=units[ids],
            forecast=_slice_forecast(forecast, ids),
            lead_time_pmf=pmf[ids],
            lead_time_counts=None if counts is None else counts[ids],
            confirmed_supply=_slice_rows(confirmed_supply, skus, False),
            extra_exceptions=_slice_rows(extra_exceptions, skus, k == 0),
            **common,
        )
        parts.append({"ids": ids, "kwargs": kwargs})
    results = map_parts(plan_part, parts)
    if len(results) != len(parts):
        raise RuntimeError(
            f"plan_partitioned: {len(parts)} parts planned but {len(results)} results came back"
        )
    return merge_plans([p["ids"] for p in parts], results)


def merge_plans(ids: Sequence[np.ndarray], results: Sequence[PlanResult]) -> PlanResult:
    """One run's plan from the plans of its parts (rows ``ids[k]`` of the run planned in ``results[k]``).

    Units come back in the run's order; recommendations by kind (purchases, allocations, transfers) in the
    units' order; exceptions part by part; purchase-order drafts from the merged purchase lines.
    """
    order = np.concatenate(list(ids))
    units = pl.concat([r.units for r in results], how="diagonal_relaxed")
    units = units.with_columns(pl.Series("_i", order)).sort("_i").drop("_i")
    pos = units.select("sku_id", "location_id").with_row_index("_u")
    recs = (
        pl.concat([r.recommendations for r in results if r.recommendations.height], how="diagonal_relaxed")
        if any(r.recommendations.height for r in results)
        else results[0].recommendations
    )
    if recs.height:
        recs = (
            recs.join(pos, on=["sku_id", "location_id"], how="left", maintain_order="left")
            .with_columns(
                pl.col("kind").replace_strict(_KIND_ORDER, default=9, return_dtype=pl.Int64).alias("_k")
            )
            .sort("_k", "_u", maintain_order=True, nulls_last=True)
            .drop("_k", "_u")
        )
    exc = pl.concat([r.exceptions for r in results], how="diagonal_relaxed")
    po_lines = recs.filter(pl.col("kind") == "purchase") if recs.height else recs
    po_drafts = (
        draft_purchase_orders(po_lines)
        if po_lines.height
        else pl.concat([r.po_drafts for r in results], how="diagonal_relaxed")
    )
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r.meta.get("policy_kinds", {}).items():
            kinds[k] = kinds.get(k, 0) + int(v)
    meta: dict[str, Any] = dict(results[0].meta)
    meta.update(
        n_units=units.height,
        policy_kinds=dict(sorted(kinds.items())),
        n_recommendations=recs.height,
        n_exceptions=exc.height,
        n_po_drafts=po_drafts.height,
        partitions=len(results),
    )
    return PlanResult(units=units, recommendations=recs, exceptions=exc, po_drafts=po_drafts, meta=meta)
