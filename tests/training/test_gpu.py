"""CUDA path: bf16 mixed-precision training runs, and the fast predictor gives the CPU answer on the GPU."""

import numpy as np
import pytest


@pytest.mark.gpu
def test_cuda_training_and_inference_match_cpu():
    import torch

    from training.config import load_train_config
    from training.pipeline import load_panel
    from training.predict import Predictor
    from training.tft.estimator import TFTEstimator

    assert torch.cuda.is_available()
    cfg = load_train_config("configs/train/tiny.yaml")
    panel = load_panel(cfg)
    fitted = TFTEstimator(cfg).fit(panel, panel.n_times - 1 - cfg.holdout)  # accelerator auto -> cuda, bf16
    assert all(np.isfinite(h["val_loss"]) for h in fitted.history)
    cpu = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict)
    gpu = Predictor(fitted.spec, fitted.model_cfg, fitted.state_dict)
    gpu.to("cuda")
    origin = panel.n_times - 3
    a = cpu.forecast(panel, origin).raw
    b = gpu.forecast(panel, origin).raw
    np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-3)
