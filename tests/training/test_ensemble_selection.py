"""Multi-origin validation, seed ensembles, scale-free loss and the blend with statistical baselines.

The estimator is trained on a small synthetic daily panel with a tiny budget (seconds on one thread).
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from features.frames import build_panel, tenant_frame, tenant_spec, unit_statics
from training.config import TrainConfig, TrainConfigError, load_train_config
from training.postprocess import apply_postprocess, baseline_points, fit_blend
from training.predict import Predictor
from training.tft.estimator import TFTEstimator
from training.tft.lightning_module import pinball_loss, series_weight

SPEC = tenant_spec("D", attributes=("category",))


@pytest.fixture(scope="module")
def panel():
    from features.synth import generate

    data = generate(8, 90, "D", seed=11)
    frame = tenant_frame(data.sales, SPEC, promotions=data.promotions)
    keys = ["sku_id", "location_id", "channel_id"]
    statics = unit_statics(frame.select(keys).unique(), SPEC, skus=data.skus, locations=data.locations)
    df = frame.join(statics, on=keys).to_pandas()
    df["date"] = pd.to_datetime(df["date"])
    return build_panel(df, SPEC)


def _cfg(**fit) -> TrainConfig:
    base = {
        "encoder_length": 14,
        "min_encoder_length": 7,
        "horizon": 7,
        "season": 7,
        "batch_size": 16,
        "batches_per_epoch": 2,
        "max_epochs": 2,
        "patience": 1,
        "threads": 1,
        "progress": False,
        "seed": 5,
    }
    base.update(fit)
    return TrainConfig(
        model={"hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4},
        fit=base,
        holdout=7,
    )


def test_validation_origins_end_at_the_cutoff_and_never_reach_past_it():
    est = TFTEstimator(_cfg(val_origins=3, val_step=3))
    assert est.validation_origins(59) == [47, 50, 53]  # H = 7: the last window is 53..59
    assert TFTEstimator(_cfg()).validation_origins(59) == [53]


def test_nothing_after_the_cutoff_is_read(panel):
    """Two panels that differ only after the cut-off give the same model, blend and calibration."""
    cfg = _cfg(val_origins=2, val_step=3, members=2, blend_with=["last_value", "seasonal_naive"])
    cutoff = panel.n_times - 1 - cfg.holdout
    other = copy.deepcopy(panel)
    other.y[:, cutoff + 1 :] = other.y[:, cutoff + 1 :] * 7 + 100
    a = TFTEstimator(cfg).fit(panel, cutoff)
    b = TFTEstimator(cfg).fit(other, cutoff)
    assert isinstance(a.state_dict, list) and len(a.state_dict) == 2  # a seed ensemble of two refits
    for sa, sb in zip(a.state_dict, b.state_dict, strict=True):
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k])
    assert a.spec.blend == b.spec.blend and a.spec.calibration == b.spec.calibration
    assert a.selection["val_origins"] == [cutoff - 7 + 1 - 3, cutoff - 7 + 1]
    assert len(a.selection["best_epochs"]) == 2
    assert all(isinstance(v, float) for v in a.validation.values())  # logged as MLflow metrics
    # the members differ (different seeds) and the predictor averages them
    diff = [not torch.equal(a.state_dict[0][k], a.state_dict[1][k]) for k in a.state_dict[0]]
    assert any(diff)
    origin = panel.n_times - 7
    ens = Predictor(a.spec, a.model_cfg, a.state_dict).forecast(panel, origin, postprocess=False)
    one = [Predictor(a.spec, a.model_cfg, s).forecast(panel, origin, postprocess=False) for s in a.state_dict]
    np.testing.assert_allclose(ens.raw, (one[0].raw + one[1].raw) / 2, rtol=1e-6)


def test_loss_scale_auto_keeps_the_better_of_both_on_validation(panel):
    cfg = _cfg(loss_scale="auto", blend_with=[])
    fitted = TFTEstimator(cfg).fit(panel, panel.n_times - 1 - cfg.holdout)
    maes = {k: fitted.validation[f"val_mae_tft_loss_{k}"] for k in ("none", "series")}
    assert fitted.selection["loss_scale"] == min(maes, key=maes.get)
    assert fitted.spec.blend == {"tft": 1.0}


def test_series_weight_makes_the_loss_scale_free():
    q = torch.tensor([0.1, 0.5, 0.9])
    y_small, y_big = torch.full((1, 3), 10.0), torch.full((1, 3), 1000.0)
    f_small, f_big = torch.full((1, 3, 3), 12.0), torch.full((1, 3, 3), 1200.0)  # both 20 % off
    y, f = torch.cat([y_small, y_big]), torch.cat([f_small, f_big])
    center = torch.log1p(torch.tensor([10.0, 1000.0]))
    w = series_weight({"target_scale": torch.stack([center, torch.ones(2)], 1)})
    np.testing.assert_allclose(w.numpy(), [0.1, 0.001], rtol=1e-5)
    per = [pinball_loss(f[i : i + 1], y[i : i + 1], q) for i in range(2)]
    assert per[1] == pytest.approx(100 * per[0])  # unweighted: the big series dominates
    weighted_parts = [float(per[i] * w[i]) for i in range(2)]
    assert weighted_parts[0] == pytest.approx(weighted_parts[1])  # weighted: they count alike
    assert float(pinball_loss(f, y, q, w)) == pytest.approx(sum(weighted_parts) / float(w.sum()))


def test_blend_finds_the_baseline_that_fits_and_shrinks_to_equal_weights():
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 50.0, (40, 6))
    tft = y + rng.normal(0, 40, y.shape)
    base = {"last_value": y + 60.0, "auto_ets": y.copy()}
    w = fit_blend(y, tft, None, 12, shrink=0.0, base=base)
    assert w == pytest.approx({"tft": 0.0, "last_value": 0.0, "auto_ets": 1.0})
    w = fit_blend(y, tft, None, 12, shrink=0.5, base=base)
    assert sum(w.values()) == pytest.approx(1.0) and w["auto_ets"] == pytest.approx(0.5 + 0.5 / 3)
    y_q = np.stack([tft - 10, tft, tft + 10], axis=-1)
    out = apply_postprocess(y_q, None, [0.1, 0.5, 0.9], w, {}, 12, base)
    expect = w["tft"] * tft + w["last_value"] * base["last_value"] + w["auto_ets"] * base["auto_ets"]
    np.testing.assert_allclose(out[..., 1], np.maximum(expect, 0), rtol=1e-9)


def test_baseline_points_runs_statsforecast_models_and_refuses_unknown_names():
    t = np.arange(48)
    y = np.vstack([100 + 20 * np.sin(2 * np.pi * t / 12), 50 + t]).astype(float)
    b = baseline_points(y, 6, 12, ["last_value", "auto_ets", "theta"])
    assert set(b) == {"last_value", "auto_ets", "theta"} and all(v.shape == (2, 6) for v in b.values())
    np.testing.assert_allclose(b["last_value"], y[:, -1:].repeat(6, 1))
    assert np.abs(b["auto_ets"][1] - (50 + np.arange(48, 54))).max() < 5  # a trend it follows
    with pytest.raises(ValueError, match="arima"):
        baseline_points(y, 6, 12, ["arima"])


def test_config_names_bad_ensemble_fields():
    with pytest.raises(TrainConfigError, match="fit.loss_scale"):
        load_train_config({"fit": {"loss_scale": "log"}})
    with pytest.raises(TrainConfigError, match="fit.blend_with"):
        load_train_config({"fit": {"blend_with": ["prophet"]}})
    with pytest.raises(TrainConfigError, match="fit.members"):
        load_train_config({"fit": {"members": 0}})
    cfg = load_train_config("configs/train/stallion.yaml")
    assert cfg.fit.val_origins == 3 and cfg.fit.members == 3 and "auto_ets" in cfg.fit.blend_with


def test_a_series_without_history_is_forecast_from_similar_series(panel):
    """A unit with no sales before the origin gets its peers' mean forecast, flagged cold start."""
    cfg = _cfg(max_epochs=1, refit=False)
    fitted = TFTEstimator(cfg).fit(panel, panel.n_times - 1 - cfg.holdout)
    p = copy.deepcopy(panel)
    origin = p.n_times - 7
    p.y[0, :origin] = np.nan
    p.first[0] = origin
    fc = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict).forecast(p, origin)
    assert fc.cold_start[0] and np.isfinite(fc.quantiles[0]).all() and fc.quantiles[0].sum() > 0
    statics = list(p.spec.static_categoricals)
    sku = p.static_cat[:, statics.index("sku_id")]
    cat = p.static_cat[:, statics.index("category")]
    peers = np.flatnonzero(sku == sku[0])[1:]
    if not len(peers):
        peers = np.flatnonzero(cat == cat[0])[1:]
    assert len(peers)
    med = np.median(fc.quantiles[peers, :, fc.levels.index(0.5)], axis=0)
    np.testing.assert_allclose(fc.quantiles[0, :, fc.levels.index(0.5)], med, rtol=1e-9)
    assert (np.diff(fc.quantiles[0], axis=-1) >= 0).all()


def test_check_panel_counts_the_validation_origins(panel):
    from training.pipeline import check_panel

    assert check_panel(_cfg(val_origins=3, val_step=7), panel) == []
    with pytest.raises(TrainConfigError, match=r"fit.val_origins = 12\).*105 periods in all"):
        check_panel(_cfg(val_origins=12, val_step=7), panel)
