"""The reconcile stage's aggregate base forecasts and the error variances its weighted methods use.

Each aggregate's own centre comes from a rolling-origin backtest of baselines on its history (see
:mod:`training.reconcile_stage`, "Aggregate base forecasts").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import polars as pl

from features.facts import scan_facts
from features.forecasts import ForecastRunMeta, read_residuals
from kernels.reconcile import Hierarchy
from training._hierarchy import UNIT_COLUMNS
from training.baselines import moving_average, seasonal_naive

# Per grid: season length, moving-average window, seasons in the seasonal mean, origin spacing.
_GRID = {"D": (7, 28, 4, 7), "W": (52, 8, 2, 4), "MS": (12, 3, 2, 1)}
_ORIGINS = 8
_CHUNK = 8192  # aggregates per block of the backtest


def _lag_expr(freq: str) -> pl.Expr:
    """Periods between a sales date and the unit's first forecast date (1 = the period just before)."""
    d, d1 = pl.col("date"), pl.col("__d1")
    if freq == "MS":
        return (d1.dt.year() * 12 + d1.dt.month()) - (d.dt.year() * 12 + d.dt.month())
    days = (d1 - d).dt.total_days()
    return days if freq == "D" else (days + 6) // 7


def _history(tenant: str, units: pl.DataFrame, freq: str, T: int, facts_dir) -> np.ndarray:
    """Sales of each unit in the T periods before its first forecast date, shape (m, T); no row = 0 sold.

    Args:
        tenant: whose sales.
        units: ``sku_id``, ``location_id``, ``channel_id``, ``__d1`` (first forecast date); one row per unit.
        freq: grid.
        T: periods of history.
        facts_dir: fact store root.
    """
    m = units.height
    d1 = units["__d1"]
    days = {"D": 1, "W": 7, "MS": 31}[freq] * T + 7
    start, end = d1.min() - timedelta(days=days), d1.max() - timedelta(days=1)
    keys = units.select(*UNIT_COLUMNS, "__d1").with_row_index("__idx").lazy()
    rows = (
        scan_facts("sales", tenant, start, end, columns=[*UNIT_COLUMNS, "date", "qty"], facts_dir=facts_dir)
        .join(keys, on=list(UNIT_COLUMNS), how="inner")
        .with_columns(_lag_expr(freq).alias("__lag"))
        .filter((pl.col("__lag") >= 1) & (pl.col("__lag") <= T))
        .select("__idx", (T - pl.col("__lag")).alias("__t"), pl.col("qty").fill_null(0.0))
        .collect()
    )
    flat = rows["__idx"].to_numpy().astype(np.int64) * T + rows["__t"].to_numpy().astype(np.int64)
    return np.bincount(flat, weights=rows["qty"].to_numpy(), minlength=m * T).reshape(m, T)


def _seasonal_mean(Y: np.ndarray, H: int, season: int, k: int) -> np.ndarray:
    t = Y.shape[1]
    return np.mean([seasonal_naive(Y[:, : t - j * season], H, season) for j in range(k)], axis=0)


def _candidates(freq: str, H: int):
    """Aggregate baselines: name -> (periods of history needed, forecaster (rows, t) -> (rows, H))."""
    season, window, k, _ = _GRID[freq]
    return {
        "seasonal_mean": (k * season, lambda Y: _seasonal_mean(Y, H, season, k)),
        "seasonal_naive": (season, lambda Y: seasonal_naive(Y, H, season)),
        "moving_average": (window, lambda Y: moving_average(Y, H, window)),
    }


def _history_periods(freq: str, H: int) -> int:
    season, window, k, step = _GRID[freq]
    return H + (_ORIGINS - 1) * step + max(k * season, season, window)


def _aggregate_base(Y_a: np.ndarray, H: int, centre: float, freq: str) -> dict:
    """Centre forecast, error variance and chosen baseline of every aggregate node (module docstring).

    Args:
        Y_a: aggregate histories, shape (a, T), oldest period first, leading periods before any data trimmed.
        H: horizon.
        centre: the quantile level of the centre (the stored level nearest 0.5).
        freq: grid.

    Returns:
        ``{"centre": (a, H), "var": (a,), "source": (a,) names, "origins": K}``, or None when the history is
        too short for one backtest origin with any baseline.
    """
    a, T = Y_a.shape
    step = _GRID[freq][3]
    fits = {name: (T - H - need) // step + 1 for name, (need, _) in _candidates(freq, H).items()}
    K = min(_ORIGINS, max(fits.values()))
    if K < 1:
        return None
    cands = [(name, fn) for name, (_, fn) in _candidates(freq, H).items() if fits[name] >= K]
    q = np.empty((a, H))
    var = np.empty(a)
    choice = np.empty(a, dtype=np.int64)
    for lo in range(0, a, _CHUNK):
        Y = Y_a[lo : lo + _CHUNK]
        E = np.empty((len(cands), Y.shape[0], K, H))
        for j in range(K):
            o = T - H - j * step
            for c, (_, fn) in enumerate(cands):
                E[c, :, j] = Y[:, o : o + H] - fn(Y[:, :o])
        E = E.reshape(len(cands), Y.shape[0], K * H)
        best = np.abs(E).mean(axis=2).argmin(axis=0)
        E = np.take_along_axis(E, best[None, :, None], axis=0)[0]
        F = np.stack([fn(Y) for _, fn in cands])
        F = np.take_along_axis(F, best[None, :, None], axis=0)[0]
        q[lo : lo + _CHUNK] = np.maximum(F + np.quantile(E, centre, axis=1)[:, None], 0.0)
        var[lo : lo + _CHUNK] = np.mean(E * E, axis=1)
        choice[lo : lo + _CHUNK] = best
    names = np.array([f"baseline:{name}" for name, _ in cands], dtype=object)
    return {"centre": q, "var": var, "source": names[choice], "origins": K}


def _spread_variance(q_b: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Error variance implied by base quantiles under a normal, ((q_hi - q_lo) / (z_hi - z_lo))^2 over h."""
    if len(levels) < 2:
        return np.mean(q_b[:, :, 0] ** 2, axis=1) + 1.0
    z = statistics.NormalDist()
    dz = z.inv_cdf(levels[-1]) - z.inv_cdf(levels[0])
    return np.mean(((q_b[:, :, -1] - q_b[:, :, 0]) / dz) ** 2, axis=1)


def _bottom_variance(tenant, meta: ForecastRunMeta, ids: pl.Series, q_b: np.ndarray, facts_dir):
    """Error variance of each unit's base forecast: mean squared backtest residual, else the quantile spread.

    Returns:
        (var (m,), units with residuals).
    """
    var = _spread_variance(q_b, meta.levels)
    if meta.model_version is None:
        return var, 0
    res = read_residuals(tenant, meta.model_version, facts_dir=facts_dir)
    if res.height == 0:
        return var, 0
    mse = res.group_by("unique_id").agg((pl.col("residual") ** 2).mean().alias("mse"))
    got = pl.DataFrame({"unique_id": ids}).join(mse, on="unique_id", how="left", maintain_order="left")["mse"]
    has = got.is_not_null().to_numpy()
    var[has] = got.to_numpy()[has]
    return var, int(has.sum())


def _floor(var: np.ndarray) -> np.ndarray:
    pos = var[var > 0]
    return np.maximum(var, 1e-6 * float(pos.mean()) if pos.size else 1.0)


def _shrink_residuals(Y: np.ndarray, var: np.ndarray, freq: str) -> np.ndarray:
    """Residual rows for MinT-shrink: seasonal differences of each node's history scaled to its variance."""
    season = _GRID[freq][0]
    T = Y.shape[1]
    lag = season if T >= season + 2 else 1
    R = Y[:, lag:] - Y[:, :-lag]
    R = R[:, -min(R.shape[1], 8 * season) :]
    if R.shape[1] < 2:
        raise ValueError("mint_shrink needs at least 3 periods of sales history before the forecast")
    ms = np.mean(R * R, axis=1)
    flat = ms <= 0
    if flat.any():  # no variation: uncorrelated noise of the node's variance (a fixed stream, reproducible)
        noise = np.random.default_rng(0).standard_normal((int(flat.sum()), R.shape[1]))
        R[flat] = noise
        ms[flat] = np.mean(noise * noise, axis=1)
    return R * np.sqrt(var / ms)[:, None]


def _base_all(hier: Hierarchy, Y_b, q_b, var_b, levels, freq):
    """Base quantiles (n_s, H, Q) and error variances (n_s,) of the solved nodes, and the aggregates' info.

    An aggregate's base quantile at level tau is its own centre forecast plus the sum of its units' quantile
    offsets from their centres (module docstring).
    """
    m, H, Q = q_b.shape
    y_hat = np.empty((hier.n, H, Q))
    y_hat[hier.bottom_rows] = q_b
    var = np.empty(hier.n)
    var[hier.bottom_rows] = var_b
    k = int(np.argmin(np.abs(np.asarray(levels) - 0.5)))
    agg = _aggregate_base(hier.C @ Y_b, H, levels[k], freq) if hier.a and Y_b.shape[1] else None
    summed = (hier.C @ q_b.reshape(m, -1)).reshape(hier.a, H, Q)
    if agg is not None:
        offsets = summed - summed[:, :, k : k + 1]
        y_hat[hier.agg_rows] = np.maximum(agg["centre"][:, :, None] + offsets, 0.0)
        var[hier.agg_rows] = agg["var"]
        agg["kind"] = "rolling_origin_baseline"
    else:  # too little history: the coherent bottom sums, with their summed variance
        y_hat[hier.agg_rows] = summed
        var[hier.agg_rows] = hier.C @ var_b
        agg = {"kind": "bottom_sum", "origins": 0, "source": np.full(hier.a, "bottom_sum", dtype=object)}
    return y_hat, _floor(var), agg
