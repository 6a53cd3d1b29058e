"""Turn raw TFT quantiles into the served forecast: blend with baselines, conformal interval calibration.

Both steps are fitted on the validation window only (never on the test/holdout) and stored in the model's
:class:`~training.windows.InputSpec` (``blend`` and ``calibration``), so the registry artefact reproduces
them.

Calibration is a split-conformal variant of conformalised quantile regression (Romano et al. 2019) in
multiplicative form: for each pair of levels (q, 1 - q) the distances of both quantiles from the median are
scaled
by the smallest factor c whose validation coverage reaches the nominal 1 - 2q.
"""

from __future__ import annotations

import itertools

import numpy as np

from training.baselines import last_value, seasonal_naive

__all__ = ["fit_blend", "fit_calibration", "apply_postprocess"]


def _base(y_hist: np.ndarray, H: int, season: int) -> dict[str, np.ndarray]:
    return {"last_value": last_value(y_hist, H), "seasonal_naive": seasonal_naive(y_hist, H, season)}


def fit_blend(
    y: np.ndarray,
    median: np.ndarray,
    y_hist: np.ndarray,
    season: int,
    step: float = 0.05,
    shrink: float = 0.5,
) -> dict:
    """Blend weights (TFT, last value, seasonal naive) minimising validation MAE, shrunk to equal weights.

    One validation window is a noisy guide; equal weights are the robust default of the forecast combination
    literature (Claeskens et al. 2016).

    Args:
        y: (N, H) validation actuals.
        median: (N, H) TFT median forecasts.
        y_hist: (N, T) history before the validation window.
        season: seasonal period.
        step: grid step of the weights.
        shrink: share of equal weights in the result (0: the validation optimum as is).

    Returns:
        ``{"tft": w0, "last_value": w1, "seasonal_naive": w2}`` summing to 1.
    """
    H = y.shape[1]
    b = _base(y_hist, H, season)
    mask = ~np.isnan(y)
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, step), 6)
    best, best_w = np.inf, (1.0, 0.0, 0.0)
    for w0, w1 in itertools.product(grid, grid):
        if w0 + w1 > 1.0 + 1e-9:
            continue
        w2 = max(0.0, 1.0 - w0 - w1)
        f = w0 * median + w1 * b["last_value"] + w2 * b["seasonal_naive"]
        err = np.abs(f - y)[mask].mean()
        if err < best - 1e-12:
            best, best_w = err, (w0, w1, w2)
    w = [(1.0 - shrink) * b_ + shrink / 3.0 for b_ in best_w]
    return {"tft": float(w[0]), "last_value": float(w[1]), "seasonal_naive": float(w[2])}


def _blend(spec_blend: dict, y_q: np.ndarray, median_idx: int, y_hist: np.ndarray, season: int) -> np.ndarray:
    w_tft = spec_blend.get("tft", 1.0)
    if w_tft >= 1.0:
        return y_q
    b = _base(y_hist, y_q.shape[1], season)
    med = y_q[..., median_idx]
    new_med = w_tft * med + sum(spec_blend.get(k, 0.0) * v for k, v in b.items())
    return y_q + (new_med - med)[..., None]


def fit_calibration(y: np.ndarray, y_q: np.ndarray, quantiles: list[float]) -> dict[str, float]:
    """Conformal factors per quantile level so that each central interval reaches its nominal coverage.

    Args:
        y: (N, H) validation actuals.
        y_q: (N, H, Q) (blended) quantile forecasts.
        quantiles: (Q,) levels.

    Returns:
        ``{str(level): factor}`` for every level except the median.
    """
    m_idx = quantiles.index(0.5)
    med = y_q[..., m_idx]
    mask = ~np.isnan(y)
    out = {}
    factors = np.arange(0.2, 8.0, 0.01)
    for i, q in enumerate(quantiles):
        if q >= 0.5:
            continue
        j = quantiles.index(round(1.0 - q, 10)) if round(1.0 - q, 10) in quantiles else None
        if j is None:
            continue
        lo_d, hi_d = med - y_q[..., i], y_q[..., j] - med
        target = 1.0 - 2.0 * q
        chosen = factors[-1]
        for c in factors:
            cov = ((y >= med - c * lo_d) & (y <= med + c * hi_d))[mask].mean()
            if cov >= target:
                chosen = c
                break
        out[str(q)] = out[str(round(1.0 - q, 10))] = float(chosen)
    return out


def apply_postprocess(
    y_q: np.ndarray, y_hist: np.ndarray, quantiles: list[float], blend: dict, calibration: dict, season: int
) -> np.ndarray:
    """Blend, calibrate, keep quantiles monotone and non-negative.

    Args:
        y_q: (N, H, Q) raw TFT quantiles.
        y_hist: (N, T) history up to the forecast origin (for the baselines of the blend).
        quantiles: (Q,) levels.
        blend: weights from :func:`fit_blend` (``{"tft": 1.0}`` = no blend).
        calibration: factors from :func:`fit_calibration` (empty = none).
        season: seasonal period.

    Returns:
        (N, H, Q) forecasts.
    """
    m_idx = quantiles.index(0.5)
    out = _blend(blend, np.asarray(y_q, float), m_idx, y_hist, season)
    med = out[..., m_idx : m_idx + 1]
    factors = np.array([calibration.get(str(q), 1.0) for q in quantiles])
    out = med + factors * (out - med)
    out = np.sort(out, axis=-1)
    return np.maximum(out, 0.0)
