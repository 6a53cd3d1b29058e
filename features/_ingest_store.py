"""Storing a validated batch: comparing with what is stored, then one atomic write per batch.

Facts (Parquet): rows whose key is already stored with equal values are dropped as duplicates; rows whose key
is stored with other values are quarantined (history is append-only); the rest are written with
``features.facts._store.write_partitions`` (temp files, then atomic renames).

Reference data (SQL): new keys are inserted, equal rows are duplicates, changed rows update the stored ones,
all in the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl
from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from features._ingest_read import ROW
from features.contracts import Contract
from features.facts import partition_files
from features.store import Base, utcnow

__all__ = ["split_against_stored_facts", "upsert_sql"]


def _diff_mask(values: Sequence[str]) -> pl.Expr:
    if not values:
        return pl.lit(False)
    return pl.any_horizontal(pl.col(v).ne_missing(pl.col(f"{v}__old")) for v in values)


def split_against_stored_facts(facts_dir: Path, contract: Contract, tenant: str,
                               good: pl.DataFrame) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """(new rows, number of duplicates, conflicting rows with ``__row``) of ``good`` against the stored facts.

    Only the monthly partitions the batch touches are read, and only their key and value columns.
    """
    pf = contract.period_field
    bounds = good.select(pl.col(pf).min().alias("lo"), pl.col(pf).max().alias("hi")).row(0)
    files = partition_files(facts_dir, contract.table, tenant, bounds[0], bounds[1]) if good.height else []
    if not files:
        return good, 0, good.clear().select(ROW)
    periods = good.select(pl.col(pf).dt.strftime("%Y-%m").unique())[pf].to_list()
    files = [f for f in files if f.parent.name.split("=", 1)[1] in set(periods)]
    if not files:
        return good, 0, good.clear().select(ROW)
    cols = list(contract.key) + list(contract.values)
    stored = pl.scan_parquet(files).select(cols).rename({v: f"{v}__old" for v in contract.values}).collect()
    if stored.height == 0:
        return good, 0, good.clear().select(ROW)
    joined = good.join(stored.with_columns(pl.lit(True).alias("__stored")), on=list(contract.key), how="left",
                       maintain_order="left")
    is_stored = pl.col("__stored").fill_null(False)
    differs = _diff_mask(contract.values)
    conflicts = joined.filter(is_stored & differs).select(ROW)
    n_dup = joined.filter(is_stored & ~differs).height
    new = joined.filter(~is_stored).select(good.columns)
    return new, n_dup, conflicts


def upsert_sql(conn: Connection, contract: Contract, tenant: str, good: pl.DataFrame,
               extra_columns: Sequence[str] = ()) -> tuple[int, int, int]:
    """Insert new rows, update changed ones; return (inserted, updated, duplicates).

    Args:
        conn: connection inside the batch's transaction.
        contract: the KIND's contract (``store == "sql"``).
        tenant: owner of the rows.
        good: validated rows with the contract's fields (identities resolved) and, for ``skus``, the file's
            extra columns.
        extra_columns: those extra columns, kept as the ``attributes`` JSON of ``skus``.
    """
    table = Base.metadata.tables[contract.table]
    key, values = list(contract.key), list(contract.values)
    has_attrs = contract.kind == "skus"
    frame = good.select(key + values + (list(extra_columns) if has_attrs else []))
    if has_attrs:
        attrs: list[str | None] = [None] * frame.height
        if extra_columns:
            attrs = [json.dumps({k: v for k, v in r.items() if v is not None}, sort_keys=True, default=str)
                     for r in frame.select(extra_columns).iter_rows(named=True)]
        frame = frame.drop(list(extra_columns)).with_columns(pl.Series("attributes", attrs, dtype=pl.String))
        values = values + ["attributes"]
    rows = conn.execute(select(*[table.c[c] for c in key + values]).where(table.c.tenant_id == tenant)).all()
    stored_schema = {c: frame.schema[c] for c in key + values}
    stored = pl.DataFrame([tuple(_norm(c, v) for c, v in zip(key + values, r, strict=True)) for r in rows],
                          schema=stored_schema, orient="row")
    old = stored.rename({v: f"{v}__old" for v in values}).with_columns(pl.lit(True).alias("__s"))
    joined = frame.join(old, on=key, how="left", maintain_order="left")
    is_stored = pl.col("__s").fill_null(False)
    differs = _diff_mask(values)
    new = joined.filter(~is_stored).select(key + values)
    changed = joined.filter(is_stored & differs).select(key + values)
    n_dup = joined.filter(is_stored & ~differs).height
    now = utcnow()
    if new.height:
        records = [_decode(r, has_attrs) | {"tenant_id": tenant, "updated_at": now} for r in new.to_dicts()]
        conn.execute(insert(table), records)
    if changed.height:
        stmt = (update(table)
                .where(and_(table.c.tenant_id == bindparam("b_tenant_id"),
                            *[table.c[k] == bindparam(f"b_{k}") for k in key]))
                .values({v: bindparam(f"b_{v}") for v in [*values, "updated_at"]}))
        records = [{f"b_{k}": v for k, v in (_decode(r, has_attrs) | {"tenant_id": tenant,
                                                                          "updated_at": now}).items()}
                   for r in changed.to_dicts()]
        conn.execute(stmt, records)
    return new.height, changed.height, n_dup


def _norm(column: str, value):
    if column == "attributes" and value is not None and not isinstance(value, str):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _decode(record: dict, has_attrs: bool) -> dict:
    if has_attrs and record.get("attributes") is not None:
        record = dict(record)
        record["attributes"] = json.loads(record["attributes"])
    return record

