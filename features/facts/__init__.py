"""The fact store: sales, inventory snapshots, prices/promotions and observed lead times as Parquet.

Read API (what forecasting and planning use)::

    from features.facts import read_sales, scan_facts
    sales = read_sales("demo", start=date(2024, 1, 1), columns=["sku_id", "location_id", "date", "qty"])
    lazy = scan_facts("inventory", "demo")          # polars.LazyFrame, for large reads

* ``read_sales(tenant, start=None, end=None, columns=None)`` -> ``polars.DataFrame`` with sku_id, location_id,
  channel_id (String), date (Date), qty (Float64), price (Float64, may be null), promo (Boolean).
* ``read_inventory`` (sku_id, location_id, date, on_hand, on_order, backorders), ``read_promotions`` (sku_id,
  location_id, channel_id, date, price, regular_price, discount, promo), ``read_lead_times`` (supplier_id,
  sku_id, order_date, receipt_date, lead_time_days; ``start``/``end`` bound ``order_date``).
* ``scan_facts(kind, tenant, ...)`` -> ``polars.LazyFrame`` for any dataset, including ones other packages
  write with ``write_facts`` (e.g. forecasts).

Rows are stored as ingested (identities already resolved to internal ids), in no particular order; sort when
order matters. ``start``/``end`` are inclusive and prune whole monthly partitions before reading. The
layout is ``<facts_dir>/<kind>/tenant=<tenant>/period=<YYYY-MM>/<batch_id>.parquet`` (see
``features.facts._store``), which DuckDB, pyarrow or Ray Data read as a hive-partitioned dataset too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from features.facts._store import delete_batch, partition_files, write_partitions
from features.facts._store import list_periods as _list_periods
from features.facts._store import scan_facts as _scan
from features.facts._store import write_partitions as _write

__all__ = ["delete_batch", "fact_schema", "list_periods", "partition_files", "read_facts", "read_inventory",
           "read_lead_times", "read_promotions", "read_sales", "scan_facts", "write_facts",
           "write_partitions"]


def _facts_dir(facts_dir: Path | None) -> Path:
    if facts_dir is not None:
        return Path(facts_dir)
    from features.settings import get_settings

    return Path(get_settings().facts_dir)


def fact_schema(kind: str) -> dict:
    """Polars schema of a contracted fact KIND (``sales``, ``inventory``, ``promotions``, ``lead_times``)."""
    import polars as pl

    from features.contracts import get_contract

    types = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "date": pl.Date, "bool": pl.Boolean}
    return {f.name: types[f.dtype] for f in get_contract(kind).fields}


def _period_field(kind: str) -> str | None:
    from features.contracts import CONTRACTS

    c = CONTRACTS.get(kind)
    return c.period_field if c is not None else "date"


def scan_facts(kind: str, tenant: str, start: date | None = None, end: date | None = None,
               columns: Sequence[str] | None = None, *, facts_dir: Path | None = None):
    """Lazy frame over ``kind`` for ``tenant`` (``start``/``end`` inclusive on the period field)."""
    from features.contracts import CONTRACTS

    schema = fact_schema(kind) if kind in CONTRACTS else None
    return _scan(_facts_dir(facts_dir), kind, tenant, _period_field(kind), start=start, end=end,
                 columns=columns, schema=schema)


def read_facts(kind: str, tenant: str, start: date | None = None, end: date | None = None,
               columns: Sequence[str] | None = None, *, facts_dir: Path | None = None):
    """Eager :func:`scan_facts`: a ``polars.DataFrame``."""
    return scan_facts(kind, tenant, start, end, columns, facts_dir=facts_dir).collect()


def read_sales(tenant: str, start: date | None = None, end: date | None = None,
               columns: Sequence[str] | None = None, *, facts_dir: Path | None = None):
    """Sales/demand rows of ``tenant`` with ``start <= date <= end``; shape (n_rows, len(columns))."""
    return read_facts("sales", tenant, start, end, columns, facts_dir=facts_dir)


def read_inventory(tenant: str, start: date | None = None, end: date | None = None,
                   columns: Sequence[str] | None = None, *, facts_dir: Path | None = None):
    """Inventory snapshots of ``tenant`` with ``start <= date <= end``."""
    return read_facts("inventory", tenant, start, end, columns, facts_dir=facts_dir)


def read_promotions(tenant: str, start: date | None = None, end: date | None = None,
                    columns: Sequence[str] | None = None, *, facts_dir: Path | None = None):
    """Prices and promotions of ``tenant`` with ``start <= date <= end``."""
    return read_facts("promotions", tenant, start, end, columns, facts_dir=facts_dir)


def read_lead_times(tenant: str, start: date | None = None, end: date | None = None,
                    columns: Sequence[str] | None = None, *, facts_dir: Path | None = None):
    """Observed supplier lead times of ``tenant`` with ``start <= order_date <= end``."""
    return read_facts("lead_times", tenant, start, end, columns, facts_dir=facts_dir)


def list_periods(kind: str, tenant: str, *, facts_dir: Path | None = None) -> list[str]:
    """Monthly partitions (``YYYY-MM``) stored for ``kind`` and ``tenant``."""
    return _list_periods(_facts_dir(facts_dir), kind, tenant)


def write_facts(kind: str, tenant: str, frame, batch_id: str, period_field: str = "date", *,
                facts_dir: Path | None = None) -> list[Path]:
    """Append ``frame`` (a polars DataFrame) to dataset ``kind`` atomically, one file per month.

    For datasets without an ingest contract (forecasts, simulations). Contracted KINDs go through
    ``features.ingest.ingest`` so that they are validated and de-duplicated.
    """
    return _write(_facts_dir(facts_dir), kind, tenant, frame, period_field, batch_id)
