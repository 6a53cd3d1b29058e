"""CUDA path: bf16 mixed-precision training runs, and the fast predictor gives the CPU answer on the GPU."""

import numpy as np
import pytest


@pytest.mark.gpu
def test_cuda_training_and_inference_match_cpu(shared_home):
    import torch

    from tests.training._tenant import TINY_TRAIN
    from tests.training.conftest import WINDOWS
    from training.config import TrainConfig
    from training.pipeline import load_panel
    from training.predict import Predictor
    from training.stage import _merge
    from training.tft.estimator import TFTEstimator

    assert torch.cuda.is_available()
    cfg = TrainConfig(**_merge(_merge(TINY_TRAIN, WINDOWS["daily"]), {"data": {"tenant": "daily"}}))
    panel = load_panel(cfg)
    fitted = TFTEstimator(cfg).fit(panel, panel.n_times - 1 - cfg.holdout)  # accelerator auto -> cuda, bf16
    assert all(np.isfinite(h["val_loss"]) for h in fitted.history)
    cpu = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict)
    gpu = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict)
    gpu.to("cuda")
    origin = panel.n_times - cfg.fit.horizon
    a = cpu.forecast(panel, origin).raw
    b = gpu.forecast(panel, origin).raw
    np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-3)
