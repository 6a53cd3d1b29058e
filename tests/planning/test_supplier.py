from datetime import date

import polars as pl
import pytest

from planning._supplier import choose_supplier, draft_purchase_orders


def test_cheaper_supplier_loses_when_its_lead_time_risk_costs_more():
    cands = pl.DataFrame(
        {
            "sku_id": ["A", "A", "B", "B"],
            "supplier_id": ["S1", "S2", "S1", "S2"],
            "unit_cost": [10.0, 9.9, 5.0, 5.0],
            "lead_time_mean": [1.0, 8.0, 2.0, 1.0],
            "lead_time_std": [0.2, 4.0, 0.0, 0.0],
            "moq": [1, 1, 1, 1],
        }
    )
    out = choose_supplier(cands, holding_rate=0.01, risk_weight=1.65).sort("sku_id")
    assert out["supplier_id"].to_list() == [
        "S1",
        "S2",
    ]  # A: 9.9*(1+.01*14.6) > 10*(1+.01*1.33); B: tie -> shorter
    assert out["runner_up_id"].to_list() == ["S2", "S1"]
    assert out["n_candidates"].to_list() == [2, 2]
    cheap = choose_supplier(cands, holding_rate=0.0).sort("sku_id")
    assert cheap["supplier_id"][0] == "S2"  # without holding cost only the price counts


def test_bad_candidate_named():
    with pytest.raises(ValueError, match="row 1: unit_cost"):
        choose_supplier(
            pl.DataFrame(
                {
                    "sku_id": ["A", "A"],
                    "supplier_id": ["S1", "S2"],
                    "unit_cost": [1.0, 0.0],
                    "lead_time_mean": [1.0, 1.0],
                    "lead_time_std": [0.0, 0.0],
                }
            )
        )


def test_po_drafts_grouped_per_supplier_and_location():
    lines = pl.DataFrame(
        {
            "supplier_id": ["S1", "S1", "S1", "S2", "S1"],
            "location_id": ["L1", "L1", "L2", "L1", "L1"],
            "sku_id": ["b", "a", "a", "c", "z"],
            "order_qty": [6.0, 12.0, 4.0, 1.0, 0.0],
            "order_value": [60.0, 24.0, 8.0, 3.0, 0.0],
            "expected_arrival": [
                date(2024, 1, 3),
                date(2024, 1, 5),
                date(2024, 1, 2),
                date(2024, 1, 9),
                date(2024, 2, 1),
            ],
        }
    )
    d = draft_purchase_orders(lines)
    assert d["draft_id"].to_list() == ["PO-S1-L1", "PO-S1-L2", "PO-S2-L1"]
    first = d.row(0, named=True)
    assert first["n_lines"] == 2 and first["total_qty"] == 18.0 and first["total_value"] == 84.0
    assert first["expected_arrival"] == date(
        2024, 1, 5
    )  # complete when the last line arrives; zero line ignored
    assert [x["sku_id"] for x in first["lines"]] == ["a", "b"]


def _response_lines(rows):
    schema = {
        "po_id": pl.String,
        "supplier_id": pl.String,
        "sku_id": pl.String,
        "location_id": pl.String,
        "status": pl.String,
        "ordered_qty": pl.Float64,
        "confirmed_qty": pl.Float64,
        "need_by": pl.Date,
        "confirmed_date": pl.Date,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_response_exceptions_short_late_rejected_and_quiet_within_tolerance():
    from planning._supplier import SUPPLIER_EXCEPTION_TYPES, response_exceptions

    need = date(2026, 1, 10)
    lines = _response_lines(
        [
            ("P1", "S", "A", "L1", "partial", 100.0, 60.0, need, None),  # 40% short -> high
            ("P2", "S", "B", "L1", "partial", 100.0, 90.0, need, None),  # 10% short -> medium
            ("P3", "S", "C", "L1", "confirmed", 100.0, 99.0, need, need),  # 1% short: within 2%
            ("P4", "S", "D", "L1", "new_date", 100.0, None, need, date(2026, 1, 13)),  # 3 days late
            ("P5", "S", "E", "L1", "rejected", 50.0, 0.0, need, None),  # refused: not also "short"
            ("P6", "S", "F", "L1", "confirmed", 10.0, 10.0, need, date(2026, 1, 25)),  # 15 days late
        ]
    )
    out = response_exceptions(lines).sort("po_id", "exception_type")
    got = [(r["po_id"], r["exception_type"], r["severity"]) for r in out.iter_rows(named=True)]
    assert got == [
        ("P1", "short_shipment", "high"),
        ("P2", "short_shipment", "medium"),
        ("P4", "late_po", "medium"),
        ("P5", "supplier_rejected", "high"),
        ("P6", "late_po", "high"),
    ]
    assert set(out["exception_type"]) <= set(SUPPLIER_EXCEPTION_TYPES)
    by = {r["po_id"]: r for r in out.iter_rows(named=True)}
    assert by["P1"]["value"] == pytest.approx(0.4) and by["P4"]["value"] == 3.0
    assert "60.0 of 100.0" in by["P1"]["message"] and by["P1"]["location_id"] == "L1"
    with pytest.raises(ValueError, match="missing column"):
        response_exceptions(lines.drop("need_by"))


def test_confirmed_supply_is_totalled_per_sku_and_bad_rows_are_named():
    from planning._inputs import confirmed_supply_frame

    out = confirmed_supply_frame(pl.DataFrame({"sku_id": ["A", "B", "A"], "confirmed_qty": [10.0, 5.0, 2.0]}))
    assert out.rows() == [("A", 12.0), ("B", 5.0)]
    assert confirmed_supply_frame(None) is None
    with pytest.raises(ValueError, match="row 1: sku_id='B' confirmed_qty=-1.0"):
        confirmed_supply_frame(pl.DataFrame({"sku_id": ["A", "B"], "confirmed_qty": [1.0, -1.0]}))
    with pytest.raises(ValueError, match="row 0"):
        confirmed_supply_frame(pl.DataFrame({"sku_id": ["A"], "confirmed_qty": [float("nan")]}))
    with pytest.raises(ValueError, match="missing column"):
        confirmed_supply_frame(pl.DataFrame({"sku_id": ["A"]}))


def test_plan_inputs_subset_keeps_each_units_rows_and_the_plan_allocates_confirmed_supply():
    import numpy as np

    from features.synth import generate
    from planning._inputs import inputs_from_frames
    from planning._plan import plan

    inputs = inputs_from_frames(**generate(12, 40, freq="W", seed=3).tables())
    keys = inputs.units.select("sku_id", "location_id")
    pick = keys[[5, 2]]  # any order in: the subset keeps the inputs' row order
    sub = inputs.subset(pick)
    assert sub.units.select("sku_id", "location_id").rows() == keys[[2, 5]].rows()
    np.testing.assert_array_equal(sub.lead_time_pmf, inputs.lead_time_pmf[[2, 5]])
    np.testing.assert_array_equal(np.asarray(sub.forecast.values), np.asarray(inputs.forecast.values)[[2, 5]])
    assert sub.forecast.history.n_units == 2
    with pytest.raises(ValueError, match="no stocking point sku_id='NOPE'"):
        inputs.subset(pl.DataFrame({"sku_id": ["NOPE"], "location_id": ["X"]}))
    # a SKU whose units all order: confirm half of what they ask; the allocations add up to at most that
    full = plan(
        sub.units, sub.forecast, sub.lead_time_pmf, as_of=sub.as_of, lead_time_counts=sub.lead_time_counts
    )
    buys = full.recommendations.filter(pl.col("kind") == "purchase")
    assert buys.height, "the synthetic units order nothing"
    sku = buys["sku_id"][0]
    asked = buys.filter(pl.col("sku_id") == sku)["order_qty"].sum()
    confirmed = pl.DataFrame({"sku_id": [sku], "confirmed_qty": [asked / 2]})
    res = plan(
        sub.units,
        sub.forecast,
        sub.lead_time_pmf,
        as_of=sub.as_of,
        lead_time_counts=sub.lead_time_counts,
        confirmed_supply=confirmed,
    )
    alloc = res.recommendations.filter((pl.col("kind") == "allocation") & (pl.col("sku_id") == sku))
    assert alloc.height and alloc["order_qty"].sum() <= asked / 2 + 1e-9
