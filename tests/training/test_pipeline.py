"""End to end on a real MLflow backend in the test's REPLENISH_HOME: train, register, gate, load, forecast."""

import numpy as np
import pytest

from training.artifact import load_artifact, save_artifact
from training.config import load_train_config
from training.pipeline import load_panel, train_and_register
from training.predict import Predictor, load_predictor
from training.registry import client, list_versions
from training.tft.estimator import TFTEstimator

TINY = "configs/train/tiny.yaml"


@pytest.fixture(scope="module")
def tiny():
    cfg = load_train_config(TINY)
    return cfg, load_panel(cfg)


@pytest.mark.slow
def test_artifact_round_trip_same_outputs(tiny, tmp_path):
    cfg, panel = tiny
    fitted = TFTEstimator(cfg).fit(panel, panel.n_times - 1 - cfg.holdout)
    before = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict).forecast(panel, panel.n_times - 6)
    path = save_artifact(tmp_path / "a", fitted.spec, fitted.model_cfg, fitted.state_dict)
    names = sorted(p.name for p in path.iterdir())
    # tiny.yaml keeps the early-stopped model beside the refit one
    assert isinstance(fitted.state_dict, list) and len(fitted.state_dict) == 2
    assert names == ["config.json", "spec.json", "weights-1.pt", "weights.pt"]
    spec, model_cfg, state = load_artifact(tmp_path)
    after = Predictor(spec, model_cfg, state).forecast(panel, panel.n_times - 6)
    np.testing.assert_array_equal(before.quantiles, after.quantiles)
    single = Predictor(spec, model_cfg, state[0]).forecast(panel, panel.n_times - 6)
    assert not np.array_equal(single.raw, after.raw)  # the second member really takes part
    assert spec.blend == fitted.spec.blend and spec.calibration == fitted.spec.calibration
    q = after.quantiles
    assert (np.diff(q, axis=-1) >= 0).all() and (q >= 0).all()
    assert len(fitted.history) >= 1 and "val_loss" in fitted.history[0]


@pytest.mark.slow
def test_train_register_gate_and_load(tiny):
    import mlflow

    cfg, panel = tiny
    r1 = train_and_register(cfg, panel)
    assert r1.version == "1"
    c = client()
    tags = c.get_model_version(cfg.name, r1.version).tags
    assert tags["gate_decision"] in ("promoted", "rejected")
    assert float(tags["backtest_wape"]) == pytest.approx(r1.summary["model"]["wape"], rel=1e-4)
    base = min(v["wape"] for k, v in r1.summary.items() if k != "model")
    assert r1.promoted == (r1.summary["model"]["wape"] < base)
    run = c.get_run(r1.run_id)
    assert "backtest.model.wape" in run.data.metrics and run.data.params["fit.horizon"] == "3"
    assert len(c.get_metric_history(r1.run_id, "val_loss")) >= 1
    arts = {a.path for a in c.list_artifacts(r1.run_id)}
    assert {"fan_best.png", "fan_worst.png", "backtest_by_series.csv"} <= arts

    # the registered pyfunc and the fast predictor give the same forecasts
    pred = load_predictor(r1.version, cfg.name)
    import pandas as pd

    from features.frames import (
        build_panel,  # noqa: F401
        stallion_frame,
    )
    from training.pipeline import STALLION_PATH

    df = stallion_frame(pd.read_parquet(STALLION_PATH))
    keep = panel.keys.astype(str)
    df = df.merge(keep, on=["agency", "sku"])
    cut = df[df.date < panel.times[-3]]  # history ends 3 months early ...
    future = df[df.date >= panel.times[-3]].assign(volume=np.nan)  # ... with known inputs for the horizon
    frame = pd.concat([cut, future])
    py = mlflow.pyfunc.load_model(f"models:/{cfg.name}/{r1.version}").predict(frame)
    fast = pred.forecast(panel, panel.n_times - 3).to_frame()
    np.testing.assert_allclose(py["p50"].to_numpy(), fast["p50"].to_numpy(), rtol=1e-5)
    assert not py["cold_start"].any()

    # a second, deliberately bad model (no training to speak of) is registered but never becomes champion
    bad = cfg.model_copy(
        update={
            "fit": cfg.fit.model_copy(
                update={"max_epochs": 1, "batches_per_epoch": 1, "learning_rate": 1e-6, "refit": False}
            )
        }
    )
    r2 = train_and_register(bad, panel)
    champion = c.get_model_version_by_alias(cfg.name, "champion").version if r1.promoted else None
    if not r2.summary["model"]["wape"] < min(r1.summary["model"]["wape"], base):
        assert not r2.promoted
        assert (
            champion is None and not any("champion" in v["aliases"] for v in list_versions(cfg.name))
        ) or c.get_model_version_by_alias(cfg.name, "champion").version == champion
    assert [v["version"] for v in list_versions(cfg.name)] == ["2", "1"]


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
    origin = p.n_times - 3
    p.y[0, : origin - 2] = np.nan  # a new series with two months of history
    p.first[0] = origin - 2
    fc = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict).forecast(p, origin)
    assert fc.cold_start[0] and not fc.cold_start[1:].any()
    assert np.isfinite(fc.quantiles[0]).all()
