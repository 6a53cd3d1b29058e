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
    Constraint,
    HistoryDemand,
    ProtectionSamples,
    QuantileDemand,
    ServiceMenu,
    allocate_increments,
    allocated_targets,
    check_lead_times,
    effective_lot,
    expected_served,
    fill_grid,
    order_up_to_levels,
    policy_samples,
    service_menu,
)
from planning._evidence import PROVENANCE_COLUMNS
from planning._exceptions import EXCEPTION_SCHEMA, dedup_exceptions, overstock, stockout_risk
from planning._kinds import kind_codes, policy_levels, policy_orders
from planning._rounding import BOUND_NAMES
from planning._routing import RuleSet, route
from planning._supplier import draft_purchase_orders
from planning._supply import allocate_constrained_supply
from planning._transfers import POSITION_COLUMNS, propose_transfers

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


#: An order is split into at most this many increments for budget / capacity allocation.
MAX_INCREMENTS = 8


def _increments(
    q: np.ndarray, pack: np.ndarray, moq: np.ndarray, max_increments: int = MAX_INCREMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split each order into a first increment (the MOQ, at least one pack) and equal whole-pack steps.

    At most ``max_increments`` increments per order (steps of ``ceil(packs left / (max_increments - 1))``
    packs, the last one what remains), so that a million orders stay a few million increments.

    Returns:
        ``(unit_of, step, qty_after, size)``: flat (M,) arrays, increments contiguous per unit in step order;
        ``qty_after`` is the order quantity once the increment is taken, ``size`` the increment's quantity.
    """
    first = np.minimum(np.maximum(np.ceil(moq / pack) * pack, pack), q)
    packs_left = np.where(q > 0, np.rint((q - first) / pack), 0.0)
    step_packs = np.maximum(np.ceil(packs_left / max(max_increments - 1, 1)), 1.0)
    n_inc = np.where(q > 0, 1 + np.ceil(packs_left / step_packs), 0).astype(np.int64)
    unit_of = np.repeat(np.arange(q.shape[0]), n_inc)
    starts = np.cumsum(n_inc) - n_inc
    step = np.arange(unit_of.shape[0]) - np.repeat(starts, n_inc)
    qty_after = np.minimum(first[unit_of] + step * step_packs[unit_of] * pack[unit_of], q[unit_of])
    size = np.where(
        step == 0,
        first[unit_of],
        qty_after - np.minimum(first[unit_of] + (step - 1) * step_packs[unit_of] * pack[unit_of], q[unit_of]),
    )
    return unit_of, step, qty_after, size


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
    values = np.asarray(forecast.values)
    n = values.shape[0]
    ids = np.arange(n) if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
    u = _validate_units(units, n)
    pmf, counts = check_lead_times(lead_time_pmf, lead_time_counts, n)
    demand = forecast.demand()
    col = lambda c: u[c].to_numpy().astype(np.float64)  # noqa: E731
    on_hand, on_order, back, committed = col("on_hand"), col("on_order"), col("backorders"), col("committed")
    position = on_hand + on_order - back - committed
    pack, moq, max_qty, cost = col("pack_size"), col("moq"), col("max_order_qty"), col("unit_cost")
    max_qty = np.where(np.isnan(max_qty) | (max_qty <= 0), np.inf, max_qty)
    target = col("fill_target")
    review, kinds = u["review_periods"].to_numpy().astype(np.int64), kind_codes(u)
    mean_per_period = demand.mean()  # (N, H)
    h = mean_per_period.shape[1]
    mean_review = np.take_along_axis(
        np.cumsum(mean_per_period, axis=1), np.minimum(review, h)[:, None] - 1, axis=1
    )[:, 0]
    lot = effective_lot(pack, moq, mean_review)

    out = {
        k: np.empty(n)
        for k in (
            "S",
            "fill_s",
            "fill_ip",
            "p_so",
            "mean_lr",
            "mean_r",
            "onhand_s",
            "d_lr_p05",
            "d_lr_p50",
            "d_lr_p95",
            "d_l_risk",
            "raw",
            "q",
        )
    }
    bound = np.zeros(n, dtype=np.int8)
    constrained = bool(budgets or capacities)
    inc_parts = []  # per chunk: (unit_of, step, size, gain) of the order increments, for shared constraints

    def samples(sl: slice) -> ProtectionSamples:
        return policy_samples(
            demand.rows(sl),
            pmf[sl],
            review[sl],
            config.n_paths,
            config.seed,
            unit_ids=ids[sl],
            crossing=config.crossing,
            lead_time_counts=None if counts is None else counts[sl],
        )

    group_name, group_target = None, None
    if config.service_group is not None:
        group_name, group_target, target = _group_targets(u, target, lot, samples, config)
    for c0 in range(0, n, config.chunk_size):
        sl = slice(c0, min(c0 + config.chunk_size, n))
        smp = samples(sl)
        lv = order_up_to_levels(
            smp,
            target[sl],
            position[sl],
            lot[sl],
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
        out["raw"][sl], out["q"][sl], bound[sl] = policy_orders(
            kinds[sl], lv.order_up_to, lv.mean_review_demand, position[sl], pack[sl], moq[sl], max_qty[sl]
        )
        if constrained:  # what each increment of the order buys: expected units served, from the same paths
            unit_of, step, qty_after, size = _increments(out["q"][sl], pack[sl], moq[sl])
            y_hi = position[sl][unit_of] + qty_after
            gain = expected_served(smp, unit_of, y_hi) - expected_served(smp, unit_of, y_hi - size)
            inc_parts.append((unit_of + sl.start, step, size, np.maximum(gain, 0.0)))
        del smp

    raw, q = out["raw"], out["q"]
    bound_name = np.asarray(BOUND_NAMES, dtype=object)[bound]
    if constrained:
        unit_of, step, size, gain = (np.concatenate(x) for x in zip(*inc_parts, strict=True))
        q, bound_name = _apply_constraints(
            u, q, bound_name, pack, moq, cost, unit_of, step, size, gain, budgets, capacities
        )

    lt_mean = col("lead_time_mean")
    mean_daily = mean_per_period[:, 0] / config.period_days
    days_cover = np.where(mean_daily > 0, np.maximum(position, 0) / np.maximum(mean_daily, 1e-12), np.inf)
    unit_frame = u.with_columns(
        pl.Series("inventory_position", position),
        pl.Series("allocated_fill_target", target),
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
        pl.Series("raw_qty", raw),
        pl.Series("order_qty", q),
        pl.Series("bound_by", bound_name.astype(str)),
        pl.Series("order_value", q * cost),
        pl.Series("mean_demand", mean_per_period[:, 0]),
        pl.Series("days_of_cover", days_cover),
        pl.Series("lead_time_days", lt_mean * config.period_days),
        pl.Series("lot_size", lot),
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

    purchases = _evidence(unit_frame.filter(pl.col("order_qty") > 0), forecast, config, "purchase")
    recs = [purchases]
    if confirmed_supply is not None and confirmed_supply.height:
        recs.append(_constrained(unit_frame, confirmed_supply, forecast, pmf, counts, review, config, ids))
    if "region" in unit_frame.columns:
        recs.append(_transfers(unit_frame, out["d_l_risk"], forecast, config))
    recommendations = (
        pl.concat([r for r in recs if r.height], how="diagonal_relaxed")
        if any(r.height for r in recs)
        else purchases
    )
    exc = [
        stockout_risk(unit_frame, config.stockout_threshold),
        overstock(unit_frame, config.overstock_cover_periods),
    ]
    if extra_exceptions is not None and extra_exceptions.height:
        exc.append(extra_exceptions.select(list(EXCEPTION_SCHEMA)))
    exceptions = _with_owner(
        dedup_exceptions(pl.concat(exc)).with_columns(pl.col("exception_type").alias("kind")), unit_frame
    )
    recommendations, exceptions = _route_items(recommendations, rules), _route_items(exceptions, rules)
    po_lines = recommendations.filter(pl.col("kind") == "purchase")
    po_drafts = (
        draft_purchase_orders(po_lines)
        if po_lines.height
        else draft_purchase_orders(po_lines.with_columns(pl.col("expected_arrival").cast(pl.Date)))
    )
    meta = _run_meta(as_of, forecast, config, n, counts is not None, rules, unit_frame)
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


def _with_owner(exceptions: pl.DataFrame, unit_frame: pl.DataFrame) -> pl.DataFrame:
    """Exceptions with the ``owner_team`` of their stocking point (null where they name none)."""
    if "owner_team" not in unit_frame.columns:
        return exceptions.with_columns(pl.lit(None, dtype=pl.String).alias("owner_team"))
    owners = unit_frame.select("sku_id", "location_id", pl.col("owner_team").cast(pl.String)).unique(
        ["sku_id", "location_id"], keep="first", maintain_order=True
    )
    return exceptions.join(owners, on=["sku_id", "location_id"], how="left", maintain_order="left")


def _route_items(items: pl.DataFrame, rules: RuleSet | None) -> pl.DataFrame:
    """Route by ``rules``; without rules every item is auto-approved by the built-in default."""
    if rules is not None:
        return route(items, rules)
    return items.with_columns(
        pl.lit("auto_approve").alias("action"),
        pl.lit(None, pl.String).alias("route_queue"),
        pl.lit(None, pl.String).alias("route_role"),
        pl.lit("default").alias("rule"),
        pl.lit("no routing rules given: auto-approved by policy").alias("reason"),
    )


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


def _apply_constraints(u, q, bound_name, pack, moq, cost, unit_of, step, size, gain, budgets, capacities):
    """Cut orders to shared budgets and capacities by expected units served per unit of resource."""
    constraints = []
    for b in budgets:
        constraints.append(_constraint("budget", u, b.by, b.limits, unit_of, size * cost[unit_of]))
    for c in capacities:
        vol = u[c.volume_column].to_numpy().astype(np.float64) if c.volume_column else np.ones(q.shape[0])
        constraints.append(_constraint("capacity", u, c.by, c.limits, unit_of, size * vol[unit_of]))
    alloc = allocate_increments(unit_of, step, np.maximum(gain, 0.0), constraints, q.shape[0])
    taken_qty = np.zeros(q.shape[0])
    np.add.at(taken_qty, unit_of[step < alloc.taken[unit_of]], size[step < alloc.taken[unit_of]])
    q_new = taken_qty
    cut = q_new < q - 1e-9
    names = np.array([c.name for c in constraints], dtype=object)
    bound_name = np.where(cut & (alloc.blocked_by >= 0), names[np.maximum(alloc.blocked_by, 0)], bound_name)
    return q_new, bound_name


def _constraint(name, u, by, limits, unit_of, weight):
    if by is None:
        total = float(limits) if not isinstance(limits, dict) else float(sum(limits.values()))
        return Constraint(name, weight, np.zeros(unit_of.shape[0], dtype=np.int64), np.array([total]))
    if by not in u.columns:
        raise ValueError(f"{name}: units have no column {by!r} to group by")
    if not isinstance(limits, dict):
        raise ValueError(f"{name} by {by}: expected a mapping of {by} -> limit")
    keys = list(limits)
    code = (
        u[by]
        .cast(pl.String)
        .replace_strict(keys, list(range(len(keys))), default=-1, return_dtype=pl.Int64)
        .to_numpy()
    )
    return Constraint(name, weight, code[unit_of], np.array([float(limits[k]) for k in keys]))


_EVIDENCE_COLUMNS = (
    "forecast_version",
    "model_version",
    "forecast_source",
    "quantile_levels",
    "n_paths",
    "inventory_position",
    "on_hand",
    "on_order",
    "backorders",
    "committed",
    "lead_time_mean",
    "lead_time_std",
    "lead_time_source",
    "review_periods",
    "fill_target",
    "allocated_fill_target",
    "service_group",
    "group_fill_target",
    "order_up_to",
    "fill_rate_at_level",
    "fill_rate_no_order",
    "stockout_probability",
    "mean_protection_demand",
    "protection_demand_p05",
    "protection_demand_p50",
    "protection_demand_p95",
    "expected_on_hand_at_level",
    "forecast_p50_period0",
    "raw_qty",
    "lot_size",
    "bound_by",
    "effective_unit_cost",
    "runner_up_id",
)


def _evidence(frame: pl.DataFrame, forecast: Forecast, config: PlanConfig, kind: str) -> pl.DataFrame:
    levels = [float(x) for x in np.asarray(forecast.levels)]
    add = [
        pl.lit(kind).alias("kind"),
        pl.lit(forecast.version).alias("forecast_version"),
        pl.lit(forecast.model_version, dtype=pl.String).alias("model_version"),
        pl.lit(forecast.source).alias("forecast_source"),
        pl.lit(levels, dtype=pl.List(pl.Float64)).alias("quantile_levels"),
        pl.lit(config.n_paths).alias("n_paths"),
        pl.lit(float(config.period_days)).alias("period_days"),
        pl.col("fill_rate_at_level").alias("fill_rate"),
        *[
            pl.lit(None if v is None else str(v), dtype=pl.String).alias(PROVENANCE_COLUMNS[k])
            for k, v in forecast.provenance.items()
            if k in PROVENANCE_COLUMNS
        ],
    ]
    for c, default in (
        ("lead_time_source", "given"),
        ("effective_unit_cost", None),
        ("runner_up_id", None),
        ("region", None),
        ("owner_team", None),
    ):
        if c not in frame.columns:
            add.append(
                pl.lit(default, dtype=pl.Float64 if c == "effective_unit_cost" else pl.String).alias(c)
            )
    return frame.with_columns(add)


def _constrained(unit_frame, confirmed, forecast, pmf, counts, review, config, unit_ids):
    """Allocation recommendations for SKUs whose supplier confirmed less than the plan asks."""
    ids = unit_frame.with_row_index("_i").filter(
        (pl.col("order_qty") > 0) & pl.col("sku_id").is_in(confirmed["sku_id"].implode())
    )
    if not ids.height:
        return pl.DataFrame()
    idx = ids["_i"].to_numpy().astype(np.int64)
    smp = policy_samples(
        forecast.demand().rows(idx),
        pmf[idx],
        review[idx],
        config.n_paths,
        config.seed,
        unit_ids=unit_ids[idx],
        crossing=config.crossing,
        lead_time_counts=None if counts is None else counts[idx],
    )
    req = ids.select(
        "sku_id",
        "location_id",
        pl.col("order_qty").alias("requested_qty"),
        pl.col("customer_committed").alias("committed_qty"),
        pl.col("inventory_position").alias("position"),
        "pack_size",
    )
    alloc = allocate_constrained_supply(req, confirmed, smp)
    rec = ids.drop("_i").with_columns(
        alloc["allocated_qty"].alias("allocated_qty"),
        alloc["constrained"].alias("constrained"),
        pl.col("order_qty").alias("requested_qty"),
    )
    rec = rec.with_columns(
        pl.col("allocated_qty").alias("order_qty"),
        (pl.col("allocated_qty") * pl.col("unit_cost")).alias("order_value"),
        pl.lit("supply").alias("bound_by"),
    )
    return _evidence(rec, forecast, config, "allocation")


def _transfers(unit_frame, d_l_risk, forecast, config):
    """Transfer recommendations between locations of a region (see :mod:`planning._transfers`)."""
    pos = unit_frame.with_columns(
        pl.Series(
            "shortfall", np.maximum(np.ceil(d_l_risk - unit_frame["inventory_position"].to_numpy()), 0.0)
        ),
        (pl.col("unit_cost") * config.transfer_cost_rate).alias("transfer_cost_per_unit"),
        (pl.col("unit_cost") * config.expedite_premium).alias("alternative_cost_per_unit"),
    )
    t = propose_transfers(pos.select(POSITION_COLUMNS))
    if not t.height:
        return pl.DataFrame()
    # Evidence of a transfer: the receiver's simulation and inventory, plus the donor and the cost comparison.
    receiver = unit_frame.drop("order_qty", "order_value", "region", "bound_by")
    rec = t.join(
        receiver, left_on=["sku_id", "to_location_id"], right_on=["sku_id", "location_id"], how="left"
    )
    if "policy_kind" in rec.columns:  # a manual unit gets no automatic action, transfers included
        rec = rec.filter(pl.col("policy_kind") != "manual")
    rec = rec.with_columns(
        pl.col("to_location_id").alias("location_id"),
        pl.col("transfer_qty").alias("order_qty"),
        pl.col("transfer_cost").alias("order_value"),
        pl.lit("transfer").alias("bound_by"),
        pl.lit(None, dtype=pl.String).alias("supplier_id"),
    )
    return _evidence(rec, forecast, config, "transfer")
