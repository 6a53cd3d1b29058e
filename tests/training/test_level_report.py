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
