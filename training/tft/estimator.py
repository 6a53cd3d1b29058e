"""The TFT estimator: wires a panel, windows, the Lightning module and a Trainer into a fitted model.

Protocol for a cut-off ``c`` (last index whose target may be used), horizon H and ``fit.val_origins`` = K
validation origins ``o_1 < ... < o_K = c - H + 1`` (``fit.val_step`` apart):

1. fit the dataset parameters on data up to ``o_1 - 1``;
2. train on windows whose decoders end by ``o_1 - 1``, validate on the K windows ``o_k .. o_k + H - 1`` of
   every series (pooled), early-stop on the validation pinball loss and keep the best epoch's weights;
3. fit the blend with the baselines (each refitted at each origin on the history before it) and the
   conformal calibration on those validation windows;
4. optionally refit on windows ending by ``c`` for the number of epochs step 2 chose (weights averaged over
   the last ``fit.swa_epochs`` epochs).

With ``fit.members`` = M > 1, steps 2 and 4 run for M seeds and the served model is the mean of the M members'
quantiles (a seed ensemble; the blend and calibration are fitted on the members' mean validation forecast).
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
from training.postprocess import apply_postprocess, baseline_points, fit_blend, fit_calibration
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
        validation: figures on the validation windows (raw/blended MAE, coverage), numbers only.
        selection: what validation chose: ``val_origins``, ``best_epochs`` per member, ``loss_scale``.
    """

    spec: InputSpec
    model_cfg: dict
    state_dict: dict | list[dict]
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    train_seconds: float = 0.0
    validation: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)


def history_callbacks(history: list, best: dict):
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

    def _module(self, spec: InputSpec, total_steps: int, loss_scale: str = "none"):
        from training.tft.lightning_module import TFTLightningModule
        from training.tft.module import TFTModule

        model_cfg = self.config.model.model_dump()
        return TFTLightningModule(
            TFTModule(spec, model_cfg),
            spec.quantiles,
            self.config.fit.learning_rate,
            self.config.fit.weight_decay,
            total_steps,
            loss_scale,
        )

    def validation_origins(self, cutoff: int) -> list[int]:
        """First forecast index of each validation window, oldest first; the last one ends at ``cutoff``."""
        fit = self.config.fit
        step = fit.val_step or fit.horizon
        return [cutoff - fit.horizon + 1 - k * step for k in reversed(range(fit.val_origins))]

    def _early_stop(self, spec, pt, windows, val, seed: int, loss_scale: str) -> tuple[dict, int, list]:
        """Train one member on the training windows, early-stopped on the validation windows.

        Returns:
            (best epoch's state, best epoch, per-epoch history).
        """
        import lightning as L
        import lightning.pytorch.callbacks as cb

        fit = self.config.fit
        L.seed_everything(seed, workers=True, verbose=False)
        s, t0 = windows
        rng = np.random.default_rng(seed)
        train = WindowLoader(pt, spec, s, t0, fit.batch_size, fit.batches_per_epoch, rng)
        history: list[dict] = []
        best: dict = {}
        module = self._module(spec, fit.max_epochs * fit.batches_per_epoch, loss_scale)
        stop = cb.EarlyStopping("val_loss", patience=fit.patience, mode="min")
        if fit.workers > 1:  # the same loaders and callbacks, trained by Ray Train workers (DDP)
            from training.ray_train import fit_distributed

            member = self.config.model_copy(update={"fit": fit.model_copy(update={"seed": seed})})
            fit_distributed(member, module, train, val, history, best)
        else:
            trainer = self._trainer(fit.max_epochs, [*history_callbacks(history, best), stop], True)
            trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        state = {k: v.detach().cpu().clone() for k, v in best["state"].items()}
        return state, int(best["epoch"]), history

    def _refit(self, spec, pt, windows, seed: int, epochs: int, loss_scale: str) -> dict:
        """Retrain from scratch on windows up to the cut-off for ``epochs`` (tail-averaged weights)."""
        import lightning as L

        fit = self.config.fit
        L.seed_everything(seed + 1, workers=True, verbose=False)
        refit = self._module(spec, epochs * fit.batches_per_epoch, loss_scale)
        s2, t02 = windows
        rng = np.random.default_rng(seed + 1)
        loader = WindowLoader(pt, spec, s2, t02, fit.batch_size, fit.batches_per_epoch, rng)
        first = max(1, epochs - fit.swa_epochs + 1)
        swa = _Average(first_epoch=first) if fit.swa_epochs > 1 else None
        with warnings.catch_warnings():  # the refit has no validation loop, by design
            warnings.filterwarnings("ignore", message=".*validation_step.*")
            self._trainer(epochs, [swa] if swa else [], False).fit(refit, train_dataloaders=loader)
        state = swa.average() if swa and swa.count else refit.module.state_dict()
        return {k: v.detach().cpu().clone() for k, v in state.items()}

    def _val_raw(self, spec, pt, state: dict, val_s, val_t0) -> np.ndarray:
        net = self._module(spec, 1).module
        net.load_state_dict(state)
        return raw_quantiles(net, pt, spec, val_s, val_t0)

    def _postprocess_fit(self, panel: Panel, spec: InputSpec, raw, val_s, val_t0, origins) -> dict:
        """Blend weights and conformal calibration from the pooled validation windows (stored in ``spec``)."""
        fit, H = self.config.fit, self.config.fit.horizon
        y_val = panel.y[val_s[:, None], val_t0[:, None] + np.arange(H)[None]].astype(float)
        names = list(fit.blend_with)
        base = {n: np.empty((len(val_s), H)) for n in names}
        for o in origins:  # baselines fitted at each validation origin on the history before it
            rows = np.flatnonzero(val_t0 == o)
            for n, v in baseline_points(panel.y[val_s[rows], :o], H, spec.season, names).items():
                base[n][rows] = v
        m_idx = spec.quantiles.index(0.5)
        spec.blend = (
            fit_blend(y_val, raw[..., m_idx], None, spec.season, shrink=fit.blend_shrink, base=base)
            if names
            else {"tft": 1.0}
        )
        blended = apply_postprocess(raw, None, spec.quantiles, spec.blend, {}, spec.season, base)
        spec.calibration = fit_calibration(y_val, blended, spec.quantiles, fit.calibration_margin)
        final = apply_postprocess(raw, None, spec.quantiles, spec.blend, spec.calibration, spec.season, base)
        lo, hi = spec.quantiles.index(0.1), spec.quantiles.index(0.9)
        return {
            "val_mae_tft": float(np.nanmean(np.abs(raw[..., m_idx] - y_val))),
            "val_mae_blend": float(np.nanmean(np.abs(final[..., m_idx] - y_val))),
            "val_coverage_raw": float(np.nanmean((y_val >= raw[..., lo]) & (y_val <= raw[..., hi]))),
            **{f"val_mae_{n}": float(np.nanmean(np.abs(v - y_val))) for n, v in base.items()},
        }

    def fit(self, panel: Panel, cutoff: int) -> FittedTFT:
        """Train on ``panel`` using targets up to index ``cutoff`` only.

        Args:
            panel: feature panel (later periods may exist; they are never read as targets).
            cutoff: last time index usable for training and validation.

        Returns:
            The :class:`FittedTFT`.
        """
        cfg, fit = self.config, self.config.fit
        H, Lmax = fit.horizon, fit.encoder_length
        origins = self.validation_origins(cutoff)
        train_end = origins[0] - 1
        if fit.threads is not None:
            torch.set_num_threads(fit.threads)
        rng = np.random.default_rng(fit.seed)
        t_start = time.perf_counter()

        spec = fit_input_spec(
            panel, train_end, Lmax, H, cfg.model.quantiles, fit.min_encoder_length, fit.season, rng=rng
        )
        pt = PanelTensors.from_panel(panel, spec)
        s, t0 = enumerate_windows(panel.first, panel.last, spec.min_encoder_length, H, train_end)
        if len(s) == 0:
            raise ValueError(
                "no training windows before the validation window; lower encoder lengths or horizon"
            )
        first, last = np.asarray(panel.first), np.asarray(panel.last)
        ok = [np.flatnonzero((first + spec.min_encoder_length <= o) & (last >= o + H - 1)) for o in origins]
        val_s = np.concatenate(ok)
        val_t0 = np.concatenate([np.full(len(k), o) for k, o in zip(ok, origins, strict=True)])
        val = WindowLoader(pt, spec, val_s, val_t0, 512, None, rng, shuffle=False)
        windows = ((s, t0), enumerate_windows(panel.first, panel.last, spec.min_encoder_length, H, cutoff))

        y_val = panel.y[val_s[:, None], val_t0[:, None] + np.arange(H)[None]].astype(float)
        m_idx = spec.quantiles.index(0.5)
        members: list[tuple] = []  # (early state, best epoch, history, validation quantiles)
        scale = fit.loss_scale
        scale_mae = {}
        for cand in ("none", "series") if scale == "auto" else (scale,):
            early, epoch, history = self._early_stop(spec, pt, windows[0], val, fit.seed, cand)
            raw = self._val_raw(spec, pt, early, val_s, val_t0)
            scale_mae[cand] = float(np.nanmean(np.abs(raw[..., m_idx] - y_val)))
            if not members or scale_mae[cand] < min(v for k, v in scale_mae.items() if k != cand):
                members, scale = [(early, epoch, history, raw)], cand
        for m in range(1, fit.members):  # seed ensemble: members 1000 seeds apart, each early-stopped
            early, epoch, history = self._early_stop(spec, pt, windows[0], val, fit.seed + 1000 * m, scale)
            members.append((early, epoch, history, self._val_raw(spec, pt, early, val_s, val_t0)))
        # Blend and calibration from the validation windows only, on the members' mean forecast.
        mean_raw = np.mean([m[3] for m in members], axis=0)
        validation = self._postprocess_fit(panel, spec, mean_raw, val_s, val_t0, origins)
        epochs = [m[1] for m in members]
        validation.update({f"val_mae_tft_loss_{k}": v for k, v in scale_mae.items()})
        selection = {"val_origins": origins, "best_epochs": epochs, "loss_scale": scale}
        state = [m[0] for m in members]
        if fit.refit:
            refits = [
                self._refit(spec, pt, windows[1], fit.seed + 1000 * k, m[1], scale)
                for k, m in enumerate(members)
            ]
            state = [*refits, *state] if fit.keep_early_model else refits
        return FittedTFT(
            spec=spec,
            model_cfg=cfg.model.model_dump(),
            state_dict=state[0] if len(state) == 1 else state,
            history=members[0][2],
            best_epoch=int(np.median(epochs)),
            train_seconds=time.perf_counter() - t_start,
            validation=validation,
            selection=selection,
        )
