import numpy as np
import polars as pl
import pytest

from features.synth import generate
from planning._evidence import REQUIRED_EVIDENCE, evidence_record, missing_evidence
from planning._inputs import inputs_from_frames
from planning._plan import Budget, Capacity, PlanConfig, plan
from planning._routing import load_rules


@pytest.fixture(scope="module")
def inputs():
    return inputs_from_frames(**generate(160, 40, freq="W", seed=11).tables())


def _force_transfer(units: pl.DataFrame) -> pl.DataFrame:
    """One SKU: a big surplus at one store and an empty shelf at another store of the same region."""
    pair = (
        units.filter(pl.col("region").is_not_null())
        .group_by("sku_id", "region")
        .agg(pl.col("location_id").sort())
        .filter(pl.col("location_id").list.len() >= 2)
        .sort("sku_id")
        .row(0)
    )
    sku, _, locs = pair
    donor, receiver = locs[0], locs[1]
    return units.with_columns(
        pl.when((pl.col("sku_id") == sku) & (pl.col("location_id") == donor))
        .then(5000.0)
        .when((pl.col("sku_id") == sku) & (pl.col("location_id") == receiver))
        .then(0.0)
        .otherwise(pl.col("on_hand"))
        .alias("on_hand"),
        pl.when((pl.col("sku_id") == sku) & (pl.col("location_id") == receiver))
        .then(0.0)
        .otherwise(pl.col("on_order"))
        .alias("on_order"),
    )


def test_every_recommendation_kind_carries_complete_evidence(inputs):
    units = _force_transfer(inputs.units)
    ordered = plan(units, inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of).units
    sku = (
        ordered.filter(pl.col("order_qty") > 0)
        .group_by("sku_id")
        .len()
        .sort("len", descending=True)["sku_id"][0]
    )
    asked = ordered.filter(pl.col("sku_id") == sku)["order_qty"].sum()
    res = plan(
        units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        rules=load_rules("configs/routing.yaml"),
        extra_exceptions=inputs.exceptions,
        confirmed_supply=pl.DataFrame({"sku_id": [sku], "confirmed_qty": [asked / 2]}),
    )
    recs = res.recommendations
    assert set(recs["kind"]) == {"purchase", "transfer", "allocation"}
    for row in recs.iter_rows(named=True):
        doc = evidence_record(row)
        assert missing_evidence(doc) == [], (row["kind"], missing_evidence(doc))
        assert doc["forecast"]["source"] == "baseline:bootstrap"
        assert doc["simulation"]["n_paths"] == 256
    assert all(len(v) > 20 for v in REQUIRED_EVIDENCE.values())
    alloc = recs.filter(pl.col("kind") == "allocation")
    assert alloc["order_qty"].sum() <= asked / 2 + 1e-9
    assert alloc["constrained"].any()
    # routed by the shipped rules: a location that got less than it asked goes to supply planners
    assert (alloc.filter(pl.col("constrained"))["rule"] == "constrained_supply").all()
    tr = recs.filter(pl.col("kind") == "transfer")
    assert (tr["transfer_qty"] > 0).all() and (tr["saving"] > 0).all()
    # a deliberately broken record is caught
    doc = evidence_record(recs.row(0, named=True))
    doc["simulation"]["order_up_to"] = None
    assert "simulation.order_up_to" in missing_evidence(doc)


def test_orders_respect_terms_levels_and_are_reproducible(inputs):
    a = plan(inputs.units, inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of)
    b = plan(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        config=PlanConfig(chunk_size=7),
    )
    assert (
        a.units["order_qty"].to_list() == b.units["order_qty"].to_list()
    )  # chunking does not change the plan
    u = a.units.filter(pl.col("order_qty") > 0)
    assert ((u["order_qty"] % u["pack_size"]) == 0).all()
    assert (u["order_qty"] >= u["moq"]).all()
    assert (
        (u["inventory_position"] + u["order_qty"] >= u["order_up_to"] - 1e-9)
        .filter(u["bound_by"] != "max_order_qty")
        .all()
    )
    none = a.units.filter(pl.col("order_qty") == 0)
    assert (none["inventory_position"] >= none["order_up_to"]).all()
    assert (a.units["fill_rate_at_level"] >= a.units["fill_target"] - 1e-9).all()
    assert a.po_drafts["total_qty"].sum() == pytest.approx(u["order_qty"].sum())


def test_budget_and_capacity_bind(inputs):
    free = plan(inputs.units, inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of).units
    by_sup = (
        free.group_by("supplier_id").agg(pl.col("order_value").sum()).sort("order_value", descending=True)
    )
    sup, spend = by_sup.row(0)
    budget = spend / 3
    loc = (
        free.group_by("location_id").agg(pl.col("order_qty").sum()).sort("order_qty", descending=True).row(0)
    )
    res = plan(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        budgets=(Budget("supplier_id", {sup: budget}),),
    )
    u = res.units
    assert u.filter(pl.col("supplier_id") == sup)["order_value"].sum() <= budget + 1e-6
    assert "budget" in set(u["bound_by"])
    # units the budget does not touch keep their unconstrained order
    other = pl.col("supplier_id") != sup
    assert u.filter(other)["order_qty"].to_list() == free.filter(other)["order_qty"].to_list()
    cap = plan(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        capacities=(Capacity({loc[0]: loc[1] / 2}),),
    ).units
    assert cap.filter(pl.col("location_id") == loc[0])["order_qty"].sum() <= loc[1] / 2 + 1e-6
    assert set(cap.filter(pl.col("order_qty") < free["order_qty"])["bound_by"]) == {"capacity"}
    with pytest.raises(ValueError, match="no column 'buyer'"):
        plan(
            inputs.units,
            inputs.forecast,
            inputs.lead_time_pmf,
            as_of=inputs.as_of,
            budgets=(Budget("buyer", {"x": 1.0}),),
        )


def test_bad_unit_rows_are_named(inputs):
    bad = inputs.units.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(1.5).otherwise(pl.col("fill_target")).alias("fill_target")
    )
    with pytest.raises(ValueError, match="row 3 .*fill_target=1.5, expected a value in \\(0, 1\\)"):
        plan(bad, inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of)
    with pytest.raises(ValueError, match="missing column"):
        plan(inputs.units.drop("moq"), inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of)
    with pytest.raises(ValueError, match="rows but the forecast has"):
        plan(inputs.units.head(5), inputs.forecast, inputs.lead_time_pmf, as_of=inputs.as_of)
    assert np.isfinite(inputs.units["lead_time_mean"].to_numpy()).all()
