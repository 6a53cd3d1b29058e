"""Cold start from similar items: peers, level scaling, the category-average reference."""

import numpy as np
import pytest

from training.cold_start import category_average, peer_groups, similar_items_forecast


def _data():
    # 5 units: 0-2 at store A (1 is cold), 3-4 at store B; sku labels: unit 4 shares unit 1's sku.
    store = np.array(["A", "A", "A", "B", "B"])
    sku = np.array(["s1", "s2", "s3", "s4", "s2"])
    y = np.array(
        [
            [10.0, 10, 10, 10],
            [np.nan] * 4,
            [30.0, 30, 30, 30],
            [100.0, 100, 100, 100],
            [7.0, 7, 8, 8],
        ]
    )
    f = np.stack([np.full((3, 2), v) for v in (12.0, 0.0, 36.0, 120.0, 9.0)])  # (N, H=3, Q=2)
    return store, sku, y, f


def test_peers_are_the_most_specific_shared_attribute():
    store, sku, _, _ = _data()
    cold = np.array([False, True, False, False, False])
    assert [p.tolist() for p in peer_groups(cold, [sku, store])] == [[4]]  # same SKU at another store
    assert [p.tolist() for p in peer_groups(cold, [store])] == [[0, 2]]
    lone = np.array(["x", "y", "z", "w", "v"])
    assert [p.tolist() for p in peer_groups(cold, [lone])] == [[0, 2, 3, 4]]  # nothing shared: all warm
    with pytest.raises(ValueError, match="every unit is cold"):
        peer_groups(np.ones(5, bool), [store])


def test_no_history_gets_the_peer_mean_and_a_little_history_is_scaled():
    store, _, y, f = _data()
    cold = np.array([False, True, False, False, False])
    out = similar_items_forecast(y, f, cold, [store], levels=[0.25, 0.5])
    np.testing.assert_allclose(out[1][:, 1], 24.0)  # the median of the peers' medians 12 and 36
    np.testing.assert_allclose(out[1][:, 0], 18.0)  # their 25 % quantile: the spread of the peers' levels
    np.testing.assert_allclose(np.delete(out, 1, 0), np.delete(f, 1, 0))  # warm units untouched
    y2 = y.copy()
    y2[1, -2:] = 40.0  # two periods seen at twice the peers' level (10 and 30 -> 20)
    out = similar_items_forecast(y2, f, cold, [store], levels=[0.25, 0.5])
    np.testing.assert_allclose(out[1], 48.0)  # the peers' mean forecast 24 at twice their level
    ref = category_average(y2, 3, cold, [store], window=2)
    np.testing.assert_allclose(ref[1], 20.0)
    assert np.isnan(ref[0]).all()
