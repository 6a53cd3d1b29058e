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
