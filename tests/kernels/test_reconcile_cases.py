"""Random hierarchies and dense reference formulas shared by the reconciliation tests (no tests here)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st


def tree_S(branching: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Dense S of a tree given, per level, the number of children of each node of the previous level.

    Returns:
        (S, parent): S (n x m) with aggregates first (top-down, level by level) and the identity last; parent
        row of every row (-1 for the root).
    """
    levels = [[0]]  # node ids per level, as lists of row numbers assigned later
    parents_per_level: list[np.ndarray] = []
    count = 1
    for widths in branching:
        parents = np.repeat(np.arange(len(levels[-1])), widths)
        parents_per_level.append(parents)
        levels.append(list(range(count, count + parents.size)))
        count += parents.size
    # bottom-of-tree membership: walk every leaf's path up
    n_leaf = len(levels[-1])
    leaf_anc = [np.arange(n_leaf)]
    for parents in reversed(parents_per_level):
        leaf_anc.append(parents[leaf_anc[-1]])
    leaf_anc = leaf_anc[::-1]  # per level, the index (within that level) of each leaf's ancestor
    rows = []
    parent_rows = []
    for lev, nodes in enumerate(levels[:-1]):
        for i in range(len(nodes)):
            rows.append((leaf_anc[lev] == i).astype(float))
            parent_rows.append(-1 if lev == 0 else levels[lev - 1][parents_per_level[lev - 1][i]])
    for i in range(n_leaf):
        parent_rows.append(levels[-2][parents_per_level[-1][i]])
    S = np.vstack(rows + [np.eye(n_leaf)])
    return S, np.array(parent_rows)


@st.composite
def trees(draw, max_depth: int = 3, max_width: int = 4):
    """A dense tree summing matrix with 1 to ``max_depth`` aggregate levels below the root."""
    depth = draw(st.integers(1, max_depth))
    branching = []
    width = 1
    for _ in range(depth):
        widths = draw(st.lists(st.integers(1, max_width), min_size=width, max_size=width))
        branching.append(widths)
        width = sum(widths)
    return tree_S(branching)[0]


@st.composite
def grouped(draw):
    """A dense grouped (cross-classified) summing matrix: total, two or three groupings and some crossings."""
    sizes = draw(st.lists(st.integers(2, 4), min_size=2, max_size=3))
    grid = np.array(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")).reshape(len(sizes), -1).T
    keep = draw(st.lists(st.booleans(), min_size=len(grid), max_size=len(grid)))
    keep = np.array(keep) | (np.arange(len(grid)) < 2)
    grid = grid[keep]
    rows = [np.ones(len(grid))]
    for g, s in enumerate(sizes):
        rows += [(grid[:, g] == v).astype(float) for v in range(s)]
    if len(sizes) == 3:
        for u in range(sizes[0]):
            for v in range(sizes[1]):
                rows.append(((grid[:, 0] == u) & (grid[:, 1] == v)).astype(float))
    rows = [r for r in rows if r.sum() > 1]
    return np.vstack(rows + [np.eye(len(grid))])


def dense_shrinkage(R: np.ndarray) -> tuple[np.ndarray, float]:
    """Schafer-Strimmer shrinkage covariance written out in n x n form (as the R package hts does)."""
    T = R.shape[1]
    cov = R @ R.T / T
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    X = (R / sd[:, None]).T  # T x n standardised
    v = ((X**2).T @ (X**2) - (X.T @ X) ** 2 / T) / (T * (T - 1))
    np.fill_diagonal(v, 0.0)
    c2 = corr**2
    np.fill_diagonal(c2, 0.0)
    lam = float(np.clip(v.sum() / c2.sum(), 0.0, 1.0))
    return lam * np.diag(np.diag(cov)) + (1.0 - lam) * cov, lam


def dense_W(method: str, S: np.ndarray, R: np.ndarray | None, weights: np.ndarray | None) -> np.ndarray:
    """The method's W in dense form."""
    n = S.shape[0]
    if method == "ols":
        return np.eye(n)
    if method == "wls_struct":
        return np.diag(S.sum(axis=1))
    if method == "wls_var":
        return np.diag((R * R).mean(axis=1))
    if method == "wls":
        return np.diag(weights)
    if method == "mint_shrink":
        return dense_shrinkage(R)[0]
    raise AssertionError(method)


def dense_mint(S: np.ndarray, W: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """S (S' W^-1 S)^-1 S' W^-1 y_hat, the closed form."""
    Wi = np.linalg.inv(W)
    return S @ np.linalg.solve(S.T @ Wi @ S, S.T @ Wi @ y_hat)


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(x - ref).max() / max(np.abs(ref).max(), 1e-300))


def sparse(S: np.ndarray) -> sp.csr_array:
    return sp.csr_array(S)
