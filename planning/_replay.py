"""Replay of a periodic-review order-up-to policy against realised demand (the policy backtest).

Each period: receipts due arrive (first clearing backorders), the policy reviews (inventory position is on
hand plus on order minus backorders), orders ``S - position`` rounded to pack / MOQ / max when positive, the
order's lead time is the realised one for that unit and period (so orders can cross), then the period's demand
is served from on hand and the rest is backordered. Metrics cover the measured periods only (after a warm-up):
fill rate (units served from stock over units demanded), average on hand (mean of the stock after receipts
and at the period's end), units short, orders placed. Vectorised over units; the loop runs over periods only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from planning._rounding import round_order_quantity

__all__ = ["ReplayResult", "replay_policy"]


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """Measured figures of one replay.

    Attributes:
        fill_rate: units served from stock / units demanded over the measured periods.
        avg_on_hand: mean on hand per unit and period.
        avg_on_hand_value: the same in currency (on hand x unit cost).
        stockout_units: units demanded but not served from stock.
        order_count: orders placed in the measured periods.
        unit_fill_rate: (N,) per-unit fill rate (NaN where no demand).
    """

    fill_rate: float
    avg_on_hand: float
    avg_on_hand_value: float
    stockout_units: float
    order_count: int
    unit_fill_rate: np.ndarray


def replay_policy(
    demand: np.ndarray,
    lead_time: np.ndarray,
    level_fn: Callable[[int], np.ndarray],
    start: int,
    n_warmup: int,
    n_measured: int,
    pack: np.ndarray,
    moq: np.ndarray,
    max_qty: np.ndarray,
    unit_cost: np.ndarray,
) -> ReplayResult:
    """Replay an order-up-to policy from period ``start`` for ``n_warmup + n_measured`` periods.

    Args:
        demand: (N, T) realised demand per period; T >= start + n_warmup + n_measured.
        lead_time: (N, T) realised lead time (periods, >= 1) of an order placed in each period.
        level_fn: ``level_fn(t) -> (N,)`` order-up-to levels at the review of period ``t`` (it may only look
            at demand before ``t``).
        start: first replayed period; the stock starts at the first review's level, nothing on order.
        n_warmup: periods replayed but not measured.
        n_measured: measured periods.
        pack: (N,) pack sizes.
        moq: (N,) minimum order quantities.
        max_qty: (N,) maximum order quantities.
        unit_cost: (N,) cost per unit (for the inventory value).

    Returns:
        :class:`ReplayResult`.
    """
    demand = np.asarray(demand, dtype=np.float64)
    n, t_total = demand.shape
    end = start + n_warmup + n_measured
    if end > t_total:
        raise ValueError(f"demand has {t_total} periods; the replay needs {end}")
    lead_time = np.asarray(lead_time, dtype=np.int64)
    if lead_time.shape != demand.shape or np.any(lead_time[:, start:end] < 1):
        raise ValueError("lead_time: expected shape like demand and lead times >= 1 period")
    horizon = end + int(lead_time[:, start:end].max()) + 1
    arrivals = np.zeros((n, horizon))
    on_hand = np.maximum(np.ceil(level_fn(start)), 0.0)
    on_order = np.zeros(n)
    backorders = np.zeros(n)
    rows = np.arange(n)
    served_sum = np.zeros(n)
    demand_sum = np.zeros(n)
    on_hand_sum = 0.0
    value_sum = 0.0
    orders = 0
    for t in range(start, end):
        rec = arrivals[:, t]
        on_order -= rec
        to_backorders = np.minimum(rec, backorders)
        backorders -= to_backorders
        on_hand += rec - to_backorders
        s = level_fn(t)
        position = on_hand + on_order - backorders
        q, _ = round_order_quantity(s - position, pack, moq, max_qty)
        placed = q > 0
        arrivals[rows[placed], t + lead_time[placed, t]] += q[placed]
        on_order += q
        start_stock = on_hand.copy()
        d = demand[:, t]
        served = np.minimum(on_hand, d)
        on_hand -= served
        backorders += d - served
        if t >= start + n_warmup:
            served_sum += served
            demand_sum += d
            avg = 0.5 * (start_stock + on_hand)
            on_hand_sum += avg.sum()
            value_sum += (avg * unit_cost).sum()
            orders += int(placed.sum())
    total_d = demand_sum.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        unit_fill = np.where(demand_sum > 0, served_sum / demand_sum, np.nan)
    return ReplayResult(
        fill_rate=float(served_sum.sum() / total_d) if total_d > 0 else 1.0,
        avg_on_hand=on_hand_sum / (n * n_measured),
        avg_on_hand_value=value_sum / (n * n_measured),
        stockout_units=float(total_d - served_sum.sum()),
        order_count=orders,
        unit_fill_rate=unit_fill,
    )
