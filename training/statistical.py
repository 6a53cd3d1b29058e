"""Statistical baselines from statsforecast on our dense panel arrays, with quantiles at our levels.

The library (Garza et al., statsforecast, Nixtla) gives fast, tested implementations; this module only turns
our ``(N, T)`` panel (``NaN`` = unobserved, leading gaps for series that start late) into its long frame,
runs it, and turns prediction intervals into quantiles. Models (names are the keys of :data:`MODELS`):

* ``naive``, ``seasonal_naive``: the floor every forecast must beat; native Gaussian intervals from the
  in-sample residuals of the (seasonal) random walk.
* ``auto_ets``: exponential smoothing with automatic error/trend/season choice by AICc (Hyndman et al. 2008);
  the standard for smooth monthly and weekly data. Native intervals.
* ``theta``: the standard Theta method with a seasonality test (Assimakopoulos and Nikolopoulos 2000; the M3
  winner), ``auto_theta``: the best of the four Theta variants by in-sample MSE (Fiorucci et al. 2016); slower
  (about 8x Theta), so not in :data:`DEFAULT_MODELS`. Native intervals.
* ``croston_sba``: Croston's method with the Syntetos-Boylan bias correction (2005); ``tsb``: Teunter,
  Syntetos and Babai (2011), demand probability updated every period, so it decays for dying items;
  ``adida``: temporal aggregation then SES (Nikolopoulos et al. 2011); ``imapa``: ADIDA over several
  aggregation levels, averaged (Petropoulos and Kourentzes 2015). These are for intermittent demand.

Quantiles. A central interval at level ``L`` percent has bounds at quantiles ``(1 -+ L/100) / 2``, so quantile
levels ``(0.1, 0.25, 0.5, 0.75, 0.9)`` ask statsforecast for ``level=[50, 80]`` and read ``lo-80``, ``lo-50``,
the point forecast (the median of a symmetric interval), ``hi-50``, ``hi-80``. The four intermittent models
have no native intervals, and statsforecast's conformal intervals are symmetric around the point forecast,
which suits intermittent demand badly (a flat rate of 0.3 a day with a symmetric band gives negative lower
bounds and misses the spikes). For them this module computes **empirical ratio quantiles** from rolling
origins inside the history: the model is refitted at ``n_windows`` origins ``T - h, T - 2h, ...`` of the
series' own history, the ratios ``actual / point`` over the horizon pooled per series, and the forecast
quantile at level ``q`` is ``point * quantile_q(ratios)``: a split-conformal construction, multiplicative so
that a day without sales stays at zero whatever the current rate (additive errors where every past point was
zero). This is the one piece written here rather than taken from the library.

Everything after the model fit is plain NumPy; quantiles are clipped at zero (demand is non-negative) unless
``nonnegative=False``, and sorted along the last axis (monotone rearrangement, Chernozhukov et al. 2010) so
they never cross.

Example::

    from training.statistical import fit_predict
    out = fit_predict(y, season=7, horizon=28, levels=(0.1, 0.5, 0.9))   # y: (N, T)
    out["auto_ets"].shape   # (N, 28, 3)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

__all__ = [
    "DEFAULT_LEVELS",
    "DEFAULT_MODELS",
    "EMPIRICAL_INTERVAL_MODELS",
    "MODELS",
    "fit_predict",
    "min_history",
    "rolling_fit_predict",
]

#: Quantile levels of the stored forecasts (features.forecasts.QUANTILE_COLUMNS).
DEFAULT_LEVELS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)


def _sf_models():
    # Imported on first use: statsforecast pulls in numba, statsmodels and fugue (about 2 s).
    from statsforecast import models as m

    return m


def _naive(season: int):
    return _sf_models().Naive(alias="naive")


def _seasonal_naive(season: int):
    return _sf_models().SeasonalNaive(season_length=season, alias="seasonal_naive")


def _auto_ets(season: int):
    return _sf_models().AutoETS(season_length=season, model="ZZZ", alias="auto_ets")


def _theta(season: int):
    return _sf_models().Theta(season_length=season, alias="theta")


def _auto_theta(season: int):
    return _sf_models().AutoTheta(season_length=season, alias="auto_theta")


def _croston_sba(season: int):
    return _sf_models().CrostonSBA(alias="croston_sba")


def _tsb(season: int):
    # Smoothing constants in the range Teunter et al. (2011) recommend; statsforecast has no optimised TSB.
    return _sf_models().TSB(alpha_d=0.1, alpha_p=0.1, alias="tsb")


def _adida(season: int):
    return _sf_models().ADIDA(alias="adida")


def _imapa(season: int):
    return _sf_models().IMAPA(alias="imapa")


#: Model name -> builder of the statsforecast model for a season length.
MODELS: dict[str, Callable[[int], object]] = {
    "naive": _naive,
    "seasonal_naive": _seasonal_naive,
    "auto_ets": _auto_ets,
    "theta": _theta,
    "auto_theta": _auto_theta,
    "croston_sba": _croston_sba,
    "tsb": _tsb,
    "adida": _adida,
    "imapa": _imapa,
}
#: Models whose quantiles come from empirical ratio quantiles (no native intervals in statsforecast).
EMPIRICAL_INTERVAL_MODELS = frozenset({"croston_sba", "tsb", "adida", "imapa"})
#: What :func:`fit_predict` runs by default (``auto_theta`` is left out for speed; ``theta`` stands for it).
DEFAULT_MODELS: tuple[str, ...] = ("naive", "seasonal_naive", "auto_ets", "theta", "croston_sba", "tsb",
                                   "adida", "imapa")


def min_history(model: str, season: int) -> int:
    """Observations a series needs for ``model``; shorter series get the naive forecast instead.

    Args:
        model: a key of :data:`MODELS`.
        season: season length (1: none).
    """
    if model not in MODELS:
        raise ValueError(f"model={model!r}: expected one of {sorted(MODELS)}")
    if model in ("seasonal_naive", "auto_ets", "theta", "auto_theta") and season > 1:
        return 2 * season + 2
    return 3


def _check(y: np.ndarray, season: int, horizon: int, levels: Sequence[float],
           models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"y has shape {y.shape}: expected (N, T)")
    if season < 1 or horizon < 1:
        raise ValueError(f"season={season}, horizon={horizon}: both must be >= 1")
    q = np.asarray(levels, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or np.any((q <= 0) | (q >= 1)) or np.any(np.diff(q) <= 0):
        raise ValueError(f"levels={list(levels)}: expected increasing quantile levels in (0, 1)")
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models={list(models)}: expected a non-empty list from {sorted(MODELS)}")
    return y, q


def _interval_levels(q: np.ndarray) -> list[int | float]:
    """Interval levels for statsforecast (percent) with bounds at the quantile levels ``q`` (0.5 left out)."""
    out = set()
    for level in np.round(np.abs(2.0 * q - 1.0) * 100.0, 6):
        if level > 0:
            out.add(int(level) if float(level).is_integer() else float(level))
    return sorted(out)


def _bound_column(name: str, q: float) -> str:
    level = round(abs(2.0 * q - 1.0) * 100.0, 6)
    level = int(level) if float(level).is_integer() else level
    return f"{name}-{'lo' if q < 0.5 else 'hi'}-{level}"


def _clean(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interior gaps forward-filled (leading gaps kept as the series' late start); observations per series."""
    obs = ~np.isnan(y)
    first = np.where(obs.any(axis=1), obs.argmax(axis=1), y.shape[1])
    idx = np.where(obs, np.arange(y.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = np.take_along_axis(y, idx, axis=1)
    filled[np.arange(y.shape[1])[None, :] < first[:, None]] = np.nan
    return filled, y.shape[1] - first


def _long_frame(y: np.ndarray, rows: np.ndarray) -> pl.DataFrame:
    """The statsforecast long frame of the panel rows ``rows``: unique_id (row), ds (int period), y."""
    sub = y[rows]
    keep = ~np.isnan(sub)
    r, t = np.nonzero(keep)
    return pl.DataFrame({"unique_id": rows[r].astype(np.int64), "ds": t.astype(np.int64),
                         "y": sub[keep]})


def _run_statsforecast(y: np.ndarray, rows: np.ndarray, names: Sequence[str], season: int, horizon: int,
                       interval_levels: list, n_jobs: int) -> pl.DataFrame:
    from statsforecast import StatsForecast

    sf = StatsForecast(models=[MODELS[n](season) for n in names], freq=1, n_jobs=n_jobs,
                       fallback_model=_naive(season))
    out = sf.forecast(df=_long_frame(y, rows), h=horizon, level=interval_levels or None)
    return out.sort("unique_id", "ds")


def _native(y, rows, names, season, horizon, q, n_jobs) -> dict[str, np.ndarray]:
    """(len(rows), H, Q) quantiles of the models with native intervals."""
    fc = _run_statsforecast(y, rows, names, season, horizon, _interval_levels(q), n_jobs)
    out = {}
    for name in names:
        cols = [name if abs(level - 0.5) < 1e-9 else _bound_column(name, level) for level in q]
        out[name] = fc.select(cols).to_numpy().reshape(len(rows), horizon, len(q))
    return out


def _point(y, rows, names, season, horizon, n_jobs) -> dict[str, np.ndarray]:
    fc = _run_statsforecast(y, rows, names, season, horizon, [], n_jobs)
    return {name: fc[name].to_numpy().reshape(len(rows), horizon) for name in names}


def _empirical(y, n_obs, rows, names, season, horizon, q, n_jobs, n_windows) -> dict[str, np.ndarray]:
    """(len(rows), H, Q): point forecast times per-series quantiles of actual / point at earlier origins."""
    point = _point(y, rows, names, season, horizon, n_jobs)
    T = y.shape[1]
    ratio = {name: np.full((len(rows), n_windows * horizon), np.nan) for name in names}
    error = {name: np.full((len(rows), n_windows * horizon), np.nan) for name in names}
    for w in range(1, n_windows + 1):
        cut = T - w * horizon
        ok = n_obs[rows] - w * horizon >= 3
        if cut < 3 or not ok.any():
            break
        past = _point(y[:, :cut], rows[ok], names, season, horizon, n_jobs)
        actual = y[rows[ok], cut:cut + horizon]
        cols = slice((w - 1) * horizon, w * horizon)
        for name in names:
            p = past[name]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio[name][ok, cols] = np.where(p > 1e-9, actual / p, np.nan)
            error[name][ok, cols] = actual - p
    out = {}
    for name in names:
        F = np.repeat(point[name][:, :, None], len(q), axis=2)
        r, e = ratio[name], error[name]
        have_r = ~np.isnan(r).all(axis=1)
        have_e = ~np.isnan(e).all(axis=1) & ~have_r
        if have_r.any():
            F[have_r] *= np.nanquantile(r[have_r], q, axis=1).T[:, None, :]
        if have_e.any():
            F[have_e] += np.nanquantile(e[have_e], q, axis=1).T[:, None, :]
        out[name] = F
    return out


def fit_predict(
    y: np.ndarray,
    season: int,
    horizon: int,
    levels: Sequence[float] = DEFAULT_LEVELS,
    models: Sequence[str] = DEFAULT_MODELS,
    n_jobs: int = 1,
    *,
    max_history: int | None = None,
    n_windows: int = 3,
    nonnegative: bool = True,
    intervals: str = "native",
    chunk_size: int = 5_000,
) -> dict[str, np.ndarray]:
    """Fit each model on each series and forecast ``horizon`` periods as quantiles.

    Series shorter than :func:`min_history` for a model get the naive forecast for that model (and a series
    with fewer than 3 observations its last value, or 0, with zero width): every entry is finite.

    Args:
        y: (N, T) history, ``NaN`` = unobserved; a series starts at its first observation, later gaps are
            forward-filled.
        season: season length in periods (7 for daily, 52 weekly, 12 monthly; 1 for none).
        horizon: H, periods to forecast.
        levels: (Q,) increasing quantile levels in (0, 1).
        models: keys of :data:`MODELS`.
        n_jobs: worker processes of statsforecast (-1: all cores).
        max_history: fit on at most this many last periods (bounds time on long daily histories).
        n_windows: rolling origins for the empirical quantiles of :data:`EMPIRICAL_INTERVAL_MODELS`.
        nonnegative: clip quantiles at 0.
        intervals: ``"native"``: the library's intervals where a model has them, empirical ratio quantiles
            for :data:`EMPIRICAL_INTERVAL_MODELS`; ``"empirical"``: empirical ratio quantiles for every model
            (skewed, zero-floored quantiles for count data; costs ``n_windows`` extra fits per model).
        chunk_size: series per statsforecast call (bounds the memory of the long frames).

    Returns:
        ``{model: (N, H, Q) quantiles}``, monotone along the last axis.
    """
    y, q = _check(y, season, horizon, levels, models)
    if max_history is not None:
        y = y[:, -max_history:]
    y, n_obs = _clean(y)
    N = y.shape[0]
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    out = {name: np.empty((N, horizon, len(q))) for name in models}
    if intervals not in ("native", "empirical"):
        raise ValueError(f"intervals={intervals!r}: expected 'native' or 'empirical'")
    by_residuals = EMPIRICAL_INTERVAL_MODELS if intervals == "native" else frozenset(MODELS)
    native = [m for m in models if m not in by_residuals]
    empirical = [m for m in models if m in by_residuals]
    # The naive forecast stands in for series too short for a model and for non-finite results; it is
    # computed only for those series (and for all when "naive" itself is asked for).
    naive = np.repeat(np.nan_to_num(y[:, -1])[:, None, None], horizon, axis=1).repeat(len(q), axis=2)
    have_naive = n_obs < 3                     # fewer than 3 observations: the flat last value (or 0)

    def fill_naive(mask: np.ndarray) -> None:
        todo = np.flatnonzero(mask & ~have_naive)
        for start in range(0, len(todo), chunk_size):
            rows = todo[start:start + chunk_size]
            naive[rows] = _native(y, rows, ["naive"], season, horizon, q, n_jobs)["naive"]
        have_naive[todo] = True

    longest = max((min_history(m, season) for m in models if m != "naive"), default=3)
    fill_naive(np.ones(N, bool) if "naive" in models else n_obs < longest)
    for name in models:
        out[name][:] = naive
    for group, run in ((native, _native), (empirical, _empirical)):
        group = [m for m in group if not (run is _native and m == "naive")]  # native naive: done above
        for need in sorted({min_history(m, season) for m in group}):
            names = [m for m in group if min_history(m, season) == need]
            eligible = np.flatnonzero(n_obs >= need)
            for start in range(0, len(eligible), chunk_size):
                rows = eligible[start:start + chunk_size]
                if run is _native:
                    res = _native(y, rows, names, season, horizon, q, n_jobs)
                else:
                    res = _empirical(y, n_obs, rows, names, season, horizon, q, n_jobs, n_windows)
                for name in names:
                    out[name][rows] = res[name]
    for name in models:
        F = out[name]
        bad = ~np.isfinite(F).all(axis=(1, 2))
        if bad.any():  # a model that returned NaN intervals on a degenerate series: the naive instead
            fill_naive(bad)
            F[bad] = naive[bad]
        if nonnegative:
            np.maximum(F, 0.0, out=F)
        F.sort(axis=-1)
    return out


def rolling_fit_predict(
    y: np.ndarray,
    origins: Sequence[int],
    season: int,
    horizon: int,
    levels: Sequence[float] = DEFAULT_LEVELS,
    models: Sequence[str] = DEFAULT_MODELS,
    n_jobs: int = 1,
    **kwargs,
) -> list[dict[str, np.ndarray]]:
    """:func:`fit_predict` refitted at each origin on ``y[:, :origin]`` only (nothing after it is seen).

    Args:
        y: (N, T) panel.
        origins: number of periods of history at each origin, each in [1, T].
        season: season length.
        horizon: H.
        levels: (Q,) quantile levels.
        models: keys of :data:`MODELS`.
        n_jobs: statsforecast workers.
        **kwargs: passed to :func:`fit_predict`.

    Returns:
        One ``{model: (N, H, Q)}`` per origin, in the order of ``origins``.
    """
    T = np.asarray(y).shape[1]
    bad = [o for o in origins if not 1 <= o <= T]
    if bad:
        raise ValueError(f"origins {bad}: each must lie in [1, {T}]")
    return [fit_predict(np.asarray(y)[:, :o], season, horizon, levels, models, n_jobs, **kwargs)
            for o in origins]
