"""The fact store's read API, atomic writes and robustness of ingest against malformed files."""

from __future__ import annotations

import threading
from datetime import date

import polars as pl

from features.facts import fact_schema, list_periods, read_sales, scan_facts, write_facts
from features.facts._store import delete_batch
from features.ingest import ingest


def test_empty_store_reads_empty_frames_with_the_contract_schema(settings):
    df = read_sales("nobody", facts_dir=settings.facts_dir)
    assert df.height == 0 and dict(df.schema) == fact_schema("sales")
    assert list_periods("sales", "nobody", facts_dir=settings.facts_dir) == []


def test_read_window_columns_and_partitions(engine, settings, identities):
    r = ingest("sales", identities["sales"], tenant="t1", engine=engine, settings=settings)
    assert r.exit_code == 0
    everything = read_sales("t1", facts_dir=settings.facts_dir)
    lo, hi = date(2023, 1, 10), date(2023, 2, 3)
    window = read_sales("t1", start=lo, end=hi, columns=["sku_id", "date", "qty"],
                        facts_dir=settings.facts_dir)
    assert window.columns == ["sku_id", "date", "qty"]
    expected = everything.filter(pl.col("date").is_between(lo, hi))
    assert window.height == expected.height > 0
    assert window["qty"].sum() == expected["qty"].sum()
    months = sorted(everything["date"].dt.strftime("%Y-%m").unique().to_list())
    assert list_periods("sales", "t1", facts_dir=settings.facts_dir) == months
    lazy = scan_facts("sales", "t1", start=hi, facts_dir=settings.facts_dir)
    assert isinstance(lazy, pl.LazyFrame) and lazy.collect()["date"].min() >= hi


def test_write_facts_for_other_datasets_and_delete_batch(settings):
    days = [date(2030, 1, 5), date(2030, 2, 1), date(2030, 3, 9)]
    f = pl.DataFrame({"sku_id": ["A", "B", "A"], "date": days, "q50": [1.0, 2.0, 3.0]})
    paths = write_facts("forecasts", "t9", f, batch_id="b1", facts_dir=settings.facts_dir)
    assert len(paths) == 3 and all(p.name == "b1.parquet" for p in paths)
    # A leftover temporary file of an interrupted batch is never read.
    (paths[0].parent / ".b2.parquet.tmp").write_bytes(b"not parquet")
    back = scan_facts("forecasts", "t9", facts_dir=settings.facts_dir).collect().sort("date")
    assert back.equals(f)
    assert delete_batch(settings.facts_dir, "forecasts", "t9", "b1") == 3
    assert delete_batch(settings.facts_dir, "forecasts", "t9", "b2") == 1
    assert scan_facts("forecasts", "t9", facts_dir=settings.facts_dir).collect().height == 0


def test_malformed_and_empty_files(engine, settings, identities, tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("sku_id,location_id,channel_id,date,qty\nSKU_001,STORE_001,store,2030-01-01,1,9,9\n")
    r = ingest("sales", ragged, tenant="t1", engine=engine, settings=settings)
    assert r.exit_code == 2 and r.status == "refused" and "cannot read" in r.message
    empty = tmp_path / "empty.csv"
    empty.write_text("sku_id,location_id,channel_id,date,qty\n")
    r = ingest("sales", empty, tenant="t1", engine=engine, settings=settings)
    assert (r.exit_code, r.rows_total) == (2, 0)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet")
    r = ingest("sales", garbage, tenant="t1", engine=engine, settings=settings)
    assert r.exit_code == 2 and r.status == "refused"
    assert read_sales("t1", facts_dir=settings.facts_dir).height == 0


def test_concurrent_ingests_of_one_file_store_it_once(engine, settings, identities):
    results = []

    def run():
        results.append(ingest("sales", identities["sales"], tenant="t1", engine=engine, settings=settings))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["already_ingested", "stored"]
    stored = next(r for r in results if r.status == "stored")
    assert read_sales("t1", facts_dir=settings.facts_dir).height == stored.rows_stored == stored.rows_total
