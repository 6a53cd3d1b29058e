"""The served TFT predictor builds its panel with the model's own columns (seasonal target lags included)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.slow


def test_tft_predictor_serves_a_champion_trained_with_lags(tmp_path, monkeypatch):
    from features.settings import get_settings
    from serving.deploy._predictors import load_tft_predictor
    from training.config import TrainConfig
    from training.pipeline import train_and_register

    raw = yaml.safe_load(Path("configs/train/tiny.yaml").read_text())
    raw.setdefault("data", {})["lags"] = [12]
    result = train_and_register(TrainConfig.model_validate(raw))
    assert result.version

    settings = get_settings()
    pred = load_tft_predictor("champion" if result.promoted else str(result.version), raw["name"],
                              settings.mlflow_tracking_uri, device="cpu")
    units = pred.unit_ids()[:3]
    q = pred.predict(units)
    assert q.shape[0] == len(units)
    assert np.isfinite(q).all()
    assert (np.diff(q, axis=-1) >= -1e-6).all()  # quantiles stay ordered
