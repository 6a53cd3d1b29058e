import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.baselines import croston, last_value, moving_average, seasonal_naive, tsb
from training.metrics import bias, coverage, mae, mase, pinball, smape, wape

NAN = np.nan


def test_last_value_skips_trailing_gaps_and_empty_series():
    y = np.array([[1.0, 2.0, 3.0, 4.0], [NAN, 0.0, 5.0, NAN], [NAN, NAN, NAN, NAN]])
    np.testing.assert_allclose(last_value(y, 2), [[4, 4], [5, 5], [0, 0]])


def test_seasonal_naive_by_hand():
    y = np.array([[1.0, 2.0, 3.0, 4.0], [9.0, 0.0, 5.0, 7.0]])
    # m = 2: h=0 -> y[2], h=1 -> y[3], h=2 -> y[2] again
    np.testing.assert_allclose(seasonal_naive(y, 3, m=2), [[3, 4, 3], [5, 7, 5]])
    # season longer than history falls back to the last value
    np.testing.assert_allclose(seasonal_naive(y, 2, m=12), [[4, 4], [7, 7]])


def test_moving_average_by_hand():
    y = np.array([[1.0, 2.0, 3.0, 4.0], [9.0, 0.0, 5.0, 0.0]])
    np.testing.assert_allclose(moving_average(y, 2, k=3), [[3, 3], [5 / 3, 5 / 3]])


def test_croston_by_hand():
    # first demand at t=1 (q=2): z=3, p=2; next demand at t=4 (q=3): z=3+.5*3=4.5, p=2+.5*(3-2)=2.5
    y = np.array([[0.0, 3.0, 0.0, 0.0, 6.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(croston(y, 2, alpha=0.5), [[1.8, 1.8], [0.0, 0.0]])


def test_tsb_by_hand():
    # first demand at t=1: z=3, d=1/2; t=2,3: d=.25,.125; t=4: d=.125+.5*.875=.5625, z=4.5 -> 2.53125
    y = np.array([[0.0, 3.0, 0.0, 0.0, 6.0]])
    np.testing.assert_allclose(tsb(y, 1, alpha=0.5, beta=0.5), [[2.53125]])


def test_point_metrics_by_hand():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    f = np.array([[2.0, 2.0], [3.0, 2.0]])
    assert mae(y, f) == pytest.approx(0.75)
    assert wape(y, f) == pytest.approx(0.3)
    assert bias(y, f) == pytest.approx(-0.1)
    assert smape(y, f) == pytest.approx((2 / 3 + 2 * 2 / 6) / 4)


def test_metrics_ignore_nan_actuals():
    y = np.array([[1.0, NAN]])
    f = np.array([[2.0, 100.0]])
    assert mae(y, f) == 1.0 and wape(y, f) == 1.0


def test_mase_pinball_coverage_by_hand():
    assert mase(np.array([[4.0]]), np.array([[1.0]]), np.array([[1.0, 3.0, 2.0]]), m=1)[0] == pytest.approx(
        2.0
    )
    assert pinball(np.array([1.0]), np.array([[0.0, 2.0]]), np.array([0.1, 0.9])) == pytest.approx(0.1)
    assert coverage(np.array([1.0, 5.0, 3.0]), np.array([0, 0, 4.0]), np.array([2, 4, 6.0])) == pytest.approx(
        1 / 3
    )
    assert math.isnan(mase(np.array([[1.0]]), np.array([[1.0]]), np.array([[2.0, 2.0, 2.0]]))[0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=3, max_size=30), st.integers(1, 6))
def test_baselines_are_finite_and_nonnegative(values, H):
    y = np.array([values])
    for f in (last_value(y, H), seasonal_naive(y, H, 3), moving_average(y, H), croston(y, H), tsb(y, H)):
        assert f.shape == (1, H)
        assert np.isfinite(f).all() and (f >= 0).all()
