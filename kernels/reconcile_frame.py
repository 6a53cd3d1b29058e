"""Frame-level reconciliation: hierarchy level columns and long forecast frames in, long frames out.

The rest of the project speaks frames. :func:`frame_hierarchy` turns one row per bottom series with its level
columns (e.g. ``region``, ``store``, ``sku``) and an aggregation spec into node ids and the sparse summing
matrix; :func:`reconcile_frame` takes long frames (``unique_id``, ``ds``, value) of base forecasts, and of
in-sample residuals or history when the method needs them, and returns the reconciled forecasts as a long
frame of the same kind (polars in, polars out; pandas in, pandas out). Polars does the joins (multithreaded);
the maths is :func:`kernels.reconcile.reconcile`.

Node ids: ``"total"`` for the empty key, else ``"col=value/col=value"`` over the spec entry's columns, e.g.
``"region=R1/store=S3"``. A spec lists the aggregation keys, e.g. a tree
``[[], ["region"], ["region", "store"], ["region", "store", "sku"]]`` or a grouped structure
``[[], ["region"], ["category"], ["region", "category"], ["region", "store", "sku"]]``; the last entry must
identify each bottom series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from kernels.reconcile import Hierarchy, reconcile

__all__ = ["FrameHierarchy", "frame_hierarchy", "reconcile_frame"]


@dataclass(frozen=True)
class FrameHierarchy:
    """A hierarchy with named nodes.

    Attributes:
        ids: node ids in the row order of ``S``, polars Series of n strings (aggregates first, bottom last).
        levels: index into the spec of each node, shape (n,).
        spec: the aggregation keys used.
        hierarchy: the analysed summing matrix (n x m).
    """

    ids: pl.Series
    levels: np.ndarray
    spec: tuple[tuple[str, ...], ...]
    hierarchy: Hierarchy

    @property
    def S(self) -> sp.csr_array:
        """The summing matrix, CSR (n x m)."""
        return self.hierarchy.S


def _to_polars(frame: Any, name: str) -> tuple[pl.DataFrame, bool]:
    if isinstance(frame, pl.DataFrame):
        return frame, False
    try:
        import pandas as pd  # noqa: PLC0415 - only when a pandas frame is passed
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame), True
    raise TypeError(f"{name} must be a polars or pandas DataFrame, got {type(frame).__name__}")


def _node_ids(keys: pl.DataFrame, cols: Sequence[str]) -> pl.Series:
    if not cols:
        return pl.Series("id", ["total"] * keys.height, dtype=pl.String)
    parts = [pl.lit(f"{c}=") + pl.col(c).cast(pl.String) for c in cols]
    return keys.select(pl.concat_str(parts, separator="/").alias("id")).to_series()


def frame_hierarchy(keys: Any, spec: Sequence[Sequence[str]]) -> FrameHierarchy:
    """Build the named hierarchy of the bottom series in ``keys``.

    Args:
        keys: one row per bottom series with the level columns the spec names (polars or pandas).
        spec: aggregation keys, top first; the last entry identifies the bottom series.

    Returns:
        The :class:`FrameHierarchy`; nodes are ordered by spec entry, then by their key values.

    Raises:
        ValueError: a spec column is missing or null, or the last spec entry does not identify rows uniquely.
    """
    keys, _ = _to_polars(keys, "keys")
    spec = tuple(tuple(s) for s in spec)
    if not spec or not spec[-1]:
        raise ValueError(
            "spec must end with the columns that identify a bottom series, e.g. ['store', 'sku']"
        )
    for cols in spec:
        for c in cols:
            if c not in keys.columns:
                raise ValueError(f"spec column {c!r} is not a column of keys (columns: {keys.columns})")
            nulls = keys[c].null_count()
            if nulls:
                row = int(keys[c].is_null().arg_true()[0])
                raise ValueError(
                    f"keys column {c!r} is null in row {row}; every bottom series needs all levels"
                )
    m = keys.height
    # Sort and rank on the typed key columns (cheap); id strings are built once per node only.
    bottom_cols = list(spec[-1])
    keys = keys.with_row_index("__row").sort(bottom_cols, maintain_order=True)
    dup = ~keys.select(pl.struct(bottom_cols).is_first_distinct()).to_series()
    if dup.any():
        k = int(dup.arg_true()[0])
        row, first = (
            int(keys["__row"][k]),
            int(keys["__row"][k - 1]),
        )  # duplicates are adjacent after the sort
        raise ValueError(
            f"keys row {row} ({_node_ids(keys[k], spec[-1])[0]}) is not unique for spec entry "
            f"{bottom_cols}: row {first} has the same key"
        )
    bottom_ids = _node_ids(keys, spec[-1])
    ids, levels, rows, cols = [], [], [], []
    offset = 0
    for lev, spec_cols in enumerate(spec[:-1]):
        if spec_cols:
            code = (
                keys.select(pl.struct(list(spec_cols)).rank("dense")).to_series().to_numpy().astype(np.int64)
                - 1
            )
        else:
            code = np.zeros(m, dtype=np.int64)
        first_rows = np.unique(code, return_index=True)[1]
        uniq = _node_ids(keys[first_rows], spec_cols) if spec_cols else pl.Series("id", ["total"])
        ids.append(uniq)
        levels.append(np.full(uniq.len(), lev))
        rows.append(offset + code)
        cols.append(np.arange(m))
        offset += uniq.len()
    ids.append(bottom_ids)
    levels.append(np.full(m, len(spec) - 1))
    rows.append(offset + np.arange(m))
    cols.append(np.arange(m))
    n = offset + m
    S = sp.csr_array(
        (np.ones(sum(r.size for r in rows)), (np.concatenate(rows), np.concatenate(cols))), shape=(n, m)
    )
    return FrameHierarchy(
        ids=pl.concat(ids, rechunk=True).rename("unique_id"),
        levels=np.concatenate(levels),
        spec=spec,
        hierarchy=Hierarchy(S),
    )


def _wide(frame: pl.DataFrame, fh: FrameHierarchy, what: str, id_col: str, time_col: str, value_col: str):
    """Long (id, time, value) frame to an (n, t) array in node order, with the sorted time values.

    Ids are matched run by run (``rle``): a long frame keeps each series' rows together, so only one id per
    run is looked up instead of one per row (any order still works, with more runs). When every node is one
    run with the same increasing times, the values are reshaped without any scatter.
    """
    for c in (id_col, time_col, value_col):
        if c not in frame.columns:
            raise ValueError(f"{what} has no column {c!r} (columns: {frame.columns})")
    runs = frame[id_col].cast(pl.String).rle().struct.unnest()
    nodes = pl.DataFrame({"value": fh.ids, "__pos": np.arange(fh.ids.len(), dtype=np.int64)})
    run_pos = runs.join(nodes, on="value", how="left", maintain_order="left")
    unknown = run_pos["__pos"].is_null()
    if unknown.any():
        k = int(unknown.arg_true()[0])
        row = int(runs["len"][:k].sum())
        raise ValueError(f"{what} row {row}: {id_col} {runs['value'][k]!r} is not a node of the hierarchy")
    run_rows = run_pos["__pos"].to_numpy()
    run_len = run_pos["len"].to_numpy()
    t_col = frame[time_col]
    if t_col.null_count():
        raise ValueError(f"{what} has a null {time_col} in row {int(t_col.is_null().arg_true()[0])}")
    n = fh.ids.len()
    fast = _wide_by_runs(frame[value_col], t_col, run_rows, run_len, n)
    if fast is not None:
        return fast
    pos = np.repeat(run_rows, run_len)
    times = t_col.unique().sort()
    t_code = np.searchsorted(times.to_numpy(), t_col.to_numpy())
    t = times.len()
    flat = pos * t + t_code
    counts = np.bincount(flat, minlength=n * t)
    if counts.max(initial=0) > 1:
        k = int(np.argmax(counts > 1))
        raise ValueError(
            f"{what} has several rows for {id_col} {fh.ids[k // t]!r} at {time_col} {times[k % t]}"
        )
    if (counts == 0).any():
        k = int(np.argmax(counts == 0))
        raise ValueError(
            f"{what} has no row for {id_col} {fh.ids[k // t]!r} at {time_col} {times[k % t]}; "
            "every node needs a value at every time"
        )
    out = np.empty(n * t)
    out[flat] = frame[value_col].cast(pl.Float64).to_numpy()
    return out.reshape(n, t), times


def _wide_by_runs(values: pl.Series, t_col: pl.Series, run_rows, run_len, n: int):
    """The (n, t) array when each node is one run of rows with the same increasing times, else None."""
    if run_rows.size != n or run_len.size == 0 or not (run_len == run_len[0]).all():
        return None
    if np.bincount(run_rows, minlength=n).max() != 1:
        return None
    t = int(run_len[0])
    grid = t_col.to_numpy().reshape(n, t)
    first = grid[0]
    if t > 1 and not (first[1:] > first[:-1]).all():
        return None
    if not (grid == first).all():
        return None
    v = values.cast(pl.Float64).to_numpy().reshape(n, t)
    if np.array_equal(run_rows, np.arange(n)):
        return v, t_col[:t]
    out = np.empty((n, t))
    out[run_rows] = v
    return out, t_col[:t]


def reconcile_frame(
    forecasts: Any,
    fh: FrameHierarchy,
    method: str,
    *,
    residuals: Any = None,
    y_insample: Any = None,
    id_col: str = "unique_id",
    time_col: str = "ds",
    value_col: str = "y_hat",
    residual_col: str = "residual",
    history_col: str = "y",
    **kwargs: Any,
) -> Any:
    """Reconcile a long frame of base forecasts for every node of ``fh``.

    Args:
        forecasts: long frame with ``id_col``, ``time_col``, ``value_col``; one row per node and time.
        fh: the named hierarchy (:func:`frame_hierarchy`).
        method: a method of :func:`kernels.reconcile.reconcile`.
        residuals: long frame (``id_col``, ``time_col``, ``residual_col``) of in-sample residuals, for
            ``wls_var`` and ``mint_shrink``.
        y_insample: long frame (``id_col``, ``time_col``, ``history_col``) of history, for historical top-down
            proportions.
        id_col: node id column.
        time_col: time column.
        value_col: forecast column (kept as the output's value column).
        residual_col: residual column of ``residuals``.
        history_col: value column of ``y_insample``.
        **kwargs: passed to :func:`kernels.reconcile.reconcile` (``nonnegative``, ``level``,
        ``proportions``...).

    Returns:
        Long frame (``id_col``, ``time_col``, ``value_col``) of reconciled forecasts, nodes in hierarchy
        order, of the same kind (polars or pandas) as ``forecasts``.
    """
    frame, was_pandas = _to_polars(forecasts, "forecasts")
    y_hat, times = _wide(frame, fh, "forecasts", id_col, time_col, value_col)
    R = Y = None
    if residuals is not None:
        R, _ = _wide(_to_polars(residuals, "residuals")[0], fh, "residuals", id_col, time_col, residual_col)
    if y_insample is not None:
        Y, _ = _wide(_to_polars(y_insample, "y_insample")[0], fh, "y_insample", id_col, time_col, history_col)
    y_tilde = reconcile(fh.hierarchy, y_hat, method, residuals=R, y_insample=Y, **kwargs)
    n, t = y_tilde.shape
    out = pl.DataFrame(
        {
            id_col: fh.ids.gather(np.repeat(np.arange(n), t)),
            time_col: times.gather(np.tile(np.arange(t), n)),
            value_col: y_tilde.ravel(),
        }
    )
    return out.to_pandas() if was_pandas else out
