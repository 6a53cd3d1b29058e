"""Training the TFT with Ray Train: the same config, loaders and callbacks, DDP over ``fit.workers`` workers.

``TrainConfig.fit.workers > 1`` makes :meth:`training.tft.estimator.TFTEstimator.fit` hand its first (early
stopped) fit to :func:`fit_distributed`; everything before (windows, input spec) and after it (blend,
calibration, refit, the artefact, the MLflow registry and the champion gate) is the single-process code, so
the registered artefact is the same kind of config + ``state_dict`` and serves unchanged. Single-process
training stays the default (``workers = 1``).

Each worker runs a Lightning ``Trainer`` with :class:`ray.train.lightning.RayDDPStrategy` and
:class:`~ray.train.lightning.RayLightningEnvironment` (``prepare_trainer``); Ray Train sets up the process
group: gloo on CPU workers, NCCL when the workers have GPUs (``ScalingConfig(use_gpu=...)`` from
``fit.accelerator`` and the cluster). The total batch is kept: each of ``W`` workers draws
``batch_size / W`` windows per step from its own random stream (seeded by the fit seed and its rank), so the
same number of steps sees the same number of windows; DDP averages the gradients. Every worker validates on
the whole validation window (the weights are the same on every rank, so is ``val_loss``); rank 0 keeps the
best epoch's weights and reports them as the run's checkpoint, read back here.

Ray must be reachable: a connected cluster (``ray.init(address=...)``), else Ray Train starts a local one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["fit_distributed"]


def _loop(cfg: dict) -> None:
    """One Ray Train worker: the estimator's fit with the DDP strategy; rank 0 reports the best weights."""
    import lightning as L
    import lightning.pytorch.callbacks as cb
    import ray.train
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    from training.tft.estimator import history_callbacks
    from training.windows import WindowLoader

    config, module, train, val = cfg["config"], cfg["module"], cfg["train"], cfg["val"]
    fit = config.fit
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if fit.threads is not None:
        torch.set_num_threads(fit.threads)
    L.seed_everything(fit.seed, workers=True, verbose=False)
    per_worker = max(1, fit.batch_size // world)
    train = WindowLoader(
        train.pt,
        train.spec,
        train.s.numpy(),
        train.t0.numpy(),
        per_worker,
        train.batches,
        np.random.default_rng([fit.seed, rank]),
    )
    history: list[dict] = []
    best: dict = {}
    gpu = cfg["use_gpu"]
    trainer = L.Trainer(
        max_epochs=fit.max_epochs,
        accelerator="gpu" if gpu else "cpu",
        devices="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        precision="bf16-mixed" if gpu else "32-true",
        gradient_clip_val=fit.gradient_clip_val,
        callbacks=[
            *history_callbacks(history, best),
            cb.EarlyStopping("val_loss", patience=fit.patience, mode="min"),
        ],
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # each worker draws its own windows: no sampler to shard
    )
    trainer = prepare_trainer(trainer)
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    metrics = {"val_loss": float(best.get("val_loss", np.nan)), "epoch": int(best.get("epoch", 0))}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save({"best": best, "history": history}, Path(d) / "best.pt")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def fit_distributed(
    config, module, train, val, history: list, best: dict, *, storage: str | None = None
) -> Any:
    """Fit ``module`` as :meth:`TFTEstimator.fit` would, on ``config.fit.workers`` Ray Train workers.

    Args:
        config: the :class:`training.config.TrainConfig` (``fit.workers`` workers).
        module: the ``TFTLightningModule`` to train (its trained weights come back in ``best["state"]``).
        train: the training ``WindowLoader`` (its batch is split across the workers).
        val: the validation ``WindowLoader`` (whole, on every worker).
        history: filled with each epoch's metrics (as the single-process callbacks fill it).
        best: filled with ``val_loss``, ``epoch`` and ``state`` of the best epoch.
        storage: where Ray Train keeps the run's checkpoint (default: a temporary folder; on a multi-node
            cluster, a path every node can reach).

    Returns:
        The Ray Train ``Result``.

    Raises:
        RuntimeError: the run reported no checkpoint (the message names the Ray Train error, if any).
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    fit = config.fit
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    gpus = ray.cluster_resources().get("GPU", 0)
    use_gpu = fit.accelerator != "cpu" and gpus >= fit.workers
    storage = storage or tempfile.mkdtemp(prefix="replenish-raytrain-")
    trainer = TorchTrainer(
        _loop,
        train_loop_config={
            "config": config,
            "module": module,
            "train": train,
            "val": val,
            "use_gpu": use_gpu,
        },
        scaling_config=ScalingConfig(num_workers=fit.workers, use_gpu=use_gpu),
        run_config=RunConfig(name="tft", storage_path=storage),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run reported no checkpoint: {result.error or 'no error recorded'}")
    with result.checkpoint.as_directory() as d:
        blob = torch.load(Path(d) / "best.pt", weights_only=False)
    history[:] = blob["history"]
    best.update(blob["best"])
    return result
