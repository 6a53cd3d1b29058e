"""Planning over partitions of units gives the plan of one call over all of them (no Ray: the local runner).

The Ray runner is exercised on a real multi-node cluster in ``tests/serving/test_distributed_cycle.py``.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.synth import generate
from planning import PlanConfig, inputs_from_frames, load_rules, plan
from planning._stage import DEFAULT_ROUTING
from planning.distributed import local_map, plan_partitioned, split_by_sku

RECS = ["kind", "sku_id", "location_id", "order_qty", "order_value", "action", "rule"]


@pytest.fixture(scope="module")
def inputs():
    return inputs_from_frames(**generate(120, 40, freq="W", seed=11).tables())


def _plan(inputs, planner, **kw):
    return planner(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        lead_time_counts=inputs.lead_time_counts,
        config=PlanConfig(n_paths=200),
        rules=load_rules(DEFAULT_ROUTING),
        extra_exceptions=inputs.exceptions,
        **kw,
    )


def test_split_keeps_skus_whole_covers_every_row_once_and_balances():
    sku = [f"S{i % 37:02d}" for i in range(1000)]
    parts = split_by_sku(sku, 4)
    assert len(parts) == 4
    allrows = np.sort(np.concatenate(parts))
    assert np.array_equal(allrows, np.arange(1000))
    owners = [{sku[i] for i in p} for p in parts]
    assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1 :])
    assert max(len(p) for p in parts) <= 1000 / 4 + 1000 / 37 + 1  # at most one SKU over the even share
    one = split_by_sku(["A", "A"], 5)
    assert len(one) == 1 and one[0].tolist() == [0, 1]
    with pytest.raises(ValueError, match="partitions=0"):
        split_by_sku(sku, 0)


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_partitioned_plan_equals_the_plan_of_one_call(inputs, partitions):
    whole = _plan(inputs, plan)
    parts = _plan(inputs, plan_partitioned, partitions=partitions, map_parts=local_map)
    assert parts.meta["partitions"] == min(partitions, inputs.units["sku_id"].n_unique())
    levels = [
        "sku_id",
        "location_id",
        "order_up_to",
        "order_qty",
        "stockout_probability",
        "fill_rate_at_level",
    ]
    assert parts.units.select(levels).equals(whole.units.select(levels))  # same order, same numbers
    key = ["kind", "sku_id", "location_id"]
    cols = [c for c in RECS if c in whole.recommendations.columns]
    a = whole.recommendations.select(cols).sort(key)
    b = parts.recommendations.select(cols).sort(key)
    assert a.height > 0 and a.equals(b)
    ek = ["exception_type", "sku_id", "location_id", "severity", "action"]
    assert (
        whole.exceptions.select(ek)
        .sort(ek, nulls_last=True)
        .equals(parts.exceptions.select(ek).sort(ek, nulls_last=True))
    )
    pk = ["supplier_id", "location_id", "n_lines", "total_qty", "total_value"]
    assert whole.po_drafts.select(pk).sort(pk).equals(parts.po_drafts.select(pk).sort(pk))
    assert parts.meta["policy_kinds"] == whole.meta["policy_kinds"]
    assert parts.meta["n_recommendations"] == whole.meta["n_recommendations"]


def test_shared_budgets_are_planned_in_one_piece(inputs):
    from planning import Budget

    res = _plan(inputs, plan_partitioned, partitions=4, budgets=(Budget(by=None, limits=1000.0),))
    assert res.meta["partitions"] == 1 and "budgets" in res.meta["partitions_note"]
    assert float(res.units["order_value"].sum()) <= 1000.0 + 1e-6
    assert isinstance(res.units, pl.DataFrame)


def test_large_runs_get_more_parts_to_bound_each_part(inputs):
    res = _plan(inputs, plan_partitioned, partitions=1, max_part_units=20)
    assert res.meta["partitions"] >= inputs.units.height // 20  # whole SKUs: about 60 units / 20 a part
