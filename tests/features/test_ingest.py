"""Ingest end to end on a real SQLite file and a real PostgreSQL (``engine``) plus the Parquet store."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
import sqlalchemy as sa

from features.facts import read_lead_times, read_sales
from features.identity import add_aliases
from features.ingest import ingest, list_batches, list_quarantine
from features.synth import SynthData

SALES_HEADER = "sku_id,location_id,channel_id,date,qty,price,promo\n"


def _ingest(kind, path, engine, settings, tenant="t1"):
    return ingest(kind, path, tenant=tenant, engine=engine, settings=settings)


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(df.columns)


def _count(engine, table: str, tenant: str = "t1") -> int:
    with engine.connect() as c:
        sql = sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t")
        return c.execute(sql, {"t": tenant}).scalar()


def test_every_synthetic_kind_ingests_clean_and_reads_back(engine, settings, small, files):
    for kind in SynthData.INGEST_ORDER:
        r = _ingest(kind, files[kind], engine, settings)
        assert (r.exit_code, r.rows_quarantined) == (0, 0), r.summary()
        assert r.rows_total == r.rows_stored == small.tables()[kind].height
    stored = read_sales("t1", facts_dir=settings.facts_dir)
    expected = small.sales.with_columns(pl.col("qty").cast(pl.Float64))
    assert _sorted(stored).equals(_sorted(expected))
    assert _count(engine, "planning_units") == small.planning_units.height
    assert _count(engine, "purchase_orders") == small.purchase_orders.height
    lt = read_lead_times("t1", facts_dir=settings.facts_dir)
    assert lt.height == small.lead_times.height


def test_same_file_twice_adds_nothing(engine, settings, identities):
    first = _ingest("sales", identities["sales"], engine, settings)
    again = _ingest("sales", identities["sales"], engine, settings)
    assert first.status == "stored" and again.status == "already_ingested" and again.exit_code == 0
    assert again.batch_id == first.batch_id
    assert read_sales("t1", facts_dir=settings.facts_dir).height == first.rows_stored
    skus_again = _ingest("skus", identities["skus"], engine, settings)
    assert skus_again.status == "already_ingested"


def test_same_rows_in_another_file_are_duplicates_not_added(engine, settings, identities, tmp_path):
    _ingest("sales", identities["sales"], engine, settings)
    shuffled = tmp_path / "shuffled.csv"
    pl.read_csv(identities["sales"]).sample(fraction=1.0, shuffle=True, seed=1).write_csv(shuffled)
    r = _ingest("sales", shuffled, engine, settings)
    assert (r.exit_code, r.rows_stored, r.rows_quarantined) == (0, 0, 0)
    assert r.rows_duplicate == r.rows_total
    assert read_sales("t1", facts_dir=settings.facts_dir).height == r.rows_total


def test_bad_rows_are_quarantined_and_nothing_stored_is_lost(engine, settings, identities, tmp_path):
    assert _ingest("sales", identities["sales"], engine, settings).exit_code == 0
    before = _sorted(read_sales("t1", facts_dir=settings.facts_dir))
    bad = tmp_path / "bad.csv"
    bad.write_text(SALES_HEADER
                   + "SKU_001,STORE_001,store,2030-01-01,5,4.0,false\n"     # 1 good
                   + "SKU_001,STORE_001,store,2030-01-02,abc,4.0,false\n"   # 2 wrong type
                   + "SKU_001,STORE_001,store,2030-01-03,-2,4.0,false\n"    # 3 negative quantity
                   + "SKU_999,STORE_001,store,2030-01-04,3,4.0,false\n"     # 4 unknown SKU
                   + "SKU_001,STORE_001,store,2030-01-05,1,4.0,false\n"     # 5 duplicate key
                   + "SKU_001,STORE_001,store,2030-01-05,2,4.0,false\n"     # 6 duplicate key
                   + "SKU_001,STORE_001,store,2030-02-30,2,4.0,maybe\n"     # 7 bad date and bool
                   + "SKU_002,STORE_001,store,2030-01-01,,,\n")             # 8 missing qty, promo
    r = _ingest("sales", bad, engine, settings)
    assert r.exit_code == 1 and r.status == "partial"
    assert (r.rows_total, r.rows_stored, r.rows_quarantined) == (8, 1, 7)
    entries = list_quarantine(engine, "t1", batch_id=r.batch_id)
    got = {(q["row_number"], q["field"], q["value"]) for q in entries}
    key = "sku_id,location_id,channel_id,date"
    assert got == {
        (2, "qty", "abc"), (3, "qty", "-2"), (4, "sku_id", "SKU_999"),
        (5, key, "SKU_001|STORE_001|store|2030-01-05"), (6, key, "SKU_001|STORE_001|store|2030-01-05"),
        (7, "date", "2030-02-30"), (7, "promo", "maybe"), (8, "qty", None), (8, "promo", None),
    }
    entries = list_quarantine(engine, "t1", batch_id=r.batch_id)
    assert all(q["file_name"] == str(bad) and q["kind"] == "sales" for q in entries)
    assert {q["expected"] for q in entries if q["field"] == "qty"} == {"number >= 0, not empty"}
    after = read_sales("t1", facts_dir=settings.facts_dir)
    assert _sorted(after.filter(pl.col("date") < date(2030, 1, 1))).equals(before)
    assert after.filter(pl.col("date") >= date(2030, 1, 1)).select("sku_id", "date", "qty").rows() == [
        ("SKU_001", date(2030, 1, 1), 5.0)]


def test_missing_column_refuses_the_whole_file(engine, settings, identities, tmp_path):
    assert _ingest("sales", identities["sales"], engine, settings).exit_code == 0
    before = read_sales("t1", facts_dir=settings.facts_dir).height
    f = tmp_path / "no_qty.csv"
    f.write_text("sku_id,location_id,date,price\nSKU_001,STORE_001,2030-01-01,3\n")
    r = _ingest("sales", f, engine, settings)
    assert r.exit_code == 2 and r.status == "refused"
    assert r.missing_columns == ("channel_id", "qty")
    assert "channel_id" in r.summary() and "qty" in r.summary()
    assert read_sales("t1", facts_dir=settings.facts_dir).height == before
    assert list_quarantine(engine, "t1") == []


def test_nothing_usable_exits_2_and_stores_nothing(engine, settings, identities, tmp_path):
    f = tmp_path / "all_bad.csv"
    f.write_text(SALES_HEADER + "SKU_404,STORE_001,store,2030-01-01,1,,false\n"
                 + "SKU_001,STORE_001,store,yesterday,1,,false\n")
    r = _ingest("sales", f, engine, settings)
    assert (r.exit_code, r.status, r.rows_stored, r.rows_quarantined) == (2, "rejected", 0, 2)
    assert read_sales("t1", facts_dir=settings.facts_dir).height == 0
    assert len(list_quarantine(engine, "t1")) == 2
    # A rejected file may be sent again (after its identities are fixed): it is not "already ingested".
    assert _ingest("sales", f, engine, settings).status == "rejected"


def test_stored_fact_is_never_overwritten_by_a_different_value(engine, settings, identities, tmp_path):
    a = tmp_path / "a.csv"
    a.write_text(SALES_HEADER + "SKU_001,STORE_001,store,2030-01-01,5,4.0,false\n")
    b = tmp_path / "b.csv"
    b.write_text(SALES_HEADER + "SKU_001,STORE_001,store,2030-01-01,9,4.0,false\n"
                 + "SKU_001,STORE_001,store,2030-01-02,1,4.0,false\n")
    assert _ingest("sales", a, engine, settings).exit_code == 0
    r = _ingest("sales", b, engine, settings)
    assert (r.exit_code, r.rows_stored, r.rows_quarantined) == (1, 1, 1)
    [q] = list_quarantine(engine, "t1", batch_id=r.batch_id)
    assert q["row_number"] == 1 and q["value"] == "SKU_001|STORE_001|store|2030-01-01"
    qty = read_sales("t1", facts_dir=settings.facts_dir).sort("date")["qty"].to_list()
    assert qty == [5.0, 1.0]


def test_aliases_resolve_and_ambiguous_or_unknown_codes_are_quarantined(engine, settings, identities,
                                                                         tmp_path):
    add_aliases(engine, "t1", "sku", [("EAN-1", "SKU_001", "erp"), ("X", "SKU_001", "erp"),
                                      ("X", "SKU_002", "pos")])
    with pytest.raises(ValueError, match="SKU_NOPE"):
        add_aliases(engine, "t1", "sku", [("EAN-9", "SKU_NOPE", "erp")])
    f = tmp_path / "aliased.csv"
    f.write_text(SALES_HEADER + "EAN-1,STORE_001,store,2030-01-01,5,,false\n"
                 + "X,STORE_001,store,2030-01-02,1,,false\n" + "EAN-2,STORE_001,store,2030-01-03,1,,false\n")
    r = _ingest("sales", f, engine, settings)
    assert (r.rows_stored, r.rows_quarantined) == (1, 2)
    assert read_sales("t1", facts_dir=settings.facts_dir)["sku_id"].to_list() == ["SKU_001"]
    assert {(q["row_number"], q["value"]) for q in list_quarantine(engine, "t1")} == {(2, "X"), (3, "EAN-2")}


def test_tenants_are_isolated(engine, settings, identities):
    r = _ingest("sales", identities["sales"], engine, settings, tenant="t2")  # t2 knows no SKU at all
    assert r.exit_code == 2 and r.rows_stored == 0
    assert read_sales("t2", facts_dir=settings.facts_dir).height == 0
    assert list_quarantine(engine, "t1") == []


def test_reference_data_updates_and_checks_references(engine, settings, identities, tmp_path):
    skus = pl.read_csv(identities["skus"])
    changed = tmp_path / "skus.csv"
    skus.with_columns(pl.when(pl.col("sku_id") == "SKU_001").then(pl.lit("Renamed")).otherwise("name")
                      .alias("name"), pl.lit("red").alias("colour")).write_csv(changed)
    r = _ingest("skus", changed, engine, settings)
    assert (r.exit_code, r.rows_stored, r.rows_updated, r.rows_duplicate) == (0, 0, skus.height, 0)
    with engine.connect() as c:
        name, attrs = c.execute(sa.text("SELECT name, attributes FROM skus WHERE tenant_id='t1' AND "
                                        "sku_id='SKU_001'")).one()
    assert name == "Renamed"
    assert (attrs if isinstance(attrs, dict) else __import__("json").loads(attrs)) == {"colour": "red"}

    terms = tmp_path / "terms.csv"
    terms.write_text("supplier_id,sku_id,unit_cost,moq,pack_size,max_order_qty,promised_lead_time_days\n"
                     "SUP_001,SKU_001,1.5,12,6,1200,7\n"
                     "SUP_404,SKU_001,1.5,12,6,1200,7\n"     # unknown supplier
                     "SUP_001,SKU_002,1.5,12,0,1200,7\n"     # pack size below 1
                     "SUP_001,SKU_003,1.5,12,6,6,7\n")        # max below MOQ
    r = _ingest("supplier_terms", terms, engine, settings)
    assert (r.exit_code, r.rows_stored, r.rows_quarantined) == (1, 1, 3)
    fields = {(q["row_number"], q["field"]) for q in list_quarantine(engine, "t1", batch_id=r.batch_id)}
    assert fields == {(2, "supplier_id"), (3, "pack_size"), (4, "max_order_qty")}

    locs = tmp_path / "locs.csv"
    locs.write_text("location_id,kind,region,parent_id\nDC_09,dc,R9,WH_01\nSTORE_900,store,R9,DC_09\n"
                    "STORE_901,store,R9,DC_77\nSTORE_902,kiosk,R9,DC_09\n")
    r = _ingest("locations", locs, engine, settings)
    assert (r.rows_stored, r.rows_quarantined) == (2, 2)
    fields = {(q["row_number"], q["field"]) for q in list_quarantine(engine, "t1", batch_id=r.batch_id)}
    assert fields == {(3, "parent_id"), (4, "kind")}


def test_purchase_order_and_lead_time_rules(engine, settings, identities, tmp_path):
    po = tmp_path / "po.csv"
    po.write_text("po_id,kind,supplier_id,from_location_id,sku_id,location_id,qty,order_date,eta,status\n"
                  "P1,purchase,SUP_001,,SKU_001,STORE_001,10,2030-01-01,2030-01-08,open\n"
                  "P2,transfer,,,SKU_001,STORE_001,10,2030-01-01,2030-01-08,open\n"      # no origin
                  "P3,purchase,SUP_001,,SKU_001,STORE_001,10,2030-01-09,2030-01-08,open\n"  # eta before order
                  "P4,purchase,SUP_001,,SKU_001,STORE_001,0,2030-01-01,2030-01-08,open\n")  # qty 0
    r = _ingest("purchase_orders", po, engine, settings)
    assert (r.rows_stored, r.rows_quarantined) == (1, 3)
    fields = {(q["row_number"], q["field"]) for q in list_quarantine(engine, "t1", batch_id=r.batch_id)}
    assert fields == {(2, "from_location_id"), (3, "eta"), (4, "qty")}

    lt = tmp_path / "lt.csv"
    lt.write_text("supplier_id,sku_id,order_date,receipt_date\nSUP_001,SKU_001,2030-01-01,2030-01-09\n"
                  "SUP_001,SKU_001,2030-02-01,2030-01-09\n")
    r = _ingest("lead_times", lt, engine, settings)
    assert (r.rows_stored, r.rows_quarantined) == (1, 1)
    assert read_lead_times("t1", facts_dir=settings.facts_dir)["lead_time_days"].to_list() == [8.0]


def test_parquet_input_with_wrong_column_types(engine, settings, identities, tmp_path):
    f = tmp_path / "sales.parquet"
    pl.DataFrame({"sku_id": ["SKU_001", "SKU_002"], "location_id": ["STORE_001", "STORE_001"],
                  "channel_id": ["store", "store"], "date": ["2030-01-01", "2030-01-40"],
                  "qty": ["1.5", "2"], "promo": [1, 0]}).write_parquet(f)
    r = _ingest("sales", f, engine, settings)
    assert (r.rows_stored, r.rows_quarantined) == (1, 1)
    [q] = list_quarantine(engine, "t1", batch_id=r.batch_id)
    assert (q["row_number"], q["field"], q["value"]) == (2, "date", "2030-01-40")
    stored = read_sales("t1", facts_dir=settings.facts_dir)
    assert stored.select("qty", "promo", "price").row(0) == (1.5, True, None)


def test_failed_recording_leaves_no_fact_files(engine, settings, identities, monkeypatch):
    import features.ingest as mod

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(mod, "_record", fail)
    with pytest.raises(RuntimeError, match="went away"):
        _ingest("sales", identities["sales"], engine, settings)
    assert read_sales("t1", facts_dir=settings.facts_dir).height == 0
    assert list(settings.facts_dir.rglob("*.parquet*")) == []
    assert list_batches(engine, "t1")[0]["kind"] != "sales"


def test_customer_commitments(engine, settings, identities, tmp_path):
    f = tmp_path / "commitments.csv"
    f.write_text("commitment_id,customer_id,sku_id,location_id,channel_id,qty,due_date,priority\n"
                 "C1,ACME,SKU_001,STORE_001,store,40,2030-03-01,2\n"
                 "C2,ACME,SKU_001,STORE_001,,10,2030-03-02,\n"          # no channel: allowed; priority empty
                 "C3,ACME,SKU_001,STORE_001,store,10,2030-03-02,0\n")
    r = _ingest("customer_commitments", f, engine, settings)
    assert (r.rows_stored, r.rows_quarantined) == (2, 1)
    [q] = list_quarantine(engine, "t1", batch_id=r.batch_id)
    assert (q["row_number"], q["field"], q["value"]) == (2, "priority", None)
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT commitment_id, qty, priority, status FROM customer_commitments "
                                 "WHERE tenant_id='t1' ORDER BY commitment_id")).all()
    assert [tuple(r) for r in rows] == [("C1", 40.0, 2, "open"), ("C3", 10.0, 0, "open")]


def test_bad_reference_rows_leave_stored_rows_untouched(engine, settings, identities, tmp_path):
    with engine.connect() as c:
        before = c.execute(sa.text("SELECT location_id, kind, parent_id FROM locations WHERE tenant_id='t1' "
                                   "ORDER BY location_id")).all()
    f = tmp_path / "locs.csv"
    store = next(r[0] for r in before if r[1] == "store")
    f.write_text(f"location_id,kind,parent_id\n{store},galaxy,\n{store},store,NOWHERE\n")
    r = _ingest("locations", f, engine, settings)
    assert (r.exit_code, r.rows_stored, r.rows_updated) == (2, 0, 0)
    with engine.connect() as c:
        after = c.execute(sa.text("SELECT location_id, kind, parent_id FROM locations WHERE tenant_id='t1' "
                                  "ORDER BY location_id")).all()
    assert after == before


def test_planning_units_without_a_horizon_leave_it_to_the_grid(tmp_path):
    """An absent horizon_periods is stored empty (the tenant's grid decides), not as 28 of any period."""
    import polars as pl

    from features.ingest import ingest
    from features.settings import get_settings
    from features.synth import generate
    from features.tables import read_table

    settings = get_settings()
    settings.ensure_home()
    data = generate(4, 30, freq="W", seed=2)
    data.write(tmp_path / "f", fmt="csv")
    for kind in ("channels", "locations", "skus"):
        ingest(kind, tmp_path / "f" / f"{kind}.csv", tenant="h1", settings=settings)
    data.planning_units.drop("horizon_periods").write_csv(tmp_path / "pu.csv")
    assert ingest("planning_units", tmp_path / "pu.csv", tenant="h1", settings=settings).status == "stored"
    pu = read_table("planning_units", "h1", settings=settings)
    assert pu.height == 4 and pu["horizon_periods"].null_count() == 4
    assert pu.schema["horizon_periods"] == pl.Int64
