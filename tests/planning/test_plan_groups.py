"""Group fill targets in plan(): PlanConfig.service_group (planning._service through planning._plan)."""

import numpy as np
import polars as pl
import pytest

from features.synth import generate
from planning._evidence import evidence_record, missing_evidence
from planning._inputs import inputs_from_frames
from planning._plan import PlanConfig, plan


@pytest.fixture(scope="module")
def inputs():
    return inputs_from_frames(**generate(200, 60, freq="W", seed=4).tables())


def _plan(inputs, units=None, **cfg):
    return plan(
        inputs.units if units is None else units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        lead_time_counts=inputs.lead_time_counts,
        config=PlanConfig(**cfg),
    )


def _weighted_fill(u: pl.DataFrame) -> float:
    w = u["mean_review_demand"].to_numpy()
    return float((w * u["fill_rate_at_level"].to_numpy()).sum() / w.sum())


def test_one_group_meets_its_target_with_less_stock_than_every_unit_at_it(inputs):
    units = inputs.units.with_columns(pl.lit(0.95).alias("fill_target"))
    per_unit = _plan(inputs, units).units
    grouped = _plan(inputs, units, service_group="all").units
    assert (grouped["service_group"] == "all").all()
    assert np.allclose(grouped["group_fill_target"].to_numpy(), 0.95)
    assert _weighted_fill(grouped) >= 0.95 - 1e-9
    held = lambda u: u["expected_on_hand_at_level"].sum()  # noqa: E731
    assert held(grouped) < held(per_unit)
    alloc = grouped["allocated_fill_target"].to_numpy()
    assert alloc.min() >= 0.8 - 1e-12 and alloc.max() > 0.95 and alloc.min() < 0.95  # moved both ways
    assert np.all(grouped["fill_rate_at_level"].to_numpy() >= alloc - 1e-9)
    # the unit's own target is kept for the record; without groups the allocated one is the unit's own
    assert np.allclose(grouped["fill_target"].to_numpy(), 0.95)
    assert np.array_equal(per_unit["allocated_fill_target"].to_numpy(), per_unit["fill_target"].to_numpy())
    assert per_unit["service_group"].null_count() == per_unit.height
    # same seed, same allocation
    again = _plan(inputs, units, service_group="all").units
    assert again["order_up_to"].equals(grouped["order_up_to"])


def test_each_location_meets_the_demand_weighted_target_of_its_units(inputs):
    res = _plan(inputs, service_group="location_id", unit_fill_floor=0.7)
    u = res.units
    for loc, g in u.group_by("location_id"):
        w = g["mean_review_demand"].to_numpy()
        if w.sum() <= 0:
            continue
        want = float((w * g["fill_target"].to_numpy()).sum() / w.sum())
        assert np.allclose(g["group_fill_target"].to_numpy(), want)
        assert _weighted_fill(g) >= want - 1e-9, loc
    assert u["allocated_fill_target"].min() >= 0.7 - 1e-12
    for row in res.recommendations.iter_rows(named=True):
        doc = evidence_record(row)
        assert missing_evidence(doc) == []
        assert doc["simulation"]["service_group"] == row["location_id"]
        assert doc["simulation"]["allocated_fill_target"] is not None


def test_bad_group_settings_are_refused_with_the_reason(inputs):
    with pytest.raises(ValueError, match="service_group='buyer'.*not a planning-unit column"):
        _plan(inputs, service_group="buyer")
    units = inputs.units.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("region")).alias("region")
    )
    with pytest.raises(ValueError, match="row 3: region is empty"):
        _plan(inputs, units, service_group="region")
    with pytest.raises(ValueError, match="unit_fill_floor"):
        PlanConfig(service_group="all", unit_fill_floor=1.2)
