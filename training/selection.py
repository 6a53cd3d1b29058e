"""Honest model selection and ensembles, fitted on rolling validation origins that end before evaluation.

The caller forecasts every candidate model at several validation origins, all of whose windows end before the
evaluation (test) window starts, and hands over the forecasts and the actuals of those windows. Everything
here sees only those windows, so the choice made is the one a user would have made at the test origin.

* **Loss.** Scaled pinball loss: the mean pinball loss over horizon steps and quantile levels divided by the
  series' in-sample scale (mean absolute seasonal difference of its history, as in MASE; Hyndman and
  Koehler 2006), so that volume does not decide the choice; or scaled absolute error of the median (MASE).
* **Segments.** Series are grouped by Syntetos-Boylan demand class (Syntetos, Boylan and Croston 2005):
  average inter-demand interval ADI against 1.32 and squared coefficient of variation CV² of the non-zero
  sizes against 0.49 give smooth, erratic, intermittent and lumpy demand (and ``no_demand`` for series with
  no sale), optionally crossed with a hierarchy level or any other label (:func:`segment_labels`). A label
  must describe a series the same way at the validation origins as at the test origin: a history-length
  bucket fixed at the test origin does not (validation origins see shorter histories, where other models win).
* **Choice.** ``method="segment"``: the model with the lowest mean loss over the segment's series.
  ``"ensemble"``: non-negative weights summing to one per segment, fitted by exponentiated-gradient descent
  (Kivinen and Warmuth 1997) on the segment's scaled pinball loss of the weighted quantiles (quantile
  averaging keeps quantiles monotone), kept only when they beat the best single model on validation by
  ``min_gain``, so the result is never worse on validation than the best member. ``"series"``: per series,
  among the models and the segment's ensemble, the one with the lowest loss shrunk towards the segment's
  ``(L_i + lambda L_seg) / (1 + lambda)``, which keeps a few noisy validation points from deciding alone.
  Segments with fewer than ``min_segment_size`` validated series take the decision pooled over all series.

Example::

    sel = select(val_forecasts, val_actuals, levels, scale=series_scale(y_before, 12),
                 segments=demand_classes(y_before))
    test_quantiles = sel.apply(test_forecasts)       # (N, H, Q)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "ADI_CUTOFF",
    "CV2_CUTOFF",
    "DEMAND_CLASSES",
    "Selection",
    "demand_classes",
    "fit_weights",
    "history_buckets",
    "pinball_per_series",
    "segment_labels",
    "segment_series",
    "select",
    "series_scale",
    "validation_losses",
]

#: Syntetos-Boylan cut-offs (2005).
ADI_CUTOFF = 1.32
CV2_CUTOFF = 0.49
DEMAND_CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "no_demand")
METHODS = ("segment", "ensemble", "series")
#: How series are segmented (:func:`segment_series`): by demand class, or by demand class and history length.
SEGMENTINGS = ("demand_class", "demand_class_x_history")
#: A series with fewer observed periods than this many seasons is "short" (:func:`history_buckets`).
SHORT_HISTORY_SEASONS = 3


def demand_classes(y: np.ndarray) -> np.ndarray:
    """Syntetos-Boylan demand class per series from its history.

    ADI = observed periods / periods with demand; CV² = (std / mean)² of the non-zero demand sizes.

    Args:
        y: (N, T) history, ``NaN`` = unobserved; use only periods before the first validation origin.

    Returns:
        (N,) array of str from :data:`DEMAND_CLASSES`.
    """
    y = np.asarray(y, dtype=np.float64)
    obs = ~np.isnan(y)
    pos = obs & (np.nan_to_num(y) > 0)
    n_obs, n_pos = obs.sum(axis=1), pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        adi = n_obs / n_pos
        sizes = np.where(pos, y, np.nan)
        mean = np.nanmean(np.where(n_pos[:, None] > 0, sizes, 1.0), axis=1)
        cv2 = np.nanvar(np.where(n_pos[:, None] > 0, sizes, 1.0), axis=1) / mean**2
    out = np.where(adi < ADI_CUTOFF, np.where(cv2 < CV2_CUTOFF, "smooth", "erratic"),
                   np.where(cv2 < CV2_CUTOFF, "intermittent", "lumpy")).astype(object)
    out[n_pos == 0] = "no_demand"
    return out


def history_buckets(y: np.ndarray, season: int) -> np.ndarray:
    """``"short"`` or ``"long"`` per series: fewer than :data:`SHORT_HISTORY_SEASONS` seasons observed.

    Read from the history before each origin (validation, holdout, forecast), so a label means the same
    thing wherever it is used: a series that is short at a validation origin and long at the forecast
    origin is judged among the long ones when it is forecast. Global models (the TFT) learn short series
    from the others; statistical models (ETS, Theta) need a few seasons of a series' own history.

    Args:
        y: (N, T) history before the origin, ``NaN`` = unobserved.
        season: seasonal period (1 for none: then 3 periods).
    """
    n = (~np.isnan(np.asarray(y, dtype=np.float64))).sum(axis=1)
    return np.where(n < SHORT_HISTORY_SEASONS * max(int(season), 1), "short", "long").astype(object)


def segment_series(y: np.ndarray, season: int, segmenting: str = "demand_class") -> np.ndarray:
    """(N,) segment labels of series from their history before an origin, as ``segmenting`` says.

    ``"demand_class"``: :func:`demand_classes`; ``"demand_class_x_history"``: that class crossed with
    :func:`history_buckets` (``"smooth/long"``).
    """
    if segmenting not in SEGMENTINGS:
        raise ValueError(f"segmenting={segmenting!r}: expected one of {SEGMENTINGS}")
    classes = demand_classes(y)
    if segmenting == "demand_class":
        return classes
    return segment_labels(classes, history_buckets(y, season))


def segment_labels(*labels: np.ndarray) -> np.ndarray:
    """Cross several (N,) label arrays into one: ``"smooth/region=R1"`` style labels joined by ``/``."""
    if not labels:
        raise ValueError("segment_labels needs at least one (N,) label array")
    arrays = [np.asarray(a).astype(str) for a in labels]
    n = {a.shape for a in arrays}
    if len(n) != 1 or len(next(iter(n))) != 1:
        raise ValueError(f"label arrays have shapes {sorted(n)}: expected one common (N,)")
    out = arrays[0].astype(object)
    for a in arrays[1:]:
        out = out + "/" + a.astype(object)
    return out


def series_scale(y: np.ndarray, season: int = 1) -> np.ndarray:
    """In-sample MASE scale per series: mean |y_t - y_{t-season}| over observed pairs.

    Falls back to the lag-1 difference, then the mean |y|, then 1 where a scale is zero or undefined, so the
    result is always positive and finite.

    Args:
        y: (N, T) history before the first validation origin, ``NaN`` = unobserved.
        season: seasonal lag of the naive scale.

    Returns:
        (N,) positive scales.
    """
    y = np.asarray(y, dtype=np.float64)
    out = np.full(y.shape[0], np.nan)
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        for lag in dict.fromkeys((season, 1)):
            if y.shape[1] > lag:
                s = np.nanmean(np.abs(y[:, lag:] - y[:, :-lag]), axis=1)
                out = np.where(np.isfinite(out) & (out > 0), out, s)
        out = np.where(np.isfinite(out) & (out > 0), out, np.nanmean(np.abs(y), axis=1))
    return np.where(np.isfinite(out) & (out > 0), out, 1.0)


def _pinball(y: np.ndarray, F: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pinball loss per entry averaged over the last (quantile) axis: y (...), F (..., Q) -> (...)."""
    e = y[..., None] - F
    return np.maximum(q * e, (q - 1.0) * e).mean(axis=-1)


def pinball_per_series(y: np.ndarray, F: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Mean pinball loss per series over observed horizon steps and all quantile levels.

    Args:
        y: (N, H) actuals, ``NaN`` = unobserved.
        F: (N, H, Q) quantile forecasts.
        levels: (Q,) quantile levels.

    Returns:
        (N,) losses, ``NaN`` for a series with no observed step.
    """
    y, F, q = np.asarray(y, float), np.asarray(F, float), np.asarray(levels, float)
    loss = _pinball(y, F, q)
    with np.errstate(invalid="ignore"), np.testing.suppress_warnings() as sup:
        sup.filter(RuntimeWarning)
        return np.nanmean(np.where(np.isnan(y), np.nan, loss), axis=1)


def _point_losses(y: np.ndarray, F: np.ndarray, q: np.ndarray, loss: str) -> np.ndarray:
    """(N, H) loss per entry: pinball over Q, or |y - median| ("mae")."""
    if loss == "pinball":
        return _pinball(y, F, q)
    mid = int(np.argmin(np.abs(q - 0.5)))
    return np.abs(y - F[..., mid])


def _check_inputs(candidates, actuals, levels) -> tuple[tuple[str, ...], np.ndarray, int]:
    if not candidates or len(candidates) != len(actuals):
        raise ValueError(f"{len(candidates)} candidate origins and {len(actuals)} actual windows: expected "
                         "the same number, at least one")
    models = tuple(candidates[0])
    q = np.asarray(levels, dtype=np.float64)
    if not models:
        raise ValueError("no candidate models")
    N = None
    for o, (cands, y) in enumerate(zip(candidates, actuals, strict=True)):
        if tuple(cands) != models:
            raise ValueError(f"origin {o}: models {sorted(cands)} differ from origin 0's {sorted(models)}")
        y = np.asarray(y)
        N = y.shape[0] if N is None else N
        for name, F in cands.items():
            F = np.asarray(F)
            if F.shape != (*y.shape, len(q)) or y.shape[0] != N:
                raise ValueError(f"origin {o}, model {name!r}: forecasts {F.shape} and actuals {y.shape}: "
                                 f"expected (N, H, Q) = ({N}, H, {len(q)}) and (N, H)")
    return models, q, N


def validation_losses(
    candidates: Sequence[Mapping[str, np.ndarray]],
    actuals: Sequence[np.ndarray],
    levels: Sequence[float],
    scale: np.ndarray | None = None,
    loss: str = "pinball",
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled validation loss per series and model, pooled over origins.

    Args:
        candidates: one ``{model: (N, H, Q)}`` per validation origin.
        actuals: one (N, H) array per origin (``NaN`` = unobserved or not validated at that origin).
        levels: (Q,) quantile levels.
        scale: (N,) positive scale per series (:func:`series_scale`); None: 1.
        loss: ``"pinball"`` (scaled pinball) or ``"mae"`` (scaled absolute error of the median: MASE).

    Returns:
        ``(L, n)``: L (N, M) mean scaled loss per series and model (``NaN`` where a series has no validated
        step), n (N,) validated steps per series; M in the order of the candidates' keys.
    """
    models, q, N = _check_inputs(candidates, actuals, levels)
    if loss not in ("pinball", "mae"):
        raise ValueError(f"loss={loss!r}: expected 'pinball' or 'mae'")
    s = np.ones(N) if scale is None else np.asarray(scale, dtype=np.float64)
    total = np.zeros((N, len(models)))
    count = np.zeros(N)
    for cands, y in zip(candidates, actuals, strict=True):
        y = np.asarray(y, dtype=np.float64)
        ok = ~np.isnan(y)
        for F in cands.values():
            ok &= np.isfinite(np.asarray(F)).all(axis=-1)
        count += ok.sum(axis=1)
        y0 = np.where(ok, y, 0.0)
        for m, name in enumerate(models):
            F = np.where(ok[..., None], np.asarray(cands[name], dtype=np.float64), 0.0)
            total[:, m] += np.where(ok, _point_losses(y0, F, q, loss), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        L = total / count[:, None] / s[:, None]
    L[count == 0] = np.nan
    return L, count


def _stack(candidates, actuals, models, rows, scale, count) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated points of ``rows``: F (M, K, Q), y (K,), weight (K,) = 1 / (scale * count) per point."""
    Fs, ys, ws = [], [], []
    for cands, y in zip(candidates, actuals, strict=True):
        y = np.asarray(y, dtype=np.float64)[rows]
        ok = ~np.isnan(y)
        for name in models:
            ok &= np.isfinite(np.asarray(cands[name])[rows]).all(axis=-1)
        r, h = np.nonzero(ok)
        Fs.append(np.stack([np.asarray(cands[name], dtype=np.float64)[rows][r, h] for name in models]))
        ys.append(y[r, h])
        ws.append(1.0 / (scale[rows][r] * count[rows][r]))
    return np.concatenate(Fs, axis=1), np.concatenate(ys), np.concatenate(ws)


def fit_weights(F: np.ndarray, y: np.ndarray, levels: Sequence[float], weight: np.ndarray | None = None,
                n_iter: int = 200, eta: float = 1.0, patience: int = 25,
                prune: float = 0.02) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to one that minimise the weighted pinball loss of ``sum_m w_m F_m``.

    Exponentiated-gradient descent on the simplex (Kivinen and Warmuth 1997) with step ``eta / sqrt(t)`` on
    the gradient normalised by its largest entry; the best iterate is kept, and it is compared with every
    vertex (each single model), so the loss returned is never above the best single model's. Weights below
    ``prune`` are then set to zero (and the rest renormalised) when that costs at most 0.1 % of the loss.

    Args:
        F: (M, K, Q) quantile forecasts of M models at K validated points.
        y: (K,) actuals.
        levels: (Q,) quantile levels.
        weight: (K,) non-negative weight per point (None: equal).
        n_iter: iterations at most.
        eta: initial step.
        patience: stop after this many iterations without a relative gain of 1e-6.
        prune: smallest weight kept.

    Returns:
        ``(w, loss)``: w (M,) and its weighted mean pinball loss.
    """
    F, y, q = np.asarray(F, float), np.asarray(y, float), np.asarray(levels, float)
    M, K, Q = F.shape
    Fm = F.reshape(M, K * Q)
    a = np.ones(K) if weight is None else np.asarray(weight, float)
    a = a / a.sum() if a.sum() > 0 else np.full(K, 1.0 / max(K, 1))

    def loss_of(w: np.ndarray) -> float:
        return float(a @ _pinball(y, (w @ Fm).reshape(K, Q), q))

    single = np.array([float(a @ _pinball(y, F[m], q)) for m in range(M)])
    best_w = np.eye(M)[int(np.argmin(single))]
    best = float(single.min())
    if M == 1 or K == 0:
        return best_w, best
    w = np.full(M, 1.0 / M)
    stale = 0
    for t in range(1, n_iter + 1):
        C = (w @ Fm).reshape(K, Q)
        cur = float(a @ _pinball(y, C, q))
        stale += 1
        if cur < best:
            stale = 0 if cur < best * (1.0 - 1e-6) else stale
            best, best_w = cur, w.copy()
        if stale >= patience:
            break
        dldc = ((y[:, None] < C).astype(float) - q) / len(q)   # subgradient of pinball w.r.t. C
        g = Fm @ (dldc * a[:, None]).reshape(K * Q)
        gmax = np.abs(g).max()
        if gmax == 0:
            break
        w = w * np.exp(-eta / np.sqrt(t) * g / gmax)
        w /= w.sum()
    cur = loss_of(w)
    if cur < best:
        best, best_w = cur, w
    # Weights of a percent or two are noise fitted on validation: drop them unless that costs loss.
    pruned = np.where(best_w >= prune, best_w, 0.0)
    pruned /= pruned.sum()
    cur = loss_of(pruned)
    if cur <= best * (1.0 + 1e-3) and cur <= single.min():
        best, best_w = cur, pruned
    return best_w, best


@dataclasses.dataclass(frozen=True)
class Selection:
    """A fitted choice of model (or ensemble) per series; apply it to test-time forecasts.

    Attributes:
        models: candidate names, the columns of ``weights``.
        levels: quantile levels the forecasts carry.
        segments: segment name per series, (N,).
        weights: (N, M) non-negative, rows summing to 1: the forecast of series i is
            ``sum_m weights[i, m] * F_m[i]``.
        report: per segment: ``n_series``, ``n_validated``, ``loss`` per model, ``chosen`` (a model name or
            ``"ensemble"``), ``weights`` and ``chosen_loss``, all on the validation origins.
        method: the method that made it.
        segment_weights: (M,) weights per segment name, and under ``"*"`` the decision pooled over all
            series: what a later forecast applies to series by their segment (:meth:`weights_for`), so new
            series or another row order need no refit.
        segmenting: how the segment labels are read from a history (:func:`segment_series`); selections
            stored before it existed were made by demand class.
    """

    models: tuple[str, ...]
    levels: tuple[float, ...]
    segments: np.ndarray
    weights: np.ndarray
    report: dict[str, dict]
    method: str
    segment_weights: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    segmenting: str = "demand_class"

    def segments_of(self, y: np.ndarray, season: int) -> np.ndarray:
        """(N,) this selection's segment labels of series with history ``y`` (N, T) before the origin."""
        return segment_series(y, season, self.segmenting)

    def weights_for(self, segments: np.ndarray) -> np.ndarray:
        """(N', M) weights for series labelled ``segments`` (N',); unknown segments get the pooled ones."""
        pooled = self.segment_weights["*"]
        rows = [self.segment_weights.get(str(g), pooled) for g in np.asarray(segments).tolist()]
        return np.stack(rows) if rows else np.zeros((0, len(self.models)))

    def apply(self, forecasts: Mapping[str, np.ndarray], segments: np.ndarray | None = None) -> np.ndarray:
        """Combine forecasts ``{model: (N, H, Q)}`` into (N, H, Q) with the fitted weights.

        Args:
            forecasts: per model, quantiles of the same N series; models with zero weight everywhere may be
                missing.
            segments: None: the per-series weights fitted for the validated panel (same rows); else (N,)
                segment labels of the series to combine, weighted by their segment's weights.
        """
        W = self.weights if segments is None else self.weights_for(segments)
        used = [m for m in range(len(self.models)) if W[:, m].any()]
        missing = [self.models[m] for m in used if self.models[m] not in forecasts]
        if missing:
            raise ValueError(f"forecasts lack the selected models {missing}")
        out = None
        for m in used:
            F = np.asarray(forecasts[self.models[m]], dtype=np.float64)
            if F.ndim != 3 or F.shape[0] != W.shape[0] or F.shape[2] != len(self.levels):
                raise ValueError(f"{self.models[m]!r} forecasts have shape {F.shape}: expected "
                                 f"({W.shape[0]}, H, {len(self.levels)})")
            term = W[:, m, None, None] * F
            out = term if out is None else out + term
        return np.sort(out, axis=-1)

    def to_dict(self) -> dict:
        """JSON-able: models, levels, method, weights per segment and the report (no per-series rows)."""
        return {"models": list(self.models), "levels": list(self.levels), "method": self.method,
                "segment_weights": {k: [float(v) for v in w] for k, w in self.segment_weights.items()},
                "segmenting": self.segmenting, "report": self.report}

    @classmethod
    def from_dict(cls, doc: Mapping) -> Selection:
        """Rebuild from :meth:`to_dict`; apply it with ``segments=`` (it holds no per-series weights)."""
        models = tuple(doc["models"])
        sw = {k: np.asarray(w, dtype=np.float64) for k, w in doc["segment_weights"].items()}
        if "*" not in sw or any(w.shape != (len(models),) for w in sw.values()):
            raise ValueError(f"segment_weights: expected a '*' entry and {len(models)} weights per segment")
        return cls(models=models, levels=tuple(doc["levels"]), segments=np.empty(0, dtype=object),
                   weights=np.zeros((0, len(models))), report=dict(doc.get("report", {})),
                   method=str(doc["method"]), segment_weights=sw,
                   segmenting=str(doc.get("segmenting", "demand_class")))

    def chosen(self) -> np.ndarray:
        """(N,) the model each series follows: its name, or ``"ensemble"`` where weights are spread."""
        top = self.weights.argmax(axis=1)
        names = np.asarray(self.models, dtype=object)[top]
        return np.where(self.weights.max(axis=1) > 1.0 - 1e-9, names, "ensemble").astype(object)


def _decide(F, y, a, q, L_seg, n_series, models, method, min_gain, n_iter, max_points,
            max_ratio) -> tuple[np.ndarray, str, float]:
    """Weights (M,), chosen name and validation loss (mean over the segment's series) for one segment.

    ``a`` weighs each point by 1 / (scale * validated steps of its series), so ``a @ loss / n_series`` is the
    mean over series of their scaled loss, the same figure as ``L_seg``.
    """
    best = int(np.nanargmin(L_seg))
    single_w = np.eye(len(models))[best]
    single_loss = float(L_seg[best])
    if method == "segment" or F.shape[1] == 0:
        return single_w, models[best], single_loss
    # Weights are M numbers: a regular subsample of the points fits them as well and bounds the time.
    # A candidate far worse than the best on validation (a starved model) does not enter the ensemble.
    pool = np.flatnonzero(np.nan_to_num(L_seg, nan=np.inf) <= max_ratio * single_loss)
    if len(pool) < 2:
        return single_w, models[best], single_loss
    step = max(1, -(-F.shape[1] // max_points))
    w = np.zeros(len(models))
    w[pool], _ = fit_weights(F[pool][:, ::step], y[::step], q, a[::step], n_iter=n_iter)
    M, K, Q = F.shape
    loss = float(a @ _pinball(y, (w @ F.reshape(M, K * Q)).reshape(K, Q), q)) / n_series
    if loss < single_loss * (1.0 - min_gain) and w.max() < 1.0 - 1e-9:
        return w, "ensemble", loss
    return single_w, models[best], single_loss


def select(
    candidates: Sequence[Mapping[str, np.ndarray]],
    actuals: Sequence[np.ndarray],
    levels: Sequence[float],
    *,
    scale: np.ndarray | None = None,
    segments: np.ndarray | None = None,
    method: str = "ensemble",
    loss: str = "pinball",
    shrinkage: float = 1.0,
    min_segment_size: int = 10,
    min_gain: float = 0.005,
    n_iter: int = 200,
    max_points: int = 50_000,
    max_ratio: float = 1.5,
) -> Selection:
    """Choose a model or an ensemble per segment (or per series) from validation origins.

    Args:
        candidates: one ``{model: (N, H, Q)}`` per validation origin (every window before the test window).
        actuals: one (N, H) array per origin; ``NaN`` where a step is unobserved or a series was not
            validated at that origin.
        levels: (Q,) quantile levels.
        scale: (N,) positive per-series scale (:func:`series_scale` on history before the test window);
            None: 1 (raw units).
        segments: (N,) labels (:func:`demand_classes`, :func:`segment_labels`); None: one segment ``"all"``.
        method: ``"segment"``, ``"ensemble"`` or ``"series"`` (see the module docstring).
        loss: ``"pinball"`` or ``"mae"`` (scaled absolute error of the median).
        shrinkage: lambda of the per-series shrinkage towards the segment (``"series"`` only).
        min_segment_size: segments with fewer validated series use the decision pooled over all series.
        min_gain: relative validation gain an ensemble needs over the best single model to be used.
        n_iter: iterations of :func:`fit_weights`.
        max_points: validated points (series x origin x step) the weights are fitted on at most, a regular
            subsample; the comparison with the single models uses all points.
        max_ratio: models whose segment loss exceeds ``max_ratio`` times the best model's stay out of the
            segment's ensemble.

    Returns:
        A :class:`Selection`.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {METHODS}")
    models, q, N = _check_inputs(candidates, actuals, levels)
    s = np.ones(N) if scale is None else np.asarray(scale, dtype=np.float64)
    if s.shape != (N,) or not np.all(np.isfinite(s) & (s > 0)):
        raise ValueError(f"scale: expected ({N},) positive finite values")
    seg = np.full(N, "all", dtype=object) if segments is None else np.asarray(segments).astype(object)
    if seg.shape != (N,):
        raise ValueError(f"segments has shape {seg.shape}: expected ({N},)")
    L, count = validation_losses(candidates, actuals, levels, s, loss)
    validated = count > 0
    if not validated.any():
        raise ValueError("no series has a validated step: check the actuals of the validation origins")
    pw = q if loss == "pinball" else np.array([0.5])

    def stacked(rows):
        if method == "segment":  # no weights to fit: the per-series losses decide
            return np.empty((len(models), 0, len(pw))), np.empty(0), np.empty(0)
        F, y, a = _stack(candidates, actuals, models, rows, s, np.maximum(count, 1))
        if loss == "mae":
            mid = int(np.argmin(np.abs(q - 0.5)))
            F = F[..., mid:mid + 1]
        return F, y, a

    everyone = np.flatnonzero(validated)
    pooled = _decide(*stacked(everyone), pw, np.nanmean(L[everyone], axis=0), len(everyone), models, method,
                     min_gain, n_iter, max_points, max_ratio)
    W = np.zeros((N, len(models)))
    report: dict[str, dict] = {}
    segment_weights = {"*": pooled[0]}
    for name in sorted(set(seg.tolist()), key=str):
        members = np.flatnonzero(seg == name)
        rows = members[validated[members]]
        if len(rows) >= min_segment_size:
            L_seg = np.nanmean(L[rows], axis=0)
            w, chosen, chosen_loss = _decide(*stacked(rows), pw, L_seg, len(rows), models, method, min_gain,
                                             n_iter, max_points, max_ratio)
        else:
            L_seg = np.nanmean(L[rows], axis=0) if len(rows) else np.full(len(models), np.nan)
            (w, chosen, chosen_loss), chosen = pooled, f"pooled:{pooled[1]}"
        W[members] = w
        segment_weights[str(name)] = w
        if method == "series" and len(rows):
            W[rows] = _per_series(L[rows], L_seg, w, candidates, actuals, models, rows, s, count, q, loss,
                                  shrinkage, max_ratio)
        report[str(name)] = {
            "n_series": int(len(members)), "n_validated": int(len(rows)),
            "loss": {m: float(v) for m, v in zip(models, L_seg, strict=True)},
            "chosen": chosen, "chosen_loss": float(chosen_loss),
            "weights": {m: float(v) for m, v in zip(models, w, strict=True) if v > 0},
        }
    return Selection(models=models, levels=tuple(float(v) for v in q), segments=seg, weights=W,
                     report=report, method=method, segment_weights=segment_weights)


def _per_series(L_rows, L_seg, w_seg, candidates, actuals, models, rows, s, count, q, loss, lam, max_ratio):
    """(len(rows), M) one-hot weights per series, or the segment's weights, by shrunk validation loss."""
    # Validation loss of the segment's weights, per series.
    ens_loss = np.zeros(len(rows))
    for cands, y in zip(candidates, actuals, strict=True):
        y = np.asarray(y, dtype=np.float64)[rows]
        C = np.tensordot(w_seg, np.stack([np.asarray(cands[m], dtype=np.float64)[rows] for m in models]),
                         axes=1)
        ok = ~np.isnan(y) & np.isfinite(C).all(axis=-1)
        ens_loss += np.where(ok, _point_losses(np.where(ok, y, 0.0), np.nan_to_num(C), q, loss), 0.0).sum(1)
    ens_loss = ens_loss / np.maximum(count[rows], 1) / s[rows]
    seg_ens = float(np.nanmean(ens_loss))
    own = np.column_stack([L_rows, ens_loss])
    prior = np.append(L_seg, seg_ens)
    shrunk = (own + lam * prior[None, :]) / (1.0 + lam)
    # Models far worse than the segment's best stay out here too: a lucky series must not pick them.
    far = np.append(np.nan_to_num(L_seg, nan=np.inf) > max_ratio * np.nanmin(L_seg), False)
    shrunk[:, far] = np.inf
    shrunk[np.isnan(shrunk)] = np.inf
    pick = np.argmin(shrunk, axis=1)
    out = np.where((pick == len(models))[:, None], w_seg[None, :], 0.0)
    single = pick < len(models)
    out[np.flatnonzero(single), pick[single]] = 1.0
    return out
