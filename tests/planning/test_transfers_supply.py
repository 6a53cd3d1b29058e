import numpy as np
import polars as pl
import pytest

from kernels import protection_samples
from planning._supply import allocate_constrained_supply
from planning._transfers import propose_transfers

LEVELS = np.linspace(0.01, 0.99, 99)


def _pos(rows):
    cols = [
        "sku_id",
        "location_id",
        "region",
        "on_hand",
        "order_up_to",
        "shortfall",
        "transfer_cost_per_unit",
        "alternative_cost_per_unit",
    ]
    return pl.DataFrame(rows, schema=cols, orient="row")


def test_transfer_from_excess_to_short_location_in_same_region_only():
    pos = _pos(
        [
            ("A", "S1", "R1", 100.0, 40.0, 0.0, 0.5, 2.0),  # 60 excess
            ("A", "S2", "R1", 0.0, 40.0, 25.0, 0.5, 2.0),  # short 25
            ("A", "S3", "R1", 5.0, 40.0, 50.0, 0.5, 2.0),  # short 50
            ("A", "S4", "R2", 0.0, 40.0, 30.0, 0.5, 2.0),  # short, other region: no donor there
            ("B", "S1", "R1", 90.0, 10.0, 0.0, 0.5, 2.0),  # B excess, but nobody short of B
        ]
    )
    t = propose_transfers(pos)
    assert set(t["to_location_id"]) == {"S2", "S3"}
    assert (t["from_location_id"] == "S1").all() and (t["sku_id"] == "A").all()
    assert t["transfer_qty"].sum() == 60.0  # all the excess, no more
    by = dict(zip(t["to_location_id"], t["transfer_qty"], strict=True))
    assert by["S3"] == 50.0 and by["S2"] == 10.0  # the largest shortfall first
    assert (t["saving"] > 0).all()


def test_no_transfer_when_expediting_is_cheaper_and_whole_packs_only():
    pos = _pos([("A", "S1", "R1", 100.0, 40.0, 0.0, 3.0, 2.0), ("A", "S2", "R1", 0.0, 40.0, 25.0, 3.0, 2.0)])
    assert propose_transfers(pos).height == 0
    pos = _pos([("A", "S1", "R1", 100.0, 40.0, 0.0, 0.1, 2.0), ("A", "S2", "R1", 0.0, 40.0, 25.0, 0.1, 2.0)])
    t = propose_transfers(pos, pack_size=12)
    assert t["transfer_qty"].to_list() == [24.0]  # 25 short, 60 excess -> two packs of 12
    with pytest.raises(ValueError, match="missing column"):
        propose_transfers(pos.drop("region"))


def test_constrained_supply_commitments_first_then_highest_risk():
    # three stores ask for 40 each of SKU A; supplier confirms 50. Store 2 has a customer commitment of 20.
    # Store 0 has plenty on hand (low risk), store 1 nothing (high risk).
    vals = np.tile(np.linspace(5, 15, LEVELS.size).astype(np.float32), (3, 4, 1))
    pmf = np.tile([0.0, 1.0, 0.0], (3, 1))
    smp = protection_samples(LEVELS, vals, pmf, 1, 2000, 0)
    req = pl.DataFrame(
        {
            "sku_id": ["A", "A", "A"],
            "location_id": ["S0", "S1", "S2"],
            "requested_qty": [40.0, 40.0, 40.0],
            "committed_qty": [0.0, 0.0, 20.0],
            "position": [30.0, 0.0, 10.0],
            "pack_size": [5.0, 5.0, 5.0],
        }
    )
    out = allocate_constrained_supply(req, pl.DataFrame({"sku_id": ["A"], "confirmed_qty": [50.0]}), smp)
    alloc = out["allocated_qty"].to_list()
    assert sum(alloc) == 50.0
    assert all(a % 5 == 0 for a in alloc)
    assert alloc[2] >= 20.0  # the commitment is covered
    assert alloc[1] > alloc[0]  # the empty store before the full one
    assert out["constrained"].to_list() == [True, True, True]
    assert out["commitment_covered"].to_list()[2] is True
    # fully confirmed SKUs are untouched
    full = allocate_constrained_supply(req, pl.DataFrame({"sku_id": ["B"], "confirmed_qty": [1.0]}), smp)
    assert full["allocated_qty"].to_list() == [40.0, 40.0, 40.0]
    assert not full["constrained"].any()
