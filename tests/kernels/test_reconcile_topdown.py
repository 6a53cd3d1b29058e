"""Top-down and middle-out on random strict trees vs plain recursive implementations; grouped refusal."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kernels.reconcile import Hierarchy, NotATreeError, reconcile
from tests.kernels.test_reconcile_cases import grouped, tree_S

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tree_cases(draw):
    depth = draw(st.integers(1, 3))
    branching, width = [], 1
    for _ in range(depth):
        widths = draw(st.lists(st.integers(1, 4), min_size=width, max_size=width))
        branching.append(widths)
        width = sum(widths)
    S, parent = tree_S(branching)
    seed = draw(st.integers(0, 2**31))
    return S, parent, seed


def _depths(parent: np.ndarray) -> np.ndarray:
    depth = np.zeros(parent.size, dtype=int)
    for i in range(parent.size):
        p = parent[i]
        while p >= 0:
            depth[i] += 1
            p = parent[p]
    return depth


def _naive_forecast_proportions(S, parent, y_hat, level):
    """Go down the tree node by node: child = parent's value * own base / sum of siblings' base."""
    n, m = S.shape
    depth = _depths(parent)
    tilde = y_hat.copy()
    for d in range(level + 1, depth.max() + 1):
        for v in np.flatnonzero(depth == d):
            p = parent[v]
            sibs = np.flatnonzero(parent == p)
            total = y_hat[sibs].sum(axis=0)
            share = np.where(total == 0, 1.0 / sibs.size, y_hat[v] / np.where(total == 0, 1.0, total))
            tilde[v] = tilde[p] * share
    return S @ tilde[n - m :]


@SETTINGS
@given(case=tree_cases())
def test_top_down_forecast_proportions_matches_the_recursive_definition(case):
    S, parent, seed = case
    y_hat = np.random.default_rng(seed).uniform(0.1, 10.0, size=(S.shape[0], 3))
    out = reconcile(sp.csr_array(S), y_hat, "top_down")
    np.testing.assert_allclose(out, _naive_forecast_proportions(S, parent, y_hat, 0), rtol=1e-12)
    np.testing.assert_allclose(out[0], y_hat[0], rtol=1e-12)  # the top keeps its forecast
    np.testing.assert_allclose(S @ out[S.shape[0] - S.shape[1] :], out, rtol=1e-13)


@SETTINGS
@given(case=tree_cases(), level=st.integers(0, 3))
def test_middle_out_keeps_the_middle_level_and_splits_below(case, level):
    S, parent, seed = case
    depth = _depths(parent)
    level = min(level, int(depth.max()))
    y_hat = np.random.default_rng(seed).uniform(0.1, 10.0, size=(S.shape[0], 2))
    out = reconcile(sp.csr_array(S), y_hat, "middle_out", level=level)
    n, m = S.shape
    np.testing.assert_allclose(out, _naive_forecast_proportions(S, parent, y_hat, level), rtol=1e-12)
    middle = depth == level
    np.testing.assert_allclose(out[middle], y_hat[middle], rtol=1e-12)
    np.testing.assert_allclose(S @ out[n - m :], out, rtol=1e-13)


@SETTINGS
@given(case=tree_cases(), rule=st.sampled_from(["average_proportions", "proportion_averages"]))
def test_top_down_historical_proportions(case, rule):
    S, parent, seed = case
    rng = np.random.default_rng(seed)
    n, m = S.shape
    history = S @ rng.uniform(0.5, 4.0, size=(m, 12))  # coherent, strictly positive history
    y_hat = rng.uniform(1.0, 9.0, size=(n, 2))
    out = reconcile(sp.csr_array(S), y_hat, "top_down", proportions=rule, y_insample=history)
    top, bottom = history[0], history[n - m :]
    p = (bottom / top).mean(axis=1) if rule == "average_proportions" else bottom.mean(axis=1) / top.mean()
    np.testing.assert_allclose(out[n - m :], p[:, None] * y_hat[0], rtol=1e-12)
    np.testing.assert_allclose(out[0], y_hat[0], rtol=1e-12)  # the proportions of a coherent history sum to 1


def test_middle_out_with_historical_proportions_splits_each_middle_series():
    S, parent = tree_S([[2], [2, 1]])  # root -> 2 -> 3 leaves
    history = S @ np.array([[1.0, 3.0], [3.0, 1.0], [2.0, 2.0]])
    y_hat = np.array([[10.0], [4.0], [7.0], [0.0], [0.0], [0.0]])
    out = reconcile(
        sp.csr_array(S), y_hat, "middle_out", level=1, proportions="proportion_averages", y_insample=history
    )
    np.testing.assert_allclose(out[:, 0], [11.0, 4.0, 7.0, 2.0, 2.0, 7.0])


def test_zero_sibling_sum_splits_equally():
    S = np.vstack([np.ones(2), np.eye(2)])
    y_hat = np.array([[6.0], [0.0], [0.0]])
    np.testing.assert_allclose(reconcile(sp.csr_array(S), y_hat, "top_down")[:, 0], [6.0, 3.0, 3.0])


def test_historical_proportions_refuse_a_zero_history():
    S = sp.csr_array(np.vstack([np.ones(2), np.eye(2)]))
    history = np.array([[0.0, 2.0], [0.0, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="history of series row 0"):
        reconcile(S, np.ones((3, 1)), "top_down", proportions="average_proportions", y_insample=history)
    with pytest.raises(ValueError, match="mean history of series row 0"):
        reconcile(
            S, np.ones((3, 1)), "top_down", proportions="proportion_averages", y_insample=np.zeros((3, 2))
        )


def _laminar(S: np.ndarray) -> bool:
    B = S.astype(bool)
    for i in range(len(B)):
        for j in range(len(B)):
            inter = (B[i] & B[j]).any()
            if inter and not ((B[i] <= B[j]).all() or (B[j] <= B[i]).all()):
                return False
    return True


@settings(max_examples=20, deadline=None)
@given(S=grouped())
def test_top_down_family_refuses_grouped_structures(S):
    assume(not _laminar(S))
    y_hat = np.ones((S.shape[0], 1))
    for method, kw in (("top_down", {}), ("middle_out", {"level": 1})):
        with pytest.raises(NotATreeError, match=f"method '{method}' needs a strict tree.*grouped structure"):
            reconcile(sp.csr_array(S), y_hat, method, **kw)
    assert Hierarchy(sp.csr_array(S)).tree is None


def test_tree_links_are_found_from_S_alone_in_any_row_order():
    S, parent = tree_S([[3], [2, 1, 2], [1, 2, 1, 1, 2]])
    perm = np.random.default_rng(0).permutation(S.shape[0])
    hier = Hierarchy(sp.csr_array(S[perm]))
    inv = np.argsort(perm)
    got = hier.tree.parent
    expect = np.where(parent[perm] >= 0, inv[np.maximum(parent[perm], 0)], -1)
    # rows with a single child share their child's support; either may be called the parent of the other
    single = np.array([np.count_nonzero(parent == parent[i]) == 1 for i in range(parent.size)])[perm]
    np.testing.assert_array_equal(got[~single], expect[~single])
    assert hier.tree.root == inv[0]


def test_level_out_of_range_is_refused():
    S = sp.csr_array(np.vstack([np.ones(2), np.eye(2)]))
    with pytest.raises(ValueError, match="level must be between 0 \\(root\\) and 1"):
        reconcile(S, np.ones((3, 1)), "middle_out", level=2)
