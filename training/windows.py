"""Training windows from a dense panel, assembled as TFT input batches by tensor gathers.

This replaces pytorch-forecasting's ``TimeSeriesDataSet`` on our side (STYLE.md: container, windowing and
loading split): the :class:`~features.frames.Panel` is the container, :func:`enumerate_windows` the windowing
(a window is just ``(series, first decoder index)``, two int arrays), and :func:`make_batch` the loading — one
fancy-index gather per tensor for a whole batch, no per-window Python and no per-window copies kept in memory.

The batch layout is exactly what ``pytorch_forecasting.TemporalFusionTransformer.forward`` reads from a
``TimeSeriesDataSet`` configured with an ``EncoderNormalizer(transformation="log1p")`` target normaliser,
``add_relative_time_idx``, ``add_target_scales`` and ``add_encoder_length`` (see
:mod:`training.tft._pf_compat`), so the same network runs on both paths with equal outputs.

:class:`InputSpec` is the "dataset parameters" of a trained model: plain JSON (feature names, vocabularies,
scaler means/standard deviations, window lengths), never a pickle.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from features.frames import FrameSpec, Panel

__all__ = ["InputSpec", "PanelTensors", "fit_input_spec", "enumerate_windows", "make_batch", "WindowLoader"]

_EPS32 = float(torch.finfo(torch.float32).eps)


@dataclass
class InputSpec:
    """Dataset parameters of a model, JSON-serialisable.

    Attributes:
        frame: the column roles of the feature frame (``FrameSpec`` as a dict).
        encoder_length: L, the longest encoder.
        min_encoder_length: shortest encoder used in training (and the cold-start threshold).
        horizon: H, decoder length.
        quantiles: (Q,) output quantile levels.
        vocab: category labels per categorical input.
        mean: standardisation centre per continuous input (and ``<target>_center``/``<target>_scale``).
        std: standardisation scale per continuous input.
        calibration: per quantile level, the factor applied to its distance from the median (conformal
            calibration on the validation window; 1.0 = raw).
        blend: weights of the final point forecast: ``{"tft": w, "last_value": w, "seasonal_naive": w}``.
        season: seasonal period of the data (12 monthly, 7 daily).
    """

    frame: dict
    encoder_length: int
    min_encoder_length: int
    horizon: int
    quantiles: list[float]
    vocab: dict[str, list[str]]
    mean: dict[str, float]
    std: dict[str, float]
    calibration: dict[str, float] = field(default_factory=dict)
    blend: dict[str, float] = field(default_factory=lambda: {"tft": 1.0})
    season: int = 12

    @property
    def frame_spec(self) -> FrameSpec:
        """The ``FrameSpec`` (tuples restored)."""
        return FrameSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.frame.items()})

    @property
    def target(self) -> str:
        """Target column name."""
        return self.frame["target"]

    @property
    def static_reals(self) -> list[str]:
        """Static continuous inputs in network order (user attributes, then the added ones)."""
        t = self.target
        return [*self.frame["static_reals"], "encoder_length", f"{t}_center", f"{t}_scale"]

    @property
    def known_reals(self) -> list[str]:
        """Known time-varying continuous inputs in network order."""
        return [*self.frame["known_reals"], "relative_time_idx"]

    @property
    def x_reals(self) -> list[str]:
        """All continuous inputs, in the column order of ``encoder_cont``/``decoder_cont``."""
        return [*self.static_reals, *self.known_reals, self.target]

    @property
    def x_categoricals(self) -> list[str]:
        """All categorical inputs, in the column order of ``encoder_cat``/``decoder_cat``."""
        return [*self.frame["static_categoricals"], *self.frame["known_categoricals"]]

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def _frame_dict(spec: FrameSpec) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}


@dataclass
class PanelTensors:
    """A panel as torch tensors, continuous inputs already standardised with an :class:`InputSpec`.

    Attributes:
        y: (N, T) float32 target, ``NaN`` unobserved.
        known_real: (N, T, Kr) float32 standardised.
        known_cat: (N, T, Kc) int32 codes.
        static_cat: (N, Sc) int64 codes.
        static_real: (N, Sr) float32 standardised.
        first: (N,) int64 first observed index.
    """

    y: torch.Tensor
    known_real: torch.Tensor
    known_cat: torch.Tensor
    static_cat: torch.Tensor
    static_real: torch.Tensor
    first: torch.Tensor

    @classmethod
    def from_panel(cls, panel: Panel, spec: InputSpec) -> PanelTensors:
        """Standardise and convert (one pass over the arrays, no copies kept beyond the tensors)."""
        f = spec.frame
        kr = panel.known_real.copy()
        for j, c in enumerate(f["known_reals"]):
            kr[:, :, j] = (kr[:, :, j] - spec.mean[c]) / spec.std[c]
        sr = panel.static_real.copy()
        for j, c in enumerate(f["static_reals"]):
            sr[:, j] = (sr[:, j] - spec.mean[c]) / spec.std[c]
        return cls(
            y=torch.from_numpy(np.ascontiguousarray(panel.y, dtype=np.float32)),
            known_real=torch.from_numpy(kr.astype(np.float32, copy=False)),
            known_cat=torch.from_numpy(panel.known_cat.astype(np.int32)),
            static_cat=torch.from_numpy(panel.static_cat.astype(np.int64)),
            static_real=torch.from_numpy(sr.astype(np.float32, copy=False)),
            first=torch.from_numpy(np.asarray(panel.first, dtype=np.int64)),
        )


def _std(x: np.ndarray) -> float:
    s = float(np.std(x)) if x.size else 1.0
    return s if s > 0 else 1.0


def enumerate_windows(
    first: np.ndarray, last: np.ndarray, min_encoder_length: int, horizon: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """All training windows as (series, first decoder index) pairs.

    A window needs ``min_encoder_length`` observed periods before its decoder and its whole decoder at or
    before ``min(last, end)``.

    Args:
        first: (N,) first observed index per series.
        last: (N,) last observed index per series.
        min_encoder_length: shortest encoder.
        horizon: decoder length H.
        end: last index a decoder may reach (the training cut-off).

    Returns:
        ``(s, t0)``: two (W,) int64 arrays.
    """
    lo = np.asarray(first, np.int64) + min_encoder_length
    hi = np.minimum(np.asarray(last, np.int64), end) - horizon + 1
    counts = np.maximum(hi - lo + 1, 0)
    s = np.repeat(np.arange(len(lo), dtype=np.int64), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    t0 = lo[s] + (np.arange(counts.sum(), dtype=np.int64) - starts)
    return s, t0


def _encoder_stats(y_enc: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor):
    """log1p-standard scaling fitted on each encoder, as pytorch-forecasting's ``EncoderNormalizer``."""
    z = torch.where(valid, torch.log1p(torch.nan_to_num(y_enc, nan=0.0)), torch.zeros((), dtype=y_enc.dtype))
    n = lengths.to(z.dtype)
    center = z.sum(1) / n
    dev = torch.where(valid, z - center[:, None], torch.zeros((), dtype=z.dtype))
    var = (dev * dev).sum(1) / (n - 1).clamp(min=1)
    scale = var.sqrt() + _EPS32
    return z, center, scale


def fit_input_spec(
    panel: Panel,
    train_end: int,
    encoder_length: int,
    horizon: int,
    quantiles: list[float],
    min_encoder_length: int | None = None,
    season: int = 12,
    max_windows: int = 200_000,
    rng: np.random.Generator | None = None,
) -> InputSpec:
    """Fit the standardisation of every continuous input on data up to ``train_end`` only.

    Args:
        panel: the feature panel.
        train_end: last time index whose target the model may see.
        encoder_length: L.
        horizon: H.
        quantiles: output quantile levels.
        min_encoder_length: shortest training encoder (default L // 2).
        season: seasonal period.
        max_windows: windows sampled to fit the scaling of the target centre/scale inputs.
        rng: randomness for that sample.

    Returns:
        The :class:`InputSpec`.
    """
    rng = rng or np.random.default_rng(0)
    min_l = encoder_length // 2 if min_encoder_length is None else min_encoder_length
    f = panel.spec
    mean, std = {}, {}
    hist = slice(0, train_end + 1)
    obs = ~np.isnan(panel.y[:, hist])
    for j, c in enumerate(f.known_reals):
        v = panel.known_real[:, hist, j][obs]
        mean[c], std[c] = float(v.mean()) if v.size else 0.0, _std(v)
    for j, c in enumerate(f.static_reals):
        v = panel.static_real[:, j]
        mean[c], std[c] = float(v.mean()), _std(v)
    spec = InputSpec(
        frame=_frame_dict(f),
        encoder_length=encoder_length,
        min_encoder_length=min_l,
        horizon=horizon,
        quantiles=list(quantiles),
        vocab={k: list(v) for k, v in panel.vocab.items()},
        mean=mean,
        std=std,
        season=season,
    )
    s, t0 = enumerate_windows(panel.first, panel.last, min_l, horizon, train_end)
    if len(s) == 0:
        raise ValueError(
            f"no training window: every series needs {min_l} + {horizon} observed periods "
            f"up to index {train_end}"
        )
    pick = rng.choice(len(s), size=min(max_windows, len(s)), replace=False)
    y = torch.from_numpy(panel.y)
    first = torch.from_numpy(np.asarray(panel.first, np.int64))
    ss, tt = torch.from_numpy(s[pick]), torch.from_numpy(t0[pick])
    lengths = torch.clamp(tt - first[ss], max=encoder_length)
    pos = torch.arange(encoder_length)
    te = (tt[:, None] - lengths[:, None] + pos[None]).clamp(0, panel.n_times - 1)
    _, center, scale = _encoder_stats(y[ss[:, None], te], pos[None] < lengths[:, None], lengths)
    t = f.target
    mean[f"{t}_center"], std[f"{t}_center"] = float(center.mean()), _std(center.numpy())
    mean[f"{t}_scale"], std[f"{t}_scale"] = float(scale.mean()), _std(scale.numpy())
    return spec


def make_batch(
    pt: PanelTensors,
    spec: InputSpec,
    s: torch.Tensor,
    t0: torch.Tensor,
    max_length: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Assemble a TFT input batch for windows ``(s, t0)`` by tensor gathers.

    Args:
        pt: the panel tensors.
        spec: the dataset parameters.
        s: (B,) int64 series indices.
        t0: (B,) int64 index of each window's first decoder period.
        max_length: optional (B,) int64 cap on each encoder's length (shorter histories for augmentation or
            cold-start checks); the encoder otherwise holds ``min(L, t0 - first)`` periods.

    Returns:
        ``(x, y)``: ``x`` the dict read by ``TemporalFusionTransformer.forward`` (``encoder_cont`` (B, Le, C),
        ``decoder_cont`` (B, H, C), ``encoder_cat``/``decoder_cat`` (B, *, K), ``encoder_lengths``,
        ``decoder_lengths`` (B,), ``target_scale`` (B, 2)) with Le the longest encoder in the batch; ``y``
        (B, H) the decoder actuals (``NaN`` where unobserved or beyond the panel).
    """
    L, H = spec.encoder_length, spec.horizon
    T = pt.y.shape[1]
    lengths = torch.clamp(t0 - pt.first[s], min=1, max=L)
    if max_length is not None:
        lengths = torch.minimum(lengths, max_length.clamp(min=1))
    Le = int(lengths.max())
    pos = torch.arange(Le)
    valid = pos[None] < lengths[:, None]  # (B, Le)
    te = (t0[:, None] - lengths[:, None] + pos[None]).clamp(0, T - 1)
    td_raw = t0[:, None] + torch.arange(H)[None]
    td = td_raw.clamp(max=T - 1)
    si = s[:, None]

    z, center, scale = _encoder_stats(pt.y[si, te], valid, lengths)
    z_norm = torch.where(valid, (z - center[:, None]) / scale[:, None], torch.zeros(()))
    t = spec.target
    Lf = float(L)
    stat = torch.cat(
        [
            pt.static_real[s],
            ((lengths.float() - 0.5 * Lf) / Lf * 2.0)[:, None],
            ((center - spec.mean[f"{t}_center"]) / spec.std[f"{t}_center"])[:, None],
            ((scale - spec.mean[f"{t}_scale"]) / spec.std[f"{t}_scale"])[:, None],
        ],
        dim=1,
    )  # (B, Sr + 3)
    rel_enc = (pos[None] - lengths[:, None]).float() / Lf
    rel_dec = torch.arange(H, dtype=torch.float32)[None].expand(len(s), H) / Lf
    enc_cont = torch.cat(
        [stat[:, None].expand(-1, Le, -1), pt.known_real[si, te], rel_enc[..., None], z_norm[..., None]],
        dim=2,
    )
    enc_cont = enc_cont * valid[..., None]
    dec_cont = torch.cat(
        [
            stat[:, None].expand(-1, H, -1),
            pt.known_real[si, td],
            rel_dec[..., None],
            torch.zeros(len(s), H, 1),
        ],
        dim=2,
    )
    sc = pt.static_cat[s]
    enc_cat = (
        torch.cat([sc[:, None].expand(-1, Le, -1), pt.known_cat[si, te].long()], dim=2) * valid[..., None]
    )
    dec_cat = torch.cat([sc[:, None].expand(-1, H, -1), pt.known_cat[si, td].long()], dim=2)
    y = torch.where(td_raw < T, pt.y[si, td], torch.full((), float("nan")))
    x = {
        "encoder_cont": enc_cont,
        "decoder_cont": dec_cont,
        "encoder_cat": enc_cat,
        "decoder_cat": dec_cat,
        "encoder_lengths": lengths,
        "decoder_lengths": torch.full((len(s),), H, dtype=torch.long),
        "target_scale": torch.stack([center, scale], dim=1),
    }
    return x, y


class WindowLoader:
    """Random training batches over a window list, ``batches`` per epoch (an iterable for Lightning).

    Args:
        pt: panel tensors.
        spec: dataset parameters.
        s: (W,) series index per window.
        t0: (W,) first decoder index per window.
        batch_size: windows per batch.
        batches: batches per epoch (``None``: one pass over all windows).
        rng: randomness (window order); passed in, never global.
        shuffle: draw windows in random order (training) or in order (validation).
    """

    def __init__(
        self,
        pt: PanelTensors,
        spec: InputSpec,
        s: np.ndarray,
        t0: np.ndarray,
        batch_size: int,
        batches: int | None,
        rng: np.random.Generator,
        shuffle: bool = True,
    ):
        self.pt, self.spec, self.batch_size, self.rng, self.shuffle = pt, spec, batch_size, rng, shuffle
        self.s, self.t0 = (
            torch.from_numpy(np.asarray(s, np.int64)),
            torch.from_numpy(np.asarray(t0, np.int64)),
        )
        full = math.ceil(len(self.s) / batch_size)
        self.batches = full if batches is None else min(batches, full) if not shuffle else batches

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        n = len(self.s)
        if self.shuffle:
            # Sample batches uniformly without building a permutation of millions of windows per epoch.
            idx = torch.from_numpy(self.rng.integers(0, n, size=(self.batches, self.batch_size)))
            for b in range(self.batches):
                yield make_batch(self.pt, self.spec, self.s[idx[b]], self.t0[idx[b]])
        else:
            for b in range(self.batches):
                sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
                yield make_batch(self.pt, self.spec, self.s[sl], self.t0[sl])
