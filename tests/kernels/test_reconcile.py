"""Exactness and invariants of the MinT family and bottom-up vs the dense closed form (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kernels._reconcile_gls as gls
from kernels.reconcile import METHODS, Hierarchy, ReconciliationError, reconcile
from tests.kernels.test_reconcile_cases import (
    dense_mint,
    dense_shrinkage,
    dense_W,
    grouped,
    rel_err,
    sparse,
    trees,
)

MINT = ("ols", "wls_struct", "wls_var", "wls", "mint_shrink")
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _inputs(S: np.ndarray, seed: int, h: int, T: int):
    rng = np.random.default_rng(seed)
    n, m = S.shape
    y_hat = rng.uniform(0.5, 20.0, size=(n, h))
    # correlated residuals (bottom noise summed up plus series noise) give shrinkage intensities inside (0, 1)
    R = S @ rng.standard_normal((m, T)) + rng.uniform(0.1, 1.0) * rng.standard_normal((n, T))
    weights = rng.uniform(0.5, 5.0, size=n)
    return y_hat, R, weights


def _check_exact(S: np.ndarray, seed: int, h: int, T: int, permute: bool, dense_fill: float) -> None:
    y_hat, R, weights = _inputs(S, seed, h, T)
    if permute:
        perm = np.random.default_rng(seed + 1).permutation(S.shape[0])
        S, y_hat, R, weights = S[perm], y_hat[perm], R[perm], weights[perm]
    _, lam = dense_shrinkage(R)
    assume(lam > 0.02)  # lambda = 0 with T < n leaves W singular: no closed form to compare with
    old = gls._DENSE_FILL
    gls._DENSE_FILL = dense_fill
    try:
        hier = Hierarchy(sparse(S))
        for method in MINT:
            W = dense_W(method, S, R, weights)
            assume(np.linalg.cond(W) < 1e8)
            ref = dense_mint(S, W, y_hat)
            out = reconcile(hier, y_hat, method, residuals=R, weights=weights)
            assert rel_err(out, ref) < 1e-8, method
            bottom = out[hier.bottom_rows]
            np.testing.assert_allclose(S @ bottom, out, rtol=1e-12, atol=1e-12 * np.abs(out).max())
    finally:
        gls._DENSE_FILL = old


@SETTINGS
@given(
    S=trees(),
    seed=st.integers(0, 2**31),
    h=st.integers(1, 3),
    T=st.integers(4, 25),
    permute=st.booleans(),
    dense_fill=st.sampled_from([0.0, 2.0]),
)
def test_mint_family_equals_dense_closed_form_on_trees(S, seed, h, T, permute, dense_fill):
    _check_exact(S, seed, h, T, permute, dense_fill)


@SETTINGS
@given(
    S=grouped(),
    seed=st.integers(0, 2**31),
    h=st.integers(1, 3),
    T=st.integers(4, 25),
    permute=st.booleans(),
    dense_fill=st.sampled_from([0.0, 2.0]),
)
def test_mint_family_equals_dense_closed_form_on_grouped_structures(S, seed, h, T, permute, dense_fill):
    _check_exact(S, seed, h, T, permute, dense_fill)


@SETTINGS
@given(S=st.one_of(trees(), grouped()), seed=st.integers(0, 2**31))
def test_bottom_up_sums_the_bottom_forecasts(S, seed):
    y_hat, _, _ = _inputs(S, seed, 2, 4)
    hier = Hierarchy(sparse(S))
    out = reconcile(hier, y_hat, "bottom_up")
    np.testing.assert_array_equal(out[hier.bottom_rows], y_hat[hier.bottom_rows])
    np.testing.assert_allclose(out, S @ y_hat[hier.bottom_rows], rtol=1e-14)


@SETTINGS
@given(T=st.integers(2, 30), n=st.integers(2, 25), seed=st.integers(0, 2**31), common=st.floats(0.0, 3.0))
def test_shrinkage_intensity_matches_the_n_by_n_formula(T, n, seed, common):
    rng = np.random.default_rng(seed)
    R = common * rng.standard_normal((1, T)) + rng.standard_normal((n, T))
    expect = dense_shrinkage(R)[1]
    assert gls.shrinkage_intensity(R, np) == pytest.approx(expect, rel=1e-9, abs=1e-12)
    old = gls._SHRINK_BLOCK
    gls._SHRINK_BLOCK = 3  # several row blocks
    try:
        assert gls.shrinkage_intensity(R, np) == pytest.approx(expect, rel=1e-9, abs=1e-12)
    finally:
        gls._SHRINK_BLOCK = old


def test_coherent_forecasts_are_left_unchanged_by_every_mint_method():
    S = np.vstack([np.ones(4), [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1], np.eye(4)])
    rng = np.random.default_rng(3)
    y = S @ rng.uniform(1, 5, size=(4, 6))
    R = rng.standard_normal((S.shape[0], 12))
    for method in MINT:
        out = reconcile(sp.csr_array(S), y, method, residuals=R, weights=np.arange(1.0, 10.0))
        np.testing.assert_allclose(out, y, rtol=1e-12)


def test_sample_paths_are_reconciled_one_by_one_and_each_is_coherent():
    S = np.vstack([np.ones(3), [1, 1, 0], np.eye(3)])
    rng = np.random.default_rng(0)
    samples = rng.normal(10, 3, size=(5, 4, 50))
    R = rng.standard_normal((5, 10))
    for method in ("bottom_up", "ols", "mint_shrink", "top_down"):
        out = reconcile(sp.csr_array(S), samples, method, residuals=R)
        assert out.shape == samples.shape
        for k in (0, 17, 49):
            np.testing.assert_allclose(
                out[..., k], reconcile(sp.csr_array(S), samples[..., k], method, residuals=R), rtol=1e-12
            )
        np.testing.assert_allclose(np.einsum("nm,mhk->nhk", S, out[2:]), out, rtol=1e-12)


def test_nonnegative_gives_coherent_non_negative_forecasts():
    S = np.vstack([np.ones(4), [1, 1, 0, 0], [0, 0, 1, 1], np.eye(4)])
    y = np.array([[10.0, 0.0], [9.0, 0.5], [1.0, 0.2], [8.0, 0.1], [3.0, 0.1], [-4.0, 0.3], [-2.0, 0.2]])
    R = np.random.default_rng(1).standard_normal((7, 9))
    for method in ("bottom_up", "ols", "wls_struct", "wls_var", "mint_shrink"):
        free = reconcile(sp.csr_array(S), y, method, residuals=R)
        assert (free[3:] < 0).any(), method  # the case exercises the constraint
        out = reconcile(sp.csr_array(S), y, method, residuals=R, nonnegative=True)
        assert (out >= 0).all(), method
        np.testing.assert_allclose(S @ out[3:], out, rtol=1e-14)
        if method in ("bottom_up", "mint_shrink"):  # set-negative-to-zero
            np.testing.assert_allclose(out[3:], np.maximum(free[3:], 0.0), rtol=1e-14)


def _nnls_reference(S, y, w):
    """min ||W^-1/2 (y - S b)|| subject to b >= 0 by scipy's Lawson-Hanson NNLS, column by column."""
    from scipy.optimize import nnls

    A = S / np.sqrt(w)[:, None]
    return np.column_stack([nnls(A, y[:, c] / np.sqrt(w), maxiter=10_000)[0] for c in range(y.shape[1])])


@SETTINGS
@given(S=st.one_of(trees(), grouped()), seed=st.integers(0, 2**31), dense_fill=st.sampled_from([0.0, 2.0]))
def test_nonnegative_diagonal_methods_give_the_exact_constrained_optimum(S, seed, dense_fill):
    rng = np.random.default_rng(seed)
    n, m = S.shape
    y = rng.normal(1.0, 3.0, size=(n, 3))  # plenty of negative base forecasts
    R = rng.standard_normal((n, 8))
    weights = rng.uniform(0.5, 4.0, size=n)
    import kernels._reconcile_nonneg as nonneg

    old = gls._DENSE_FILL, nonneg._DENSE_MAX
    gls._DENSE_FILL, nonneg._DENSE_MAX = dense_fill, (512 if dense_fill < 1 else 0)
    try:
        hier = Hierarchy(sparse(S))
        for method in ("ols", "wls_struct", "wls_var", "wls"):
            w = np.diag(dense_W(method, S, R, weights))
            out = reconcile(hier, y, method, residuals=R, weights=weights, nonnegative=True)
            b = out[hier.bottom_rows]
            ref = _nnls_reference(S[:, :], y, w)
            assert (b >= 0).all()
            np.testing.assert_allclose(S @ b, out, rtol=1e-13, atol=1e-13 * np.abs(out).max())

            def objective(bb, w=w):
                return (((y - S @ bb) ** 2) / w[:, None]).sum(axis=0)

            # same optimum value (the minimiser is unique: S has full column rank)
            np.testing.assert_allclose(objective(b), objective(ref), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(b, ref, rtol=1e-6, atol=1e-7 * np.abs(y).max())
    finally:
        gls._DENSE_FILL, nonneg._DENSE_MAX = old


def test_nonnegative_leaves_non_negative_answers_unchanged():
    S = np.vstack([np.ones(3), np.eye(3)])
    y = np.array([[6.5], [1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(
        reconcile(sp.csr_array(S), y, "ols", nonnegative=True), reconcile(sp.csr_array(S), y, "ols")
    )


def test_hierarchy_can_be_reused_and_gives_the_same_answer():
    S = sp.csr_array(np.vstack([np.ones(3), [1, 1, 0], np.eye(3)]))
    y = np.arange(15.0).reshape(5, 3)
    hier = Hierarchy(S)
    for method in ("ols", "wls_struct", "bottom_up"):
        np.testing.assert_array_equal(reconcile(hier, y, method), reconcile(S, y, method))


@pytest.mark.parametrize("dense_fill", [0.0, 2.0])
def test_singular_system_raises_instead_of_returning_garbage(dense_fill, monkeypatch):
    monkeypatch.setattr(gls, "_DENSE_FILL", dense_fill)
    from kernels._reconcile_ops import ops_for

    S = sp.csr_array(np.vstack([np.ones(3), [1, 1, 0], [0, 1, 1], np.eye(3)]))
    hier = Hierarchy(S)
    y = np.ones((6, 2))
    with pytest.raises(ReconciliationError, match="positive definite"):
        gls.gls_bottom(ops_for(hier, np), y, np.zeros(6))


def test_wls_var_and_mint_shrink_refuse_all_zero_residual_series():
    S = sp.csr_array(np.vstack([np.ones(2), np.eye(2)]))
    R = np.array([[1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    for method in ("wls_var", "mint_shrink"):
        with pytest.raises(ValueError, match=r"all-zero in-sample residuals \(rows \[1\]"):
            reconcile(S, np.ones((3, 1)), method, residuals=R)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"S": np.ones((3, 2))}, TypeError, "scipy.sparse summing matrix"),
        (
            {"S": sp.csr_array(np.array([[2.0, 1.0], [1, 0], [0, 1]]))},
            ValueError,
            "row 0, column 0 holds 2.0",
        ),
        (
            {"S": sp.csr_array(np.array([[1.0, 1.0], [1, 1], [0, 1]]))},
            ValueError,
            "bottom series \\(column\\) 0",
        ),
        (
            {"S": sp.csr_array(np.array([[1.0, 1.0], [0, 0], [1, 0], [0, 1]]))},
            ValueError,
            "row 1 of S sums no",
        ),
        ({"y_hat": np.ones((4, 2))}, ValueError, "y_hat must have shape"),
        ({"y_hat": np.array([[1.0], [np.nan], [1.0]])}, ValueError, "NaN or infinite value in row 1"),
        ({"method": "mint_cov"}, ValueError, "unknown method 'mint_cov'"),
        ({"method": "wls_var"}, ValueError, "needs residuals"),
        ({"method": "mint_shrink", "residuals": np.ones((3, 1))}, ValueError, "at least T = 2"),
        ({"method": "wls"}, ValueError, "needs weights"),
        ({"method": "wls", "weights": np.array([1.0, 0.0, 1.0])}, ValueError, "row 1 holds 0.0"),
        ({"method": "middle_out"}, ValueError, "needs level"),
        ({"method": "top_down", "proportions": "average_proportions"}, ValueError, "needs y_insample"),
        ({"method": "top_down", "proportions": "guess"}, ValueError, "unknown proportions"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, exc, match):
    args = {
        "S": sp.csr_array(np.array([[1.0, 1.0], [1, 0], [0, 1]])),
        "y_hat": np.ones((3, 2)),
        "method": "ols",
    }
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        reconcile(args.pop("S"), args.pop("y_hat"), args.pop("method"), **args)


def test_every_method_is_listed_and_runs():
    S = sp.csr_array(np.vstack([np.ones(4), [1, 1, 0, 0], [0, 0, 1, 1], np.eye(4)]))
    rng = np.random.default_rng(2)
    y = rng.uniform(1, 3, size=(7, 2))
    for method in METHODS:
        out = reconcile(
            S, y, method, residuals=rng.standard_normal((7, 5)), weights=np.ones(7), level=1, y_insample=y
        )
        np.testing.assert_allclose(S @ out[3:], out, rtol=1e-13)


def test_import_compiles_nothing_and_warmup_compiles():
    import subprocess
    import sys

    # The reconciliation kernels live in a module loaded only on first use (other kernels may import Numba).
    code = (
        "import sys, kernels.reconcile, kernels.reconcile_frame;"
        "assert 'kernels._reconcile_numba' not in sys.modules, 'reconcile kernels imported at import time';"
        "from kernels.reconcile import warmup; warmup();"
        "import kernels._reconcile_numba as nb; assert nb._compiled.cache_info().currsize == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_reconciled_quantiles_are_coherent_and_monotone():
    from kernels.reconcile import reconcile_quantiles

    S = np.vstack([np.ones(4), [1, 1, 0, 0], [0, 0, 1, 1], np.eye(4)])
    rng = np.random.default_rng(7)
    draws = rng.normal(
        loc=rng.uniform(2, 8, size=(7, 1, 1)), scale=rng.uniform(0.5, 3, size=(7, 1, 1)), size=(7, 2, 400)
    )
    q = np.quantile(draws, [0.1, 0.5, 0.9], axis=2).transpose(1, 2, 0)  # (n, h, Q), each series on its own
    R = rng.standard_normal((7, 15))
    for method in ("ols", "mint_shrink", "top_down"):
        out = reconcile_quantiles(sp.csr_array(S), q, method, residuals=R)
        assert out.shape == q.shape
        assert (np.diff(out, axis=2) >= 0).all(), method
        np.testing.assert_allclose(np.einsum("nm,mhq->nhq", S, out[3:]), out, rtol=1e-12)


def test_blas_threads_setting_does_not_change_the_answer():
    S = sp.csr_array(np.vstack([np.ones(3), [1, 1, 0], np.eye(3)]))
    rng = np.random.default_rng(4)
    y, R = rng.uniform(1, 4, size=(5, 3)), rng.standard_normal((5, 12))
    np.testing.assert_array_equal(
        reconcile(S, y, "mint_shrink", residuals=R, blas_threads=None),
        reconcile(S, y, "mint_shrink", residuals=R, blas_threads=1),
    )


def test_gpu_warmup_without_a_gpu_names_the_install_command():
    from kernels._backend import BackendError, gpu_available
    from kernels.reconcile import warmup

    if gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendError, match=r'pip install -e "\.\[gpu\]"'):
        warmup(gpu=True)
