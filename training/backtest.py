"""Rolling-origin backtest of the model and every baseline on the same windows.

For each origin ``o`` every forecaster sees the targets before ``o`` only and forecasts ``o .. o + H - 1``.
Point metrics (WAPE, MAE, sMAPE, bias, MASE) are computed per model overall, per hierarchy level (series
summed up each level of the series keys, plus the total) and per series; the model's quantiles also get
pinball loss and P10..P90 coverage at the bottom level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.frames import Panel
from training.baselines import forecast_baselines
from training.metrics import coverage, mase, pinball, point_metrics, wape

__all__ = ["BacktestResult", "rolling_origins", "run_backtest"]


@dataclass
class BacktestResult:
    """Backtest figures.

    Attributes:
        summary: ``{model: {metric: value}}`` over all origins, bottom level.
        by_level: one row per (model, level) with WAPE/bias at that aggregation.
        by_series: one row per series with the model's WAPE and MAE.
        origins: the forecast origins (time indices).
        forecasts: the model's (O, N, H, Q) quantiles, for plots.
        actuals: (O, N, H) actuals.
        best_baseline: name of the baseline with the lowest WAPE.
    """

    summary: dict
    by_level: pd.DataFrame
    by_series: pd.DataFrame
    origins: list[int]
    forecasts: np.ndarray | None = None
    actuals: np.ndarray | None = None
    best_baseline: str = ""
    levels: list[float] = field(default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        """``{model.metric: value}`` for tracking (NaNs dropped)."""
        out = {}
        for m, d in self.summary.items():
            for k, v in d.items():
                if v is not None and not (isinstance(v, float) and np.isnan(v)):
                    out[f"backtest.{m}.{k}"] = float(v)
        out["backtest.best_baseline.wape"] = self.summary[self.best_baseline]["wape"]
        return out


def rolling_origins(n_times: int, horizon: int, n_origins: int, step: int, holdout: int) -> list[int]:
    """Origins inside the last ``holdout`` periods, ``step`` apart, the last ending at the last period."""
    last = n_times - horizon
    origins = [last - k * step for k in range(n_origins)]
    first_allowed = n_times - holdout
    return sorted(o for o in origins if o >= first_allowed)


def _levels(keys: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {"total": np.zeros(len(keys), dtype=np.int64)}
    for c in keys.columns:
        out[c] = pd.factorize(keys[c])[0]
    out["series"] = np.arange(len(keys))
    return out


def _aggregate(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Sum (O, N, H) over series groups g (N,) -> (O, G, H), NaN-aware."""
    G = int(g.max()) + 1
    out = np.zeros((a.shape[0], G, a.shape[2]))
    np.add.at(out, (slice(None), g), np.nan_to_num(a))
    return out


def run_backtest(
    panel: Panel, forecaster, origins: list[int], horizon: int, season: int, levels: list[float] | None = None
) -> BacktestResult:
    """Backtest ``forecaster`` and the baselines at ``origins``.

    Args:
        panel: feature panel.
        forecaster: ``f(panel, origin) -> (N, H, Q)`` quantiles (e.g. ``Predictor.forecast(...).quantiles``),
            or None for baselines only.
        origins: first forecast index of each window.
        horizon: H.
        season: seasonal period (MASE scale and seasonal naive).
        levels: quantile levels of the forecaster's output.

    Returns:
        The :class:`BacktestResult`.
    """
    if not origins:
        raise ValueError("backtest needs at least one origin inside the holdout")
    H = horizon
    models: dict[str, list] = {}
    actuals, fq, hists = [], [], []
    for o in origins:
        hist = panel.y[:, :o].astype(float)
        act = panel.y[:, o : o + H].astype(float)
        if act.shape[1] < H:
            raise ValueError(f"origin {o} + horizon {H} runs past the panel end ({panel.n_times})")
        actuals.append(act)
        hists.append(hist)
        for name, f in forecast_baselines(hist, H, season).items():
            models.setdefault(name, []).append(f)
        if forecaster is not None:
            q = np.asarray(forecaster(panel, o), float)
            fq.append(q)
            models.setdefault("model", []).append(q[..., levels.index(0.5)])
    A = np.stack(actuals)  # (O, N, H)
    summary = {}
    for name, fs in models.items():
        F = np.stack(fs)
        d = point_metrics(A, F)
        d["mase"] = float(
            np.nanmean([np.nanmean(mase(A[i], F[i], hists[i], season)) for i in range(len(origins))])
        )
        summary[name] = d
    Q = None
    if fq:
        Q = np.stack(fq)
        lv = np.asarray(levels)
        summary["model"]["pinball"] = pinball(A, Q, lv)
        summary["model"]["coverage_p10_p90"] = coverage(
            A, Q[..., levels.index(0.1)], Q[..., levels.index(0.9)]
        )
    baselines = [m for m in summary if m != "model"]
    best = min(baselines, key=lambda m: summary[m]["wape"])

    rows = []
    for lvl, g in _levels(panel.keys).items():
        Ag = _aggregate(A, g)
        for name, fs in models.items():
            Fg = _aggregate(np.stack(fs), g)
            rows.append(
                {"model": name, "level": lvl, "wape": wape(Ag, Fg), "bias": point_metrics(Ag, Fg)["bias"]}
            )
    by_level = pd.DataFrame(rows)
    ids = panel.series_ids()
    main = "model" if "model" in models else best
    F = np.stack(models[main])
    err = np.nansum(np.abs(F - A), axis=(0, 2))
    den = np.nansum(np.abs(A), axis=(0, 2))
    by_series = pd.DataFrame(
        {
            "series": ids,
            "mae": err / np.maximum((~np.isnan(A)).sum(axis=(0, 2)), 1),
            "wape": np.where(den > 0, err / np.where(den > 0, den, 1), np.nan),
        }
    )
    return BacktestResult(
        summary=summary,
        by_level=by_level,
        by_series=by_series,
        origins=list(origins),
        forecasts=Q,
        actuals=A,
        best_baseline=best,
        levels=list(levels or []),
    )
