"""The planning run: levels, orders, constraints, transfers, exceptions and routing for every planning unit.

:func:`plan` takes planning units (one row per SKU x location with inventory, supplier terms and lead-time
assumptions), a forecast distribution per unit (quantiles per future period, from the forecasting package or a
baseline) and the lead-time distribution of each unit's supplier, and returns plain frames: per-unit levels
and risks, recommendations with their evidence and route, purchase-order drafts, transfers and exceptions. It
writes nothing; :func:`planning._store.save_plan` does.

The hot path is array code: Monte-Carlo protection-interval samples from
:func:`kernels.policy_samples` (the engine the policy backtest measures: every order its own lead
time by default, optionally each path its own lead-time distribution from a Dirichlet posterior; forecast
quantiles, or a bootstrap of each unit's history for a baseline with a history source), levels
(``kernels.order_up_to_levels``), rounding and allocation (``kernels``), frames in Polars; units are
processed in chunks so memory stays bounded (``chunk_size x n_paths x 8`` bytes of samples at a time).
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl

from kernels import (
    HistoryDemand,
    ProtectionSamples,
    QuantileDemand,
    ServiceMenu,
    allocated_targets,
    check_lead_times,
    effective_lot,
    expected_served,
    fill_grid,
    order_up_to_levels,
    policy_samples,
    service_menu,
)
from planning._constraints import apply_constraints, order_increments
from planning._decisions import decisions
from planning._evidence import PROVENANCE_COLUMNS
from planning._kinds import kind_codes, policy_levels, policy_orders
from planning._rounding import BOUND_NAMES
from planning._routing import RuleSet

__all__ = [
    "PROVENANCE_COLUMNS",
    "UNIT_COLUMNS",
    "Budget",
    "Capacity",
    "Forecast",
    "PlanConfig",
    "PlanResult",
    "plan",
]

#: Required columns of the planning-unit frame (one row per SKU x location, in forecast row order).
UNIT_COLUMNS = {
    "sku_id": pl.String,
    "location_id": pl.String,
    "supplier_id": pl.String,
    "on_hand": pl.Float64,
    "on_order": pl.Float64,
    "backorders": pl.Float64,
    "committed": pl.Float64,
    "fill_target": pl.Float64,
    "review_periods": pl.Int64,
    "unit_cost": pl.Float64,
    "pack_size": pl.Float64,
    "moq": pl.Float64,
    "max_order_qty": pl.Float64,
    "lead_time_mean": pl.Float64,
    "lead_time_std": pl.Float64,
}


@dataclasses.dataclass(frozen=True)
class Forecast:
    """Forecast distribution per unit and future period.

    Attributes:
        levels: (Q,) quantile levels in (0, 1).
        values: (N, H, Q) quantiles; row i belongs to unit row i. With ``history`` these are what the evidence
            reports (e.g. empirical quantiles of pool x factor, :meth:`HistoryDemand.quantiles`).
        version: forecast version (run id) written to the evidence.
        model_version: model version, or None for a baseline.
        source: ``"model:<name>"`` or a baseline label (``baseline:bootstrap``).
        history: a history source to simulate from instead of the quantiles (a baseline that bootstraps each
            unit's own history, as the policy backtest does), or None.
        provenance: where the forecast came from, written to the run's meta and every recommendation's
            evidence (:data:`PROVENANCE_COLUMNS`: stage, reconciliation method, data watermark, grid,
            how channels were combined); keys not listed there are kept in the meta only.
    """

    levels: np.ndarray
    values: np.ndarray
    version: str
    model_version: str | None
    source: str
    history: HistoryDemand | None = None
    provenance: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.shape(self.values)[0]
        if self.history is not None and self.history.n_units != n:
            raise ValueError(f"Forecast: history has {self.history.n_units} units but values has {n}")

    def demand(self) -> QuantileDemand | HistoryDemand:
        """The demand source the simulation draws from: the history when given, else the quantiles."""
        return self.history if self.history is not None else QuantileDemand(self.levels, self.values)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Money available per group of units for this review.

    Attributes:
        by: unit column grouping the budget (``supplier_id``, ``buyer``, ``location_id``) or None for one
            total.
        limits: per group value (a mapping) or one total (a number); groups not listed are unlimited.
    """

    by: str | None
    limits: dict[str, float] | float


@dataclasses.dataclass(frozen=True)
class Capacity:
    """Room per location (units, or volume when ``volume_column`` names a per-unit volume column)."""

    limits: dict[str, float]
    by: str = "location_id"
    volume_column: str | None = None


@dataclasses.dataclass(frozen=True)
class PlanConfig:
    """Parameters of a planning run.

    Attributes:
        period_days: days per forecast period (1 daily, 7 weekly, 30.44 monthly: the forecast's grid).
        n_paths: Monte-Carlo paths per unit.
        seed: seed of the simulation (same seed, same plan).
        chunk_size: units per chunk of the simulation.
        stockout_threshold: stockout probability that raises a ``stockout_risk`` exception.
        overstock_cover_periods: periods of cover beyond which stock is excess.
        transfer_cost_rate: cost of moving one unit, as a share of its unit cost.
        expedite_premium: extra cost per unit of expediting / an extra order, share of unit cost.
        risk_quantile: quantile of demand before the next delivery used for transfer shortfalls.
        crossing: every order draws its own lead time, so orders may cross (suppliers whose deliveries are
            independent); False: one lead time per path (orders arrive in sequence; over-stocks when lead
            times are independent per order).
        service_group: a unit column whose values group units sharing one fill target (``"all"``: every
            unit in one group): each group's demand-weighted simulated fill rate meets the demand-weighted
            mean of its units' targets with the least expected on-hand, each unit's own fill rate allocated
            where stock buys the most service (``kernels.service_menu``); None: every unit meets its own.
        unit_fill_floor: with ``service_group``, no unit's allocated fill rate falls below this.
    """

    period_days: float = 7
    n_paths: int = 256
    seed: int = 0
    chunk_size: int = 100_000
    stockout_threshold: float = 0.2
    overstock_cover_periods: float = 12.0
    transfer_cost_rate: float = 0.05
    expedite_premium: float = 0.25
    risk_quantile: float = 0.9
    crossing: bool = True
    service_group: str | None = None
    unit_fill_floor: float = 0.8

    def __post_init__(self) -> None:
        if not 0 <= self.unit_fill_floor < 0.99:
            raise ValueError(
                f"PlanConfig: unit_fill_floor={self.unit_fill_floor}, expected a value in [0, 0.99)"
            )
        if self.n_paths < 16 or self.chunk_size < 1 or not self.period_days > 0:
            raise ValueError("PlanConfig: n_paths >= 16, chunk_size >= 1 and period_days > 0 are required")
        if not 0 < self.stockout_threshold < 1 or not 0 < self.risk_quantile < 1:
            raise ValueError("PlanConfig: stockout_threshold and risk_quantile must lie in (0, 1)")


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """Everything a planning run produced (frames; nothing is written).

    Attributes:
        units: one row per unit: levels, risks, raw and final order quantity, binding constraint.
        recommendations: one row per proposed action (kind purchase / transfer / allocation) with evidence
            columns and the route (action, route_queue, route_role, rule, reason).
        exceptions: routed exceptions (:data:`planning._exceptions.EXCEPTION_SCHEMA` plus the route).
        po_drafts: purchase-order drafts per supplier and location.
        meta: run parameters written with the run (forecast version, seed, counts).
    """

    units: pl.DataFrame
    recommendations: pl.DataFrame
    exceptions: pl.DataFrame
    po_drafts: pl.DataFrame
    meta: dict


def _validate_units(units: pl.DataFrame, n: int) -> pl.DataFrame:
    missing = set(UNIT_COLUMNS) - set(units.columns)
    if missing:
        raise ValueError(
            f"planning units: missing column(s) {sorted(missing)}; expected {sorted(UNIT_COLUMNS)}"
        )
    if units.height != n:
        raise ValueError(f"planning units: {units.height} rows but the forecast has {n} units")
    u = units.with_columns([pl.col(c).cast(t) for c, t in UNIT_COLUMNS.items()])
    checks = [
        ("fill_target", (pl.col("fill_target") <= 0) | (pl.col("fill_target") >= 1), "a value in (0, 1)"),
        ("review_periods", pl.col("review_periods") < 1, "an integer >= 1"),
        ("pack_size", pl.col("pack_size") < 1, "a number >= 1"),
        ("unit_cost", pl.col("unit_cost") < 0, "a number >= 0"),
        ("on_hand", pl.col("on_hand").is_nan(), "a number"),
    ]
    for col, bad, expected in checks:
        rows = u.with_row_index("_row").filter(bad | pl.col(col).is_null())
        if rows.height:
            r = rows.row(0, named=True)
            raise ValueError(
                f"planning units row {r['_row']} ({r['sku_id']} at {r['location_id']}): "
                f"{col}={r[col]!r}, expected {expected}"
            )
    return u


def plan(
    units: pl.DataFrame,
    forecast: Forecast,
    lead_time_pmf: np.ndarray,
    *,
    as_of: date,
    lead_time_counts: np.ndarray | None = None,
    config: PlanConfig = PlanConfig(),
    rules: RuleSet | None = None,
    budgets: tuple[Budget, ...] = (),
    capacities: tuple[Capacity, ...] = (),
    confirmed_supply: pl.DataFrame | None = None,
    extra_exceptions: pl.DataFrame | None = None,
    unit_ids: np.ndarray | None = None,
) -> PlanResult:
    """Plan every unit for the review of ``as_of``.

    Args:
        units: planning units, columns :data:`UNIT_COLUMNS` (plus optional ``region``, ``lead_time_source``,
            ``effective_unit_cost``, ``runner_up_id``, ``customer_committed``, ``stock_age_days`` and any
            budget / capacity grouping columns), row i matching forecast row i.
        forecast: the forecast distribution.
        lead_time_pmf: (N, K) lead-time distribution in periods of each unit's chosen supplier.
        as_of: planning date (period 0 starts here).
        lead_time_counts: (N, K) Dirichlet parameters of each unit's lead-time distribution (deliveries per
            period bin plus prior pseudo-deliveries, see :func:`planning._inputs.inputs_from_frames`): each
            Monte-Carlo path then draws its own lead-time distribution, so the uncertainty about a term's
            delay tail counts; None: ``lead_time_pmf`` is taken as known.
        config: run parameters.
        rules: routing rules (None: everything is routed by the built-in default, auto-approve).
        budgets: shared money limits.
        capacities: shared room limits.
        confirmed_supply: sku_id, confirmed_qty for SKUs whose supplier confirmed less than asked.
        extra_exceptions: further exceptions (supplier, forecast anomaly, identity) to route with the run's
            own.
        unit_ids: (N,) the units' rows in the whole run when this call plans a partition of it (each unit
            then draws the same Monte-Carlo paths as in one call over all units); None: 0..N-1.

    Returns:
        :class:`PlanResult`.
    """
    u, arr = _unit_arrays(units, forecast, lead_time_pmf, lead_time_counts, unit_ids)
    group_name, group_target = None, None
    if config.service_group is not None:
        group_name, group_target, arr.target = _group_targets(
            u, arr.target, arr.lot, lambda sl: _samples(arr, config, sl), config
        )
    # the simulation draws lead times in whole periods (a 10-day lead time is a month on a monthly grid);
    # the stockout-risk check scales each path's lead-time demand to the unrounded mean lead time
    lt_ratio = _lead_time_ratio(u, arr.pmf, arr.counts, config.period_days)
    out, bound, increments = _levels_and_orders(arr, config, bool(budgets or capacities), lt_ratio)
    q = out["q"]
    bound_name = np.asarray(BOUND_NAMES, dtype=object)[bound]
    if increments:
        unit_of, step, size, gain = (np.concatenate(x) for x in zip(*increments, strict=True))
        q, bound_name = apply_constraints(
            u, q, bound_name, arr.pack, arr.moq, arr.cost, unit_of, step, size, gain, budgets, capacities
        )
    unit_frame = _unit_frame(u, arr, out, q, bound_name, group_name, group_target, forecast, as_of, config)
    recommendations, exceptions, po_drafts = decisions(
        unit_frame,
        (arr.pmf, arr.counts, arr.review, arr.ids),
        out["d_l_risk"],
        forecast,
        config,
        rules,
        confirmed_supply,
        extra_exceptions,
    )
    meta = _run_meta(as_of, forecast, config, unit_frame.height, arr.counts is not None, rules, unit_frame)
    meta.update(
        n_recommendations=recommendations.height, n_exceptions=exceptions.height, n_po_drafts=po_drafts.height
    )
    return PlanResult(
        units=unit_frame,
        recommendations=recommendations,
        exceptions=exceptions,
        po_drafts=po_drafts,
        meta=meta,
    )


@dataclasses.dataclass
class _UnitArrays:
    """The planning units as arrays (N,) in forecast row order, and the demand and lead times to simulate."""

    demand: QuantileDemand | HistoryDemand
    pmf: np.ndarray
    counts: np.ndarray | None
    position: np.ndarray
    pack: np.ndarray
    moq: np.ndarray
    max_qty: np.ndarray
    cost: np.ndarray
    target: np.ndarray
    review: np.ndarray
    kinds: np.ndarray
    mean_per_period: np.ndarray  # (N, H)
    lot: np.ndarray
    ids: np.ndarray  # the units' rows in the whole run (keys of their Monte-Carlo paths)


def _unit_arrays(
    units: pl.DataFrame,
    forecast: Forecast,
    lead_time_pmf: np.ndarray,
    lead_time_counts: np.ndarray | None,
    unit_ids: np.ndarray | None = None,
) -> tuple[pl.DataFrame, _UnitArrays]:
    """Validate the units and lead times; the arrays the simulation and the order rules read."""
    n = np.asarray(forecast.values).shape[0]
    ids = np.arange(n) if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
    u = _validate_units(units, n)
    pmf, counts = check_lead_times(lead_time_pmf, lead_time_counts, n)
    demand = forecast.demand()
    col = lambda c: u[c].to_numpy().astype(np.float64)  # noqa: E731
    on_hand, on_order, back, committed = col("on_hand"), col("on_order"), col("backorders"), col("committed")
    max_qty = col("max_order_qty")
    pack, moq = col("pack_size"), col("moq")
    review = u["review_periods"].to_numpy().astype(np.int64)
    mean_per_period = demand.mean()  # (N, H)
    h = mean_per_period.shape[1]
    mean_review = np.take_along_axis(
        np.cumsum(mean_per_period, axis=1), np.minimum(review, h)[:, None] - 1, axis=1
    )[:, 0]
    arr = _UnitArrays(
        demand=demand,
        pmf=pmf,
        counts=counts,
        position=on_hand + on_order - back - committed,
        pack=pack,
        moq=moq,
        max_qty=np.where(np.isnan(max_qty) | (max_qty <= 0), np.inf, max_qty),
        cost=col("unit_cost"),
        target=col("fill_target"),
        review=review,
        kinds=kind_codes(u),
        mean_per_period=mean_per_period,
        lot=effective_lot(pack, moq, mean_review),
        ids=ids,
    )
    return u, arr


def _samples(arr: _UnitArrays, config: PlanConfig, sl: slice) -> ProtectionSamples:
    """The engine's paths of the units ``sl``, each keyed by its row in the whole run (``arr.ids``)."""
    return policy_samples(
        arr.demand.rows(sl),
        arr.pmf[sl],
        arr.review[sl],
        config.n_paths,
        config.seed,
        unit_ids=arr.ids[sl],
        crossing=config.crossing,
        lead_time_counts=None if arr.counts is None else arr.counts[sl],
    )


def _lead_time_days(u: pl.DataFrame, period_days: float) -> np.ndarray:
    """(N,) mean lead time in days, unrounded.

    Observed (``lead_time_mean_days``) where given, else the simulation's mean in periods times the period.
    """
    periods = u["lead_time_mean"].to_numpy().astype(np.float64) * period_days
    if "lead_time_mean_days" not in u.columns:
        return periods
    days = u["lead_time_mean_days"].cast(pl.Float64).to_numpy()
    return np.where(np.isfinite(days) & (days > 0), days, periods)


def _lead_time_ratio(u: pl.DataFrame, pmf: np.ndarray, counts: np.ndarray | None, period_days: float):
    """(N,) unrounded mean lead time over the simulated one (whole periods), at most 1."""
    weight = pmf if counts is None else counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
    simulated = (weight * np.arange(weight.shape[1])).sum(axis=1) * period_days
    true = _lead_time_days(u, period_days)
    return np.where(simulated > 0, np.clip(true / np.maximum(simulated, 1e-12), 0.0, 1.0), 1.0)


def _exceedance(d_l, threshold: np.ndarray) -> np.ndarray:
    """(N,) share of paths whose lead-time demand ``d_l`` (N, P) exceeds ``threshold`` (N,), as NumPy."""
    from kernels import get_array_module

    xp = get_array_module(d_l)
    share = (d_l > xp.asarray(threshold, dtype=d_l.dtype)[:, None]).mean(axis=1)
    return np.asarray(share.get() if hasattr(share, "get") else share, dtype=np.float64)


_OUT = ("S", "fill_s", "fill_ip", "p_so", "mean_lr", "mean_r", "onhand_s", "d_lr_p05", "d_lr_p50", "d_lr_p95")
_OUT += ("d_l_risk", "raw", "q", "p_so_lt")


def _levels_and_orders(
    arr: _UnitArrays, config: PlanConfig, constrained: bool, lt_ratio: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple]]:
    """Simulate chunk by chunk: levels, risks and rounded orders per unit.

    Under shared constraints also the order increments with the expected units each one serves, from the
    same paths.

    Returns:
        ``(out, bound, increments)``: (N,) arrays by name (:data:`_OUT`), the rounding term that bound each
        order (codes of ``BOUND_NAMES``), and per chunk ``(unit_of, step, size, gain)``.
    """
    n = arr.position.shape[0]
    out = {k: np.empty(n) for k in _OUT}
    out["lt_ratio"] = lt_ratio
    bound = np.zeros(n, dtype=np.int8)
    increments = []
    for c0 in range(0, n, config.chunk_size):
        sl = slice(c0, min(c0 + config.chunk_size, n))
        smp = _samples(arr, config, sl)
        lv = order_up_to_levels(
            smp,
            arr.target[sl],
            arr.position[sl],
            arr.lot[sl],
            quantile_levels=(0.05, 0.5, 0.95, config.risk_quantile),
            in_place=True,
        )
        smp = dataclasses.replace(smp, is_sorted=True)
        out["S"][sl], out["fill_s"][sl], out["fill_ip"][sl] = (
            lv.order_up_to,
            lv.fill_rate_at_level,
            lv.fill_rate_no_order,
        )
        out["p_so"][sl], out["mean_lr"][sl], out["mean_r"][sl] = (
            lv.stockout_probability,
            lv.mean_protection_demand,
            lv.mean_review_demand,
        )
        out["onhand_s"][sl] = lv.expected_on_hand_at_level
        qs = lv.protection_quantiles
        out["d_lr_p05"][sl], out["d_lr_p50"][sl], out["d_lr_p95"][sl] = qs[:, 0], qs[:, 1], qs[:, 2]
        out["d_l_risk"][sl] = lv.lead_time_quantiles[:, 3]
        out["p_so_lt"][sl] = _exceedance(smp.d_l, arr.position[sl] / np.maximum(lt_ratio[sl], 1e-12))
        out["raw"][sl], out["q"][sl], bound[sl] = policy_orders(
            arr.kinds[sl],
            lv.order_up_to,
            lv.mean_review_demand,
            arr.position[sl],
            arr.pack[sl],
            arr.moq[sl],
            arr.max_qty[sl],
        )
        if constrained:  # what each increment of the order buys: expected units served, from the same paths
            unit_of, step, qty_after, size = order_increments(out["q"][sl], arr.pack[sl], arr.moq[sl])
            y_hi = arr.position[sl][unit_of] + qty_after
            gain = expected_served(smp, unit_of, y_hi) - expected_served(smp, unit_of, y_hi - size)
            increments.append((unit_of + sl.start, step, size, np.maximum(gain, 0.0)))
        del smp
    return out, bound, increments


def _unit_frame(
    u, arr, out, q, bound_name, group_name, group_target, forecast, as_of, config
) -> pl.DataFrame:
    """The planned units: inputs, simulated levels and risks, the final order and its policy columns."""
    n = u.height
    mean_per_period = arr.mean_per_period
    mean_daily = mean_per_period[:, 0] / config.period_days
    days_cover = np.where(mean_daily > 0, np.maximum(arr.position, 0) / np.maximum(mean_daily, 1e-12), np.inf)
    unit_frame = u.with_columns(
        pl.Series("inventory_position", arr.position),
        pl.Series("allocated_fill_target", arr.target),
        pl.Series("service_group", [None] * n if group_name is None else group_name, dtype=pl.String),
        pl.Series(
            "group_fill_target", [None] * n if group_target is None else group_target, dtype=pl.Float64
        ),
        pl.Series("order_up_to", out["S"]),
        pl.Series("fill_rate_at_level", out["fill_s"]),
        pl.Series("fill_rate_no_order", out["fill_ip"]),
        pl.Series("stockout_probability", out["p_so"]),
        pl.Series("mean_protection_demand", out["mean_lr"]),
        pl.Series("mean_review_demand", out["mean_r"]),
        pl.Series("expected_on_hand_at_level", out["onhand_s"]),
        pl.Series("protection_demand_p05", out["d_lr_p05"]),
        pl.Series("protection_demand_p50", out["d_lr_p50"]),
        pl.Series("protection_demand_p95", out["d_lr_p95"]),
        pl.Series("raw_qty", out["raw"]),
        pl.Series("order_qty", q),
        pl.Series("bound_by", bound_name.astype(str)),
        pl.Series("order_value", q * arr.cost),
        pl.Series("mean_demand", mean_per_period[:, 0]),
        pl.Series("days_of_cover", days_cover),
        pl.Series("lead_time_days", _lead_time_days(u, config.period_days)),
        pl.Series("lead_time_stockout_probability", np.where(out["lt_ratio"] > 0, out["p_so_lt"], 0.0)),
        pl.Series("lot_size", arr.lot),
        pl.Series("forecast_p50_period0", _level_column(forecast, 0.5)),
    )
    unit_frame = policy_levels(
        unit_frame.with_columns(
            (
                pl.lit(as_of)
                + pl.duration(days=(pl.col("lead_time_mean") * config.period_days).round(0).cast(pl.Int64))
            ).alias("expected_arrival")
        )
    )
    if "customer_committed" not in unit_frame.columns:
        unit_frame = unit_frame.with_columns(pl.col("committed").alias("customer_committed"))
    return unit_frame


def _group_targets(
    u: pl.DataFrame, target: np.ndarray, lot: np.ndarray, samples, config: PlanConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allocate group fill targets to units (``kernels.service_menu``); first pass over the chunks.

    Returns:
        ``(group name, group target, allocated unit target)``, each (N,): the unit's level is then the least
        level meeting its allocated target, which is the menu's level for it (same paths, same search).
    """
    n = u.height
    col = config.service_group
    if col == "all":
        names = np.full(n, "all", dtype=object)
    elif col in u.columns:
        if u[col].null_count():
            row = int(u.with_row_index("_row").filter(pl.col(col).is_null())["_row"][0])
            raise ValueError(f"planning units row {row}: {col} is empty, expected the unit's service group")
        names = u[col].cast(pl.String).to_numpy().astype(object)
    else:
        raise ValueError(
            f"service_group={col!r}: not a planning-unit column (nor 'all'); expected one of "
            f"{sorted(u.columns)}"
        )
    uniq, code = np.unique(names.astype(str), return_inverse=True)
    taus = fill_grid(config.unit_fill_floor)
    k = taus.shape[0]
    level, fill, onhand, weight = np.empty((n, k)), np.empty((n, k)), np.empty((n, k)), np.empty(n)
    for c0 in range(0, n, config.chunk_size):
        sl = slice(c0, min(c0 + config.chunk_size, n))
        smp = samples(sl)
        smp.d_l.sort(axis=1)
        smp.d_lr.sort(axis=1)
        menu = service_menu(dataclasses.replace(smp, is_sorted=True), lot[sl], taus)
        level[sl], fill[sl], onhand[sl] = menu.order_up_to, menu.fill_rate, menu.on_hand
        weight[sl] = menu.weight
        del smp, menu
    menu = ServiceMenu(taus=taus, order_up_to=level, fill_rate=fill, on_hand=onhand, weight=weight)
    g_target, allocated, _ = allocated_targets(menu, code, target)
    return uniq[code].astype(object), g_target[code], allocated


def _level_column(forecast: Forecast, level: float) -> np.ndarray:
    lv = np.asarray(forecast.levels)
    j = int(np.argmin(np.abs(lv - level)))
    return np.asarray(forecast.values)[:, 0, j].astype(np.float64)


def _run_meta(
    as_of, forecast: Forecast, config: PlanConfig, n: int, posterior: bool, rules, unit_frame
) -> dict:
    """The run's parameters (``plan_runs.params``): forecast provenance, simulation, policy counts."""
    kinds = unit_frame["policy_kind"].value_counts().sort("policy_kind").iter_rows()
    return {
        "as_of": as_of.isoformat(),
        "forecast_version": forecast.version,
        "model_version": forecast.model_version,
        "forecast_source": forecast.source,
        "forecast": dict(forecast.provenance),
        "n_units": n,
        "n_paths": config.n_paths,
        "seed": config.seed,
        "crossing": config.crossing,
        "lead_time_posterior": posterior,
        "period_days": config.period_days,
        "policy_kinds": {k: int(c) for k, c in kinds},
        "routing": rules.source if rules is not None else None,
    }
