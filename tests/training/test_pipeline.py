"""Fit, artefact, registry and gate on a real MLflow backend, with a tenant's panel from the fact store."""

import numpy as np
import pandas as pd
import pytest

from tests.training._tenant import TINY_TRAIN
from tests.training.conftest import WINDOWS
from training.artifact import load_artifact, save_artifact
from training.config import TrainConfig
from training.pipeline import load_panel, train_and_register
from training.predict import Predictor, load_predictor
from training.registry import client, list_versions
from training.stage import _merge
from training.tft.estimator import TFTEstimator


@pytest.fixture
def tiny(shared_home):
    raw = _merge(TINY_TRAIN, WINDOWS["daily"])
    raw = _merge(
        raw,
        {"name": "probe-tft", "data": {"tenant": "daily"}, "fit": {"refit": True, "keep_early_model": True}},
    )
    cfg = TrainConfig(**raw)
    return cfg, load_panel(cfg)


def test_artifact_round_trip_same_outputs(tiny, tmp_path):
    cfg, panel = tiny
    fitted = TFTEstimator(cfg).fit(panel, panel.n_times - 1 - cfg.holdout)
    origin = panel.n_times - cfg.fit.horizon
    before = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict).forecast(panel, origin)
    path = save_artifact(tmp_path / "a", fitted.spec, fitted.model_cfg, fitted.state_dict)
    names = sorted(p.name for p in path.iterdir())
    # keep_early_model keeps the early-stopped model beside the refit one
    assert isinstance(fitted.state_dict, list) and len(fitted.state_dict) == 2
    assert names == ["config.json", "spec.json", "weights-1.pt", "weights.pt"]
    spec, model_cfg, state = load_artifact(tmp_path)
    after = Predictor(spec, model_cfg, state).forecast(panel, origin)
    np.testing.assert_array_equal(before.quantiles, after.quantiles)
    single = Predictor(spec, model_cfg, state[0]).forecast(panel, origin)
    assert not np.array_equal(single.raw, after.raw)  # the second member really takes part
    assert spec.blend == fitted.spec.blend and spec.calibration == fitted.spec.calibration
    assert spec.frame["freq"] == "D" and "category" in spec.frame["static_categoricals"]
    q = after.quantiles
    assert (np.diff(q, axis=-1) >= 0).all() and (q >= 0).all()
    assert len(fitted.history) >= 1 and "val_loss" in fitted.history[0]


def test_registered_pyfunc_equals_the_fast_predictor(shared_home):
    """The MLflow pyfunc of the daily champion and the fast predictor give the same forecasts."""
    import mlflow

    from features.frames import tenant_frame, unit_statics

    r = shared_home.results["daily"]
    pred = load_predictor(r.version, r.model_name)
    fspec = pred.spec.frame_spec
    data = shared_home.data["daily"]
    H = pred.spec.horizon
    last = data.sales["date"].max()
    cut = data.sales.filter(data.sales["date"] <= last - pd.Timedelta(days=H))
    frame = tenant_frame(cut, fspec, promotions=data.promotions, future=H)
    keys = ["sku_id", "location_id", "channel_id"]
    statics = unit_statics(frame.select(keys).unique(), fspec, skus=data.skus, locations=data.locations)
    known = frame.join(statics, on=keys)
    py = mlflow.pyfunc.load_model(f"models:/{r.model_name}/{r.version}").predict(known.to_pandas())
    from features.frames import build_panel

    panel = build_panel(known.to_pandas(), fspec, vocab=pred.spec.vocab)
    fast = pred.forecast(panel).to_frame()
    np.testing.assert_allclose(py["p50"].to_numpy(), fast["p50"].to_numpy(), rtol=1e-5)
    assert len(py) == panel.n_series * H


def test_gate_keeps_a_bad_model_out(tiny):
    cfg, panel = tiny
    r1 = train_and_register(cfg, panel)
    c = client()
    tags = c.get_model_version(cfg.name, r1.version).tags
    assert tags["gate_decision"] in ("promoted", "rejected") and tags["tenant"] == "daily"
    assert float(tags["backtest_wape"]) == pytest.approx(r1.summary["model"]["wape"], rel=1e-4)
    base = min(v["wape"] for k, v in r1.summary.items() if k != "model")
    assert r1.promoted == (r1.summary["model"]["wape"] < base)
    run = c.get_run(r1.run_id)
    assert "backtest.model.wape" in run.data.metrics and run.data.params["fit.horizon"] == "7"
    arts = {a.path for a in c.list_artifacts(r1.run_id)}
    assert {"fan_best.png", "fan_worst.png", "backtest_by_series.csv"} <= arts

    # a deliberately bad model (no training to speak of) is registered but never becomes champion
    bad = cfg.model_copy(
        update={
            "fit": cfg.fit.model_copy(
                update={"max_epochs": 1, "batches_per_epoch": 1, "learning_rate": 1e-6, "refit": False}
            )
        }
    )
    champion = c.get_model_version_by_alias(cfg.name, "champion").version if r1.promoted else None
    r2 = train_and_register(bad, panel)
    if not r2.summary["model"]["wape"] < min(r1.summary["model"]["wape"], base):
        assert not r2.promoted
        assert (
            champion is None and not any("champion" in v["aliases"] for v in list_versions(cfg.name))
        ) or c.get_model_version_by_alias(cfg.name, "champion").version == champion
    assert [v["version"] for v in list_versions(cfg.name)][:2] == [r2.version, r1.version]


def test_cold_start_series_are_flagged_and_forecast(tiny):
    cfg, panel = tiny
    import copy

    fitted = TFTEstimator(
        cfg.model_copy(
            update={
                "fit": cfg.fit.model_copy(update={"max_epochs": 1, "batches_per_epoch": 1, "refit": False})
            }
        )
    ).fit(panel, panel.n_times - 1 - cfg.holdout)
    p = copy.deepcopy(panel)
    origin = p.n_times - cfg.fit.horizon
    long = [i for i in range(p.n_series) if p.first[i] + fitted.spec.min_encoder_length <= origin]
    i0 = long[0]
    p.y[i0, : origin - 2] = np.nan  # a new series with two days of history
    p.first[i0] = origin - 2
    fc = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict).forecast(p, origin)
    assert fc.cold_start[i0] and not fc.cold_start[long[1:]].any()
    assert np.isfinite(fc.quantiles[i0]).all()
