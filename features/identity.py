"""Identity resolution: map the codes a file uses onto the tenant's internal ids, never guessing.

A value names an entity (``sku``, ``location``, ``channel``, ``supplier``) when it is one of the tenant's
internal ids or an external alias of exactly one of them (``external_aliases``, any source). Anything else
(unknown, or an alias claimed by two different entities) is unresolved, and ingest quarantines the row.

API::

    add_aliases(engine, "acme", "sku", [("EAN-400123", "SKU_001", "erp")])
    resolve_ids(engine, "acme", "sku", ["SKU_001", "EAN-400123", "nope"])
    # -> {"SKU_001": "SKU_001", "EAN-400123": "SKU_001", "nope": None}

For frames, :func:`load_resolver` reads the lookup once and :meth:`Resolver.expressions` gives the vectorised
polars expressions ingest uses (resolved value, unresolved flag).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import polars as pl
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from features.store import (
    ALIAS_ENTITIES,
    Channel,
    ExternalAlias,
    Location,
    Sku,
    Supplier,
    session_scope,
)

__all__ = ["ENTITY_COLUMNS", "Resolver", "add_aliases", "load_resolver", "resolve_ids"]

#: entity -> (table, id column)
ENTITY_COLUMNS = {
    "sku": (Sku.__table__, "sku_id"),
    "location": (Location.__table__, "location_id"),
    "channel": (Channel.__table__, "channel_id"),
    "supplier": (Supplier.__table__, "supplier_id"),
}


@dataclasses.dataclass(frozen=True)
class Resolver:
    """Lookup of one entity for one tenant.

    Attributes:
        entity: ``sku``, ``location``, ``channel`` or ``supplier``.
        known: internal ids, shape (n_known,).
        alias_from: external ids with exactly one target, shape (n_alias,).
        alias_to: their internal ids, shape (n_alias,).
        ambiguous: external ids that name several entities (never resolved).
    """

    entity: str
    known: pl.Series
    alias_from: pl.Series
    alias_to: pl.Series
    ambiguous: pl.Series

    def with_known(self, extra: pl.Series) -> Resolver:
        """A resolver that also accepts ``extra`` internal ids (rows of the same batch)."""
        known = pl.concat([self.known, extra.drop_nulls().cast(pl.String)]).unique()
        return dataclasses.replace(self, known=known)

    def expressions(self, column: str) -> tuple[pl.Expr, pl.Expr]:
        """(resolved value, unresolved flag) for the String column ``column``; nulls are neither."""
        col = pl.col(column)
        is_known = col.is_in(self.known.implode())
        if self.alias_from.len() == 0:
            return col, col.is_not_null() & ~is_known
        via_alias = col.replace_strict(self.alias_from, self.alias_to, default=None, return_dtype=pl.String)
        resolved = pl.when(is_known).then(col).otherwise(via_alias)
        return resolved, col.is_not_null() & resolved.is_null()


def load_resolver(conn: Connection, tenant_id: str, entity: str) -> Resolver:
    """Read the internal ids and aliases of ``entity`` for ``tenant_id``."""
    if entity not in ENTITY_COLUMNS:
        raise ValueError(f"entity={entity!r}: expected one of {', '.join(ALIAS_ENTITIES)}")
    table, id_col = ENTITY_COLUMNS[entity]
    ids = conn.execute(select(table.c[id_col]).where(table.c.tenant_id == tenant_id)).scalars().all()
    a = ExternalAlias.__table__
    rows = conn.execute(select(a.c.external_id, a.c.internal_id)
                        .where(a.c.tenant_id == tenant_id, a.c.entity == entity)).all()
    aliases = pl.DataFrame(rows, schema={"external_id": pl.String, "internal_id": pl.String}, orient="row")
    targets = aliases.unique().group_by("external_id").agg(pl.col("internal_id").first(), pl.len().alias("n"))
    single = targets.filter(pl.col("n") == 1)
    return Resolver(entity=entity, known=pl.Series("known", ids, dtype=pl.String),
                    alias_from=single["external_id"], alias_to=single["internal_id"],
                    ambiguous=targets.filter(pl.col("n") > 1)["external_id"])


def resolve_ids(engine: Engine, tenant_id: str, entity: str, values: Iterable[str]) -> dict[str, str | None]:
    """Internal id of each value (None when unknown or ambiguous)."""
    values = list(values)
    with engine.connect() as conn:
        r = load_resolver(conn, tenant_id, entity)
    resolved, _ = r.expressions("v")
    out = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(resolved.alias("r"))["r"]
    return dict(zip(values, out.to_list(), strict=True))


def add_aliases(engine: Engine, tenant_id: str, entity: str,
                aliases: Iterable[tuple[str, str, str]]) -> int:
    """Record ``(external_id, internal_id, source)`` aliases of ``entity``; return how many were new.

    Raises:
        ValueError: an internal id is not a known ``entity`` of the tenant (named in the message).
    """
    rows = list(aliases)
    with session_scope(engine) as s:
        conn = s.connection()
        r = load_resolver(conn, tenant_id, entity)
        known = set(r.known.to_list())
        unknown = sorted({internal for _, internal, _ in rows if internal not in known})
        if unknown:
            raise ValueError(f"{entity} aliases: unknown internal id(s) {', '.join(unknown[:10])}; "
                             f"store the {entity} first")
        a = ExternalAlias.__table__
        existing = set(conn.execute(select(a.c.source, a.c.external_id)
                                    .where(a.c.tenant_id == tenant_id, a.c.entity == entity)).all())
        new = [{"tenant_id": tenant_id, "entity": entity, "source": src, "external_id": ext,
                "internal_id": internal} for ext, internal, src in rows if (src, ext) not in existing]
        if new:
            conn.execute(insert(a), new)
    return len(new)
