"""Non-negative MinT for diagonal W: the exact constrained optimum by block principal pivoting.

For ``W = diag(w)`` the non-negative reconciled forecasts solve, per forecast column,

    min_b (y - S b)' W^-1 (y - S b)   subject to  b >= 0

(Wickramasuriya, Turlach & Hyndman 2020, "Optimal non-negative forecast reconciliation"). With the bottom
series in a set Z fixed at 0, the rows of Z drop out of the objective (W is diagonal), so the reduced problem
is the same aggregate-space MinT solve with ``w_j = 0`` and ``y_j = 0`` for j in Z. The active set is found by
block principal pivoting (Kim & Park 2011; Portugal, Judice & Vicente 1994): exchange every infeasible index
at once, and fall back to exchanging only the largest infeasible index when the count of infeasibilities stops
falling, which makes the method finite. The answer is accepted only when the KKT conditions hold:
``b_F >= 0`` and the gradient ``g_Z = [S' W^-1 (S b - y)]_Z >= 0``; otherwise :class:`ReconciliationError` is
raised.

Runs on the host (device inputs are copied); only forecast columns with a negative unconstrained answer are
solved again.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from kernels._reconcile_structure import Hierarchy, ReconciliationError

__all__ = ["nnls_diag_bottom"]

_MAX_ITER = 500
_DENSE_MAX = 512  # aggregates up to which the a x a system is factorised densely


def _factor(hier: Hierarchy, w_a: np.ndarray, w_b: np.ndarray):
    pat = hier.gram_pattern
    a = hier.a
    K = sp.csc_matrix((pat.values(w_a, w_b), pat.indices, pat.indptr), shape=(a, a))
    if a <= _DENSE_MAX:
        factor = sla.cho_factor(K.toarray(), lower=True, check_finite=False)
        return lambda r: sla.cho_solve(factor, r, check_finite=False)
    lu = spla.splu(K, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    return lu.solve


def _solve_fixed(hier: Hierarchy, y_a, y_b, w_a, w_b, Z):
    """Bottom forecasts minimising the objective with ``b_Z = 0``, shape (m,)."""
    w_eff = np.where(Z, 0.0, w_b)
    y_eff = np.where(Z, 0.0, y_b)
    x = _factor(hier, w_a, w_eff)(y_a - hier.C @ y_eff)
    b = y_eff + w_eff * (hier.Ct @ x)
    b[Z] = 0.0
    return b


def _column(hier: Hierarchy, y_a, y_b, w_a, w_b, b0):
    scale = max(float(np.abs(y_b).max(initial=0.0)), float(np.abs(y_a).max(initial=0.0)), 1e-300)
    tol = 1e-10 * scale
    Z = np.zeros(hier.m, dtype=bool)
    b = b0
    best, stalls = np.inf, 0
    for _ in range(_MAX_ITER):
        g = hier.Ct @ ((hier.C @ b - y_a) / w_a) + (b - y_b) / w_b
        bad_free = ~Z & (b < -tol)
        bad_fixed = Z & (g < -tol / np.maximum(w_b, 1e-300))
        infeasible = bad_free | bad_fixed
        count = int(infeasible.sum())
        if count == 0:
            return np.maximum(b, 0.0)
        if count < best:
            best, stalls = count, 0
        else:
            stalls += 1
        if stalls >= 3:  # backup rule: move only the largest infeasible index
            j = int(np.flatnonzero(infeasible)[-1])
            infeasible = np.zeros_like(infeasible)
            infeasible[j] = True
        Z = Z ^ infeasible
        b = _solve_fixed(hier, y_a, y_b, w_a, w_b, Z)
    raise ReconciliationError(
        f"non-negative reconciliation did not converge in {_MAX_ITER} pivoting steps (KKT conditions not met)"
    )


def nnls_diag_bottom(ops, y2, w, b0):
    """Exact non-negative bottom forecasts for ``W = diag(w)``.

    Args:
        ops: backend operations for the hierarchy.
        y2: base forecasts, shape (n, k).
        w: diagonal of W, shape (n,), positive.
        b0: the unconstrained reconciled bottom forecasts, shape (m, k).

    Returns:
        Non-negative bottom forecasts, shape (m, k), on the backend's device.

    Raises:
        ReconciliationError: the pivoting did not reach a KKT point.
    """
    hier = ops.hier
    y = ops.to_host(y2)
    w_h = ops.to_host(w)
    b = np.array(ops.to_host(b0), dtype=np.float64, copy=True)
    y_a, y_b = y[hier.agg_rows], y[hier.bottom_rows]
    w_a, w_b = w_h[hier.agg_rows], w_h[hier.bottom_rows]
    for c in np.flatnonzero((b < 0).any(axis=0)):
        b[:, c] = _column(hier, y_a[:, c], y_b[:, c], w_a, w_b, b[:, c])
    return ops.from_host(b)
