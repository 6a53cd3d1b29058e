"""What the forecast checks compare: actuals against the forecast made for their period.

``bias_drift`` and ``forecast_anomaly`` (:mod:`planning._exceptions`) judge a forecast by the actuals of the
periods it forecast. Both sides must be on the same grid and the same scale:

* **stored past forecasts** (:func:`past_forecasts`): every stored run of the tenant (``features.forecasts``,
  base and reconciled, newest first) whose periods have actuals now; per stocking point and period the run
  made last before the period (the shortest horizon, a reconciled run over the base run it came from),
  combined over channels as planning combines them (:func:`planning._stored.read_stored_forecast`); actuals
  are the sales summed over the location's channels, their dates put on the run's grid
  (``features.forecasts.to_grid``);
* **the history baseline** (:func:`baseline_checks`), only for stocking points with too few stored past
  forecasts (the first cycles of a tenant, units new to the model), and labelled ``baseline:moving_average``:
  each period's one-step-ahead forecast is the mean of the unit's previous :data:`RECENT` periods *in the
  same promotion state* as the period (promoted against promoted, plain against plain) when at least
  :data:`MIN_LIKE` of them exist, else of all of them. Never a level times a lift: where most periods carry a
  promotion flag (the demo's discounts run in 84% of its months), a lift pooled over units without any plain
  period is meaningless, and multiplying a level by it put the demo's baseline at 5x its actuals (every
  error negative: the tracking signal at its floor of -8 on 97% of units).

The anomaly band: the stored run's widest quantiles stretched to :data:`BAND_LEVEL` with a log-normal tail
(``p50 (q / p50) ^ (z(level) / z(q's level))``, one side at a time; where a quantile is 0, a normal tail
with the low side not below 0); the baseline's is a gamma with its mean and the RMSE of its one-step errors
over the :data:`SPREAD_WINDOW` periods before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import ndtri

from planning._baseline import gamma_quantiles

__all__ = [
    "BAND_LEVEL",
    "BASELINE_LABEL",
    "CHECK_PERIODS",
    "MIN_STORED",
    "check_periods",
    "ForecastPairs",
    "baseline_checks",
    "forecast_pairs",
    "past_forecasts",
]

#: Periods of actuals the bias check looks at, per grid: four weeks of days, a quarter of weeks, eight months.
#: With weekly retail noise (a coefficient of variation near 0.5 per period) 8 weeks cannot tell a 60%
#: under-forecast from chance at a 1% false-alarm rate; 13 can tell most (``docs/exceptions.md``).
CHECK_PERIODS = {"D": 28, "W": 13, "MS": 8}
#: Fewest periods with a stored past forecast for a unit to be judged on stored forecasts.
MIN_STORED = 4
#: Periods of the baseline's moving average.
RECENT = 13
#: Fewest same-state periods (promoted / plain) among the last :data:`RECENT` for a like-for-like mean.
MIN_LIKE = 3
#: Periods of one-step errors the baseline's anomaly band is measured on.
SPREAD_WINDOW = 26
#: Lower tail of the anomaly band: an actual outside [P0.5, P99.5] of its forecast.
BAND_LEVEL = 0.005
#: Label of the fallback forecast in messages and counts.
BASELINE_LABEL = "baseline:moving_average"
#: Stored runs read at most (newest first): past periods are covered by the last few cycles' runs.
MAX_RUNS = 24


@dataclasses.dataclass(frozen=True)
class ForecastPairs:
    """Actual-forecast pairs for the checks.

    Attributes:
        bias: sku_id, location_id, period, actual, p50, source (the last :func:`check_periods` periods).
        anomaly: sku_id, location_id, period, actual, p01, p99 (the band), source (the last period).
        counts: units judged on stored forecasts and on the baseline.
    """

    bias: pl.DataFrame
    anomaly: pl.DataFrame
    counts: dict


def check_periods(freq: str | None, period_days: float = 7) -> int:
    """The bias window for a grid (:data:`CHECK_PERIODS`; without a grid, from the period length)."""
    if freq is None:
        freq = "D" if period_days < 4 else ("W" if period_days < 20 else "MS")
    return CHECK_PERIODS.get(freq, 8)


def _band(levels: np.ndarray, q: np.ndarray, level: float = BAND_LEVEL) -> tuple[np.ndarray, ...]:
    """(p50, lo, hi) of quantile rows ``q`` (M, Q) at ``levels`` (Q,), tails stretched to ``level``.

    Each tail is stretched from the widest stored quantile by ``z(level) / z(stored level)``, on the log
    scale where both quantiles are positive (demand is skewed: a normal tail on the natural scale puts the
    lower bound below zero for any unit with a coefficient of variation above 0.4, so a week of no sales
    could never be anomalous), else on the natural scale (the lower bound then at least 0).
    """
    if not q.size:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    p50 = np.array([np.interp(0.5, levels, row) for row in q])
    z = float(-ndtri(level))
    k_lo, k_hi = z / max(float(-ndtri(levels[0])), 1e-9), z / max(float(ndtri(levels[-1])), 1e-9)
    bottom, top = q[:, 0], q[:, -1]
    pos_lo, pos_hi = (bottom > 0) & (p50 > 0), (top > 0) & (p50 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(pos_lo, p50 * (bottom / p50) ** k_lo, p50 - (p50 - bottom) * k_lo)
        hi = np.where(pos_hi, p50 * (top / p50) ** k_hi, p50 + (top - p50) * k_hi)
    return p50, np.maximum(lo, 0.0), hi


def past_forecasts(
    tenant: str,
    keys: pl.DataFrame,
    last_date,
    *,
    facts_dir: Path | None = None,
    max_runs: int = MAX_RUNS,
) -> pl.DataFrame:
    """Stored forecasts of periods up to ``last_date``, one per stocking point and period (the latest made).

    Args:
        tenant: whose runs.
        keys: stocking points (sku_id, location_id).
        last_date: the last period with actuals (on the runs' grid).
        facts_dir: fact store root.
        max_runs: newest runs read at most.

    Returns:
        sku_id, location_id, date, p50, p01, p99 (the band), source, run_id, created_at; empty when no stored
        run forecast a period that has actuals.
    """
    from features.forecasts import forecast_runs
    from planning._stored import read_stored_forecast

    runs = forecast_runs(tenant, facts_dir=facts_dir)
    reconciled_from = {m.base_run for m in runs if m.stage == "reconciled" and m.base_run}
    # a base run a reconciled run was made from is superseded by it (made later, for the same periods)
    runs = [m for m in runs if not (m.stage == "base" and m.run_id in reconciled_from)]
    parts = []
    for meta in runs[:max_runs]:
        try:
            stored = read_stored_forecast(meta, keys, facts_dir=facts_dir)
        except ValueError:  # a run without bottom or stocking-level rows forecasts nothing planning stocks
            continue
        steps = [i for i, d in enumerate(stored.period_starts) if d <= last_date]
        rows = np.flatnonzero(stored.found)
        if not steps or not rows.size:
            continue
        levels = np.asarray(meta.levels, dtype=np.float64)
        v = stored.values[np.ix_(rows, steps)]  # (R, S, Q)
        p50, lo, hi = _band(levels, v.reshape(-1, v.shape[-1]))
        parts.append(
            pl.DataFrame(
                {
                    "sku_id": np.repeat(keys["sku_id"].to_numpy()[rows], len(steps)),
                    "location_id": np.repeat(keys["location_id"].to_numpy()[rows], len(steps)),
                    "date": pl.Series([stored.period_starts[i] for i in steps] * rows.size, dtype=pl.Date),
                    "p50": p50,
                    "p01": lo,
                    "p99": hi,
                    "source": pl.Series(
                        [stored.unit_source[i] for i in rows for _ in steps], dtype=pl.String
                    ),
                    "run_id": meta.run_id,
                    "created_at": meta.created_at,
                },
            )
        )
    if not parts:
        return pl.DataFrame(
            schema={
                "sku_id": pl.String,
                "location_id": pl.String,
                "date": pl.Date,
                "p50": pl.Float64,
                "p01": pl.Float64,
                "p99": pl.Float64,
                "source": pl.String,
                "run_id": pl.String,
                "created_at": pl.String,
            }
        )
    return (
        pl.concat(parts)
        .sort("created_at", descending=True, maintain_order=True)
        .unique(["sku_id", "location_id", "date"], keep="first", maintain_order=True)
    )


def _like_for_like(y: np.ndarray, p: np.ndarray, s: int) -> np.ndarray:
    """(N,) one-step forecast of period ``s`` from periods before it (see the module docstring)."""
    lo = max(s - RECENT, 0)
    yw, pw = y[:, lo:s], p[:, lo:s]
    same = pw == p[:, s : s + 1]
    n_same = same.sum(axis=1)
    like = np.where(same, yw, 0.0).sum(axis=1) / np.maximum(n_same, 1)
    plain = yw.mean(axis=1) if yw.shape[1] else np.zeros(y.shape[0])
    return np.where(n_same >= MIN_LIKE, like, plain)


def baseline_checks(qty: np.ndarray, promo: np.ndarray, periods: int = 8):
    """The baseline's one-step forecasts of the last ``periods`` periods and its band for the last one.

    Args:
        qty: (N, T) demand per period, oldest first.
        promo: (N, T) bool, the period carried a promotion.
        periods: periods forecast (the bias window).

    Returns:
        ``(p50, band)``: (N, P) one-step forecasts of the last ``P = min(periods, T - 2)`` periods, and (N, 2)
        the band [lo, hi] of the last period; None, None when ``T < 4``.
    """
    y = np.asarray(qty, dtype=np.float64)
    p = np.asarray(promo, dtype=bool)
    t = y.shape[1]
    if t < 4:
        return None, None
    first = max(t - periods - SPREAD_WINDOW, 2)
    f = np.stack([_like_for_like(y, p, s) for s in range(first, t)], axis=1)  # (N, t - first)
    err = y[:, first : t - 1] - f[:, :-1]
    rmse = np.sqrt((err**2).mean(axis=1)) if err.shape[1] else np.sqrt(np.maximum(f[:, -1], 0.0))
    rmse = np.maximum(rmse, 1e-6)
    band = gamma_quantiles(f[:, -1:], rmse, np.array([BAND_LEVEL, 1 - BAND_LEVEL]))[:, 0, :]
    return f[:, -min(periods, t - first) :], band.astype(np.float64)


def forecast_pairs(
    keys: pl.DataFrame,
    dates: list,
    qty: np.ndarray,
    promo: np.ndarray,
    past: pl.DataFrame | None = None,
    periods: int = 8,
) -> ForecastPairs:
    """Pairs of actuals and forecasts for the checks (stored past forecasts, else the baseline).

    A unit is judged on stored past forecasts when it has at least :data:`MIN_STORED` of them in the window,
    else on the baseline (see the module docstring).

    Args:
        keys: (N rows) sku_id, location_id.
        dates: (T,) period start of each column of ``qty`` (on the forecasts' grid).
        qty: (N, T) actuals per stocking point (channels summed).
        promo: (N, T) bool promotion flags.
        past: :func:`past_forecasts`' frame, or None.
        periods: the bias window.
    """
    n, t = qty.shape
    dates = list(dates)
    window = dates[-periods:]
    actual = keys.with_row_index("_i").join(
        pl.DataFrame(
            {"date": window, "_t": np.arange(t - len(window), t)}, schema_overrides={"date": pl.Date}
        ),
        how="cross",
    )
    actual = actual.with_columns(
        pl.Series("actual", qty[actual["_i"].to_numpy(), actual["_t"].to_numpy()], dtype=pl.Float64)
    )
    stored_units = pl.DataFrame(schema={"_i": pl.UInt32})
    stored = (
        actual.head(0)
        .with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("p50", "p01", "p99"))
        .with_columns(pl.lit(None, pl.String).alias("source"))
    )
    if past is not None and past.height:
        stored = actual.join(
            past.select("sku_id", "location_id", "date", "p50", "p01", "p99", "source"),
            on=["sku_id", "location_id", "date"],
            how="inner",
        )
        stored_units = (
            stored.group_by("_i").len().filter(pl.col("len") >= min(MIN_STORED, len(window))).select("_i")
        )
        stored = stored.join(stored_units, on="_i", how="semi")
    base_p50, band = baseline_checks(qty, promo, periods)
    parts = [stored]
    if base_p50 is not None:
        k = base_p50.shape[1]
        rest = actual.join(stored_units, on="_i", how="anti").filter(pl.col("_t") >= t - k)
        i, j = rest["_i"].to_numpy(), rest["_t"].to_numpy() - (t - k)
        last = j == k - 1
        parts.append(
            rest.with_columns(
                pl.Series("p50", base_p50[i, j], dtype=pl.Float64),
                pl.Series("p01", np.where(last, band[i, 0], np.nan), dtype=pl.Float64),
                pl.Series("p99", np.where(last, band[i, 1], np.nan), dtype=pl.Float64),
                pl.lit(BASELINE_LABEL).alias("source"),
            )
        )
    pairs = pl.concat([x.select(stored.columns) for x in parts]).rename({"date": "period"})
    bias = pairs.select("sku_id", "location_id", "period", "actual", "p50", "source")
    anomaly = pairs.filter(
        (pl.col("period") == pl.lit(dates[-1], pl.Date)) & pl.col("p01").is_not_nan().fill_null(False)
    ).select("sku_id", "location_id", "period", "actual", "p01", "p99", "source")
    n_stored = stored_units.height
    return ForecastPairs(
        bias=bias,
        anomaly=anomaly,
        counts={"stored_forecasts": n_stored, "baseline": n - n_stored if base_p50 is not None else 0},
    )
