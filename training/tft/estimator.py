"""The TFT estimator: wires a panel, windows, the Lightning module and a Trainer into a fitted model.

Protocol for a cut-off ``c`` (last index whose target may be used) and horizon H:

1. fit the dataset parameters on data up to ``c - H``;
2. train on windows whose decoders end by ``c - H``, validate on the window ``c - H + 1 .. c`` (one per
series),
   early-stop on the validation pinball loss and keep the best epoch's weights;
3. fit the blend with baselines and the conformal calibration on that validation window;
4. optionally refit on windows ending by ``c`` for the number of epochs step 2 chose.

Nothing after ``c`` is read. CPU or CUDA is chosen automatically, bf16 mixed precision on CUDA; seeds are
fixed.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from features.frames import Panel
from training.config import TrainConfig
from training.postprocess import apply_postprocess, fit_blend, fit_calibration
from training.predict import raw_quantiles
from training.windows import InputSpec, PanelTensors, WindowLoader, enumerate_windows, fit_input_spec

__all__ = ["FittedTFT", "TFTEstimator"]


@dataclass
class FittedTFT:
    """A trained model: everything the artefact needs, plus the training record.

    Attributes:
        spec: dataset parameters (with blend and calibration).
        model_cfg: model hyper-parameters.
        state_dict: weights; a list (refit model, early-stopped model) when ``fit.keep_early_model``.
        history: per-epoch metrics of the early-stopping phase (list of dicts).
        best_epoch: epochs chosen by early stopping.
        train_seconds: wall time of all training phases.
        validation: figures on the validation window (raw/blended MAE, coverage).
    """

    spec: InputSpec
    model_cfg: dict
    state_dict: dict | list[dict]
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    train_seconds: float = 0.0
    validation: dict = field(default_factory=dict)


def _callbacks(history: list, best: dict):
    import lightning as L

    class _Record(L.Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            m = {k: float(v) for k, v in trainer.callback_metrics.items()}
            m["epoch"] = trainer.current_epoch + 1
            history.append(m)
            if m.get("val_loss", np.inf) < best.get("val_loss", np.inf):
                best.update(
                    val_loss=m["val_loss"],
                    epoch=m["epoch"],
                    state={k: v.detach().clone() for k, v in pl_module.module.state_dict().items()},
                )

    return [_Record()]


def _average_callback():
    import lightning as L

    class Average(L.Callback):
        """Running mean of the weights at the end of epochs >= ``first_epoch``.

        Stochastic weight averaging (Izmailov et al. 2018) over the tail of the cosine schedule.
        """

        def __init__(self, first_epoch: int):
            self.first_epoch, self.count, self.sum = first_epoch, 0, None

        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch + 1 < self.first_epoch:
                return
            sd = pl_module.module.state_dict()
            if self.sum is None:
                self.sum = {k: v.detach().double().clone() for k, v in sd.items()}
            else:
                for k, v in sd.items():
                    self.sum[k] += v.detach().double()
            self.count += 1

        def average(self):
            return {k: (v / self.count).float() for k, v in self.sum.items()}

    return Average


def _Average(first_epoch: int):  # noqa: N802 - factory keeps lightning out of module import
    return _average_callback()(first_epoch)


class TFTEstimator:
    """Fit a TFT on a panel following the module docstring's protocol.

    Args:
        config: the training config.
    """

    def __init__(self, config: TrainConfig):
        self.config = config

    def _trainer(self, epochs: int, callbacks: list, validate: bool):
        import lightning as L

        fit = self.config.fit
        cuda = torch.cuda.is_available() and fit.accelerator != "cpu"
        return L.Trainer(
            max_epochs=epochs,
            accelerator="gpu" if cuda else "cpu",
            devices=1,
            precision="bf16-mixed" if cuda else "32-true",
            gradient_clip_val=fit.gradient_clip_val,
            callbacks=callbacks,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=fit.progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if validate else 0,
        )

    def _module(self, spec: InputSpec, total_steps: int):
        from training.tft.lightning_module import TFTLightningModule
        from training.tft.module import TFTModule

        model_cfg = self.config.model.model_dump()
        return TFTLightningModule(
            TFTModule(spec, model_cfg),
            spec.quantiles,
            self.config.fit.learning_rate,
            self.config.fit.weight_decay,
            total_steps,
        )

    def fit(self, panel: Panel, cutoff: int) -> FittedTFT:
        """Train on ``panel`` using targets up to index ``cutoff`` only.

        Args:
            panel: feature panel (later periods may exist; they are never read as targets).
            cutoff: last time index usable for training and validation.

        Returns:
            The :class:`FittedTFT`.
        """
        import lightning as L

        cfg, fit = self.config, self.config.fit
        H, Lmax = fit.horizon, fit.encoder_length
        val_origin = cutoff - H + 1
        if fit.threads is not None:
            torch.set_num_threads(fit.threads)
        L.seed_everything(fit.seed, workers=True, verbose=False)
        rng = np.random.default_rng(fit.seed)
        t_start = time.perf_counter()

        spec = fit_input_spec(
            panel, val_origin - 1, Lmax, H, cfg.model.quantiles, fit.min_encoder_length, fit.season, rng=rng
        )
        pt = PanelTensors.from_panel(panel, spec)
        s, t0 = enumerate_windows(panel.first, panel.last, spec.min_encoder_length, H, val_origin - 1)
        if len(s) == 0:
            raise ValueError(
                "no training windows before the validation window; lower encoder lengths or horizon"
            )
        val_s = np.flatnonzero(
            (np.asarray(panel.first) + spec.min_encoder_length <= val_origin)
            & (np.asarray(panel.last) >= cutoff)
        )
        val_t0 = np.full(len(val_s), val_origin)
        train = WindowLoader(pt, spec, s, t0, fit.batch_size, fit.batches_per_epoch, rng)
        val = WindowLoader(pt, spec, val_s, val_t0, 512, None, rng, shuffle=False)

        history: list[dict] = []
        best: dict = {}
        module = self._module(spec, fit.max_epochs * fit.batches_per_epoch)
        import lightning.pytorch.callbacks as cb

        callbacks = [
            *_callbacks(history, best),
            cb.EarlyStopping("val_loss", patience=fit.patience, mode="min"),
        ]
        if fit.workers > 1:  # the same loaders and callbacks, trained by Ray Train workers (DDP)
            from training.ray_train import fit_distributed

            fit_distributed(cfg, module, train, val, history, best)
        else:
            self._trainer(fit.max_epochs, callbacks, True).fit(
                module, train_dataloaders=train, val_dataloaders=val
            )
        module.module.load_state_dict(best["state"])
        best_epoch = int(best["epoch"])

        # Blend and calibration from the validation window only.
        module.module.cpu()
        raw = raw_quantiles(module.module, pt, spec, val_s, val_t0)
        y_val = panel.y[val_s, val_origin : cutoff + 1].astype(float)
        y_hist = panel.y[val_s, :val_origin]
        m_idx = spec.quantiles.index(0.5)
        spec.blend = fit_blend(y_val, raw[..., m_idx], y_hist, spec.season)
        blended = apply_postprocess(raw, y_hist, spec.quantiles, spec.blend, {}, spec.season)
        spec.calibration = fit_calibration(y_val, blended, spec.quantiles)
        final = apply_postprocess(raw, y_hist, spec.quantiles, spec.blend, spec.calibration, spec.season)
        lo, hi = spec.quantiles.index(0.1), spec.quantiles.index(0.9)
        validation = {
            "val_mae_tft": float(np.nanmean(np.abs(raw[..., m_idx] - y_val))),
            "val_mae_blend": float(np.nanmean(np.abs(final[..., m_idx] - y_val))),
            "val_coverage_raw": float(np.nanmean((y_val >= raw[..., lo]) & (y_val <= raw[..., hi]))),
        }

        state = {k: v.detach().cpu().clone() for k, v in module.module.state_dict().items()}
        if fit.refit:
            s2, t02 = enumerate_windows(panel.first, panel.last, spec.min_encoder_length, H, cutoff)
            L.seed_everything(fit.seed + 1, workers=True, verbose=False)
            refit = self._module(spec, best_epoch * fit.batches_per_epoch)
            loader = WindowLoader(pt, spec, s2, t02, fit.batch_size, fit.batches_per_epoch, rng)
            first = max(1, best_epoch - fit.swa_epochs + 1)
            swa = _Average(first_epoch=first) if fit.swa_epochs > 1 else None
            with warnings.catch_warnings():  # the refit has no validation loop, by design
                warnings.filterwarnings("ignore", message=".*validation_step.*")
                self._trainer(best_epoch, [swa] if swa else [], False).fit(refit, train_dataloaders=loader)
            state = swa.average() if swa and swa.count else refit.module.state_dict()
            state = {k: v.detach().cpu().clone() for k, v in state.items()}
            if fit.keep_early_model:  # a two-member ensemble: refit + early-stopped model, no extra training
                early = {k: v.detach().cpu().clone() for k, v in module.module.state_dict().items()}
                state = [state, early]
        return FittedTFT(
            spec=spec,
            model_cfg=cfg.model.model_dump(),
            state_dict=state,
            history=history,
            best_epoch=best_epoch,
            train_seconds=time.perf_counter() - t_start,
            validation=validation,
        )
