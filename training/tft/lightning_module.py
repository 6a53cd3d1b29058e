"""Thin LightningModule around :class:`~training.tft.module.TFTModule`: loss, optimiser, schedule, logging.

The loss is the pinball loss of the quantiles in target units (as pytorch-forecasting's ``QuantileLoss`` on
the rescaled prediction), so big series weigh as much as they do in MAE/WAPE; or, with
``loss_scale="series"``, each window's loss weighted by the inverse of its encoder level (a scale-free loss:
every series weighs alike). AdamW with a cosine learning-rate decay over the planned steps.
"""

from __future__ import annotations

import lightning as L
import torch

from training.tft.module import TFTModule

__all__ = ["TFTLightningModule", "pinball_loss", "series_weight"]


def pinball_loss(
    y_q: torch.Tensor, y: torch.Tensor, q: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean pinball loss, optionally weighted per window.

    Args:
        y_q: (B, H, Q) quantile forecasts.
        y: (B, H) actuals, ``NaN`` ignored.
        q: (Q,) quantile levels.
        weight: (B,) window weights (None: all 1).
    """
    mask = ~torch.isnan(y)
    e = torch.nan_to_num(y)[..., None] - y_q
    loss = torch.maximum(q * e, (q - 1.0) * e).mean(-1)
    w = mask.float() if weight is None else mask * weight[:, None]
    return (loss * w).sum() / w.sum().clamp(min=1e-12)


def series_weight(x: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) weights 1 / level of each window's encoder (scale-free loss), level = expm1(mean log1p target)."""
    level = torch.expm1(x["target_scale"][:, 0].float()).clamp(min=1.0)
    return 1.0 / level


class TFTLightningModule(L.LightningModule):
    """Training step for the TFT.

    Args:
        module: the network.
        quantiles: (Q,) levels, the middle one used for the validation MAE.
        learning_rate: peak learning rate.
        weight_decay: AdamW weight decay.
        total_steps: steps of the cosine schedule (epochs x batches per epoch).
        loss_scale: ``"none"`` (target units) or ``"series"`` (each window weighted by 1 / its level).
    """

    def __init__(
        self,
        module: TFTModule,
        quantiles: list[float],
        learning_rate: float,
        weight_decay: float,
        total_steps: int,
        loss_scale: str = "none",
    ):
        super().__init__()
        self.loss_scale = loss_scale
        self.module = module
        self.register_buffer("q", torch.tensor(quantiles, dtype=torch.float32), persistent=False)
        self.median = quantiles.index(0.5)
        self.learning_rate, self.weight_decay, self.total_steps = learning_rate, weight_decay, total_steps

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, H, Q) quantiles."""
        return self.module(x)

    def _weight(self, x: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return series_weight(x) if self.loss_scale == "series" else None

    def training_step(self, batch, batch_idx):
        """Pinball loss on a training batch."""
        x, y = batch
        loss = pinball_loss(self(x).float(), y, self.q, self._weight(x))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        """Pinball loss and median MAE on the validation window."""
        x, y = batch
        y_q = self(x).float()
        mask = ~torch.isnan(y)
        mae = ((y_q[..., self.median] - torch.nan_to_num(y)).abs() * mask).sum() / mask.sum().clamp(min=1)
        self.log("val_loss", pinball_loss(y_q, y, self.q, self._weight(x)), prog_bar=True, batch_size=len(y))
        self.log("val_mae", mae, prog_bar=True, batch_size=len(y))

    def configure_optimizers(self):
        """AdamW with cosine decay to 5 % of the peak learning rate."""
        opt = torch.optim.AdamW(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(self.total_steps, 1), eta_min=0.05 * self.learning_rate
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
