"""Top-down and middle-out reconciliation on strict trees.

Middle-out at level L keeps the base forecasts of the series at depth L (the root is depth 0), sums them
upwards and splits them downwards; top-down is middle-out at L = 0. Bottom series shallower than L are their
own middle series. The split uses one of three proportion rules:

- ``forecast_proportions`` (Athanasopoulos, Ahmed & Hyndman 2009): going down one level at a time,
  a child gets its parent's reconciled value times its base forecast over the sum of its siblings' base
  forecasts (an equal share when that sum is 0);
- ``average_proportions`` (Gross & Sohl 1990, method A): bottom j gets ``mean_t(y_jt / y_Mt)`` of its middle
  series M's value, from in-sample history ``y_insample``;
- ``proportion_averages`` (Gross & Sohl 1990, method F): ``mean_t(y_jt) / mean_t(y_Mt)``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from kernels._reconcile_structure import Hierarchy, TreeLinks

__all__ = ["PROPORTIONS", "middle_out_bottom"]

PROPORTIONS = ("forecast_proportions", "average_proportions", "proportion_averages")


def _anchors(hier: Hierarchy, tree: TreeLinks, level: int) -> np.ndarray:
    """Row of each bottom series' middle series (its ancestor at depth ``level``, or itself), shape (m,)."""
    cur = hier.bottom_rows.copy()
    while True:
        deep = tree.depth[cur] > level
        if not deep.any():
            return cur
        cur[deep] = tree.parent[cur[deep]]


def _children_matrix(hier: Hierarchy, tree: TreeLinks) -> sp.csr_array:
    """CSR (n x n) with a 1 at (parent, child) for every edge of the tree, cached on the hierarchy."""
    cached = hier.__dict__.get("_children_csr")
    if cached is None:
        child = np.flatnonzero(tree.parent >= 0)
        cached = sp.csr_array((np.ones(child.size), (tree.parent[child], child)), shape=(hier.n, hier.n))
        cached.sort_indices()
        cached.indptr = cached.indptr.astype(np.int64)
        cached.indices = cached.indices.astype(np.int64)
        hier.__dict__["_children_csr"] = cached
    return cached


def _split_order(hier: Hierarchy, tree: TreeLinks, level: int) -> np.ndarray:
    """Rows deeper than ``level``, shallowest first (so parents come before children), cached per level."""
    cache = hier.__dict__.setdefault("_split_order", {})
    order = cache.get(level)
    if order is None:
        by_depth = np.argsort(tree.depth, kind="stable")
        order = cache[level] = by_depth[tree.depth[by_depth] > level].astype(np.int64)
    return order


def middle_out_bottom(ops, tree: TreeLinks, y_hat, level: int, proportions: str, y_insample=None):
    """Reconciled bottom-level forecasts by middle-out at depth ``level``.

    Args:
        ops: backend operations for the hierarchy.
        tree: the hierarchy's parent links.
        y_hat: base forecasts, shape (n, k), on the backend's device.
        level: depth of the middle series (0 = top-down).
        proportions: one of :data:`PROPORTIONS`.
        y_insample: in-sample history, shape (n, T); needed by the historical proportion rules.

    Returns:
        b_tilde, shape (m, k).

    Raises:
        ValueError: a historical proportion divides by a zero history of a middle series.
    """
    xp, hier = ops.xp, ops.hier
    anchors = _anchors(hier, tree, level)
    if proportions == "forecast_proportions":
        Ch = _children_matrix(hier, tree)
        child_sum = ops.matmat("children", Ch, y_hat)
        n_children = np.diff(Ch.indptr).astype(np.float64)
        tilde = xp.array(y_hat, copy=True)
        if xp is np:  # one Numba pass over the nodes, parents first
            from kernels._reconcile_numba import split_down  # noqa: PLC0415

            order = _split_order(hier, tree, level)
            split_down(order, tree.parent, child_sum, n_children, y_hat, tilde)
            return tilde[hier.bottom_rows]
        max_depth = int(tree.depth.max())
        for d in range(level + 1, max_depth + 1):
            nodes_h = np.flatnonzero(tree.depth == d)
            if nodes_h.size == 0:
                continue
            parents_h = tree.parent[nodes_h]
            nodes, parents = ops.from_host(nodes_h), ops.from_host(parents_h)
            denom = child_sum[parents]
            zero = denom == 0.0
            share = xp.where(zero, 0.0, y_hat[nodes]) / xp.where(zero, 1.0, denom)
            equal = ops.from_host(1.0 / n_children[parents_h])[:, None]
            share = xp.where(zero, equal, share)
            tilde[nodes] = tilde[parents] * share
        return tilde[ops.from_host(hier.bottom_rows)]
    if y_insample is None:
        raise ValueError(f"proportions={proportions!r} needs y_insample, the in-sample history (n x T)")
    own = anchors == hier.bottom_rows
    y_bot = y_insample[ops.from_host(hier.bottom_rows)]
    y_mid = y_insample[ops.from_host(anchors)]
    if proportions == "average_proportions":
        bad = xp.flatnonzero(((y_mid == 0.0).any(axis=1)) & ops.from_host(~own))
        if int(bad.size):
            row = int(anchors[int(bad[0])])
            raise ValueError(
                f"average_proportions divides by the history of series row {row}, which is 0 at some time; "
                "use proportion_averages or forecast_proportions"
            )
        p = xp.where(y_mid == 0.0, 1.0, y_bot / xp.where(y_mid == 0.0, 1.0, y_mid)).mean(axis=1)
    elif proportions == "proportion_averages":
        mid_mean = y_mid.mean(axis=1)
        bad = xp.flatnonzero((mid_mean == 0.0) & ops.from_host(~own))
        if int(bad.size):
            row = int(anchors[int(bad[0])])
            raise ValueError(
                f"proportion_averages divides by the mean history of series row {row}, which is 0; "
                "use forecast_proportions"
            )
        p = y_bot.mean(axis=1) / xp.where(mid_mean == 0.0, 1.0, mid_mean)
    else:  # pragma: no cover - validated by the caller
        raise ValueError(f"unknown proportions {proportions!r}; expected one of {PROPORTIONS}")
    p = xp.where(ops.from_host(own), 1.0, p)
    return p[:, None] * y_hat[ops.from_host(anchors)]
