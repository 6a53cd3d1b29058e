"""Conformal calibration of the TFT's quantiles: lower and upper tails fitted separately."""

from __future__ import annotations

import numpy as np
import pytest

from training.postprocess import apply_postprocess, fit_calibration

LEVELS = [0.1, 0.25, 0.5, 0.75, 0.9]


def _skewed(rng, n=400, h=6):
    """Symmetric forecast bands around the median and right-skewed errors (log-normal demand)."""
    med = rng.uniform(50, 150, (n, 1)) * np.ones((1, h))
    y = med * rng.lognormal(0.0, 0.35, (n, h))
    z = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])  # a band far too narrow on both sides, symmetric
    return y, med[..., None] + 10.0 * z


def _misses(y, q):
    lo, hi = LEVELS.index(0.1), LEVELS.index(0.9)
    return float((y < q[..., lo]).mean()), float((y > q[..., hi]).mean())


def test_each_tail_reaches_its_own_miss_rate_on_validation_and_on_new_data():
    rng = np.random.default_rng(0)
    y_val, q_val = _skewed(rng)
    cal = fit_calibration(y_val, q_val, LEVELS)
    assert cal["0.9"] > cal["0.1"] * 1.3  # right skew: the upper tail needs the wider stretch
    below, above = _misses(y_val, apply_postprocess(q_val, None, LEVELS, {"tft": 1.0}, cal, 1))
    assert below <= 0.1 and above <= 0.1 and below > 0.09 and above > 0.09
    y_new, q_new = _skewed(np.random.default_rng(1))
    below, above = _misses(y_new, apply_postprocess(q_new, None, LEVELS, {"tft": 1.0}, cal, 1))
    assert 1.0 - below - above == pytest.approx(0.8, abs=0.02)
    assert abs(below - above) < 0.03  # both tails, not one wide and one narrow


def test_margin_aims_the_band_above_nominal():
    y_val, q_val = _skewed(np.random.default_rng(0))
    plain = fit_calibration(y_val, q_val, LEVELS)
    wider = fit_calibration(y_val, q_val, LEVELS, margin=0.03)
    assert all(wider[k] >= plain[k] for k in plain) and set(plain) == {"0.1", "0.25", "0.75", "0.9"}
    below, above = _misses(y_val, apply_postprocess(q_val, None, LEVELS, {"tft": 1.0}, wider, 1))
    assert 1.0 - below - above == pytest.approx(0.83, abs=0.006)
