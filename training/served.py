"""What a tenant is served: the TFT and the statsforecast models chosen per segment, gated on the holdout.

A trained version is not served as "the TFT". :func:`gate_version` (called by ``training.stage.train_tenant``
after the TFT is fitted and registered) builds the version's **served selection**:

1. **Validation.** The TFT and every statistical model of :data:`STAT_MODELS` forecast the validation window
   ``[T - holdout - H, T - holdout)``, which ends where the evaluation window (the holdout) starts. It is the
   TFT's own early-stopping window: the TFT never trained on its targets (its training windows end before
   it), so the window is out of sample for every candidate. Earlier windows are not used for the TFT: it
   trained on their targets, and its validation loss there would be in-sample (a leak in its favour). The
   statistical models are fitted on the history before the window only.
2. **Choice.** ``training.selection.select`` per segment on the scaled pinball loss: per segment the best
   model, or an ensemble (TFT + statistical, weights fitted on the window) when it beats the best single
   model by 0.5 %. A TFT whose loss is over 1.5x the best model's stays out of the segment's ensembles. A
   segment is a Syntetos-Boylan demand class (ADI / CV²) crossed with the history length (shorter or longer
   than 3 seasons), both read from the history before each origin (:data:`SEGMENTING`): a global model wins
   on short series, where ETS and Theta have too little of a series' own history, and the statistical
   models often win on long ones; pooled, the short series decide for the long ones. A statistical-only
   selection is fitted the same way: it serves units the TFT cannot forecast (new ids, short history).
3. **Holdout check and gate.** Both selections are refitted at every evaluation origin inside the holdout
   (statistical models refitted on the history before each origin; the TFT fitted once at the cutoff,
   which is before the holdout, reads the history before each origin as its encoder) and scored there.
   Per segment the TFT keeps its weights only where its selection beats the statistical-only one on the
   holdout by more than the noise of that comparison (:func:`_holdout_check`; the TFT's validation loss
   is optimistic, its blend and calibration were fitted on the validation window); the other segments get
   the statistical-only weights. The selection with the TFT is then kept unless the statistical-only one
   has a lower holdout scaled pinball loss (then the TFT is not served at all). The version becomes
   champion when the kept selection's holdout WAPE is below the current champion's and at most
   :data:`GATE_TOLERANCE` above the best single statistical model's (``training.gate``).
4. **Stored.** The selection (``selection.json``) and the holdout report per hierarchy level
   (``training.level_report``: ``levels.json``, ``levels.png`` or ``levels.svg``, metrics ``level.*``) go
   into the version's MLflow run; the tag ``selection`` on the version names the artefact.

:func:`served_forecast` applies a stored selection at forecast time (``training.stage.forecast_stage``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from training.selection import Selection, pinball_per_series, segment_series, select, series_scale

__all__ = [
    "GATE_TOLERANCE",
    "SELECTION_ARTIFACT",
    "STAT_HISTORY",
    "STAT_MODELS",
    "TFT",
    "fill_gaps",
    "gate_version",
    "load_selection",
    "served_forecast",
    "source_labels",
]

#: Candidate name of the tenant's TFT in a selection.
TFT = "tft"
#: statsforecast models fitted beside the TFT (``training.statistical.MODELS``).
STAT_MODELS = ("naive", "seasonal_naive", "auto_ets", "theta", "croston_sba", "tsb", "adida", "imapa")
#: Periods of history the statistical models are fitted on, per grid (bounds time on long daily histories).
STAT_HISTORY = {"D": 182, "W": 156, "MS": 120}
#: How much worse (relative holdout WAPE) than the best single statistical model a served selection may be.
GATE_TOLERANCE = 0.05
SELECTION_ARTIFACT = "selection.json"
#: Segments of the served selection: demand class x history length at the origin (``training.selection``).
SEGMENTING = "demand_class_x_history"
#: A segment keeps the TFT only where, on the holdout, its selection beats the statistical-only one by
#: more than this many standard errors of the mean paired per-series difference (the noise of the check).
TFT_MARGIN_SE = 1.0
#: Series x origins a segment needs for its own holdout check; fewer: the check pooled over all series.
MIN_CHECK_SERIES = 10
#: Series from which the statistical models are fitted on every core (statsforecast ``n_jobs=-1``).
PARALLEL_FROM = 2_000


def fill_gaps(y: np.ndarray) -> np.ndarray:
    """(N, T) with ``NaN`` after a series' first observation set to 0 (no sales row = no sales)."""
    y = np.array(y, dtype=np.float64)
    started = np.maximum.accumulate(~np.isnan(y), axis=1)
    y[started & np.isnan(y)] = 0.0
    return y


def _history(y: np.ndarray, origin: int, grid: str) -> np.ndarray:
    return y[:, max(0, origin - STAT_HISTORY[grid]) : origin]


def _stat_forecasts(y: np.ndarray, origin: int, season: int, H: int, levels, grid: str, models) -> dict:
    from training.statistical import fit_predict

    n_jobs = -1 if y.shape[0] >= PARALLEL_FROM else 1  # statsforecast's worker processes pay off on many
    return fit_predict(_history(y, origin, grid), season, H, levels, models, n_jobs)


def _tft_forecast(pred, panel, pt, origin: int) -> np.ndarray:
    fc = pred.forecast(panel, origin, pt=pt)
    q = np.array(fc.quantiles, dtype=np.float64)
    q[np.asarray(fc.cold_start, bool)] = np.nan  # too little history: the TFT does not serve these units
    return q


def _without(cands: Mapping[str, np.ndarray], name: str) -> dict:
    return {k: v for k, v in cands.items() if k != name}


def _fallback(sel: Selection, segments: np.ndarray) -> np.ndarray:
    """(N, M) weights of ``sel`` with the TFT removed (renormalised).

    A row left empty gets the segment's best statistical model by validation loss (the mean over the
    segments seen for a segment not in the report).
    """
    W = sel.weights_for(segments).copy()
    if TFT not in sel.models:
        return W
    t = sel.models.index(TFT)
    W[:, t] = 0.0
    total = W.sum(axis=1)
    for i in np.flatnonzero(total <= 0):
        rep = sel.report.get(str(segments[i])) or {}
        losses = {m: v for m, v in (rep.get("loss") or {}).items() if m != TFT and np.isfinite(v)}
        if not losses:  # a segment the validation did not see: the mean loss over the segments seen
            seen = [r["loss"] for r in sel.report.values() if r.get("n_validated")]
            losses = {m: float(np.nanmean([d[m] for d in seen])) for m in sel.models if m != TFT and seen}
            losses = {m: v for m, v in losses.items() if np.isfinite(v)}
        best = min(losses, key=losses.get) if losses else sel.models[(t + 1) % len(sel.models)]
        W[i, sel.models.index(best)] = 1.0
    return W / W.sum(axis=1, keepdims=True)


def source_labels(models: Sequence[str], W: np.ndarray, model_name: str) -> list[str]:
    """The ``source`` of each unit.

    ``model:<name>`` (the TFT alone), ``baseline:<stat>`` or ``ensemble:<a>+<b>`` (the TFT as ``model``).
    """
    out = []
    for row in np.asarray(W):
        used = [models[m] for m in np.flatnonzero(row > 1e-12)]
        if used == [TFT]:
            out.append(f"model:{model_name}")
        elif len(used) == 1:
            out.append(f"baseline:{used[0]}")
        else:
            out.append("ensemble:" + "+".join("model" if m == TFT else m for m in used))
    return out


def served_forecast(
    sel: Selection, y: np.ndarray, tft: np.ndarray | None, has_tft: np.ndarray, season: int, H: int,
    grid: str, model_name: str,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Apply a stored selection to units at forecast time.

    Args:
        sel: the version's selection (:func:`load_selection`).
        y: (N, T) recent history of the units (``NaN`` before a unit's first sale; gaps after it are zeros).
        tft: (N, H, Q) TFT quantiles (rows of units without ``has_tft`` are ignored), or None.
        has_tft: (N,) whether the TFT forecasts the unit (known ids, enough history).
        season: seasonal period.
        H: horizon.
        grid: ``D``, ``W`` or ``MS`` (history length of the statistical models).
        model_name: the registered model's name (source labels).

    Returns:
        ``(quantiles (N, H, Q), source per unit, uses_tft (N,))``.
    """
    y = fill_gaps(y)
    segments = sel.segments_of(y, season)
    W = sel.weights_for(segments)
    has_tft = np.asarray(has_tft, bool)
    if TFT in sel.models:
        W[~has_tft] = _fallback(sel, segments[~has_tft])
    used = [m for i, m in enumerate(sel.models) if W[:, i].any()]
    stats = [m for m in used if m != TFT]
    F = _stat_forecasts(y, y.shape[1], season, H, sel.levels, grid, stats) if stats else {}
    if TFT in used:
        F[TFT] = np.where(has_tft[:, None, None], np.nan_to_num(np.asarray(tft, dtype=np.float64)), 0.0)
    Q = len(sel.levels)
    out = np.zeros((y.shape[0], H, Q))
    for i, m in enumerate(sel.models):
        if W[:, i].any():
            out += W[:, i, None, None] * F[m]
    out = np.maximum(np.sort(out, axis=-1), 0.0)
    uses_tft = W[:, sel.models.index(TFT)] > 0 if TFT in sel.models else np.zeros(len(W), bool)
    return out, source_labels(sel.models, W, model_name), uses_tft


def load_selection(client, model_name: str, version: str) -> Selection | None:
    """The selection stored with ``version`` (None for a version trained before selections were stored)."""
    import mlflow

    mv = client.get_model_version(model_name, str(version))
    if mv.tags.get("selection") != SELECTION_ARTIFACT:
        return None
    path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=SELECTION_ARTIFACT)
    with open(path) as fh:
        return Selection.from_dict(json.load(fh))


def _wape(A: np.ndarray, F: np.ndarray, mid: int) -> float:
    from training.metrics import wape

    return wape(A, F[..., mid])


#: Aggregate levels with more nodes than this get no forecasts of their own in the report (time).
MAX_REPORT_NODES = 2_000


def _aggregate_forecasts(y, keys, origins, season, H, levels, grid) -> dict:
    """``{model: {level: (O, G, H, Q)}}``: statistical models fitted on each aggregate's own history.

    Fitted at each origin: the base forecasts a reconciliation would start from (the report's ``before``).
    """
    from training.level_report import aggregate, level_groups

    out: dict[str, dict] = {}
    for lvl, g in level_groups(keys).items():
        if lvl == "series" or g.max() + 1 > MAX_REPORT_NODES:
            continue
        ya = aggregate(y, g, 0)
        per = [_stat_forecasts(ya, o, season, H, levels, grid, STAT_MODELS) for o in origins]
        for m in STAT_MODELS:
            out.setdefault(m, {})[lvl] = np.stack([p[m] for p in per])
    return out


def _scaled_pinball(A: np.ndarray, F: np.ndarray, levels, scale: np.ndarray) -> float:
    """Mean over series of the pinball loss over origins, steps and levels, divided by the series' scale."""
    from training.selection import pinball_per_series

    n_o, N, H = A.shape
    per = pinball_per_series(A.transpose(1, 0, 2).reshape(N, n_o * H),
                             F.transpose(1, 0, 2, 3).reshape(N, n_o * H, -1), levels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(per / scale))


def _apply_with_tft(sel: Selection, cands: Mapping[str, np.ndarray], segments: np.ndarray) -> np.ndarray:
    """(N, H, Q) the selection with the TFT applied at one origin; units the TFT cannot forecast fall back."""
    tft_ok = np.isfinite(cands[TFT]).all(axis=(1, 2))
    W = sel.weights_for(segments)
    W[~tft_ok] = _fallback(sel, segments[~tft_ok])
    filled = {**cands, TFT: np.nan_to_num(cands[TFT])}
    return np.sort(sum(W[:, i, None, None] * filled[m] for i, m in enumerate(sel.models)), -1)


def _per_series_loss(A: np.ndarray, F: Sequence[np.ndarray], levels, scale: np.ndarray) -> np.ndarray:
    """(O, N) pinball loss per origin and series divided by the series' scale (NaN: nothing observed)."""
    return np.stack([pinball_per_series(a, f, levels) / scale for a, f in zip(A, F, strict=True)])


def _holdout_check(sel_all: Selection, sel_stat: Selection, labels: np.ndarray, L_all: np.ndarray,
                   L_stat: np.ndarray) -> tuple[Selection, dict]:
    """Keep the TFT in a segment only where the holdout shows it helps by more than the check's noise.

    The validation window chose the segment's weights, but the TFT's early stopping, blend and calibration
    were fitted on that same window, so its validation loss is optimistic. On the holdout (nothing fitted
    there) the segment's series are scored at every origin with both selections; per series and origin the
    relative difference ``d = 2 (L_stat - L_tft) / (L_stat + L_tft)`` (bounded, so a series with a tiny
    scale cannot decide alone). The TFT's weights stay only when ``mean(d) > TFT_MARGIN_SE x SE(d)``;
    otherwise the segment gets the statistical-only selection's weights. A segment with fewer than
    :data:`MIN_CHECK_SERIES` scored pairs is judged on the pairs of all segments (as ``"*"`` is).

    Args:
        sel_all: the selection with the TFT.
        sel_stat: the statistical-only one (the same models less the TFT).
        labels: (O, N) segment labels of the series at each holdout origin.
        L_all: (O, N) scaled pinball loss of ``sel_all`` per origin and series.
        L_stat: (O, N) the same for ``sel_stat``.

    Returns:
        The checked selection and, per segment where the TFT had weight, ``n``, ``gain`` (mean d), ``se``
        and ``kept_tft``.
    """
    t = sel_all.models.index(TFT)
    cols = [sel_all.models.index(m) for m in sel_stat.models]
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 2.0 * (L_stat - L_all) / (L_stat + L_all)
    d = np.where(np.isfinite(d), d, np.nan)
    d[(L_stat == L_all) & np.isfinite(L_all)] = 0.0
    weights, report, checks = dict(sel_all.segment_weights), dict(sel_all.report), {}
    for name, w in sel_all.segment_weights.items():
        if w[t] <= 0:
            continue
        x = d[labels == name] if name != "*" else d.ravel()
        x = x[np.isfinite(x)]
        if len(x) < MIN_CHECK_SERIES:
            x = d[np.isfinite(d)]
        gain = float(x.mean()) if len(x) else float("nan")
        se = float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("inf")
        keep = bool(len(x) > 1 and gain > 0 and gain > TFT_MARGIN_SE * se)
        checks[name] = {"n": int(len(x)), "gain": gain, "se": se, "kept_tft": keep}
        if not keep:
            stat_w = np.zeros(len(sel_all.models))
            stat_w[cols] = sel_stat.segment_weights.get(name, sel_stat.segment_weights["*"])
            weights[name] = stat_w
        if name in report:
            report[name] = {**report[name], "holdout_check": checks[name]}
    return dataclasses.replace(sel_all, segment_weights=weights, report=report), checks


def gate_version(config, panel, result, *, tracking_uri: str | None = None) -> dict:
    """Fit the served selection of a registered version, score it on the holdout, gate and store it.

    Args:
        config: the version's ``TrainConfig``.
        panel: the panel it was trained on.
        result: the ``TrainResult`` of ``train_and_register(..., gate=False)``.
        tracking_uri: MLflow tracking URI (default: the configured one).

    Returns:
        ``{"decision": GateDecision, "selection": Selection, "served": "with_tft" | "statistical_only",
        "holdout_wape": {...}, "validation_loss": {...}, "report": {...}}``.
    """
    from features.frames import grid_of
    from training.backtest import rolling_origins
    from training.gate import apply_gate
    from training.level_report import level_report, log_level_report
    from training.predict import load_predictor
    from training.registry import client as get_client

    c = get_client(tracking_uri or config.tracking_uri)
    pred = load_predictor(result.version, config.name, tracking_uri or config.tracking_uri)
    spec = pred.spec
    H, season, levels = spec.horizon, spec.season, list(spec.quantiles)
    grid = grid_of(panel.spec.freq)
    y = fill_gaps(panel.y)
    T = panel.n_times
    pt = pred.prepare(panel)

    def candidates(o: int) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {TFT: _tft_forecast(pred, panel, pt, o),
                    **_stat_forecasts(y, o, season, H, levels, grid, STAT_MODELS)}

    v = T - config.holdout - H
    if v < 3:
        raise ValueError(f"no validation window before the holdout: {T} periods, holdout {config.holdout}, "
                         f"horizon {H}")
    val = candidates(v)
    act = y[:, v:v + H]
    before = _history(y, v, grid)
    seg, scale = segment_series(before, season, SEGMENTING), series_scale(before, season)
    sel_all, sel_stat = (
        dataclasses.replace(select([c], [act], levels, scale=scale, segments=seg, method="ensemble"),
                            segmenting=SEGMENTING)
        for c in (val, _without(val, TFT)))

    origins = rolling_origins(T, H, config.backtest.origins, config.backtest.step, config.holdout)
    mid = levels.index(0.5)
    per_origin = [candidates(o) for o in origins]
    labels = np.stack([sel_all.segments_of(_history(y, o, grid), season) for o in origins])
    A = np.stack([y[:, o:o + H] for o in origins])
    h_scale = series_scale(_history(y, origins[0], grid), season)
    stat_served = [sel_stat.apply(_without(c, TFT), segments=s_o)
                   for c, s_o in zip(per_origin, labels, strict=True)]

    def with_tft(s: Selection) -> list[np.ndarray]:
        return [_apply_with_tft(s, c, s_o) for c, s_o in zip(per_origin, labels, strict=True)]

    sel_all, checks = _holdout_check(sel_all, sel_stat, labels,
                                     _per_series_loss(A, with_tft(sel_all), levels, h_scale),
                                     _per_series_loss(A, stat_served, levels, h_scale))
    stacked = {k: np.stack([np.nan_to_num(c[k]) for c in per_origin]) for k in per_origin[0]}
    stacked["selection"] = np.stack(with_tft(sel_all))
    stacked["selection_statistical"] = np.stack(stat_served)
    holdout = {k: _wape(A, F, mid) for k, F in stacked.items()}
    # The two selections are compared on the loss they were chosen by (scale-free), not on WAPE, which
    # weighs series by volume and would let a TFT that fits the high-volume series win for all of them.
    scaled = {k: _scaled_pinball(A, stacked[k], levels, h_scale)
              for k in ("selection", "selection_statistical")}
    keep_tft = scaled["selection"] <= scaled["selection_statistical"] and any(
        w[sel_all.models.index(TFT)] > 0 for w in sel_all.segment_weights.values())
    chosen, sel = ("selection", sel_all) if keep_tft else ("selection_statistical", sel_stat)
    best_stat = min(STAT_MODELS, key=lambda m: holdout[m])

    base = _aggregate_forecasts(y, panel.keys, origins, season, H, levels, grid)
    for m in STAT_MODELS:
        base.setdefault(m, {})["series"] = stacked[m]
    report = level_report(A, {"served": stacked[chosen], "tft": stacked[TFT],
                              **{m: stacked[m] for m in STAT_MODELS}},
                          y[:, :origins[0]], panel.keys, levels, season, base=base)
    log_level_report(c, result.run_id, report)
    c.log_dict(result.run_id, sel.to_dict(), SELECTION_ARTIFACT)
    for k, val_ in holdout.items():
        c.log_metric(result.run_id, f"holdout.{k}.wape", float(val_))
    for k, val_ in scaled.items():
        c.log_metric(result.run_id, f"holdout.{k}.scaled_pinball", float(val_))
    decision = apply_gate(c, config.name, result.version, holdout[chosen], holdout[best_stat],
                          tolerance=GATE_TOLERANCE)
    tags = {"selection": SELECTION_ARTIFACT, "served": "with_tft" if keep_tft else "statistical_only",
            "best_baseline": best_stat, "selection_origin": str(v), "gate_tolerance": str(GATE_TOLERANCE)}
    for k, val_ in tags.items():
        c.set_model_version_tag(config.name, result.version, k, val_)
    return {"decision": decision, "selection": sel, "served": tags["served"], "holdout_wape": holdout,
            "holdout_check": checks,
            "best_baseline": best_stat, "validation_loss": {k: r["loss"] for k, r in sel_all.report.items()},
            "report": report}
