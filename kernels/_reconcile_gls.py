"""Generalised-least-squares (MinT family) reconciliation solved in the aggregate space.

For a covariance ``W`` (n x n, positive definite) the MinT reconciled forecasts are

    y_tilde = S (S' W^-1 S)^-1 S' W^-1 y_hat                         (Wickramasuriya et al. 2019, eq. 9)
            = y_hat - W U (U' W U)^-1 U' y_hat,   U' = [I_a  -C]      (same paper, Lemma 1)

with ``C`` (a x m) the aggregation rows of ``S`` and ``U'`` the (a x n) constraint matrix whose null space is
the coherent subspace. The second form needs one a x a solve, where a is the number of aggregates (1,101 for
the Total -> 100 regions -> 1,000 stores -> N series hierarchy, whatever N is), instead of the m x m (dense
for any hierarchy with a total) system of the first. ``W`` is kept as diagonal + low rank,

    W = diag(w) + c2 * R R',

which covers OLS (w = 1), structural WLS (w = S 1; Athanasopoulos et al. 2017), variance WLS (w = residual
variances), any user weights, and MinT-shrink: the Schafer-Strimmer (2005) shrinkage estimator used by
Wickramasuriya et al. (2019), W = lambda D + (1 - lambda) R R' / T with D = diag(R R' / T), i.e.
w = lambda D and c2 = (1 - lambda) / T. Then

    U' W U = diag(w_a) + C diag(w_b) C' + c2 V V',   V = U' R = R_a - C R_b          (a x a)
    b_tilde = y_b + w_b * (C' x) - c2 R_b V' x,       x = (U' W U)^-1 (y_a - C y_b).

Nothing n x n or n x m is formed. The a x a system is solved by a dense Cholesky factorisation when a <=
4,096, else by a sparse LU factorisation of the diagonal part with the low-rank part through the Woodbury
identity; either way the solution's backward error is checked and a failed check raises.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from kernels._reconcile_structure import ReconciliationError

__all__ = ["ReconciliationError", "gls_bottom", "residual_variance", "shrinkage_intensity"]

_DENSE_MAX = 4096
_DENSE_FILL = 0.2
_SHRINK_BLOCK = 1 << 16
_BACKWARD_TOL = 1e-8


def residual_variance(R, xp, what: str = "residuals"):
    """Per-series mean squared in-sample residual, ``D = diag(R R') / T``.

    Args:
        R: in-sample residuals, shape (n, T).
        xp: array module of ``R``.
        what: name used in error messages.

    Returns:
        D, shape (n,).

    Raises:
        ValueError: some series have all-zero residuals (the variance estimate would be singular).
    """
    D = xp.einsum("ij,ij->i", R, R) / R.shape[1]
    zero = xp.flatnonzero(D <= 0.0)
    if int(zero.size):
        rows = [int(r) for r in zero[:5].tolist()]
        raise ValueError(
            f"{what}: {int(zero.size)} series have all-zero in-sample residuals (rows {rows}...), so their "
            "variance is 0 and W is singular; drop those rows from the fit residuals or use ols / wls_struct"
        )
    return D


def shrinkage_intensity(R, xp, D=None) -> float:
    """Schafer-Strimmer shrinkage intensity of the residual covariance towards its diagonal.

    With ``Sigma = R R' / T`` (uncentred, as in Wickramasuriya et al. 2019 and the R package hts),
    standardised residuals ``x_ti = r_it / sqrt(D_i)``, correlations ``r_ij = sum_t x_ti x_tj / T`` and
    ``v_ij = (sum_t x_ti^2 x_tj^2 - (sum_t x_ti x_tj)^2 / T) / (T (T - 1))``, the intensity is
    ``lambda = clip(sum_{i != j} v_ij / sum_{i != j} r_ij^2, 0, 1)``. Both double sums are computed from the
    T x T Gram matrix ``G = X' X`` in O(n T^2) time and O(n T) memory, never from an n x n matrix:
    ``sum_{i,j} (sum_t x_ti x_tj)^2 = ||G||_F^2`` and ``sum_{i,j} sum_t x_ti^2 x_tj^2 = sum_t (sum_i
    x_ti^2)^2``.

    Args:
        R: in-sample residuals, shape (n, T), T >= 2.
        xp: array module of ``R``.
        D: ``diag(R R') / T`` if already computed, shape (n,).

    Returns:
        lambda in [0, 1].
    """
    n, T = R.shape
    if D is None:
        D = residual_variance(R, xp)
    G = xp.zeros((T, T))
    col = xp.zeros(T)
    sum_x4 = 0.0
    # Row blocks keep the extra memory at one block of X instead of three n x T temporaries.
    for start in range(0, n, _SHRINK_BLOCK):
        X = R[start : start + _SHRINK_BLOCK] / xp.sqrt(D[start : start + _SHRINK_BLOCK])[:, None]
        G += X.T @ X
        X *= X
        col += X.sum(axis=0)
        sum_x4 += float(xp.einsum("ij,ij->", X, X))
    g2 = float(xp.sum(G * G))
    sum_x2x2 = float(col @ col) - sum_x4
    sum_corr2 = (g2 - n * T * T) / (T * T)
    sum_var = (sum_x2x2 - (g2 - n * T * T) / T) / (T * (T - 1))
    if sum_corr2 <= 0.0:
        return 1.0
    return float(min(1.0, max(0.0, sum_var / sum_corr2)))


def gls_bottom(ops, y_hat, w, R=None, c2: float = 0.0, out=None):
    """Bottom-level MinT forecasts for ``W = diag(w) + c2 R R'``.

    Args:
        ops: backend operations for the hierarchy (``kernels._reconcile_ops``).
        y_hat: base forecasts, shape (n, k), float64, on the backend's device.
        w: diagonal part of W, shape (n,), float64, non-negative.
        R: low-rank factor of W, shape (n, T), or None.
        c2: scale of the low-rank part (0 when ``R`` is None).
        out: optional C-contiguous output buffer, shape (m, k).

    Returns:
        b_tilde, the reconciled bottom-level forecasts, shape (m, k) (``out`` when given).

    Raises:
        ReconciliationError: ``U' W U`` is not positive definite or the solve fails its backward-error check.
    """
    xp, h = ops.xp, ops.hier
    if h.standard_layout:
        agg, bot = slice(0, h.a), slice(h.a, h.n)
    else:
        agg, bot = ops.from_host(h.agg_rows), ops.from_host(h.bottom_rows)
    y_a, y_b = y_hat[agg], y_hat[bot]
    w_a, w_b = w[agg], w[bot]
    if out is None:
        out = xp.empty((h.m, y_hat.shape[1]), dtype=xp.float64)
    if h.a == 0:
        out[...] = y_b
        return out
    r = y_a - ops.C_matmat(y_b)
    use_low_rank = R is not None and c2 > 0.0
    V = None
    if use_low_rank:
        R_a, R_b = R[agg], R[bot]
        V = R_a - ops.C_matmat(R_b)
    x = _solve_aggregate(ops, ops.to_host(w_a), ops.to_host(w_b), V, c2, r)
    ops.Ct_matmat_axpy(x, w_b, y_b, out)  # out = y_b + w_b * (C' x)
    if use_low_rank:
        out -= c2 * (R_b @ (V.T @ x))  # R_a' x - R_b' C' x = V' x
    return out


def _solve_aggregate(ops, w_a: np.ndarray, w_b: np.ndarray, V, c2: float, r):
    """Solve ``(A + c2 V V') x = r`` with ``A = diag(w_a) + C diag(w_b) C'`` (a x a) on the backend of ``r``.

    A sparse ``A`` (any tree, most grouped structures) is factorised by SuperLU on the host and the low-rank
    part goes through the Woodbury identity, ``(A + c2 V V')^-1 = A^-1 - A^-1 V (I / c2 + V' A^-1 V)^-1 V'
    A^-1``; a dense ``A`` (a <= 4,096 and over 20% non-zero) is factorised densely, with ``c2 V V'`` added, on
    the backend's device.
    """
    h = ops.hier
    a = h.a
    pat = h.gram_pattern
    data = pat.values(w_a, w_b)
    if a <= _DENSE_MAX and pat.indices.size > _DENSE_FILL * a * a:
        K_host = sp.csr_array((data, pat.indices, pat.indptr), shape=(a, a)).toarray()
        return _solve_dense(ops, K_host, V, c2, r)
    # K is symmetric, so its CSR arrays are also its CSC arrays.
    A = sp.csc_matrix((data, pat.indices, pat.indptr), shape=(a, a))
    try:
        lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    except RuntimeError:
        raise _not_pd() from None
    if np.any(lu.U.diagonal() <= 0.0):  # symmetric, no pivoting: positive pivots <=> positive definite
        raise _not_pd()
    r_h = ops.to_host(r)
    x = lu.solve(r_h)
    V_h = None
    if V is not None:
        V_h = ops.to_host(V)
        AiV = lu.solve(V_h)
        cap = np.eye(V_h.shape[1]) / c2 + V_h.T @ AiV
        try:
            x = x - AiV @ sla.solve(cap, V_h.T @ x, assume_a="pos")
        except np.linalg.LinAlgError:
            raise _not_pd() from None

    def K_mat(v):
        out = A @ v
        if V_h is not None:
            out = out + c2 * (V_h @ (V_h.T @ v))
        return out

    K_norm = float(abs(A).sum(axis=1).max()) + (c2 * float((V_h * V_h).sum()) if V_h is not None else 0.0)
    _check(np, K_mat, K_norm=K_norm, x=x, r=r_h)
    return ops.from_host(np.ascontiguousarray(x))


def _solve_dense(ops, K_host: np.ndarray, V, c2: float, r):
    """Dense Cholesky (host) or LU (device) solve of ``(K + c2 V V') x = r``."""
    xp = ops.xp
    K = K_host if xp is np else xp.asarray(K_host)
    if V is not None:
        K += c2 * (V @ V.T)
    if xp is np:
        try:
            factor = sla.cho_factor(K, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            raise _not_pd() from None
        x = sla.cho_solve(factor, r, check_finite=False)
    else:
        x = xp.linalg.solve(K, r)
    _check(xp, lambda v: K @ v, K_norm=float(xp.abs(K).sum(axis=1).max()), x=x, r=r)
    return x


def _not_pd() -> ReconciliationError:
    return ReconciliationError(
        "the reconciliation system U'WU is not positive definite: W must be positive definite (check for "
        "constant or all-zero residual series, or a shrinkage intensity of 0 with fewer residuals than "
        "series)"
    )


def _check(xp, K_mat, K_norm: float, x, r) -> None:
    """Raise unless the solution has a small normwise backward error ``|Kx - r| / (|K| |x| + |r|)``."""
    if not bool(xp.isfinite(x).all()):
        raise _not_pd()
    res = float(xp.abs(K_mat(x) - r).max())
    scale = K_norm * float(xp.abs(x).max()) + float(xp.abs(r).max())
    if res > _BACKWARD_TOL * max(scale, np.finfo(float).tiny):
        raise ReconciliationError(
            f"the a x a reconciliation solve failed its check (backward error {res / scale:.2e} > "
            f"{_BACKWARD_TOL:.0e}); W is numerically singular"
        )
