"""Read every ingest KIND back from the stores as polars frames with the contract's columns.

The frames have the shape ``features.synth.SynthData`` has, so code written against the generator runs on
stored data unchanged::

    from features.tables import read_tables
    frames = read_tables("demo", engine=engine)          # {"sales": ..., "skus": ..., "planning_units": ...}
    inputs = planning.inputs_from_frames(**frames)

Reference data (skus, locations, channels, suppliers, supplier_terms, planning_units, purchase_orders,
customer_commitments) comes from the SQL state store, facts (sales, inventory, promotions, lead_times) from
the Parquet fact store. Columns and dtypes follow ``features.contracts`` (``str`` -> String, ``int`` -> Int64,
``float`` -> Float64, ``date`` -> Date, ``bool`` -> Boolean); rows are sorted by the contract's key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
from sqlalchemy import select
from sqlalchemy.engine import Engine

from features.contracts import CONTRACTS, get_contract
from features.facts import fact_schema, read_facts
from features.store import Base

__all__ = ["read_table", "read_tables"]


def read_table(kind: str, tenant: str, *, engine: Engine | None = None, settings=None,
               start: date | None = None, end: date | None = None) -> pl.DataFrame:
    """One KIND for ``tenant`` as a frame with the contract's columns, sorted by its key.

    Args:
        kind: an ingest KIND (``features.contracts.KINDS``).
        tenant: whose rows.
        engine: state store (needed for reference data); default from ``settings``.
        settings: default ``get_settings()``.
        start: for facts, first period included.
        end: for facts, last period included.
    """
    contract = get_contract(kind)
    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    schema = fact_schema(kind)
    if contract.store == "facts":
        frame = read_facts(contract.table, tenant, start, end, facts_dir=settings.facts_dir)
        if frame.height == 0:
            return pl.DataFrame(schema=schema)
        return frame.select([pl.col(c).cast(t) for c, t in schema.items()]).sort(list(contract.key))
    own = engine is None
    if own:
        from features.store import make_engine

        engine = make_engine(settings.database_url)
    try:
        table = Base.metadata.tables[contract.table]
        stmt = (select(*[table.c[c] for c in contract.names]).where(table.c.tenant_id == tenant)
                .order_by(*[table.c[k] for k in contract.key]))
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
    finally:
        if own:
            engine.dispose()
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def read_tables(tenant: str, *, engine: Engine | None = None, settings=None,
                kinds: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
    """Every KIND (or those in ``kinds``) for ``tenant``: ``{kind: frame}`` (see :func:`read_table`)."""
    return {k: read_table(k, tenant, engine=engine, settings=settings) for k in (kinds or CONTRACTS)}
