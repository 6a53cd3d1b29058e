"""The monitoring job's per-unit and per-group figures and FVA per reason code, on hand-checked frames."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from workflow import _monitoring_groups as groups
from workflow.monitoring import inventory_health

D = date(2026, 1, 1)


def _frames():
    # rates over the last 5 days of sales (01-06..01-10): A 2/day, B 1/day, C 4/day
    daily = {("S1", "L1"): 2.0, ("S2", "L1"): 1.0, ("S1", "L2"): 4.0}
    sales = pl.DataFrame(
        [(s, loc, D + timedelta(days=d), q) for (s, loc), q in daily.items() for d in range(10)],
        schema=["sku_id", "location_id", "date", "qty"],
        orient="row",
    )
    snaps = [
        ("S1", "L1", 1, 10.0), ("S1", "L1", 3, 0.0), ("S1", "L1", 7, 30.0),  # out on 01-04: 2/day x 4 days
        ("S2", "L1", 7, 8.0),
        ("S1", "L2", 5, 0.0), ("S1", "L2", 7, 100.0),  # stockout on 01-06: 4/day x 2 days
    ]  # fmt: skip
    inv = pl.DataFrame(
        [(s, loc, D + timedelta(days=d), oh) for s, loc, d, oh in snaps],
        schema=["sku_id", "location_id", "date", "on_hand"],
        orient="row",
    )
    lookups = {
        "costs": pl.DataFrame({"sku_id": ["S1"], "unit_cost": [2.0]}),  # S2 has no supplier term
        "categories": pl.DataFrame({"sku_id": ["S1"], "category": ["cat-a"]}),
        "targets": pl.DataFrame(
            {
                "sku_id": ["S1", "S2", "S1"],
                "location_id": ["L1", "L1", "L2"],
                "service_target": [0.95, 0.85, 0.9],
            }
        ),
    }
    return inv.lazy(), sales.lazy(), lookups


def test_unit_health_and_tenant_excess_value():
    inv, sales, lookups = _frames()
    u = groups.unit_health(inv, sales, rate_days=5, excess_days=5.0)
    row = {(r["sku_id"], r["location_id"]): r for r in u.iter_rows(named=True)}
    a, b, c = row[("S1", "L1")], row[("S2", "L1")], row[("S1", "L2")]
    assert (a["rate"], a["on_hand"], a["excess"], a["days_of_cover"]) == (2.0, 30.0, 20.0, 15.0)
    assert (a["snapshots"], a["stockouts"], a["lost"], a["sold"]) == (3, 1, 8.0, 14.0)  # sold 01-02..01-08
    assert (b["excess"], b["days_of_cover"], b["lost"], b["sold"]) == (3.0, 8.0, 0.0, 1.0)
    assert (c["excess"], c["lost"], c["sold"]) == (80.0, 8.0, 12.0)
    # excess valued at S1's cost: (20 + 80) x 2; S2's 3 excess units have no cost and are counted apart
    assert groups.excess_value(u, lookups["costs"]) == {
        "excess_value": 200.0,
        "excess_units_without_cost": 3.0,
    }
    tenant = inventory_health(inv, sales, rate_days=5, excess_days=5.0)
    assert tenant == inventory_health(inv, sales, units=u)
    assert tenant["snapshots"] == 6 and tenant["stockout_snapshots"] == 2
    assert tenant["stockout_rate"] == pytest.approx(2 / 6)
    assert (tenant["lost_sales_units"], tenant["excess_units"], tenant["days_of_cover_median"]) == (
        16.0,
        103.0,
        15.0,
    )


def test_group_health_by_location_and_category_with_measured_fill_rate():
    inv, sales, lookups = _frames()
    u = groups.unit_health(inv, sales, rate_days=5, excess_days=5.0)
    rows = {(g["group_kind"], g["group"]): g for g in groups.group_health(u, lookups)}
    assert set(rows) == {
        ("location", "L1"),
        ("location", "L2"),
        ("category", "cat-a"),
        ("category", "(none)"),
    }
    l1 = rows[("location", "L1")]
    assert l1["fill_rate"] == pytest.approx(15 / 23)  # sold 14 + 1, lost 8
    assert l1["fill_target"] == pytest.approx(0.9)  # mean of 0.95 and 0.85
    assert (l1["excess_units"], l1["excess_value"], l1["excess_units_without_cost"]) == (23.0, 40.0, 3.0)
    assert (l1["stockout_rate"], l1["lost_sales_units"], l1["days_of_cover_median"]) == (0.25, 8.0, 11.5)
    assert l1["stock_value"] == 60.0 and l1["units"] == 2
    l2 = rows[("location", "L2")]
    assert (l2["fill_rate"], l2["excess_value"], l2["stockout_rate"]) == (0.6, 160.0, 0.5)
    cat = rows[("category", "cat-a")]
    assert cat["fill_rate"] == pytest.approx(26 / 42) and cat["excess_value"] == 200.0
    assert rows[("category", "(none)")]["fill_rate"] == 1.0
    # capped: the group with the highest stock value of each kind stays
    top = groups.group_health(u, lookups, max_groups=1)
    assert [(g["group_kind"], g["group"]) for g in top] == [("location", "L2"), ("category", "cat-a")]
    # no SKU with a category: locations only
    no_cat = {**lookups, "categories": lookups["categories"].clear()}
    assert {g["group_kind"] for g in groups.group_health(u, no_cat)} == {"location"}


def test_fva_per_reason_code():
    frame = pl.DataFrame(
        {
            "reason": ["promotion", "promotion", "capacity"],
            "proposed": [10.0, 10.0, 20.0],
            "final": [12.0, 14.0, 10.0],
            "right": [12.0, 12.0, 25.0],
        }
    )
    (total,) = groups.fva_table(frame, [])
    assert total["n"] == 3 and total["fva"] == pytest.approx(1 - (17 / 3) / 3)
    by = groups.fva_table(frame, ["reason"])
    assert [r["reason"] for r in by] == ["promotion", "capacity"]  # most overrides first
    assert by[0]["fva"] == pytest.approx(0.5) and by[1]["fva"] == pytest.approx(-2.0)
    pts = groups.extra_points([], by)
    assert pts[0] == ("override_fva_by_reason", {"reason": "promotion"}, by[0]["fva"], 2)
