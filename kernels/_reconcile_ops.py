"""Backend operations for reconciliation: sparse products with ``C`` and ``C'`` and the bottom-up aggregation.

One contract, two backends with stable names: :func:`ops_for` returns an object with ``C_matmat``,
``Ct_matmat`` and ``aggregate`` for NumPy arrays (Numba kernels) or CuPy arrays (a CUDA CSR kernel compiled
once per device and cached by CuPy). CuPy itself is reached only through ``kernels._backend``.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels._backend import cupy_module
from kernels._reconcile_structure import Hierarchy

__all__ = ["HostOps", "DeviceOps", "ops_for"]

# Rows of C longer than this are split into pieces on the GPU so that no thread loops over a million entries.
_GPU_ROW_CHUNK = 512

_CSR_MATMAT_CUDA = r"""
extern "C" __global__
void csr_matmat(const long long* indptr, const long long* indices, const double* data,
                const double* B, double* out, const long long n_rows, const long long k) {
    long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (tid >= n_rows * k) return;
    long long i = tid / k;
    long long c = tid - i * k;
    double acc = 0.0;
    for (long long p = indptr[i]; p < indptr[i + 1]; ++p) {
        acc += data[p] * B[indices[p] * k + c];
    }
    out[i * k + c] = acc;
}
"""


class HostOps:
    """NumPy arrays on the CPU, sparse products by the Numba kernels."""

    xp = np

    def __init__(self, hier: Hierarchy) -> None:
        """Bind the hierarchy's CSR arrays."""
        from kernels import _reconcile_numba  # noqa: PLC0415 - Numba is imported only when a kernel runs

        self._nb = _reconcile_numba
        self.hier = hier

    def C_matmat(self, B: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``C @ B`` for B of shape (m, k); returns (a, k)."""
        C = self.hier.C
        return self._nb.csr_matmat(C.indptr, C.indices, C.data, B, out)

    def Ct_matmat(self, X: np.ndarray) -> np.ndarray:
        """``C' @ X`` for X of shape (a, k); returns (m, k)."""
        Ct = self.hier.Ct
        return self._nb.csr_matmat(Ct.indptr, Ct.indices, Ct.data, X)

    def Ct_matmat_axpy(
        self, X: np.ndarray, scale: np.ndarray, base: np.ndarray, out: np.ndarray
    ) -> np.ndarray:
        """``out = base + scale[:, None] * (C' @ X)``, shapes X (a, k), scale (m,), base and out (m, k)."""
        Ct = self.hier.Ct
        return self._nb.csr_matmat_axpy(Ct.indptr, Ct.indices, Ct.data, X, scale, base, out)

    def matmat(self, key: str, A: sp.csr_array, B: np.ndarray) -> np.ndarray:
        """``A @ B`` for another CSR matrix of the hierarchy (int64 indices, float64 data)."""
        del key
        return self._nb.csr_matmat(A.indptr, A.indices, A.data, B)

    def empty_output(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """An (n, k) output and a C-contiguous (m, k) bottom-level buffer (a view into it when possible)."""
        h = self.hier
        out = np.empty((h.n, k), dtype=np.float64)
        return out, (out[h.a :] if h.standard_layout else np.empty((h.m, k), dtype=np.float64))

    def aggregate(self, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """All series from the bottom ones, ``S @ b``: shape (m, k) in, (n, k) out.

        ``out`` from :meth:`empty_output` avoids copying ``b`` when it already is the output's bottom block.
        """
        h = self.hier
        b = np.ascontiguousarray(b, dtype=np.float64)
        if out is None:
            out = np.empty((h.n, b.shape[1]), dtype=np.float64)
        if h.standard_layout:
            if h.a:
                self.C_matmat(b, out[: h.a])
            bottom = out[h.a :]
            if not (
                bottom.__array_interface__["data"][0] == b.__array_interface__["data"][0]
                and bottom.strides == b.strides
            ):
                bottom[...] = b
        else:
            if h.a:
                out[h.agg_rows] = self.C_matmat(b)
            out[h.bottom_rows] = b
        return out

    def to_host(self, x: Any) -> np.ndarray:
        """Identity on the host."""
        return np.asarray(x)

    def from_host(self, x: np.ndarray) -> np.ndarray:
        """Identity on the host."""
        return x


class _DeviceCSR:
    """A CSR matrix on the device, its long rows split into pieces plus the matrix that sums the pieces."""

    def __init__(self, cp: ModuleType, A: sp.csr_array) -> None:
        row_nnz = np.diff(A.indptr)
        pieces = np.maximum(1, -(-row_nnz // _GPU_ROW_CHUNK))
        self.n_rows = A.shape[0]
        self.split = bool((pieces > 1).any())
        if self.split:
            first = np.repeat(A.indptr[:-1], pieces)
            offset = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
            starts = first + offset * _GPU_ROW_CHUNK
            indptr = np.append(starts, A.indptr[-1]).astype(np.int64)
            owner = np.repeat(np.arange(self.n_rows), pieces)
            self.reduce = _DeviceCSR(
                cp,
                sp.csr_array(
                    (np.ones(owner.size), (owner, np.arange(owner.size))), shape=(self.n_rows, owner.size)
                ),
            )
            self.n_pieces = int(owner.size)
        else:
            indptr = A.indptr.astype(np.int64)
            self.n_pieces = self.n_rows
        self.indptr = cp.asarray(indptr)
        self.indices = cp.asarray(A.indices.astype(np.int64))
        self.data = cp.asarray(A.data.astype(np.float64))


def split_matmat(A: _DeviceCSR, B, run):
    """``A @ B`` through the row pieces: ``run(piece_matrix, B, rows)`` per stage, summing pieces recursively.

    A row longer than ``_GPU_ROW_CHUNK ** 2`` (e.g. the total of a million series) has more pieces than one
    chunk, so its reduce matrix is split again.
    """
    if not A.split:
        return run(A, B, A.n_rows)
    return split_matmat(A.reduce, run(A, B, A.n_pieces), run)


@functools.cache
def _device_kernel(device_id: int):
    """The compiled CSR kernel for one device (CuPy also caches the binary on disk)."""
    cp = cupy_module()
    with cp.cuda.Device(device_id):
        return cp.RawKernel(_CSR_MATMAT_CUDA, "csr_matmat")


class DeviceOps:
    """CuPy arrays on the GPU, sparse products by a CUDA CSR kernel."""

    def __init__(self, hier: Hierarchy) -> None:
        """Copy ``C`` and ``C'`` to the current device (once per hierarchy and device)."""
        cp = cupy_module()
        self.xp = cp
        self.hier = hier
        self._C = _DeviceCSR(cp, hier.C)
        self._Ct = _DeviceCSR(cp, hier.Ct)
        self._agg_rows = cp.asarray(hier.agg_rows)
        self._bottom_rows = cp.asarray(hier.bottom_rows)
        self._kernel = _device_kernel(cp.cuda.Device().id)
        self._extra: dict[str, _DeviceCSR] = {}

    def _run(self, A: _DeviceCSR, B, n_rows: int):
        cp = self.xp
        B = cp.ascontiguousarray(B, dtype=cp.float64)
        k = B.shape[1]
        out = cp.empty((n_rows, k), dtype=cp.float64)
        total = n_rows * k
        if total:
            threads = 256
            self._kernel(
                ((total + threads - 1) // threads,),
                (threads,),
                (A.indptr, A.indices, A.data, B, out, np.int64(n_rows), np.int64(k)),
            )
        return out

    def _matmat(self, A: _DeviceCSR, B):
        return split_matmat(A, B, self._run)

    def matmat(self, key: str, A: sp.csr_array, B):
        """``A @ B`` for another CSR matrix of the hierarchy, copied to the device once under ``key``."""
        dev = self._extra.get(key)
        if dev is None:
            dev = self._extra[key] = _DeviceCSR(self.xp, A)
        return self._matmat(dev, B)

    def C_matmat(self, B, out=None):
        """``C @ B`` for B of shape (m, k); returns (a, k)."""
        res = self._matmat(self._C, B)
        if out is not None:
            out[...] = res
            return out
        return res

    def Ct_matmat(self, X):
        """``C' @ X`` for X of shape (a, k); returns (m, k)."""
        return self._matmat(self._Ct, X)

    def Ct_matmat_axpy(self, X, scale, base, out):
        """``out = base + scale[:, None] * (C' @ X)``, shapes X (a, k), scale (m,), base and out (m, k)."""
        z = self._matmat(self._Ct, X)
        z *= scale[:, None]
        z += base
        out[...] = z
        return out

    def empty_output(self, k: int):
        """An (n, k) output and a separate (m, k) buffer for the bottom level."""
        cp, h = self.xp, self.hier
        return cp.empty((h.n, k), dtype=cp.float64), cp.empty((h.m, k), dtype=cp.float64)

    def aggregate(self, b, out=None):
        """All series from the bottom ones, ``S @ b``: shape (m, k) in, (n, k) out."""
        cp, h = self.xp, self.hier
        b = cp.ascontiguousarray(b, dtype=cp.float64)
        if out is None:
            out = cp.empty((h.n, b.shape[1]), dtype=cp.float64)
        if h.a:
            out[self._agg_rows] = self.C_matmat(b)
        out[self._bottom_rows] = b
        return out

    def to_host(self, x) -> np.ndarray:
        """Copy to host memory."""
        return self.xp.asnumpy(x)

    def from_host(self, x: np.ndarray):
        """Copy to the current device."""
        return self.xp.asarray(x)


def ops_for(hier: Hierarchy, xp: ModuleType) -> HostOps | DeviceOps:
    """The backend operations for arrays of module ``xp``, cached on the hierarchy per device."""
    cache = hier.__dict__.setdefault("_ops_cache", {})
    if xp is np:
        key = "host"
    else:
        key = f"device{xp.cuda.Device().id}"
    ops = cache.get(key)
    if ops is None:
        ops = HostOps(hier) if xp is np else DeviceOps(hier)
        cache[key] = ops
    return ops
