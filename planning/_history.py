"""Planning arrays from the data layer's frames: demand matrices, lead-time distributions, supplier terms.

The stocking point is SKU x location: channel demand at a location is summed (one shelf serves every channel).
Lead times are converted to periods with ``ceil(days / period_days)`` (an order arriving mid-period serves
from the next period on), and their empirical distribution per supplier x SKU becomes a probability vector.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl

__all__ = [
    "DemandMatrix",
    "demand_matrix",
    "dirichlet_strength",
    "lead_time_bin_counts",
    "lead_time_pmf",
    "lead_time_stats",
    "shrink_pmf",
]


@dataclasses.dataclass(frozen=True)
class DemandMatrix:
    """Demand per stocking point and period.

    Attributes:
        keys: (N rows) sku_id, location_id, in row order.
        dates: (T,) period start dates.
        qty: (N, T) float64 demand.
        promo: (N, T) bool, any channel promoted.
    """

    keys: pl.DataFrame
    dates: np.ndarray
    qty: np.ndarray
    promo: np.ndarray


def demand_matrix(sales: pl.DataFrame) -> DemandMatrix:
    """Pivot sales rows (sku_id, location_id, date, qty, promo) into (N, T) matrices (missing periods: 0)."""
    need = {"sku_id", "location_id", "date", "qty"}
    missing = need - set(sales.columns)
    if missing:
        raise ValueError(f"sales: missing column(s) {sorted(missing)}")
    # Integer codes instead of a group-by on the string ids (several times faster on millions of rows): each
    # id's position among its sorted distinct values (an Enum of them), so that pairs sort as (sku, location).
    sku_u = sales["sku_id"].cast(pl.String).unique().sort()
    loc_u = sales["location_id"].cast(pl.String).unique().sort()
    a = (
        sales["sku_id"]
        .cast(pl.String)
        .cast(pl.Enum(sku_u.to_list()))
        .to_physical()
        .to_numpy()
        .astype(np.int64)
    )
    b = sales["location_id"].cast(pl.String).cast(pl.Enum(loc_u.to_list())).to_physical().to_numpy()
    pair, i = _dense(a * len(loc_u) + b.astype(np.int64))
    day = sales["date"].cast(pl.Date).to_physical().to_numpy().astype(np.int64)
    days, j = _dense(day)
    n, t = pair.shape[0], days.shape[0]
    cell = i.reshape(-1) * t + j.reshape(-1)
    qty = np.bincount(cell, weights=sales["qty"].cast(pl.Float64).fill_null(0.0).to_numpy(), minlength=n * t)
    promo = np.zeros(n * t, dtype=bool)
    if "promo" in sales.columns:
        promo[cell[sales["promo"].cast(pl.Boolean).fill_null(False).to_numpy()]] = True
    keys = pl.DataFrame(
        {"sku_id": sku_u.gather(pair // len(loc_u)), "location_id": loc_u.gather(pair % len(loc_u))}
    )
    dates = pl.Series("date", days.astype("datetime64[D]")).cast(pl.Date)
    return DemandMatrix(keys=keys, dates=dates.to_numpy(), qty=qty.reshape(n, t), promo=promo.reshape(n, t))


def _dense(code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(code, return_inverse=True)`` in linear time when the codes span a small range."""
    if not code.shape[0]:
        return code, code
    lo, hi = int(code.min()), int(code.max())
    if hi - lo > 4 * code.shape[0] + 1_000_000:
        return np.unique(code, return_inverse=True)
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[code - lo] = True
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present) + lo, rank[code - lo]


def _weeks(days: pl.Expr, period_days: int) -> pl.Expr:
    return (days / period_days).ceil().clip(lower_bound=1).cast(pl.Int64)


def lead_time_stats(
    lead_times: pl.DataFrame, terms: pl.DataFrame, period_days: int, before: date | None = None
) -> pl.DataFrame:
    """Mean and standard deviation of observed lead times in periods per supplier x SKU term.

    Terms without observations fall back to the promised lead time with zero spread (and ``lead_time_source``
    says so).

    Args:
        lead_times: supplier_id, sku_id, receipt_date, lead_time_days.
        terms: supplier_id, sku_id, promised_lead_time_days (and any other columns, carried through).
        period_days: days per planning period.
        before: only deliveries received before this date count (no look-ahead in backtests).
    """
    obs = lead_times if before is None else lead_times.filter(pl.col("receipt_date") < pl.lit(before))
    stats = (
        obs.with_columns(_weeks(pl.col("lead_time_days"), period_days).alias("_p"))
        .group_by("supplier_id", "sku_id")
        .agg(
            pl.col("_p").mean().alias("lead_time_mean"),
            pl.col("_p").std(ddof=0).alias("lead_time_std"),
            pl.col("lead_time_days").cast(pl.Float64).mean().alias("lead_time_mean_days"),
            pl.len().alias("lead_time_n"),
        )
    )
    out = terms.join(stats, on=["supplier_id", "sku_id"], how="left")
    promised = _weeks(pl.col("promised_lead_time_days"), period_days).cast(pl.Float64)
    return out.with_columns(
        pl.when(pl.col("lead_time_mean").is_null())
        .then(pl.lit("promised"))
        .otherwise(pl.lit("observed"))
        .alias("lead_time_source"),
        pl.col("lead_time_mean").fill_null(promised),
        pl.col("lead_time_mean_days").fill_null(pl.col("promised_lead_time_days").cast(pl.Float64)),
        pl.col("lead_time_std").fill_null(0.0),
        pl.col("lead_time_n").fill_null(0),
    )


def lead_time_bin_counts(
    lead_times: pl.DataFrame, period_days: int, n_bins: int, before: date | None = None
) -> pl.DataFrame:
    """Observed deliveries per supplier x SKU term and lead-time bin in periods (the last bin takes the rest).

    Returns:
        supplier_id, sku_id, ``_p`` (bin, 1..n_bins-1), ``len`` (deliveries); deliveries without a lead time
        and, with ``before``, those received on or after it are left out.
    """
    obs = lead_times if before is None else lead_times.filter(pl.col("receipt_date") < pl.lit(before))
    return (
        obs.drop_nulls("lead_time_days")
        .with_columns(_weeks(pl.col("lead_time_days"), period_days).clip(upper_bound=n_bins - 1).alias("_p"))
        .group_by("supplier_id", "sku_id", "_p")
        .len()
    )


def lead_time_pmf(
    units: pl.DataFrame, lead_times: pl.DataFrame, period_days: int, n_bins: int, before: date | None = None
) -> np.ndarray:
    """Empirical lead-time distribution in periods for each unit's (supplier_id, sku_id), (N, n_bins).

    Units whose term has no observation get all mass on ``ceil(promised_lead_time_days / period_days)`` (a
    ``promised_lead_time_days`` column on ``units`` is then required). Lead times beyond ``n_bins - 1``
    periods are put in the last bin.
    """
    counts = lead_time_bin_counts(lead_times, period_days, n_bins, before)
    u = units.select("supplier_id", "sku_id").with_row_index("_i")
    hit = u.join(counts, on=["supplier_id", "sku_id"], how="inner")
    pmf = np.zeros((units.height, n_bins))
    np.add.at(pmf, (hit["_i"].to_numpy(), hit["_p"].to_numpy()), hit["len"].to_numpy().astype(np.float64))
    tot = pmf.sum(axis=1)
    empty = tot == 0
    if empty.any():
        if "promised_lead_time_days" not in units.columns:
            raise ValueError("units without observed lead times need a promised_lead_time_days column")
        prom = np.ceil(units["promised_lead_time_days"].to_numpy()[empty] / period_days).astype(np.int64)
        pmf[np.flatnonzero(empty), np.clip(prom, 1, n_bins - 1)] = 1.0
        tot = pmf.sum(axis=1)
    return pmf / tot[:, None]


def shrink_pmf(pmf: np.ndarray, n_obs: np.ndarray, prior: np.ndarray, strength: float) -> np.ndarray:
    """Posterior predictive lead-time distribution: ``(n pmf + a prior) / (n + a)`` per row.

    The empirical distribution of a few dozen deliveries has no mass where none was observed, so a supplier's
    rare long delays (a 5% tail is missed by 26 deliveries a quarter of the time) are priced at zero exactly
    where they cost the most. Treating ``prior`` (e.g. the pooled distribution of all terms) as ``a`` pseudo-
    observations (a Dirichlet prior) keeps each term's own shape when it has many observations and gives the
    tails the pooled mass when it has few.

    Args:
        pmf: (N, K) empirical distributions (rows sum to 1).
        n_obs: (N,) observations behind each row (>= 0).
        prior: (K,) or (N, K) prior distribution(s).
        strength: ``a`` >= 0, the prior's weight in observations.

    Returns:
        (N, K) distributions.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    n = np.asarray(n_obs, dtype=np.float64).reshape(-1, 1)
    if strength < 0 or np.any(n < 0):
        raise ValueError("shrink_pmf: expected strength >= 0 and n_obs >= 0")
    prior = np.broadcast_to(np.asarray(prior, dtype=np.float64), pmf.shape)
    out = (n * pmf + strength * prior) / np.maximum(n + strength, 1e-12)
    return out / out.sum(axis=1, keepdims=True)


def dirichlet_strength(
    counts: np.ndarray, default: float = 4.0, bounds: tuple[float, float] = (0.5, 100.0), min_terms: int = 5
) -> float:
    """Weight of the pooled lead-time distribution as a prior, in deliveries, estimated from the terms.

    Empirical Bayes by moments (Dirichlet-multinomial): if each term's distribution is a draw from a
    Dirichlet centred on the pooled distribution ``p`` with strength ``a``, a term with ``n`` deliveries has
    ``E[sum_b (phat_b - p_b)^2] = G (n + a) / (n (1 + a))``, ``G = 1 - sum_b p_b^2`` (multinomial noise plus
    the spread between terms). Matching the mean over terms gives
    ``a = (G - s) / (s - G mean(1/n))`` with ``s`` the mean squared distance: terms that differ much from
    each other give a weak prior (each term trusts its own deliveries), terms that look alike a strong one.

    Args:
        counts: (M, K) observed deliveries per period bin of each supplier x SKU term.
        default: returned when fewer than ``min_terms`` terms have two or more deliveries.
        bounds: the estimate is clipped to this range.
        min_terms: terms needed for an estimate.

    Returns:
        The prior strength ``a`` in deliveries.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or np.any(c < 0):
        raise ValueError(f"counts: expected an (M, K) array of deliveries >= 0, got shape {c.shape}")
    n = c.sum(axis=1)
    c, n = c[n >= 2], n[n >= 2]
    if n.shape[0] < min_terms:
        return float(default)
    p = c.sum(axis=0) / n.sum()
    g = 1.0 - float((p * p).sum())
    if g <= 0.0:  # every delivery in one bin: the terms agree
        return float(bounds[1])
    s = float((((c / n[:, None]) - p) ** 2).sum(axis=1).mean())
    noise = g * float((1.0 / n).mean())
    if s <= noise:  # no spread beyond sampling noise
        return float(bounds[1])
    return float(np.clip((g - s) / (s - noise), *bounds))
