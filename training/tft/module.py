"""The TFT network as a plain ``nn.Module``.

Built from a model config and :class:`~training.windows.InputSpec`.

We use pytorch-forecasting's ``TemporalFusionTransformer`` as the network (Lim et al. 2021, "Temporal Fusion
Transformers for interpretable multi-horizon time series forecasting"), constructed directly from our JSON
dataset parameters instead of ``from_dataset`` so that no ``TimeSeriesDataSet`` is needed to build, train or
load it. Its forward takes the batch dict of :func:`training.windows.make_batch` and returns quantiles in the
original scale of the target.

:func:`speed_up_for_inference` swaps the network's ``F.interpolate``-based resampling (a hot spot at
inference) for an equivalent fixed matrix product; it adds no parameters, so state dicts stay interchangeable.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from training.windows import InputSpec

__all__ = ["build_network", "TFTModule", "speed_up_for_inference", "embedding_size"]


def embedding_size(n: int, max_size: int = 100) -> int:
    """Embedding width for a categorical with ``n`` classes (pytorch-forecasting's rule of thumb)."""
    return min(round(1.6 * n**0.56), max_size) if n > 2 else 1


def build_network(spec: InputSpec, model_cfg: dict) -> nn.Module:
    """Build an untrained pytorch-forecasting TFT for ``spec``.

    Args:
        spec: dataset parameters (feature names, vocabularies, lengths, quantiles).
        model_cfg: ``ModelConfig`` fields (hidden_size, attention_head_size, dropout, hidden_continuous_size,
            lstm_layers, quantiles).

    Returns:
        The network (a ``torch.nn.Module``); ``forward(x)["prediction"]`` is (B, H, Q).
    """
    from pytorch_forecasting import TemporalFusionTransformer
    from pytorch_forecasting.data.encoders import EncoderNormalizer
    from pytorch_forecasting.metrics import QuantileLoss

    f = spec.frame
    known_cats = list(f["known_categoricals"])
    cats = spec.x_categoricals
    emb = {c: (len(spec.vocab[c]), embedding_size(len(spec.vocab[c]))) for c in cats}
    known_reals = spec.known_reals
    with warnings.catch_warnings():
        # pytorch-forecasting saves its loss modules as hyper-parameters; Lightning warns on every build
        warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
        return TemporalFusionTransformer(
            hidden_size=model_cfg["hidden_size"],
            lstm_layers=model_cfg["lstm_layers"],
            dropout=model_cfg["dropout"],
            output_size=len(spec.quantiles),
            loss=QuantileLoss(quantiles=list(spec.quantiles)),
            attention_head_size=model_cfg["attention_head_size"],
            max_encoder_length=spec.encoder_length,
            static_categoricals=list(f["static_categoricals"]),
            static_reals=spec.static_reals,
            time_varying_categoricals_encoder=known_cats,
            time_varying_categoricals_decoder=known_cats,
            time_varying_reals_encoder=[*known_reals, spec.target],
            time_varying_reals_decoder=known_reals,
            x_reals=spec.x_reals,
            x_categoricals=cats,
            hidden_continuous_size=model_cfg["hidden_continuous_size"],
            embedding_sizes=emb,
            embedding_labels={c: {v: i for i, v in enumerate(spec.vocab[c])} for c in cats},
            output_transformer=EncoderNormalizer(transformation="log1p"),
            logging_metrics=nn.ModuleList([]),
        )


class TFTModule(nn.Module):
    """Plain wrapper: ``forward(x) -> (B, H, Q)`` quantiles in target units."""

    def __init__(self, spec: InputSpec, model_cfg: dict):
        super().__init__()
        self.net = build_network(spec, model_cfg)

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """Quantile forecasts (B, H, Q) for a batch from :func:`training.windows.make_batch`."""
        return self.net(x)["prediction"]


class _MatrixInterpolation(nn.Module):
    """``F.interpolate(x, m, mode="linear", align_corners=True)`` over the last axis as ``x @ W``."""

    def __init__(self, n_in: int, n_out: int, batch_first: bool):
        super().__init__()
        W = torch.zeros(n_in, n_out)
        if n_in == 1:
            W[0] = 1.0
        else:
            pos = torch.arange(n_out, dtype=torch.float64) * (n_in - 1) / max(n_out - 1, 1)
            lo = pos.floor().long().clamp(max=n_in - 1)
            hi = (lo + 1).clamp(max=n_in - 1)
            w_hi = (pos - lo.double()).float()
            W[lo, torch.arange(n_out)] += 1.0 - w_hi
            W[hi, torch.arange(n_out)] += w_hi
        self.register_buffer("W", W, persistent=False)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W


def speed_up_for_inference(net: nn.Module) -> nn.Module:
    """Replace every untrainable ``TimeDistributedInterpolation`` by :class:`_MatrixInterpolation` in place.

    Linear interpolation with ``align_corners=True`` is a fixed linear map, so the result equals the
    original up to float rounding; the state dict is unchanged (the matrix is a non-persistent buffer).
    """
    from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
        ResampleNorm,
        TimeDistributedInterpolation,
    )

    for mod in net.modules():
        if isinstance(mod, ResampleNorm) and isinstance(
            getattr(mod, "resample", None), TimeDistributedInterpolation
        ):
            if not mod.resample.trainable:
                mod.resample = _MatrixInterpolation(mod.input_size, mod.output_size, True)
    return net
