"""Hierarchical forecast reconciliation at array level: sparse, exact, CPU (NumPy/Numba) or GPU (CuPy).

``reconcile(S, y_hat, method)`` turns base forecasts of every series of a hierarchy into coherent forecasts
(every aggregate equals the sum of its bottom series). ``S`` is the scipy.sparse summing matrix (n x m) or a
:class:`Hierarchy` made from it once and reused. The backend follows the arrays: NumPy arrays run on the CPU,
CuPy arrays on the GPU, with the same results (float64).

Methods:
    bottom_up: sum the bottom base forecasts (Orcutt et al. 1968).
    top_down: split the top forecast by proportions (strict trees only; see ``proportions``).
    middle_out: keep the forecasts at depth ``level``, sum upwards and split downwards (strict trees only).
    ols: MinT with W = I (Hyndman et al. 2011).
    wls_struct: MinT with W = diag(S 1) (Athanasopoulos et al. 2017).
    wls_var: MinT with W = diag of the in-sample residual covariance (Wickramasuriya et al. 2019).
    wls: MinT with W = diag(weights), user-given.
    mint_shrink: MinT with the Schafer-Strimmer shrinkage covariance (Wickramasuriya et al. 2019).

The MinT family (Wickramasuriya, Athanasopoulos & Hyndman 2019, JASA 114:804-819) is solved exactly in the
aggregate space with W kept as diagonal + low rank (see ``kernels._reconcile_gls``); nothing n x n or n x m is
ever dense, and there is no iterative solver: every factorised solve is checked and a failure raises
:class:`ReconciliationError`.

Non-negativity (``nonnegative=True``) always gives coherent, non-negative forecasts equal to the unconstrained
answer whenever that is already non-negative. For the diagonal-W methods (``ols``, ``wls_struct``,
``wls_var``, ``wls``) it is the exact constrained optimum, min (y - S b)' W^-1 (y - S b) subject to b >= 0
(Wickramasuriya, Turlach & Hyndman 2020), found by block principal pivoting and accepted only at a KKT point
(see ``kernels._reconcile_nonneg``). For ``mint_shrink`` and the bottom-up / top-down family it is the
set-negative-to-zero heuristic (Di Fonzo & Girolimetto 2023, "sntz"): negative reconciled bottom-level
forecasts are set to 0 and summed up again, which is not the constrained optimum of the MinT-shrink objective.

Probabilistic forecasts: ``y_hat`` of shape (n, h, k) holds k sample paths (or k any other draws); each is
reconciled with the same linear map, so every reconciled sample is coherent (for the linear methods this is
the projection of the joint sample; Panagiotelis et al. 2023). :func:`reconcile_quantiles` reconciles quantile
forecasts level by level and then sorts the bottom-level quantiles, so the output is coherent and monotone.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels._backend import get_array_module
from kernels._reconcile_structure import Hierarchy, NotATreeError, ReconciliationError
from kernels._reconcile_topdown import PROPORTIONS

__all__ = [
    "METHODS",
    "PROPORTIONS",
    "Hierarchy",
    "NotATreeError",
    "ReconciliationError",
    "reconcile",
    "reconcile_quantiles",
    "warmup",
]

METHODS = ("bottom_up", "top_down", "middle_out", "ols", "wls_struct", "wls_var", "wls", "mint_shrink")
_NEEDS_RESIDUALS = ("wls_var", "mint_shrink")


def _as_hierarchy(S: Any) -> Hierarchy:
    if isinstance(S, Hierarchy):
        return S
    if not sp.issparse(S) and hasattr(S, "get") and type(S).__module__.startswith("cupyx"):
        S = S.get()  # a device sparse matrix: the structure is analysed on the host
    return Hierarchy(S)


def _as_array(xp, x, name: str, n: int, ndim: tuple[int, ...], expect: str):
    x = xp.ascontiguousarray(xp.asarray(x, dtype=xp.float64))
    if x.ndim not in ndim or x.shape[0] != n:
        raise ValueError(
            f"{name} must have shape {expect} with n = {n} rows (one per row of S), got {x.shape}"
        )
    if not bool(xp.isfinite(x).all()):
        row = int(xp.flatnonzero(~xp.isfinite(x.reshape(n, -1)).all(axis=1))[0])
        raise ValueError(f"{name} holds a NaN or infinite value in row {row}; {name} must be finite")
    return x


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - optional, scans loaded libraries
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn, a dependency of mlflow
        return None
    return ThreadpoolController()


def _blas_limit(xp, blas_threads: int | None):
    if xp is not np or blas_threads is None or _blas_controller() is None:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=blas_threads, user_api="blas")


def reconcile(
    S: Any,
    y_hat: Any,
    method: str,
    *,
    residuals: Any = None,
    weights: Any = None,
    y_insample: Any = None,
    proportions: str = "forecast_proportions",
    level: int | None = None,
    nonnegative: bool = False,
    blas_threads: int | None = 1,
) -> Any:
    """Reconcile base forecasts so that every aggregate equals the sum of its bottom series.

    Args:
        S: summing matrix, scipy.sparse (n x m) of 0/1 with an identity row per bottom series, or a
            :class:`Hierarchy` built from it (reuse it across calls to skip the analysis).
        y_hat: base forecasts, shape (n, h), or (n, h, k) for k sample paths; NumPy (CPU) or CuPy (GPU).
        method: one of :data:`METHODS`.
        residuals: in-sample one-step residuals, shape (n, T), T >= 2; needed by ``wls_var`` and
            ``mint_shrink``.
        weights: positive diagonal of W, shape (n,); needed by ``wls``.
        y_insample: in-sample history, shape (n, T); needed by ``top_down``/``middle_out`` with historical
            proportions.
        proportions: ``forecast_proportions``, ``average_proportions`` or ``proportion_averages`` (top-down
            family).
        level: depth of the middle series for ``middle_out`` (root = 0).
        nonnegative: coherent non-negative forecasts: exact constrained MinT for diagonal W, else negative
            bottom forecasts set to 0 and summed up again (see the module docstring).
        blas_threads: BLAS threads for the CPU dense products (None: as configured). The default, 1, is there
            because threaded OpenBLAS collapses when its cores are shared: the T x T Gram of the MinT-shrink
            intensity took 1.1-2.2 s threaded against 0.06 s single-threaded at n = 100k (T = 100) on the
            2-core development machine under load.

    Returns:
        Coherent forecasts with the shape and array type of ``y_hat``.

    Raises:
        ValueError: bad arguments (the message names the argument and the expected form).
        NotATreeError: a top-down-family method on a grouped structure.
        ReconciliationError: W (or U'WU) is not positive definite, or a solve failed its check.
        BackendError: arrays on different devices, or CuPy missing for device arrays.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if proportions not in PROPORTIONS:
        raise ValueError(f"unknown proportions {proportions!r}; expected one of {', '.join(PROPORTIONS)}")
    hier = _as_hierarchy(S)
    xp = get_array_module(y_hat, residuals, weights, y_insample)
    from kernels._reconcile_ops import ops_for  # noqa: PLC0415 - keeps Numba/CuPy out of import time

    ops = ops_for(hier, xp)
    n = hier.n
    y = _as_array(xp, y_hat, "y_hat", n, (2, 3), "(n, h) or (n, h, k)")
    shape = y.shape
    y2 = y.reshape(n, -1)
    out, b_buf = ops.empty_output(y2.shape[1])
    with _blas_limit(xp, blas_threads):
        b, w_diag = _bottom(
            ops,
            hier,
            y2,
            method,
            residuals=residuals,
            weights=weights,
            y_insample=y_insample,
            proportions=proportions,
            level=level,
            out=b_buf,
        )
    if nonnegative and w_diag is not None:
        from kernels._reconcile_nonneg import nnls_diag_bottom  # noqa: PLC0415

        b_buf[...] = nnls_diag_bottom(ops, y2, w_diag, b)
        b = b_buf
    elif nonnegative:
        b = xp.maximum(b, 0.0, out=b_buf)
    return ops.aggregate(b, out).reshape(shape)


def _bottom(
    ops, hier: Hierarchy, y2, method: str, *, residuals, weights, y_insample, proportions, level, out
):
    """Reconciled bottom-level forecasts (m, k) for 2-D base forecasts (n, k); MinT writes into ``out``.

    Returns:
        (b_tilde, w): w is the diagonal of W (n,) for the diagonal MinT methods, else None.
    """
    xp, n = ops.xp, hier.n
    if method == "bottom_up":
        rows = slice(hier.a, n) if hier.standard_layout else ops.from_host(hier.bottom_rows)
        return y2[rows], None
    if method in ("top_down", "middle_out"):
        from kernels._reconcile_topdown import middle_out_bottom  # noqa: PLC0415

        tree = hier.require_tree(method)
        if method == "top_down":
            level = 0
        elif level is None or isinstance(level, bool) or not isinstance(level, int | np.integer):
            raise ValueError("middle_out needs level, the integer depth of the middle series (root = 0)")
        max_depth = int(tree.depth.max())
        if not 0 <= int(level) <= max_depth:
            raise ValueError(f"level must be between 0 (root) and {max_depth} (deepest series), got {level}")
        y_in = None
        if proportions != "forecast_proportions":
            if y_insample is None:
                raise ValueError(
                    f"proportions={proportions!r} needs y_insample, the in-sample history (n x T)"
                )
            y_in = _as_array(xp, y_insample, "y_insample", n, (2,), "(n, T)")
        return middle_out_bottom(ops, tree, y2, int(level), proportions, y_in), None
    from kernels._reconcile_gls import gls_bottom, residual_variance, shrinkage_intensity  # noqa: PLC0415

    if method == "ols":
        w = xp.ones(n)
        return gls_bottom(ops, y2, w, out=out), w
    if method == "wls_struct":
        w = np.ones(n)
        w[hier.agg_rows] = hier.agg_size
        w = ops.from_host(w)
        return gls_bottom(ops, y2, w, out=out), w
    if method == "wls":
        if weights is None:
            raise ValueError("method 'wls' needs weights, the positive diagonal of W with shape (n,)")
        w = _as_array(xp, weights, "weights", n, (1,), "(n,)")
        if not bool((w > 0).all()):
            row = int(xp.flatnonzero(w <= 0)[0])
            raise ValueError(f"weights must be positive; row {row} holds {float(w[row])}")
        return gls_bottom(ops, y2, w, out=out), w
    if residuals is None:
        raise ValueError(
            f"method {method!r} needs residuals, the in-sample one-step residuals with shape (n, T)"
        )
    R = _as_array(xp, residuals, "residuals", n, (2,), "(n, T)")
    if R.shape[1] < 2:
        raise ValueError(f"residuals need at least T = 2 in-sample periods, got T = {R.shape[1]}")
    D = residual_variance(R, xp)
    if method == "wls_var":
        return gls_bottom(ops, y2, D, out=out), D
    lam = shrinkage_intensity(R, xp, D)
    return gls_bottom(ops, y2, lam * D, R=R, c2=(1.0 - lam) / R.shape[1], out=out), None


def reconcile_quantiles(S: Any, q_hat: Any, method: str, **kwargs: Any) -> Any:
    """Reconcile quantile forecasts into coherent, monotone quantiles.

    Each quantile level is reconciled as a point forecast (``reconcile`` with the same arguments); the bottom
    level's quantiles are then sorted along the quantile axis and summed up again. Sums of non-decreasing
    sequences are non-decreasing, so every series' quantiles are monotone, and every level is coherent.

    Args:
        S: summing matrix or :class:`Hierarchy` (see :func:`reconcile`).
        q_hat: base quantile forecasts, shape (n, h, Q), quantile levels increasing along the last axis.
        method: one of :data:`METHODS`.
        **kwargs: passed to :func:`reconcile`.

    Returns:
        Reconciled quantiles, shape (n, h, Q).
    """
    hier = _as_hierarchy(S)
    xp = get_array_module(q_hat)
    q = xp.asarray(q_hat, dtype=xp.float64)
    if q.ndim != 3:
        raise ValueError(f"q_hat must have shape (n, h, Q), got {q.shape}")
    tilde = reconcile(hier, q, method, **kwargs)
    from kernels._reconcile_ops import ops_for  # noqa: PLC0415

    ops = ops_for(hier, xp)
    rows = ops.from_host(hier.bottom_rows)
    b = xp.sort(tilde[rows], axis=2)
    return ops.aggregate(b.reshape(hier.m, -1)).reshape(q.shape)


def warmup(gpu: bool = False) -> None:
    """Compile the CPU kernels (and, with ``gpu=True``, the GPU kernel) and run every method once, tiny.

    Call this at start-up (e.g. in a Serve replica's constructor) so no user request pays for compilation.
    """
    from kernels._reconcile_numba import warmup as numba_warmup  # noqa: PLC0415

    numba_warmup()
    S = sp.csr_array(np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    hier = Hierarchy(S)
    rng = np.random.default_rng(0)
    y = rng.uniform(1.0, 2.0, size=(5, 2))
    R = rng.standard_normal((5, 4))
    arrays = [np]
    if gpu:
        from kernels._backend import cupy_module  # noqa: PLC0415

        arrays.append(cupy_module())
    for xp in arrays:
        yy, RR = xp.asarray(y), xp.asarray(R)
        for method in METHODS:
            reconcile(hier, yy, method, residuals=RR, weights=xp.ones(5), level=1, y_insample=xp.asarray(y))
