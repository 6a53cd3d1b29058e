"""The reconcile stage's hierarchy: a tenant's forecast units and the levels above them, from its master data.

See :mod:`training.reconcile_stage` (its docstring's "Hierarchy") for the rules; this module builds the
named summing matrix (:func:`build_hierarchy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from kernels.reconcile import Hierarchy

UNIT_COLUMNS = ("sku_id", "location_id", "channel_id")
SKU_ATTRIBUTES = ("category", "family", "brand")
LOCATION_ATTRIBUTES = ("region", "kind", "parent_id")
#: Columns a hierarchy level may name.
LEVEL_COLUMNS = UNIT_COLUMNS + SKU_ATTRIBUTES + LOCATION_ATTRIBUTES
#: Node value of a missing attribute, and of an attribute of a unit missing from the master data.
NONE, UNKNOWN = "(none)", "(unknown)"
_DEFAULT_ORDER = ("category", "family", "brand", "region", "parent_id", "kind", "channel_id")
# Levels whose nodes hold fewer units than this on average (sku_id/location_id over 2-3 channels) get no base
# forecast of their own: a baseline on so few units adds little to the units' forecasts, and leaving them out
# of the solve keeps the aggregate system small (100k units: ~90 aggregates instead of 50k).
_MIN_NODE_UNITS = 4


class HierarchyError(ValueError):
    """The configured hierarchy levels are invalid; the message names the column and the allowed ones."""


@dataclass(frozen=True)
class TenantHierarchy:
    """The named hierarchy of a tenant's forecast units.

    Attributes:
        ids: node ids in the row order of ``S`` (aggregates first, then the m units), length n.
        level: level name of every node, length n.
        keys: ``sku_id``, ``location_id``, ``channel_id`` of every node (null where its level lacks them).
        levels: (name, columns, nodes, role) of every level, top first, the bottom last; role is
            ``reconciled`` (own base forecast, in the solve), ``summed`` (nodes of fewer than
            ``_MIN_NODE_UNITS`` units on average: the sum of their reconciled units) or ``bottom``.
        S: the summing matrix of every node, CSR (n x m), aggregates first.
        solved: rows of ``S`` in the reconciliation (reconciled levels, then the units), increasing.
        hierarchy: the analysed summing matrix of the ``solved`` rows.
        unknown_units: units whose SKU or location is missing from the master data.
    """

    ids: pl.Series
    level: pl.Series
    keys: pl.DataFrame
    levels: tuple[tuple[str, tuple[str, ...], int, str], ...]
    S: sp.csr_array
    solved: np.ndarray
    hierarchy: Hierarchy
    unknown_units: int


def _level_name(cols: Sequence[str]) -> str:
    return "/".join(cols) if cols else "total"


def _unit_attributes(units: pl.DataFrame, skus: pl.DataFrame, locations: pl.DataFrame) -> pl.DataFrame:
    """``units`` with the SKU and location attributes: missing -> NONE, not in master data -> UNKNOWN."""
    sku_attrs = skus.select("sku_id", *SKU_ATTRIBUTES).with_columns(pl.lit(True).alias("__sku"))
    loc_attrs = locations.select("location_id", *LOCATION_ATTRIBUTES).with_columns(
        pl.lit(True).alias("__loc")
    )
    out = units.join(sku_attrs, on="sku_id", how="left", maintain_order="left").join(
        loc_attrs, on="location_id", how="left", maintain_order="left"
    )
    fill = []
    for flag, cols in (("__sku", SKU_ATTRIBUTES), ("__loc", LOCATION_ATTRIBUTES)):
        for c in cols:
            value = pl.when(pl.col(flag).is_null()).then(pl.lit(UNKNOWN)).otherwise(pl.col(c).fill_null(NONE))
            fill.append(value.cast(pl.String).alias(c))
    fill += [pl.col(c).fill_null(NONE) for c in UNIT_COLUMNS]
    return out.with_columns(
        *fill, (pl.col("__sku").is_null() | pl.col("__loc").is_null()).alias("__unknown")
    ).drop("__sku", "__loc")


def _codes(attrs: pl.DataFrame, cols: Sequence[str]) -> np.ndarray:
    if not cols:
        return np.zeros(attrs.height, dtype=np.int64)
    rank = attrs.select(pl.struct(list(cols)).rank("dense")).to_series()
    return rank.to_numpy().astype(np.int64) - 1


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    na, nb = int(a.max(initial=-1)) + 1, int(b.max(initial=-1)) + 1
    return na == nb and np.unique(a * nb + b).size == na


def _resolve_levels(attrs: pl.DataFrame, configured: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """The aggregate levels (bottom excluded) from the profile, or the default from the master data."""
    bottom = frozenset(UNIT_COLUMNS)
    if configured:
        levels, seen = [], set()
        for level in configured:
            for c in level:
                if c not in LEVEL_COLUMNS:
                    raise HierarchyError(
                        f"hierarchy level {list(level)} names unknown column {c!r}; allowed columns: "
                        f"{', '.join(LEVEL_COLUMNS)} (the skus attributes category, family, brand and the "
                        "locations attributes region, kind, parent_id, or the unit keys)"
                    )
            key = frozenset(level)
            if (
                key == bottom or key in seen
            ):  # the bottom level is always there; a reordering is the same level
                continue
            seen.add(key)
            levels.append(tuple(level))
        return levels
    m = attrs.height
    levels: list[tuple[str, ...]] = [()]
    taken: list[np.ndarray] = [np.zeros(m, dtype=np.int64)]
    for c in _DEFAULT_ORDER:
        if attrs.filter(~pl.col(c).is_in([NONE, UNKNOWN])).height == 0:
            continue  # null everywhere: no information
        code = _codes(attrs, [c])
        k = int(code.max(initial=-1)) + 1
        if k >= m or any(_same_partition(code, t) for t in taken):
            continue
        levels.append((c,))
        taken.append(code)
    if attrs["channel_id"].n_unique() > 1:
        levels.append(("sku_id", "location_id"))
    return levels


def _node_ids(first: pl.DataFrame, cols: Sequence[str]) -> pl.Series:
    if not cols:
        return pl.Series("unique_id", ["total"] * first.height, dtype=pl.String)
    parts = [pl.lit(f"{c}=") + pl.col(c).cast(pl.String) for c in cols]
    return first.select(pl.concat_str(parts, separator="/").alias("unique_id")).to_series()


def build_hierarchy(
    units: pl.DataFrame, skus: pl.DataFrame, locations: pl.DataFrame, levels: Sequence[Sequence[str]] = ()
) -> TenantHierarchy:
    """The hierarchy of ``units`` from the master data.

    Args:
        units: one row per bottom unit: ``unique_id``, ``sku_id``, ``location_id``, ``channel_id``; the row
            order is the order of the bottom columns of ``S``.
        skus: the ``skus`` table (``sku_id``, category, family, brand).
        locations: the ``locations`` table (``location_id``, region, kind, parent_id).
        levels: aggregate levels as column lists (``[]`` = total); empty: the default (module docstring).

    Returns:
        The :class:`TenantHierarchy`.

    Raises:
        HierarchyError: a level names a column outside :data:`LEVEL_COLUMNS`.
    """
    attrs = _unit_attributes(units.select("unique_id", *UNIT_COLUMNS), skus, locations)
    agg_levels = _resolve_levels(attrs, levels)
    m = attrs.height
    ids, names, keys, rows, info, solved = [], [], [], [], [], []
    offset = 0
    for cols in agg_levels:
        code = _codes(attrs, cols)
        first_rows = np.unique(code, return_index=True)[1]
        first = attrs[first_rows]
        k = first.height
        ids.append(_node_ids(first, cols))
        names.append(pl.Series("level", [_level_name(cols)] * k, dtype=pl.String))
        # with_columns, not select: a select of literals only would have one row, not k
        blank = [pl.lit(None, pl.String).alias(c) for c in UNIT_COLUMNS if c not in cols]
        keys.append(first.with_columns(blank).select(UNIT_COLUMNS))
        rows.append(offset + code)
        role = "reconciled" if not cols or m >= _MIN_NODE_UNITS * k else "summed"
        info.append((_level_name(cols), tuple(cols), k, role))
        solved.append(np.full(k, role == "reconciled"))
        offset += k
    ids.append(attrs["unique_id"].rename("unique_id"))
    names.append(pl.Series("level", ["bottom"] * m, dtype=pl.String))
    keys.append(units.select(UNIT_COLUMNS))
    rows.append(offset + np.arange(m, dtype=np.int64))
    info.append(("bottom", UNIT_COLUMNS, m, "bottom"))
    solved.append(np.ones(m, dtype=bool))
    n = offset + m
    r = np.concatenate(rows)
    S = sp.csr_array((np.ones(r.size), (r, np.tile(np.arange(m, dtype=np.int64), len(rows)))), shape=(n, m))
    keep = np.flatnonzero(np.concatenate(solved))
    return TenantHierarchy(
        ids=pl.concat(ids, rechunk=True),
        level=pl.concat(names, rechunk=True),
        keys=pl.concat([k.with_columns(pl.all().cast(pl.String)) for k in keys], rechunk=True),
        levels=tuple(info),
        S=S,
        solved=keep,
        hierarchy=Hierarchy(S[keep]),
        unknown_units=int(attrs["__unknown"].sum()),
    )
