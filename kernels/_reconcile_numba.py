"""Numba CPU kernels behind hierarchical reconciliation.

The kernels are plain Python functions compiled on first use (or by :func:`warmup`) with explicit signatures
and ``cache=True``; nothing is compiled at import time, and this module itself is imported lazily by the
dispatchers. They operate on CSR arrays (``indptr``, ``indices``, ``data``)
of the aggregation matrix ``C`` (a x m) and its transpose, with dense right-hand sides of shape (rows, k).
They are serial (see ``_compiled``).
"""

from __future__ import annotations

import functools
import threading

import numba
import numpy as np

__all__ = ["csr_matmat", "csr_matmat_axpy", "split_down", "warmup"]

_LOCK = threading.Lock()


def _csr_matmat_py(indptr, indices, data, B, out):  # pragma: no cover - compiled by Numba
    """out[i, :] = sum_p data[p] * B[indices[p], :] over the entries p of row i."""
    n_rows = indptr.shape[0] - 1
    k_cols = B.shape[1]
    for i in range(n_rows):
        for c in range(k_cols):
            out[i, c] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            v = data[p]
            for c in range(k_cols):
                out[i, c] += v * B[j, c]


def _csr_matmat_axpy_py(indptr, indices, data, X, scale, base, out):  # pragma: no cover - compiled by Numba
    """out[i, :] = base[i, :] + scale[i] * sum_p data[p] * X[indices[p], :] (the MinT bottom update)."""
    n_rows = indptr.shape[0] - 1
    k_cols = X.shape[1]
    for i in range(n_rows):
        for c in range(k_cols):
            out[i, c] = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            v = data[p]
            for c in range(k_cols):
                out[i, c] += v * X[j, c]
        si = scale[i]
        for c in range(k_cols):
            out[i, c] = base[i, c] + si * out[i, c]


def _split_down_py(order, parent, child_sum, n_children, y, tilde):  # pragma: no cover - compiled by Numba
    """Forecast-proportion split, parents before children: tilde[v] = tilde[p] * y[v] / child_sum[p]."""
    k_cols = y.shape[1]
    for t in range(order.shape[0]):
        v = order[t]
        p = parent[v]
        for c in range(k_cols):
            s = child_sum[p, c]
            share = 1.0 / n_children[p] if s == 0.0 else y[v, c] / s
            tilde[v, c] = tilde[p, c] * share


def _signatures():
    """Explicit signatures; inputs may be read-only (frames hand out read-only NumPy views)."""
    t = numba.types
    i1 = t.Array(t.int64, 1, "C")
    f1 = t.Array(t.float64, 1, "C")
    f2 = t.Array(t.float64, 2, "C")
    f2_ro = t.Array(t.float64, 2, "C", readonly=True)
    matmat = [t.void(i1, i1, f1, B, f2) for B in (f2, f2_ro)]
    axpy = [t.void(i1, i1, f1, f2, f1, base, f2) for base in (f2, f2_ro)]
    split = [t.void(i1, i1, f2, f1, Y, f2) for Y in (f2, f2_ro)]
    return matmat, axpy, split


@functools.cache
def _compiled():
    """Compile (or load from the on-disk cache) every kernel once per process."""
    # Serial on purpose: with prange the C @ B product at n = 100k took a median of 62 ms against 7 ms serial
    # on the shared 2-core development machine (threads wait at the barrier for a descheduled sibling); the
    # GPU backend is the parallel one.
    sig_matmat, sig_axpy, sig_split = _signatures()
    with _LOCK:
        matmat = numba.njit(sig_matmat, cache=True, nogil=True)(_csr_matmat_py)
        axpy = numba.njit(sig_axpy, cache=True, nogil=True)(_csr_matmat_axpy_py)
        split = numba.njit(sig_split, cache=True, nogil=True)(_split_down_py)
    return matmat, axpy, split


def csr_matmat(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, B: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Sparse (CSR) times dense product ``A @ B`` into ``out``.

    Args:
        indptr: CSR row pointer of ``A``, shape (r + 1,), int64.
        indices: CSR column indices of ``A``, shape (nnz,), int64.
        data: CSR values of ``A``, shape (nnz,), float64.
        B: dense right-hand side, shape (c, k), float64; made C-contiguous if it is not.
        out: optional C-contiguous output of shape (r, k), float64 (may be a row slice of a larger array).

    Returns:
        ``A @ B``, shape (r, k).
    """
    B = np.ascontiguousarray(B, dtype=np.float64)
    r = indptr.shape[0] - 1
    if out is None:
        out = np.empty((r, B.shape[1]), dtype=np.float64)
    _compiled()[0](indptr, indices, data, B, out)
    return out


def csr_matmat_axpy(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    X: np.ndarray,
    scale: np.ndarray,
    base: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Fused ``out = base + scale[:, None] * (A @ X)`` for CSR ``A`` (r x c).

    Args:
        indptr: CSR row pointer of ``A``, shape (r + 1,), int64.
        indices: CSR column indices of ``A``, shape (nnz,), int64.
        data: CSR values of ``A``, shape (nnz,), float64.
        X: dense right-hand side, shape (c, k), float64.
        scale: row scale, shape (r,), float64.
        base: added term, shape (r, k), float64 (copied if not C-contiguous).
        out: C-contiguous output, shape (r, k), float64; may be a row slice of a larger array.

    Returns:
        ``out``.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    base = np.ascontiguousarray(base, dtype=np.float64)
    _compiled()[1](indptr, indices, data, X, np.ascontiguousarray(scale, dtype=np.float64), base, out)
    return out


def split_down(
    order: np.ndarray,
    parent: np.ndarray,
    child_sum: np.ndarray,
    n_children: np.ndarray,
    y: np.ndarray,
    tilde: np.ndarray,
) -> np.ndarray:
    """Top-down forecast-proportion split in one pass over the nodes, in place on ``tilde``.

    Args:
        order: rows to split, every parent before its children, shape (r,), int64.
        parent: parent row of every row, shape (n,), int64.
        child_sum: sum of the children's base forecasts of every row, shape (n, k), float64.
        n_children: number of children of every row, shape (n,), float64.
        y: base forecasts, shape (n, k), float64.
        tilde: reconciled values, shape (n, k), float64; rows in ``order`` are overwritten.

    Returns:
        ``tilde``.
    """
    _compiled()[2](order, parent, child_sum, n_children, np.ascontiguousarray(y), tilde)
    return tilde


def warmup() -> None:
    """Compile (or load from cache) and run every kernel once on a tiny input."""
    indptr = np.array([0, 2], dtype=np.int64)
    indices = np.array([0, 1], dtype=np.int64)
    data = np.ones(2)
    csr_matmat(indptr, indices, data, np.ones((2, 3)))
    B = np.ones((2, 3))
    csr_matmat_axpy(indptr, indices, data, B, np.ones(1), np.ones((1, 3)), np.empty((1, 3)))
    par = np.array([-1, 0], dtype=np.int64)
    split_down(
        np.array([1], dtype=np.int64), par, np.ones((2, 3)), np.ones(2), np.ones((2, 3)), np.ones((2, 3))
    )
