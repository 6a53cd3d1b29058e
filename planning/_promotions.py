"""Future promotions in the demand paths: the calendar of promoted future periods and the lift they bring.

A promotion known ahead (a row of the promotions facts dated on or after the planning date) raises the
demand of the period it falls in. Where the forecast came from a model that had the promotions as known future
inputs, its quantiles already carry the lift and nothing is shifted; otherwise (a baseline, or a model without
promotion inputs) the promoted periods' demand is scaled by the unit's lift, estimated from its history.

The lift of a unit is its promoted / non-promoted mean demand, shrunk on the log scale towards its group's
pooled lift (the SKU's category where the master data has one, else every unit), so that a unit with few
promoted or few plain periods borrows the lift of similar units. The pool is made only of units that have both
kinds of periods (see :func:`promotion_lift`).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

__all__ = [
    "PROMO_INPUT_KEYS",
    "future_periods",
    "model_used_promotions",
    "promotion_calendar",
    "promotion_lift",
]

#: Keys of a forecast run's ``extra`` that may say which known future inputs the model used.
PROMO_INPUT_KEYS = ("known_inputs", "known_future_inputs", "known_reals", "future_inputs", "inputs")


def model_used_promotions(source: str | None, extra: dict) -> bool:
    """True when a forecast already prices promotions in: a model whose run says promotions were inputs.

    Args:
        source: the run's source label (``model:<name>`` or ``baseline:<name>``).
        extra: the run's ``ForecastRunMeta.extra`` (a reconciled run's merged over its base run's):
            ``promotions_as_inputs`` (bool); ``promoted_future_periods`` (the forecast stage counts the
            promoted periods of the calendar it fed the model); or a list of input names under one of
            :data:`PROMO_INPUT_KEYS` containing ``promo``/``discount``.
    """
    if not (source or "").startswith("model:"):
        return False
    flag = extra.get("promotions_as_inputs", extra.get("promotion_inputs"))
    if flag is not None:
        return bool(flag)
    if "promoted_future_periods" in extra:  # training.stage.forecast_stage: the calendar was a known input
        return True
    for key in PROMO_INPUT_KEYS:
        names = extra.get(key)
        if isinstance(names, list | tuple) and any(
            any(w in str(n).lower() for w in ("promo", "discount")) for n in names
        ):
            return True
    return False


def promotion_lift(
    qty: np.ndarray,
    promo: np.ndarray,
    group: np.ndarray | None = None,
    shrink: float = 4.0,
    min_periods: int = 3,
) -> np.ndarray:
    """Promotion lift per unit, shrunk towards its group's pooled lift, clipped to [1, 5].

    A unit's own lift is its promoted / plain mean demand over the periods it sold in, estimated only where
    it has at least ``min_periods`` such periods of each kind. Periods without a sale are left out: in the
    demo's data 77% of the periods without a discount are periods without any sale (the unit was not on offer
    at that agency that month, so it had no price and no discount), and counting them as plain-price demand
    made every own lift huge. For intermittent demand this measures the lift of a sale's size, not of its
    frequency, and so errs low. A group's pooled lift is the weighted
    geometric mean of its members' own lifts (weights ``n_promo n_plain / (n_promo + n_plain)``, the
    information in a difference of two means), so that units without a plain period, or with a near-zero plain
    mean, do not enter it: pooling promoted demand over *every* unit against the plain level of only some of
    them put the demo's pooled lift at 243 (clipped to 5 for every unit), since its discounts run in 84% of
    the months. A group without any unit with an own lift borrows the pooled lift of all units; with none
    anywhere the lift is 1.

    The unit's lift is ``exp(w log(own) + (1 - w) log(pooled))`` with ``w = n / (n + shrink)`` and ``n`` the
    smaller of its promoted and plain period counts (0 where it has no own lift).

    Args:
        qty: (N, T) demand per period.
        promo: (N, T) bool, the period was promoted.
        group: (N,) group label per unit (e.g. the SKU's category); None: one group.
        shrink: pseudo-count of periods pulling a unit's lift towards its group's.
        min_periods: fewest promoted and plain periods with a sale for a unit's own lift.

    Returns:
        (N,) float64 lifts (1 where neither the unit nor any other unit has an own lift).
    """
    y = np.asarray(qty, dtype=np.float64)
    p = np.asarray(promo, dtype=bool)
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(
            f"promotion_lift: qty and promo must be (N, T) of one shape, got {y.shape}, {p.shape}"
        )
    n = y.shape[0]
    g = (
        np.zeros(n, dtype=np.int64)
        if group is None
        else np.unique(np.asarray(group, dtype=str), return_inverse=True)[1]
    )
    sold = y > 0  # a period without a sale is not a plain-price period: the unit was likely not on offer
    promo_sold, base_sold = p & sold, ~p & sold
    n_promo, n_base = promo_sold.sum(axis=1), base_sold.sum(axis=1)
    m_base = np.where(base_sold, y, 0.0).sum(axis=1) / np.maximum(n_base, 1)
    m_promo = np.where(promo_sold, y, 0.0).sum(axis=1) / np.maximum(n_promo, 1)
    own_ok = (n_promo >= min_periods) & (n_base >= min_periods)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_own = np.where(own_ok, np.log(m_promo / np.where(own_ok, m_base, 1.0)), 0.0)
    weight = np.where(own_ok, n_promo * n_base / np.maximum(n_promo + n_base, 1), 0.0)
    total_w = weight.sum()
    log_all = float((weight * log_own).sum() / total_w) if total_w > 0 else 0.0
    w_g = np.bincount(g, weights=weight)
    s_g = np.bincount(g, weights=weight * log_own)
    log_pooled = np.where(w_g > 0, s_g / np.where(w_g > 0, w_g, 1.0), log_all)[g]
    n_eff = np.where(own_ok, np.minimum(n_promo, n_base), 0).astype(np.float64)
    w = n_eff / (n_eff + shrink)
    return np.clip(np.exp(w * log_own + (1 - w) * log_pooled), 1.0, 5.0)


def promotion_calendar(
    keys: pl.DataFrame, promotions: pl.DataFrame | None, period_starts: list[date], period_end: date
) -> np.ndarray:
    """Which future period of each stocking point has a promotion, (N, H) bool.

    Args:
        keys: (N rows) sku_id, location_id of the stocking points, in row order.
        promotions: promotions facts (sku_id, location_id, date, promo optional); a period is promoted when
            any channel's promotion at the location starts in it. None or empty: nothing promoted.
        period_starts: (H,) start of each future period, increasing (period 0 starts at the planning date).
        period_end: end (exclusive) of the last period.
    """
    n, h = keys.height, len(period_starts)
    out = np.zeros((n, h), dtype=bool)
    if promotions is None or not promotions.height or not h:
        return out
    rows = promotions
    if "promo" in rows.columns:
        rows = rows.filter(pl.col("promo").fill_null(True))
    rows = rows.filter((pl.col("date") >= pl.lit(period_starts[0])) & (pl.col("date") < pl.lit(period_end)))
    if not rows.height:
        return out
    starts = np.array(period_starts, dtype="datetime64[D]")
    k = keys.select("sku_id", "location_id").with_row_index("_i")
    hit = rows.select("sku_id", "location_id", "date").join(k, on=["sku_id", "location_id"], how="inner")
    if not hit.height:
        return out
    d = hit["date"].to_numpy().astype("datetime64[D]")
    t = np.searchsorted(starts, d, side="right") - 1
    out[hit["_i"].to_numpy(), t] = True
    return out


def future_periods(as_of: date, period_days: float, horizon: int, freq: str | None = None) -> list[date]:
    """Start dates of the ``horizon + 1`` periods from ``as_of`` (the last one ends the horizon).

    Monthly grids (``freq`` ``MS``, or a period of 28 to 31 days) step by calendar months from ``as_of``'s
    month start; others by ``round(period_days)`` days.
    """
    if freq == "MS" or (freq is None and 28 <= period_days <= 31):
        y, m = as_of.year, as_of.month
        return [date(y + (m - 1 + k) // 12, (m - 1 + k) % 12 + 1, 1) for k in range(horizon + 1)]
    step = max(int(round(period_days)), 1)
    return [date.fromordinal(as_of.toordinal() + k * step) for k in range(horizon + 1)]
