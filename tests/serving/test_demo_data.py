"""Stallion through the ordinary ingest path: counts, quarantine of its real quirks, idempotence."""

from __future__ import annotations

import polars as pl

from features.facts import read_inventory, read_sales
from features.ingest import list_quarantine
from features.stallion import GENERATED_KINDS, load_into_store, read_stallion, stallion_sales


def test_stallion_sales_shape_and_price_mapping():
    raw = read_stallion()
    s = stallion_sales()
    assert s.shape == (21_000, 7) and raw.height == 21_000
    assert s.select("sku_id", "location_id").n_unique() == 350
    assert s["date"].n_unique() == 60
    assert s["qty"].sum() == raw["volume"].sum()
    assert s["price"].drop_nulls().min() > 0
    assert s["price"].null_count() == (raw["price_actual"] <= 0).sum()


def test_load_into_store_is_idempotent(engine, settings):
    first = load_into_store(settings, "stallion", engine=engine)
    assert first["series"] == 350 and first["periods"] == 60
    k = first["kinds"]
    assert k["sales"]["stored"] == 21_000 and k["sales"]["quarantined"] == 0
    assert k["locations"]["stored"] == 59  # 58 agencies + the generated warehouse
    # Rows where Stallion's actual price exceeds the regular one break the promotions contract.
    raw = read_stallion()
    over = raw.filter(pl.col("price_actual") > 0, pl.col("price_regular") > 0,
                      pl.col("price_actual") > pl.col("price_regular") * 1.000001).height
    assert k["promotions"]["quarantined"] == over > 0
    assert {q["field"] for q in list_quarantine(engine, "stallion", limit=1000)} == {"price"}
    assert all(k[g]["generated"] for g in GENERATED_KINDS)
    assert all(k[g]["stored"] > 0 for g in GENERATED_KINDS)
    sales = read_sales("stallion", facts_dir=settings.facts_dir)
    assert sales.height == 21_000
    assert read_inventory("stallion", facts_dir=settings.facts_dir).height == 350

    again = load_into_store(settings, "stallion", engine=engine)
    assert all(v["status"] == "already_ingested" and v["stored"] == 0 for v in again["kinds"].values())
    assert read_sales("stallion", facts_dir=settings.facts_dir).height == 21_000
