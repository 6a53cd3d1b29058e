"""GPU (CuPy) reconciliation gives the CPU answer within 1e-8 relative; device CSR splitting on the host."""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.sparse as sp

import kernels._reconcile_ops as ops_mod
from kernels._backend import BackendError
from kernels._reconcile_ops import _GPU_ROW_CHUNK, _DeviceCSR, split_matmat
from kernels.reconcile import METHODS, Hierarchy, reconcile, reconcile_quantiles
from tests.kernels.test_reconcile_cases import rel_err, tree_S


class _HostArrays:
    """Stands in for the CuPy module where _DeviceCSR only needs ``asarray``."""

    asarray = staticmethod(np.asarray)


def _emulate_kernel(dev: _DeviceCSR, B: np.ndarray, n_rows: int) -> np.ndarray:
    """What the CUDA kernel computes: one dot product per (row, column) over the row's CSR range."""
    out = np.zeros((n_rows, B.shape[1]))
    for i in range(n_rows):
        lo, hi = dev.indptr[i], dev.indptr[i + 1]
        out[i] = dev.data[lo:hi] @ B[dev.indices[lo:hi]]
    return out


def test_device_csr_splits_long_rows_and_sums_the_pieces_back():
    rng = np.random.default_rng(0)
    lengths = [0, 1, _GPU_ROW_CHUNK, _GPU_ROW_CHUNK + 1, 3 * _GPU_ROW_CHUNK + 7, 5]
    cols = 4 * _GPU_ROW_CHUNK
    rows = np.concatenate([np.full(k, i) for i, k in enumerate(lengths)])
    idx = np.concatenate([np.sort(rng.choice(cols, size=k, replace=False)) for k in lengths])
    A = sp.csr_array((rng.standard_normal(rows.size), (rows, idx)), shape=(len(lengths), cols))
    dev = _DeviceCSR(_HostArrays, A)
    assert dev.split and dev.n_pieces == 1 + 1 + 1 + 2 + 4 + 1
    assert np.all(np.diff(dev.indptr) <= _GPU_ROW_CHUNK)
    B = rng.standard_normal((cols, 3))
    np.testing.assert_allclose(split_matmat(dev, B, _emulate_kernel), A @ B, rtol=1e-12, atol=1e-12)


def test_device_csr_splits_again_when_a_row_has_more_pieces_than_a_chunk(monkeypatch):
    monkeypatch.setattr(ops_mod, "_GPU_ROW_CHUNK", 4)  # a 100-entry row: 25 pieces, then 7, then 2, then 1
    rng = np.random.default_rng(1)
    A = sp.csr_array(np.vstack([rng.standard_normal(100), np.r_[np.ones(3), np.zeros(97)]]))
    dev = _DeviceCSR(_HostArrays, A)
    assert dev.reduce.split and dev.reduce.reduce.split
    B = rng.standard_normal((100, 2))
    np.testing.assert_allclose(split_matmat(dev, B, _emulate_kernel), A @ B, rtol=1e-12)


def _cases():
    S_tree, _ = tree_S([[3], [2, 1, 3], [2, 2, 1, 3, 1, 2]])
    grouped = np.vstack(
        [
            np.ones(6),
            [1, 1, 1, 0, 0, 0],
            [0, 0, 0, 1, 1, 1],
            [1, 0, 0, 1, 0, 0],
            [0, 1, 0, 0, 1, 0],
            [0, 0, 1, 0, 0, 1],
            np.eye(6),
        ]
    )
    perm = np.random.default_rng(5).permutation(S_tree.shape[0])
    return {"tree": S_tree, "tree_permuted": S_tree[perm], "grouped": grouped}


@pytest.mark.gpu
@pytest.mark.parametrize("case", ["tree", "tree_permuted", "grouped"])
def test_gpu_matches_cpu_for_every_method(case):
    import cupy as cp

    S = _cases()[case]
    n, m = S.shape
    rng = np.random.default_rng(1)
    y = rng.uniform(1.0, 9.0, size=(n, 4))
    R = S @ rng.standard_normal((m, 20)) + rng.standard_normal((n, 20))
    hist = S @ rng.uniform(1.0, 3.0, size=(m, 8))
    w = rng.uniform(1.0, 3.0, size=n)
    hier = Hierarchy(sp.csr_array(S))
    for method in METHODS:
        if case == "grouped" and method in ("top_down", "middle_out"):
            continue
        for kw in ({}, {"nonnegative": True}, {"proportions": "average_proportions"}):
            if "proportions" in kw and method not in ("top_down", "middle_out"):
                continue
            cpu = reconcile(hier, y - 3.0, method, residuals=R, weights=w, level=1, y_insample=hist, **kw)
            gpu = reconcile(
                hier,
                cp.asarray(y - 3.0),
                method,
                residuals=cp.asarray(R),
                weights=cp.asarray(w),
                level=1,
                y_insample=cp.asarray(hist),
                **kw,
            )
            assert isinstance(gpu, cp.ndarray)
            assert rel_err(cp.asnumpy(gpu), cpu) < 1e-8, (method, kw)


@pytest.mark.gpu
def test_gpu_samples_and_quantiles_match_cpu_and_long_rows_are_split():
    import cupy as cp

    m = 3 * _GPU_ROW_CHUNK + 11  # the total row is split into pieces on the device
    S = sp.vstack([sp.csr_array(np.ones((1, m))), sp.eye_array(m, format="csr")]).tocsr()
    rng = np.random.default_rng(2)
    samples = rng.normal(5.0, 2.0, size=(m + 1, 3, 16))
    R = rng.standard_normal((m + 1, 12))
    for method in ("bottom_up", "wls_struct", "mint_shrink"):
        cpu = reconcile(S, samples, method, residuals=R)
        gpu = reconcile(S, cp.asarray(samples), method, residuals=cp.asarray(R))
        assert rel_err(cp.asnumpy(gpu), cpu) < 1e-8, method
    q = np.sort(samples, axis=2)
    cpu_q = reconcile_quantiles(S, q, "ols")
    gpu_q = reconcile_quantiles(S, cp.asarray(q), "ols")
    assert rel_err(cp.asnumpy(gpu_q), cpu_q) < 1e-8


@pytest.mark.gpu
def test_mixed_devices_raise():
    import cupy as cp

    S = sp.csr_array(np.vstack([np.ones(2), np.eye(2)]))
    with pytest.raises(BackendError, match="mixed devices"):
        reconcile(S, cp.ones((3, 1)), "wls_var", residuals=np.ones((3, 4)))


class _FakeRawKernel:
    """Runs the CSR kernel's arithmetic on the host (what each CUDA thread computes, row by row)."""

    def __call__(self, grid, block, args):
        indptr, indices, data, B, out, n_rows, k = args
        assert B.flags.c_contiguous and out.flags.c_contiguous and int(k) == B.shape[1]
        assert grid[0] * block[0] >= int(n_rows) * int(k)
        for i in range(int(n_rows)):
            lo, hi = indptr[i], indptr[i + 1]
            out[i] = data[lo:hi] @ B[indices[lo:hi]]


class _FakeCuPy(types.ModuleType):
    """NumPy behind CuPy's names, so the device code path (DeviceOps, xp-generic maths) runs without a GPU."""

    def __init__(self):
        super().__init__("fake_cupy")
        self.cuda = types.SimpleNamespace(
            Device=lambda *a: types.SimpleNamespace(id=0, synchronize=lambda: None)
        )
        self.asnumpy = lambda x: np.array(x, copy=True)

    def __getattr__(self, name):
        return getattr(np, name)


def test_device_code_path_matches_the_host_with_the_kernel_emulated(monkeypatch):
    import importlib

    import kernels._reconcile_ops as ops_module

    rec = importlib.import_module("kernels.reconcile")  # the package exports a function of the same name

    fake = _FakeCuPy()
    monkeypatch.setattr(ops_module, "cupy_module", lambda: fake)
    monkeypatch.setattr(ops_module, "_device_kernel", lambda device_id: _FakeRawKernel())
    monkeypatch.setattr(ops_module, "_GPU_ROW_CHUNK", 3)  # long rows are split, twice for the total
    rng = np.random.default_rng(3)
    for name, S in _cases().items():
        n, m = S.shape
        y = rng.uniform(-2.0, 9.0, size=(n, 3))
        R = S @ rng.standard_normal((m, 15)) + rng.standard_normal((n, 15))
        hist = S @ rng.uniform(1.0, 3.0, size=(m, 6))
        for method in METHODS:
            if name == "grouped" and method in ("top_down", "middle_out"):
                continue
            for kw in ({}, {"nonnegative": True}):
                kwargs = dict(residuals=R, weights=np.ones(n), level=1, y_insample=hist, **kw)
                host = rec.reconcile(Hierarchy(sp.csr_array(S)), y, method, **kwargs)
                with monkeypatch.context() as mp:
                    mp.setattr(rec, "get_array_module", lambda *arrays: fake)
                    hier = Hierarchy(sp.csr_array(S))
                    dev = rec.reconcile(hier, y, method, **kwargs)
                    assert isinstance(ops_module.ops_for(hier, fake), ops_module.DeviceOps)
                assert rel_err(dev, host) < 1e-12, (name, method, kw)
