"""The summing structure of a hierarchy: bottom rows, aggregation matrix and (for strict trees) parent links.

A summing matrix ``S`` (n x m, 0/1, sparse) maps the m bottom series to all n series. Every bottom series j
must have its own row equal to the unit vector e_j (the last such row when several rows equal e_j, e.g. a
store with a single product); the remaining a = n - m rows are the aggregates, ``S[agg_rows] = C`` (a x m).
Reconciliation works with ``C`` and its transpose only; neither ``S`` nor anything n x n or n x m is ever
made dense.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["GramPattern", "Hierarchy", "NotATreeError", "ReconciliationError", "TreeLinks"]


class ReconciliationError(ArithmeticError):
    """Raised when a reconciliation system is singular or not positive definite, or a solve fails a check."""


class NotATreeError(ValueError):
    """Raised when a method needs a strict tree (each series has one parent) and S is a grouped structure."""


@dataclass(frozen=True)
class TreeLinks:
    """Parent links of a strict tree, in row numbers of ``S``.

    Attributes:
        parent: parent row of every row, shape (n,), int64; -1 for the root.
        depth: depth of every row (root 0), shape (n,), int64.
        root: the row of the root (the series that sums all bottom series).
    """

    parent: np.ndarray
    depth: np.ndarray
    root: int


@dataclass(frozen=True)
class GramPattern:
    """Symmetric CSR pattern of ``K = diag(w_a) + C diag(w_b) C'`` with the scatter positions of its terms.

    ``K.data = bincount(pos_pairs, repeat(w_b, pair_degree)) + bincount(pos_diag, w_a)``.

    Attributes:
        indptr: CSR row pointer, shape (a + 1,).
        indices: CSR column indices, shape (nnz,), sorted within rows.
        pos_pairs: data position of each (k, l) pair of aggregates sharing a bottom series, bottom-major.
        pos_diag: data position of each diagonal entry, shape (a,).
        pair_degree: number of pairs contributed by each bottom series (its aggregate count squared), (m,).
    """

    indptr: np.ndarray
    indices: np.ndarray
    pos_pairs: np.ndarray
    pos_diag: np.ndarray
    pair_degree: np.ndarray

    def values(self, w_a: np.ndarray, w_b: np.ndarray) -> np.ndarray:
        """The CSR data of ``K`` for diagonal weights ``w_a`` (a,) and ``w_b`` (m,)."""
        nnz = self.indices.size
        data = np.bincount(self.pos_pairs, weights=np.repeat(w_b, self.pair_degree), minlength=nnz)
        data += np.bincount(self.pos_diag, weights=w_a, minlength=nnz)
        return data


class Hierarchy:
    """Analysed summing matrix, reusable across calls (analyse once per hierarchy, reconcile many times).

    Attributes:
        n: number of series (rows of S).
        m: number of bottom series (columns of S).
        a: number of aggregate series, ``n - m``.
        bottom_rows: row of S holding each bottom series, shape (m,), int64.
        agg_rows: rows of S holding the aggregates, shape (a,), int64, increasing.
        C: aggregation matrix ``S[agg_rows]``, CSR (a x m), float64, sorted int64 indices.
        Ct: ``C'`` as CSR (m x a), float64, sorted int64 indices.
        standard_layout: True when the aggregates are rows ``0..a-1`` and bottom j is row ``a + j``.
    """

    def __init__(self, S: sp.spmatrix | sp.sparray) -> None:
        """Analyse ``S``.

        Args:
            S: summing matrix, scipy.sparse (n x m) with 0/1 entries.

        Raises:
            TypeError: ``S`` is not a scipy.sparse matrix.
            ValueError: ``S`` is not a 0/1 summing matrix with an identity row for every bottom series.
        """
        if not sp.issparse(S):
            raise TypeError(
                f"S must be a scipy.sparse summing matrix (n x m) of 0/1 entries, got {type(S).__name__}; "
                "build it with scipy.sparse.csr_array((data, (rows, cols)), shape=(n, m))"
            )
        if S.ndim != 2:
            raise ValueError(f"S must be 2-D (n x m), got shape {S.shape}")
        S = sp.csr_array(S, dtype=np.float64)
        S.sum_duplicates()
        S.eliminate_zeros()
        n, m = S.shape
        if m == 0 or n < m:
            raise ValueError(f"S must have n >= m >= 1 (n series x m bottom series), got shape {S.shape}")
        bad = np.flatnonzero(S.data != 1.0)
        if bad.size:
            row = int(np.searchsorted(S.indptr, bad[0], side="right") - 1)
            raise ValueError(
                f"S must hold only 0/1 entries; row {row}, column {int(S.indices[bad[0]])} holds "
                f"{float(S.data[bad[0]])!r}"
            )
        row_nnz = np.diff(S.indptr)
        empty = np.flatnonzero(row_nnz == 0)
        if empty.size:
            raise ValueError(f"row {int(empty[0])} of S sums no bottom series (all zeros)")
        single = np.flatnonzero(row_nnz == 1).astype(np.int64)
        bottom_rows = np.full(m, -1, dtype=np.int64)
        np.maximum.at(bottom_rows, S.indices[S.indptr[single]], single)
        missing = np.flatnonzero(bottom_rows < 0)
        if missing.size:
            raise ValueError(
                f"S has no identity row for bottom series (column) {int(missing[0])}: every bottom series "
                "needs its own row equal to the unit vector e_j"
            )
        is_agg = np.ones(n, dtype=bool)
        is_agg[bottom_rows] = False
        agg_rows = np.flatnonzero(is_agg).astype(np.int64)
        self.n, self.m, self.a = n, m, n - m
        self.bottom_rows = bottom_rows
        self.agg_rows = agg_rows
        C = S[agg_rows] if agg_rows.size else sp.csr_array((0, m), dtype=np.float64)
        self.C = _csr64(C)
        self.Ct = _csr64(self.C.T)
        self.standard_layout = bool(
            np.array_equal(agg_rows, np.arange(self.a)) and np.array_equal(bottom_rows, np.arange(self.a, n))
        )

    def __repr__(self) -> str:
        return f"Hierarchy(n={self.n}, m={self.m}, aggregates={self.a})"

    @property
    def S(self) -> sp.csr_array:
        """The summing matrix rebuilt from ``C`` and the bottom rows, CSR (n x m)."""
        rows = np.concatenate([np.repeat(self.agg_rows, np.diff(self.C.indptr)), self.bottom_rows])
        cols = np.concatenate([self.C.indices, np.arange(self.m, dtype=np.int64)])
        return sp.csr_array((np.ones(rows.size), (rows, cols)), shape=(self.n, self.m))

    @functools.cached_property
    def agg_size(self) -> np.ndarray:
        """Number of bottom series under each aggregate, shape (a,), int64."""
        return np.diff(self.C.indptr).astype(np.int64)

    @functools.cached_property
    def gram_pattern(self) -> GramPattern:
        """Sparsity pattern of ``diag(w_a) + C diag(w_b) C'`` (a x a) and where each term lands in it."""
        a, Ct = self.a, self.Ct
        deg = np.diff(Ct.indptr).astype(np.int64)
        reps = np.repeat(deg, deg)  # every entry of row j of C' pairs with the deg_j entries of that row
        kk = np.repeat(Ct.indices, reps)
        first = np.repeat(Ct.indptr[:-1], deg * deg)
        offset = np.arange(kk.size, dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
        ll = Ct.indices[first + offset]
        # The pattern from a sparse product (C C' + I), then each term's place in it by binary search.
        K = sp.csr_array(self.C @ self.C.T + sp.eye_array(a, format="csr"))
        K.sum_duplicates()
        K.sort_indices()
        indptr = K.indptr.astype(np.int64)
        cols = K.indices.astype(np.int64)
        rows = np.repeat(np.arange(a, dtype=np.int64), np.diff(indptr))
        diag = np.arange(a, dtype=np.int64)
        if a <= 4096:  # a dense a x a lookup table is cheaper than binary search
            table = np.empty((a, a), dtype=np.int64)
            table[rows, cols] = np.arange(cols.size)
            pos = np.concatenate([table[kk, ll], table[diag, diag]])
        else:
            pos = np.searchsorted(rows * a + cols, np.concatenate([kk * a + ll, diag * a + diag]))
        return GramPattern(
            indptr=indptr,
            indices=cols,
            pos_pairs=pos[: kk.size],
            pos_diag=pos[kk.size :],
            pair_degree=deg * deg,
        )

    @functools.cached_property
    def tree(self) -> TreeLinks | None:
        """Parent links when S is a strict tree with a single root, else None (see :meth:`require_tree`)."""
        try:
            return self._tree_links()
        except NotATreeError:
            return None

    def require_tree(self, method: str) -> TreeLinks:
        """Return the tree links or raise a clear error naming the method and the offending row.

        Raises:
            NotATreeError: S is a grouped structure or has no single root.
        """
        try:
            return self._tree_links()
        except NotATreeError as err:
            raise NotATreeError(
                f"method {method!r} needs a strict tree (every series has exactly one parent and one "
                f"series sums "
                f"all bottom series); {err}. Grouped structures work with bottom_up, ols, wls_struct, "
                f"wls_var, "
                "wls and mint_shrink"
            ) from None

    @functools.cache  # noqa: B019 - one Hierarchy per S, kept by the caller
    def _tree_links(self) -> TreeLinks:
        a, m = self.a, self.m
        if a == 0:
            raise NotATreeError("S has no aggregate rows")
        Cc = self.C.tocsc()
        Cc.sort_indices()
        cols = np.repeat(np.arange(m, dtype=np.int64), np.diff(Cc.indptr))
        aggs = Cc.indices.astype(np.int64)
        # Within each bottom column, order its aggregates from the largest to the smallest (ties: row order);
        # in a tree that order is the path from the root down, so consecutive entries are (parent, child).
        order = np.lexsort((aggs, -self.agg_size[aggs], cols))
        aggs = aggs[order]
        first = np.ones(aggs.size, dtype=bool)
        first[1:] = cols[1:] != cols[:-1]
        cand = np.empty(aggs.size, dtype=np.int64)
        cand[first] = -1
        cand[~first] = aggs[np.flatnonzero(~first) - 1]
        hi = np.full(a, -2, dtype=np.int64)
        lo = np.full(a, np.iinfo(np.int64).max, dtype=np.int64)
        np.maximum.at(hi, aggs, cand)
        np.minimum.at(lo, aggs, cand)
        clash = np.flatnonzero(hi != lo)
        if clash.size:
            k = int(clash[0])
            parents = [int(self.agg_rows[p]) if p >= 0 else None for p in (lo[k], hi[k])]
            raise NotATreeError(
                f"row {int(self.agg_rows[k])} of S has more than one parent (rows {parents[0]} and "
                f"{parents[1]}), "
                "so S is a grouped structure"
            )
        roots = np.flatnonzero(hi == -1)
        if roots.size != 1 or self.agg_size[roots[0]] != m:
            raise NotATreeError(
                f"S has {roots.size} top-level series and none of them sums all bottom series"
            )
        parent = np.full(self.n, -1, dtype=np.int64)
        has_parent = hi >= 0
        parent[self.agg_rows[has_parent]] = self.agg_rows[hi[has_parent]]
        last = np.ones(aggs.size, dtype=bool)
        last[:-1] = cols[1:] != cols[:-1]
        parent[self.bottom_rows[cols[last]]] = self.agg_rows[aggs[last]]
        depth = np.zeros(self.n, dtype=np.int64)
        cur = parent.copy()
        while True:
            alive = cur >= 0
            if not alive.any():
                break
            depth += alive
            cur[alive] = parent[cur[alive]]
        return TreeLinks(parent=parent, depth=depth, root=int(self.agg_rows[roots[0]]))


def _csr64(A) -> sp.csr_array:
    """CSR copy with float64 data and sorted int64 indices (the form the kernels take)."""
    A = sp.csr_array(A, dtype=np.float64)
    A.sort_indices()
    A.indptr = A.indptr.astype(np.int64, copy=False)
    A.indices = A.indices.astype(np.int64, copy=False)
    return A
