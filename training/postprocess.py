"""Turn raw TFT quantiles into the served forecast: blend with baselines, conformal interval calibration.

Both steps are fitted on the validation window only (never on the test/holdout) and stored in the model's
:class:`~training.windows.InputSpec` (``blend`` and ``calibration``), so the registry artefact reproduces
them.

Calibration is a split-conformal variant of conformalised quantile regression (Romano et al. 2019) in
multiplicative form: for each pair of levels (q, 1 - q) the distances of both quantiles from the median are
scaled by the smallest factor c whose validation coverage reaches the nominal 1 - 2q.
"""

from __future__ import annotations

import itertools

import numpy as np

from training.baselines import last_value, seasonal_naive

__all__ = ["BLEND_BASELINES", "baseline_points", "fit_blend", "fit_calibration", "apply_postprocess"]


#: Baselines the served median may blend with (statsforecast fits for ``auto_ets`` and ``theta``).
BLEND_BASELINES = ("last_value", "seasonal_naive", "auto_ets", "theta")
_STATISTICAL = ("auto_ets", "theta")


def baseline_points(
    y_hist: np.ndarray, H: int, season: int, names=("last_value", "seasonal_naive")
) -> dict[str, np.ndarray]:
    """Point forecasts (N, H) of the blend's baselines from the history ``y_hist`` (N, T).

    ``auto_ets`` and ``theta`` are statsforecast fits (:func:`training.statistical.fit_predict`, median).
    """
    unknown = [n for n in names if n not in BLEND_BASELINES]
    if unknown:
        raise ValueError(f"blend baselines {unknown}: expected names from {list(BLEND_BASELINES)}")
    out = {}
    if "last_value" in names:
        out["last_value"] = last_value(y_hist, H)
    if "seasonal_naive" in names:
        out["seasonal_naive"] = seasonal_naive(y_hist, H, season)
    stat = [n for n in names if n in _STATISTICAL]
    if stat:
        from training.statistical import fit_predict

        res = fit_predict(np.asarray(y_hist, float), season, H, (0.1, 0.5, 0.9), stat)
        out.update({n: res[n][..., 1] for n in stat})
    return out


def _simplex(k: int, step: float) -> np.ndarray:
    """All weight vectors of length ``k`` on the simplex with coordinates in multiples of ``step``."""
    n = round(1.0 / step)
    rows = [c for c in itertools.product(range(n + 1), repeat=k - 1) if sum(c) <= n]
    grid = np.array([[*c, n - sum(c)] for c in rows], float)
    return grid / n


def fit_blend(
    y: np.ndarray,
    median: np.ndarray,
    y_hist: np.ndarray | None,
    season: int,
    step: float | None = None,
    shrink: float = 0.5,
    base: dict[str, np.ndarray] | None = None,
) -> dict:
    """Blend weights (TFT and baselines) minimising validation MAE, shrunk to equal weights.

    Validation windows are a noisy guide; equal weights are the robust default of the forecast combination
    literature (Claeskens et al. 2016).

    Args:
        y: (N, H) validation actuals (windows of several origins stacked along N).
        median: (N, H) TFT median forecasts.
        y_hist: (N, T) history before the validation window (used when ``base`` is not given: last value and
            seasonal naive).
        season: seasonal period.
        step: grid step of the weights (default 0.05 for up to three members, 0.1 beyond).
        shrink: share of equal weights in the result (0: the validation optimum as is).
        base: baseline point forecasts (N, H) by name (see :func:`baseline_points`).

    Returns:
        ``{"tft": w0, <baseline>: w, ...}`` summing to 1.
    """
    H = y.shape[1]
    b = base if base is not None else baseline_points(y_hist, H, season)
    names = ["tft", *b]
    stack = np.stack([median, *b.values()])  # (K, N, H)
    mask = ~np.isnan(y)
    step = step or (0.05 if len(names) <= 3 else 0.1)
    grid = _simplex(len(names), step)
    yv, sv = y[mask], stack[:, mask]  # (M,), (K, M)
    errs = np.concatenate(
        [np.abs(g @ sv - yv[None]).mean(axis=1) for g in np.array_split(grid, max(1, len(grid) // 256))]
    )
    best_w = grid[int(np.argmin(errs))] if len(grid) else np.eye(len(names))[0]
    w = (1.0 - shrink) * best_w + shrink / len(names)
    return {k: float(v) for k, v in zip(names, w, strict=True)}


def _blend(
    spec_blend: dict, y_q: np.ndarray, median_idx: int, y_hist: np.ndarray, season: int, base: dict | None
) -> np.ndarray:
    w_tft = spec_blend.get("tft", 1.0)
    if w_tft >= 1.0:
        return y_q
    names = [k for k, v in spec_blend.items() if k != "tft" and v > 0]
    if base is None or any(n not in base for n in names):
        base = baseline_points(y_hist, y_q.shape[1], season, names)
    b = {n: base[n] for n in names}
    med = y_q[..., median_idx]
    new_med = w_tft * med + sum(spec_blend[k] * v for k, v in b.items())
    return y_q + (new_med - med)[..., None]


def fit_calibration(y: np.ndarray, y_q: np.ndarray, quantiles: list[float], margin: float = 0.0
                    ) -> dict[str, float]:
    """Conformal factors per quantile level, fitted for the lower and the upper tail separately.

    For a pair of levels ``q < 0.5 < 1 - q``, the lower quantile's distance to the median is scaled by the
    smallest factor whose share of actuals below it is at most ``q - margin / 2`` on the validation windows,
    and the upper one's by the smallest factor whose share above it is at most the same: each tail is
    calibrated to its own miss rate, so a skewed error (demand more often far above the median than far
    below) does not leave one tail too wide and the other too narrow, as one symmetric factor would.
    ``margin`` aims the central band's coverage above its nominal ``1 - 2q`` (e.g. 0.015: the P10..P90 band
    at 0.815, the middle of an accepted 0.78-0.85), a guard against the validation windows being calmer
    than the future.

    Args:
        y: (N, H) validation actuals (``NaN`` = unobserved).
        y_q: (N, H, Q) (blended) quantile forecasts.
        quantiles: (Q,) levels.
        margin: added to each central band's target coverage (split between its two tails).

    Returns:
        ``{str(level): factor}`` for every level except the median.
    """
    m_idx = quantiles.index(0.5)
    med = y_q[..., m_idx]
    mask = ~np.isnan(y)
    yv = np.where(mask, y, 0.0)
    n = max(int(mask.sum()), 1)
    out = {}
    factors = np.arange(0.2, 8.0, 0.01)

    def smallest(outside, target: float) -> float:
        """The smallest factor c whose share of actuals outside ``outside(c)`` is at most ``target``."""
        for c in factors:
            if (outside(c) & mask).sum() / n <= target:
                return float(c)
        return float(factors[-1])

    for i, q in enumerate(quantiles):
        if q >= 0.5:
            continue
        up = round(1.0 - q, 10)
        if up not in quantiles:
            continue
        j = quantiles.index(up)
        lo_d, hi_d = med - y_q[..., i], y_q[..., j] - med
        target = max(q - margin / 2.0, 0.0)
        out[str(q)] = smallest(lambda c, d=lo_d: yv < med - c * d, target)
        out[str(up)] = smallest(lambda c, d=hi_d: yv > med + c * d, target)
    return out


def apply_postprocess(
    y_q: np.ndarray,
    y_hist: np.ndarray,
    quantiles: list[float],
    blend: dict,
    calibration: dict,
    season: int,
    base: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Blend, calibrate, keep quantiles monotone and non-negative.

    Args:
        y_q: (N, H, Q) raw TFT quantiles.
        y_hist: (N, T) history up to the forecast origin (for the baselines of the blend).
        quantiles: (Q,) levels.
        blend: weights from :func:`fit_blend` (``{"tft": 1.0}`` = no blend).
        calibration: factors from :func:`fit_calibration` (empty = none).
        season: seasonal period.
        base: baseline point forecasts already computed from ``y_hist`` (:func:`baseline_points`), if any.

    Returns:
        (N, H, Q) forecasts.
    """
    m_idx = quantiles.index(0.5)
    out = _blend(blend, np.asarray(y_q, float), m_idx, y_hist, season, base)
    med = out[..., m_idx : m_idx + 1]
    factors = np.array([calibration.get(str(q), 1.0) for q in quantiles])
    out = med + factors * (out - med)
    out = np.sort(out, axis=-1)
    return np.maximum(out, 0.0)
