"""Fast inference: forecast a batch of planning units from prepared tensors.

No ``TimeSeriesDataSet`` and no ``Trainer`` per call: the panel is standardised once into
:class:`~training.windows.PanelTensors`, every window of the batch is gathered in one go by
:func:`~training.windows.make_batch`, and the network runs under ``torch.inference_mode`` with its
interpolation hot spot replaced by a matrix product (:func:`~training.tft.module.speed_up_for_inference`).

Cold start: a series with fewer than ``min_encoder_length`` observed periods before the origin still gets a
forecast from the global model (its static attributes and whatever history it has, at least one period), and
is flagged ``cold_start``; a series with no observation at all before the origin gets the spread of its
similar series' median forecasts (same SKU elsewhere, same attribute, same location:
:mod:`training.cold_start`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from features.frames import Panel
from training.postprocess import apply_postprocess
from training.tft.module import TFTModule, speed_up_for_inference
from training.windows import InputSpec, PanelTensors, make_batch

__all__ = ["ModelForecast", "Predictor", "load_predictor", "raw_quantiles"]


@dataclass
class ModelForecast:
    """Forecasts for N series from one origin.

    Attributes:
        quantiles: (N, H, Q) forecasts in target units after blend and calibration.
        raw: (N, H, Q) the network's own quantiles.
        levels: (Q,) quantile levels.
        times: (H,) forecast periods.
        series: N series ids (``key1|key2``).
        cold_start: (N,) True where the history before the origin is shorter than the model's minimum encoder.
    """

    quantiles: np.ndarray
    raw: np.ndarray
    levels: list[float]
    times: np.ndarray
    series: list[str]
    cold_start: np.ndarray

    @property
    def median(self) -> np.ndarray:
        """(N, H) P50."""
        return self.quantiles[..., self.levels.index(0.5)]

    def to_frame(self) -> pd.DataFrame:
        """Long frame: series, date, horizon, p10 .. p90, cold_start."""
        N, H, Q = self.quantiles.shape
        cols = {
            "series": np.repeat(self.series, H),
            "date": np.tile(self.times, N),
            "horizon": np.tile(np.arange(1, H + 1), N),
        }
        for k, q in enumerate(self.levels):
            cols[f"p{round(q * 100):02d}"] = self.quantiles[..., k].reshape(-1)
        cols["cold_start"] = np.repeat(self.cold_start, H)
        return pd.DataFrame(cols)


def raw_quantiles(
    module: torch.nn.Module,
    pt: PanelTensors,
    spec: InputSpec,
    s: np.ndarray,
    t0: np.ndarray,
    batch_size: int = 4096,
) -> np.ndarray:
    """Network quantiles for windows ``(s, t0)``.

    Args:
        module: a :class:`TFTModule` (eval mode is set here).
        pt: panel tensors.
        spec: dataset parameters.
        s: (B,) series indices.
        t0: (B,) first forecast index per window.
        batch_size: windows per forward pass.

    Returns:
        (B, H, Q) float64.
    """
    module.eval()
    s_t, t_t = torch.as_tensor(np.asarray(s, np.int64)), torch.as_tensor(np.asarray(t0, np.int64))
    dev = next(module.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(s_t), batch_size):
            x, _ = make_batch(pt, spec, s_t[i : i + batch_size], t_t[i : i + batch_size])
            x = {k: v.to(dev) for k, v in x.items()}
            out.append(module(x).float().cpu())
    return torch.cat(out).numpy().astype(np.float64)


class Predictor:
    """A loaded model: dataset parameters + network, ready to forecast.

    Args:
        spec: dataset parameters.
        model_cfg: model hyper-parameters.
        state_dict: trained weights; a list for an ensemble, whose members' quantiles are averaged.
        version: registry version (for provenance in outputs), if any.
    """

    def __init__(
        self, spec: InputSpec, model_cfg: dict, state_dict: dict | list[dict], version: str | None = None
    ):
        self.spec, self.model_cfg, self.version = spec, model_cfg, version
        self.members = []
        for sd in state_dict if isinstance(state_dict, list) else [state_dict]:
            m = TFTModule(spec, model_cfg)
            m.load_state_dict(sd)
            m.eval()
            speed_up_for_inference(m.net)
            self.members.append(m)
        self.module = self.members[0]

    def to(self, device) -> Predictor:
        """Move every member network to ``device`` (inputs follow each network)."""
        for m in self.members:
            m.to(device)
        return self

    def prepare(self, panel: Panel) -> PanelTensors:
        """Standardise a panel once (reuse the result across calls)."""
        return PanelTensors.from_panel(panel, self.spec)

    def forecast_tensors(self, pt: PanelTensors, s: np.ndarray, t0: np.ndarray) -> np.ndarray:
        """Raw network quantiles (B, H, Q) for prepared tensors (mean over ensemble members): the hot path."""
        out = raw_quantiles(self.members[0], pt, self.spec, s, t0)
        for m in self.members[1:]:
            out += raw_quantiles(m, pt, self.spec, s, t0)
        return out / len(self.members)

    def forecast(
        self,
        panel: Panel,
        origin: int | None = None,
        pt: PanelTensors | None = None,
        postprocess: bool = True,
    ) -> ModelForecast:
        """Forecast every series of ``panel`` from ``origin`` (the first forecast index).

        Args:
            panel: feature panel; it must hold known inputs for ``origin .. origin + H - 1``.
            origin: first forecast index (default: one past the last observed period of any series).
            pt: tensors from :meth:`prepare`, to skip re-standardising.
            postprocess: apply the stored blend and calibration.

        Returns:
            The :class:`ModelForecast`.

        Raises:
            ValueError: the panel has no known inputs for the whole horizon.
        """
        H = self.spec.horizon
        if origin is None:
            origin = int(np.max(panel.last)) + 1
        if origin + H > panel.n_times:
            raise ValueError(
                f"panel ends at index {panel.n_times - 1} but the horizon needs known inputs up to "
                f"{origin + H - 1}; extend the frame with future prices/promotions/calendar rows"
            )
        pt = pt if pt is not None else self.prepare(panel)
        n = panel.n_series
        s = np.arange(n)
        t0 = np.full(n, origin)
        hist_len = np.clip(origin - np.asarray(panel.first), 0, None)
        cold = hist_len < self.spec.min_encoder_length
        raw = self.forecast_tensors(pt, s, t0)
        y_hist = panel.y[:, :origin]
        q = apply_postprocess(
            raw,
            y_hist,
            self.spec.quantiles,
            self.spec.blend if postprocess else {"tft": 1.0},
            self.spec.calibration if postprocess else {},
            self.spec.season,
        )
        q = self._cold_from_peers(panel, origin, q)
        return ModelForecast(
            quantiles=q,
            raw=raw,
            levels=list(self.spec.quantiles),
            times=panel.times[origin : origin + H],
            series=panel.series_ids(),
            cold_start=cold,
        )

    def _cold_from_peers(self, panel: Panel, origin: int, q: np.ndarray) -> np.ndarray:
        """Series without any observation before ``origin``: the mean forecast of similar series.

        Peers share the first SKU key, else a master-data attribute (category, brand, ...), else the other
        keys (location, channel), in that order (:func:`training.cold_start.similar_items_forecast`).
        """
        empty = np.isnan(panel.y[:, :origin]).all(axis=1)
        if not empty.any() or empty.all():
            return q
        from training.cold_start import similar_items_forecast

        keys = list(panel.spec.series_keys)
        statics = list(panel.spec.static_categoricals)
        order = [*keys[:1], *[c for c in statics if c not in keys], *keys[1:]]
        groups = [panel.static_cat[:, statics.index(c)] for c in order if c in statics]
        return similar_items_forecast(panel.y[:, :origin], q, empty, groups, self.spec.quantiles)


def load_predictor(
    version_or_alias: str | int = "champion", model_name: str | None = None, tracking_uri: str | None = None
) -> Predictor:
    """Load a registered model version (number) or alias (``champion``) as a :class:`Predictor`.

    Args:
        version_or_alias: registry version number or alias.
        model_name: registered model name (default: settings ``model_name``).
        tracking_uri: MLflow URI (default: settings, SQLite under ``$REPLENISH_HOME``).
    """
    from training.artifact import load_artifact
    from training.registry import download_artifact

    path, version = download_artifact(version_or_alias, model_name, tracking_uri)
    spec, model_cfg, state = load_artifact(path)
    return Predictor(spec, model_cfg, state, version=version)
