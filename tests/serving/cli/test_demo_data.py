"""The demo's Stallion files through the ordinary ingest path: counts, quarantined quirks, idempotence."""

from __future__ import annotations

import polars as pl
import pytest

from features.facts import read_inventory, read_sales
from features.ingest import list_quarantine
from serving.cli._demo_data import GENERATED_KINDS, load_into_store, read_stallion, stallion_sales


@pytest.fixture
def settings():
    from features.settings import get_settings

    s = get_settings()
    s.ensure_home()
    return s


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
    files = sorted(p.name for p in (settings.home / "demo-files").iterdir())
    assert len(files) == 11 and "sales.parquet" in files and "generated_planning_units.parquet" in files
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
