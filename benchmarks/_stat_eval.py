"""Shared by benchmarks/monthly_accuracy.py and benchmarks/synth_accuracy.py: statistical baselines at
rolling origins, honest selection on the validation origins, and test-window metrics.

Protocol: the test window is the last ``H`` periods (origin ``T0 = T - H``). Validation origins are
``T0 - H - k * step`` for ``k = 0 .. n_val - 1``: every validation window ends at or before ``T0``, so the
selection, the ensemble weights, the scales and the demand classes never read a test period. Every model is
refitted at every origin on the data before it.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence

import numpy as np

from training.metrics import mase, pinball, smape
from training.selection import demand_classes, pinball_per_series, select, series_scale
from training.statistical import fit_predict

#: A phase-2 champion: (history (N, T) with NaN, horizon, levels) -> (N, H, Q) quantiles.
Champion = Callable[[np.ndarray, int, Sequence[float]], np.ndarray]


def validation_origins(T: int, H: int, n_val: int, step: int) -> list[int]:
    T0 = T - H
    return sorted(T0 - H - k * step for k in range(n_val))


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (statsforecast's workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def forecast_all(y: np.ndarray, origins: Sequence[int], season: int, H: int, levels, models, n_jobs: int,
                 max_history: int | None, champion: Champion | None = None,
                 log=print, cpu: dict | None = None) -> tuple[list[dict], dict[str, float]]:
    """Forecasts per origin ({model: (N, H, Q)}) and wall seconds per model summed over origins.

    ``cpu``, when given, receives the CPU seconds per model (this process and its workers), summed.
    """
    out, seconds = [], dict.fromkeys(models, 0.0)
    for o in origins:
        per = {}
        for m in models:
            t, c = time.perf_counter(), cpu_seconds()
            per[m] = fit_predict(y[:, :o], season, H, levels, (m,), n_jobs, max_history=max_history)[m]
            seconds[m] += time.perf_counter() - t
            if cpu is not None:
                cpu[m] = cpu.get(m, 0.0) + cpu_seconds() - c
            log(f"  origin {o}: {m} {time.perf_counter() - t:.1f} s wall, {cpu_seconds() - c:.1f} s cpu")
        if champion is not None:
            t = time.perf_counter()
            per["champion"] = np.asarray(champion(y[:, :o], H, levels), dtype=np.float64)
            seconds["champion"] = seconds.get("champion", 0.0) + time.perf_counter() - t
        out.append(per)
    return out, seconds


def validation_actuals(y: np.ndarray, origins: Sequence[int], H: int, min_obs: int) -> list[np.ndarray]:
    """Actuals of each validation window; NaN for series with fewer than ``min_obs`` observations there."""
    acts = []
    for o in origins:
        a = y[:, o:o + H].copy()
        a[(~np.isnan(y[:, :o])).sum(axis=1) < min_obs] = np.nan
        acts.append(a)
    return acts


def selections(val: list[dict], acts: list[np.ndarray], levels, scale: np.ndarray,
               segments: np.ndarray, test: dict, suffix: str = "") -> tuple[dict[str, np.ndarray], dict]:
    """Test forecasts of the selection variants (named ``select_<method><suffix>``) and their reports."""
    out, reports = {}, {}
    for method in ("segment", "ensemble", "series"):
        t = time.perf_counter()
        sel = select(val, acts, levels, scale=scale, segments=segments, method=method)
        out[f"select_{method}{suffix}"] = sel.apply(test)
        reports[f"{method}{suffix}"] = {"seconds": round(time.perf_counter() - t, 2),
                           "segments": {k: {"n": v["n_series"], "chosen": v["chosen"],
                                            "weights": {m: round(w, 3) for m, w in v["weights"].items()}}
                                        for k, v in sel.report.items()}}
    return out, reports


def metrics(y_test: np.ndarray, y_train: np.ndarray, F: np.ndarray, levels, season: int,
            mask: np.ndarray | None = None) -> dict[str, float]:
    """MASE, sMAPE (M4 percent), mean pinball (raw units), scaled pinball and P10..P90 coverage.

    The point forecast is the median. ``mask`` (N, H) restricts every figure to those cells.
    """
    q = np.asarray(levels, dtype=np.float64)
    y = y_test.copy()
    if mask is not None:
        y[~mask] = np.nan
    p50 = F[..., int(np.argmin(np.abs(q - 0.5)))]
    scale = series_scale(y_train, season)
    lo, hi = F[..., int(np.argmin(np.abs(q - 0.1)))], F[..., int(np.argmin(np.abs(q - 0.9)))]
    obs = ~np.isnan(y)
    with np.errstate(invalid="ignore"):
        return {
            "mase": float(np.nanmean(mase(y, p50, y_train, season))),
            "smape": 100.0 * smape(y, p50),
            "pinball": pinball(y, F, q),
            "scaled_pinball": float(np.nanmean(pinball_per_series(y, F, q) / scale)),
            "coverage_p10_p90": float(((y >= lo) & (y <= hi))[obs].mean()),
        }


def classes_and_scale(y: np.ndarray, T0: int, season: int) -> tuple[np.ndarray, np.ndarray]:
    """Demand classes and loss scales from the history before the test origin ``T0`` (never the test window).

    The validation windows lie before ``T0``; classes are what production would compute at ``T0``.
    """
    before = y[:, :T0]
    return demand_classes(before), series_scale(before, season)
