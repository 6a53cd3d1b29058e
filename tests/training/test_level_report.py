"""The per-level report and the served-selection helpers, on arrays small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.level_report import level_report, svg_bars
from training.selection import Selection
from training.served import TFT, fill_gaps, served_forecast, source_labels

LEVELS = (0.1, 0.5, 0.9)


def test_level_report_sums_series_up_each_level_by_hand():
    keys = pd.DataFrame({"sku_id": ["a", "a", "b"], "location_id": ["x", "y", "x"]})
    A = np.array([[[1.0, 3.0], [2.0, 2.0], [4.0, np.nan]]])  # (O=1, N=3, H=2)
    med = np.array([[[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]])
    F = np.stack([med - 1.0, med, med + 1.0], axis=-1)
    hist = np.array([[1.0, 2.0, 1.0], [2.0, 2.0, 2.0], [3.0, 5.0, 4.0]])
    rep = level_report(A, {"m": F}, hist, keys, LEVELS, season=1)
    assert rep["levels"] == ["total", "sku_id", "location_id", "series"]
    tot = rep["after"]["m"]["total"]
    # total actuals 7, 5 (the missing cell counts as 0 once another series is observed); forecast 6, 6
    assert tot["mae"] == pytest.approx(1.0) and tot["wape"] == pytest.approx(2.0 / 12.0)
    # total history 6, 9, 7: scale mean(|3|, |-2|) = 2.5; MASE 1 / 2.5
    assert tot["mase"] == pytest.approx(0.4)
    # total quantiles (3, 6, 9) for both periods: both actuals inside the band
    assert tot["coverage_p10_p90"] == 1.0
    series = rep["after"]["m"]["series"]
    assert series["mae"] == pytest.approx((1 + 1 + 0 + 0 + 2) / 5)
    sku = rep["after"]["m"]["sku_id"]  # a: 3, 5 vs 4, 4; b: 4 vs 2
    assert sku["wape"] == pytest.approx((1 + 1 + 2) / (3 + 5 + 4))
    assert "<svg" in svg_bars(rep) and rep["before"] == {}
    with pytest.raises(ValueError, match="expected"):
        level_report(A, {"m": F[:, :2]}, hist, keys, LEVELS, season=1)


def test_fill_gaps_zeroes_only_after_the_first_sale():
    y = np.array([[np.nan, 1.0, np.nan, 2.0, np.nan]])
    np.testing.assert_array_equal(fill_gaps(y), [[np.nan, 1.0, 0.0, 2.0, 0.0]])


def _selection(weights: dict[str, list[float]]) -> Selection:
    models = (TFT, "naive", "auto_ets")
    report = {"smooth": {"n_validated": 20, "loss": {TFT: 0.5, "naive": 0.9, "auto_ets": 0.7}},
              "lumpy": {"n_validated": 20, "loss": {TFT: 2.0, "naive": 1.0, "auto_ets": 1.5}}}
    return Selection.from_dict({"models": list(models), "levels": list(LEVELS), "method": "ensemble",
                                "segment_weights": weights, "report": report})


def test_served_forecast_uses_the_tft_only_where_it_is_chosen_and_available():
    sel = _selection({"*": [0.0, 1.0, 0.0], "smooth": [1.0, 0.0, 0.0], "lumpy": [0.0, 1.0, 0.0]})
    y = np.array([[5.0] * 30, [5.0] * 30])  # smooth, constant: every statistical model forecasts 5
    tft = np.full((2, 3, 3), 100.0)
    q, src, uses = served_forecast(sel, y, tft, np.array([True, False]), season=1, H=3, grid="D",
                                   model_name="t-tft")
    assert src[0] == "model:t-tft" and uses.tolist() == [True, False]
    np.testing.assert_allclose(q[0], 100.0)
    # the second unit has no TFT forecast: the smooth class's best statistical model by validation loss
    assert src[1] == "baseline:auto_ets"
    np.testing.assert_allclose(q[1, :, 1], 5.0, atol=1e-6)


def test_source_labels_name_what_served_each_unit():
    W = np.array([[1.0, 0, 0], [0, 0, 1.0], [0.5, 0.5, 0], [0, 0.3, 0.7]])
    assert source_labels((TFT, "naive", "auto_ets"), W, "m") == [
        "model:m", "baseline:auto_ets", "ensemble:model+naive", "ensemble:naive+auto_ets"]


def _check_inputs(n: int, gain: float, noise: float, seed: int = 0):
    """Two selections over (tft, naive); per-series holdout losses where the TFT's selection is better by
    about ``gain`` (relative) with per-series deviations of +-``noise``."""
    rng = np.random.default_rng(seed)
    all_ = Selection.from_dict({"models": [TFT, "naive"], "levels": list(LEVELS), "method": "ensemble",
                                "segment_weights": {"*": [0.7, 0.3], "smooth/long": [0.7, 0.3],
                                                    "smooth/short": [1.0, 0.0]},
                                "report": {"smooth/long": {"n_validated": n}}})
    stat = Selection.from_dict({"models": ["naive"], "levels": list(LEVELS), "method": "ensemble",
                                "segment_weights": {"*": [1.0]}, "report": {}})
    L_stat = rng.uniform(0.5, 1.5, (1, 2 * n))
    signs = np.where(np.arange(2 * n) % 2 == 0, 1.0, -1.0)[None, :]  # +noise, -noise, ...: mean exactly 0
    d = gain + noise * signs  # the check's relative difference 2 (L_stat - L_all) / (L_stat + L_all)
    L_all = L_stat * (2.0 - d) / (2.0 + d)
    labels = np.array([["smooth/long"] * n + ["smooth/short"] * n], dtype=object)
    return all_, stat, labels, L_all, L_stat


def test_holdout_check_drops_the_tft_where_its_gain_is_within_the_noise():
    from training.served import _holdout_check

    all_, stat, labels, L_all, L_stat = _check_inputs(40, gain=0.01, noise=0.3)
    L_all[0, 40:] = L_stat[0, 40:] * 0.7  # short series: the TFT clearly better
    checked, checks = _holdout_check(all_, stat, labels, L_all, L_stat)
    long_, short = checks["smooth/long"], checks["smooth/short"]
    assert not long_["kept_tft"] and long_["gain"] < long_["se"]
    np.testing.assert_allclose(checked.segment_weights["smooth/long"], [0.0, 1.0])  # statistical weights
    assert short["kept_tft"] and short["n"] == 40
    np.testing.assert_allclose(checked.segment_weights["smooth/short"], [1.0, 0.0])
    assert checked.report["smooth/long"]["holdout_check"] == long_


def test_holdout_check_keeps_a_tft_that_is_clearly_better_and_drops_a_worse_one():
    from training.served import _holdout_check

    all_, stat, labels, L_all, L_stat = _check_inputs(40, gain=0.1, noise=0.05)
    checked, checks = _holdout_check(all_, stat, labels, L_all, L_stat)
    assert all(c["kept_tft"] for c in checks.values())
    np.testing.assert_allclose(checked.segment_weights["smooth/long"], [0.7, 0.3])
    _, _, _, worse, _ = _check_inputs(40, gain=-0.1, noise=0.05)
    checked, checks = _holdout_check(all_, stat, labels, worse, L_stat)
    assert not any(c["kept_tft"] for c in checks.values())
    assert all(w[0] == 0.0 for w in checked.segment_weights.values())
