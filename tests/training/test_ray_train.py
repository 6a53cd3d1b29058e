"""Ray Train (TorchTrainer + Lightning DDP, gloo on CPU) trains the TFT as the single process does.

Two CPU workers at the same total batch (each draws half) and the same steps reach a best validation loss
within 2% of the single-process fit; a version trained that way is registered in the same MLflow registry as
the same artefact (config + state_dict files) and serves through the usual predictor, no Ray involved.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.training._tenant import TINY_TRAIN
from tests.training.conftest import WINDOWS
from training.config import TrainConfig
from training.stage import _merge

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


def _config(workers: int, name: str) -> TrainConfig:
    raw = _merge(TINY_TRAIN, WINDOWS["weekly"])
    raw = _merge(
        raw,
        {
            "name": name,
            "data": {"tenant": "weekly"},
            "fit": {
                "batch_size": 64,
                "batches_per_epoch": 12,
                "max_epochs": 3,
                "patience": 3,
                "refit": False,
                "workers": workers,
            },
        },
    )
    return TrainConfig(**raw)


def _best(history):
    return min(h["val_loss"] for h in history)


def test_two_cpu_workers_reach_the_single_process_validation_loss(shared_home, local_ray):
    from training.pipeline import load_panel
    from training.tft.estimator import TFTEstimator

    one, two = _config(1, "rt-probe"), _config(2, "rt-probe")
    panel = load_panel(one)
    cutoff = panel.n_times - 1 - one.holdout
    single = TFTEstimator(one).fit(panel, cutoff)
    ddp = TFTEstimator(two).fit(panel, cutoff)
    assert len(ddp.history) == len(single.history) == 3  # the same epochs of the same steps
    a, b = _best(single.history), _best(ddp.history)
    print(f"best val_loss: single process {a:.5f}, 2 Ray Train workers {b:.5f} ({(b - a) / a:+.2%})")
    assert abs(b - a) / a <= 0.02, f"single {a:.4f} vs 2 workers {b:.4f}"
    # the distributed fit really trained: its weights moved away from the initial ones and differ from the
    # single process's (other windows per step), while its loss is as good
    assert any(not np.allclose(ddp.state_dict[k], single.state_dict[k]) for k in single.state_dict)


def test_a_ray_trained_version_is_registered_as_the_same_artefact_and_serves(shared_home, local_ray):
    from training.pipeline import load_panel, train_and_register
    from training.predict import load_predictor
    from training.registry import download_artifact

    cfg = _config(2, "rt-served")
    panel = load_panel(cfg)
    res = train_and_register(cfg, panel, tenant="weekly")
    ref = shared_home.results["weekly"]  # trained in one process by the session fixture
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())  # noqa: E731
    ray_files = files(download_artifact(res.version, cfg.name)[0])
    assert ray_files == files(download_artifact(ref.version, ref.model_name)[0])
    assert any(f.endswith("weights.pt") for f in ray_files) and any(
        f.endswith("spec.json") for f in ray_files
    )
    pred = load_predictor(res.version, cfg.name)  # the usual predictor: no Ray in serving
    fc = pred.forecast(panel, panel.n_times - cfg.fit.horizon)
    q = fc.quantiles
    assert q.shape == (panel.n_series, cfg.fit.horizon, len(cfg.model.quantiles))
    assert np.isfinite(q).all() and (np.diff(q, axis=-1) >= 0).all()
