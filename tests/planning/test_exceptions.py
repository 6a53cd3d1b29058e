from datetime import date

import polars as pl

from planning._exceptions import (
    EXCEPTION_SCHEMA,
    bias_drift,
    forecast_anomalies,
    identity_exceptions,
    late_purchase_orders,
    lead_time_drift,
    overstock,
    short_shipments,
    stockout_risk,
)


def _check(frame, kind, n):
    assert list(frame.columns) == list(EXCEPTION_SCHEMA)
    assert frame.height == n
    assert (frame["exception_type"] == kind).all()
    assert frame["message"].null_count() == 0


def test_stockout_risk_probability_and_cover():
    u = pl.DataFrame(
        {
            "sku_id": ["a", "b", "c"],
            "location_id": ["L"] * 3,
            "stockout_probability": [0.6, 0.05, 0.1],
            "days_of_cover": [3.0, 30.0, 2.0],
            "lead_time_days": [7.0, 7.0, 7.0],
            "customer_committed": [0.0, 0.0, 5.0],
        }
    )
    out = stockout_risk(u, 0.2)
    _check(out, "stockout_risk", 2)
    assert out["sku_id"].to_list() == ["a", "c"]
    assert out["customer_impacting"].to_list() == [False, True]
    assert out["severity"].to_list() == ["high", "high"]


def test_overstock_and_ageing():
    u = pl.DataFrame(
        {
            "sku_id": ["a", "b", "c"],
            "location_id": ["L"] * 3,
            "on_hand": [500.0, 50.0, 10.0],
            "mean_demand": [10.0, 10.0, 0.0],
            "stock_age_days": [10.0, 400.0, 10.0],
        }
    )
    out = overstock(u, max_cover_periods=12, max_age_days=180)
    kinds = out["exception_type"].to_list()
    assert kinds.count("overstock") == 2  # a (50 periods), c (no demand at all)
    assert kinds.count("ageing_stock") == 1
    assert out.filter(pl.col("exception_type") == "ageing_stock")["sku_id"].to_list() == ["b"]


def test_forecast_anomaly_and_bias_drift():
    a = pl.DataFrame(
        {
            "sku_id": ["a", "b", "c"],
            "location_id": ["L"] * 3,
            "period": [1, 1, 1],
            "actual": [50.0, 10.0, 0.0],
            "p01": [2.0, 2.0, 1.0],
            "p99": [20.0, 20.0, 9.0],
        }
    )
    out = forecast_anomalies(a)
    _check(out, "forecast_anomaly", 2)
    assert out["sku_id"].to_list() == ["a", "c"]
    rows = [("a", "L", t, 12.0 + (t % 2), 10.0) for t in range(10)]  # always above: biased
    rows += [("b", "L", t, 10.0 + (1 if t % 2 else -1), 10.0) for t in range(10)]  # unbiased noise
    drift = bias_drift(
        pl.DataFrame(rows, schema=["sku_id", "location_id", "period", "actual", "p50"], orient="row"),
        last_periods=8,
    )
    _check(drift, "bias_drift", 1)
    assert drift["sku_id"][0] == "a" and drift["value"][0] > 3.0  # the bias t statistic
    assert "under-forecasts by 20%" in drift["message"][0]


def test_supplier_exceptions():
    po = pl.DataFrame(
        {
            "po_id": ["P1", "P2", "P3"],
            "supplier_id": ["S"] * 3,
            "sku_id": ["a"] * 3,
            "location_id": ["L"] * 3,
            "eta": [date(2024, 1, 1), date(2024, 3, 1), date(2023, 12, 1)],
            "status": ["open", "open", "received"],
        }
    )
    late = late_purchase_orders(po, date(2024, 1, 10))
    _check(late, "late_po", 1)
    assert late["value"][0] == 9.0
    lt = pl.DataFrame(
        {
            "supplier_id": ["S"] * 6 + ["T"] * 4,
            "sku_id": ["a"] * 10,
            "order_date": [date(2024, 1, d) for d in range(1, 11)],
            "lead_time_days": [7, 7, 14, 14, 14, 14, 7, 7, 7, 8],
        }
    )
    terms = pl.DataFrame({"supplier_id": ["S", "T"], "sku_id": ["a", "a"], "promised_lead_time_days": [7, 7]})
    drift = lead_time_drift(lt, terms, last_n=4, tolerance=0.25)
    _check(drift, "lead_time_drift", 1)
    assert drift["supplier_id"][0] == "S" and drift["value"][0] == 1.0
    rec = pl.DataFrame(
        {
            "po_id": ["P1", "P2"],
            "supplier_id": ["S", "S"],
            "sku_id": ["a", "a"],
            "location_id": ["L", "L"],
            "qty": [100.0, 100.0],
            "received_qty": [70.0, 99.0],
        }
    )
    short = short_shipments(rec, tolerance=0.02)
    _check(short, "short_shipment", 1)
    assert short["po_id"][0] == "P1" and short["severity"][0] == "high"


def test_identity_exceptions():
    units = pl.DataFrame({"sku_id": ["a", "zz", "b", "b"], "location_id": ["L", "L", "X", "X"]})
    skus = pl.DataFrame({"sku_id": ["a", "b"]})
    locs = pl.DataFrame({"location_id": ["L"]})
    terms = pl.DataFrame({"sku_id": ["a"]})
    issues = pl.DataFrame(
        {"sku_id": ["q"], "location_id": ["L"], "message": ["alias 'Q-1' maps to two SKUs"]}
    )
    out = identity_exceptions(units, skus, locs, terms, issues)
    _check(out, "identity", 5)
    msgs = " | ".join(out["message"].to_list())
    assert "unknown SKU zz" in msgs and "unknown location X" in msgs and "no supplier terms for SKU b" in msgs
    assert "duplicate planning unit b/X" in msgs and "ingest: alias" in msgs
