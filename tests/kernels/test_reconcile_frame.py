"""Frame-level reconciliation: ids from level columns, long frames in and out, clear errors."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest

from kernels.reconcile import reconcile
from kernels.reconcile_frame import frame_hierarchy, reconcile_frame

TREE = [[], ["region"], ["region", "store"], ["region", "store", "sku"]]


def _keys() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "region": ["N", "N", "N", "S", "S"],
            "store": ["a", "a", "b", "c", "c"],
            "sku": [1, 2, 1, 1, 3],
        }
    )


def _long(fh, h: int, rng: np.random.Generator, col: str = "y_hat") -> pl.DataFrame:
    n = fh.ids.len()
    ds = pl.date_range(datetime.date(2026, 3, 1), datetime.date(2026, 3, h), eager=True)
    return pl.DataFrame(
        {
            "unique_id": fh.ids.gather(np.repeat(np.arange(n), h)),
            "ds": ds.gather(np.tile(np.arange(h), n)),
            col: rng.uniform(1.0, 10.0, n * h),
        }
    )


def test_node_ids_and_summing_matrix_follow_the_spec():
    fh = frame_hierarchy(_keys(), TREE)
    assert fh.ids.to_list() == [
        "total",
        "region=N",
        "region=S",
        "region=N/store=a",
        "region=N/store=b",
        "region=S/store=c",
        "region=N/store=a/sku=1",
        "region=N/store=a/sku=2",
        "region=N/store=b/sku=1",
        "region=S/store=c/sku=1",
        "region=S/store=c/sku=3",
    ]
    S = fh.S.toarray()
    np.testing.assert_array_equal(S[0], np.ones(5))
    np.testing.assert_array_equal(S[1], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(S[4], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(S[6:], np.eye(5))
    assert fh.levels.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]
    assert fh.hierarchy.tree is not None


def test_reconcile_frame_equals_the_array_call_and_is_coherent():
    fh = frame_hierarchy(_keys(), TREE)
    rng = np.random.default_rng(0)
    fc = _long(fh, 4, rng)
    res = _long(fh, 9, rng, col="residual")
    out = reconcile_frame(fc, fh, "mint_shrink", residuals=res)
    assert out.columns == ["unique_id", "ds", "y_hat"]
    assert out.height == fc.height
    y_hat = fc["y_hat"].to_numpy().reshape(11, 4)
    R = res["residual"].to_numpy().reshape(11, 9)
    np.testing.assert_allclose(
        out["y_hat"].to_numpy().reshape(11, 4), reconcile(fh.S, y_hat, "mint_shrink", residuals=R), rtol=1e-12
    )
    by_ds = (
        out.filter(pl.col("unique_id").str.count_matches("/") == 2).group_by("ds").agg(pl.col("y_hat").sum())
    )
    total = out.filter(pl.col("unique_id") == "total").join(by_ds, on="ds")
    np.testing.assert_allclose(total["y_hat"], total["y_hat_right"], rtol=1e-12)


def test_row_order_does_not_matter_and_pandas_in_gives_pandas_out():
    fh = frame_hierarchy(_keys(), TREE)
    fc = _long(fh, 3, np.random.default_rng(1))
    expect = reconcile_frame(fc, fh, "wls_struct")
    shuffled = fc.sample(fraction=1.0, shuffle=True, seed=3)
    got = reconcile_frame(shuffled, fh, "wls_struct")
    assert got.equals(expect)
    by_node_reversed = fc.with_row_index("i").sort(["unique_id", "i"], descending=[True, False]).drop("i")
    assert reconcile_frame(by_node_reversed, fh, "wls_struct").equals(expect)
    got_pd = reconcile_frame(shuffled.to_pandas(), fh, "wls_struct")
    assert isinstance(got_pd, pd.DataFrame)
    np.testing.assert_allclose(got_pd["y_hat"].to_numpy(), expect["y_hat"].to_numpy(), rtol=1e-14)


def test_grouped_spec_builds_a_grouped_structure():
    keys = pl.DataFrame(
        {"region": ["N", "N", "S", "S"], "category": ["x", "y", "x", "y"], "sku": [1, 2, 3, 4]}
    )
    fh = frame_hierarchy(keys, [[], ["region"], ["category"], ["sku"]])
    assert fh.ids.len() == 1 + 2 + 2 + 4
    assert fh.hierarchy.tree is None
    out = reconcile_frame(_long(fh, 2, np.random.default_rng(2)), fh, "ols")
    wide = out["y_hat"].to_numpy().reshape(9, 2)
    np.testing.assert_allclose(fh.S.toarray() @ wide[5:], wide, rtol=1e-12)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 5)
                .then(pl.lit("nope"))
                .otherwise(pl.col("unique_id"))
                .alias("unique_id")
            ),
            "forecasts row 5: unique_id 'nope' is not a node",
        ),
        (lambda f: f.slice(1), "no row for unique_id 'total' at ds 2026-03-01"),
        (lambda f: pl.concat([f, f.head(1)]), "several rows for unique_id 'total'"),
        (lambda f: f.drop("ds"), "forecasts has no column 'ds'"),
    ],
)
def test_bad_frames_get_clear_errors(mutate, match):
    fh = frame_hierarchy(_keys(), TREE)
    fc = _long(fh, 2, np.random.default_rng(4))
    with pytest.raises(ValueError, match=match):
        reconcile_frame(mutate(fc), fh, "ols")


def test_bad_keys_get_clear_errors():
    keys = _keys()
    with pytest.raises(ValueError, match="keys row 1 .* is not unique"):
        frame_hierarchy(keys.with_columns(pl.lit(1).alias("sku")), TREE)
    with pytest.raises(ValueError, match="spec column 'city' is not a column"):
        frame_hierarchy(keys, [[], ["city"], ["region", "store", "sku"]])
    with pytest.raises(ValueError, match="keys column 'store' is null in row 2"):
        frame_hierarchy(
            keys.with_columns(
                pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise(pl.col("store")).alias("store")
            ),
            TREE,
        )
    with pytest.raises(TypeError, match="polars or pandas DataFrame"):
        frame_hierarchy({"region": ["N"]}, TREE)
