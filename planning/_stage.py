"""The plan stage of a tenant's cycle: stored forecasts and the tenant's tables in, a stored plan run out.

:func:`load_plan_inputs` reads the tenant's tables (``features.tables.read_tables``) and its stored
forecasts (``features.forecasts``: the reconciled run when there is a current one, else the base run;
``forecast_run`` picks one) and builds :class:`planning._inputs.PlanInputs` on the forecast's own grid:

* the period length comes from the run's ``freq`` (``features.forecasts.period_days``: 1, 7 or 30.44 days),
  so a daily tenant is planned in days; review periods and lead times are converted with it;
* each stocking point's horizon is its ``planning_units.horizon_periods`` capped by the run's horizon (a
  unit asking for more is planned on what exists, the last period repeated, and its evidence says so);
* future promotions (promotions facts from the planning date on) lift the promoted periods by the unit's
  lift from history (:mod:`planning._promotions`), unless the run's model already had them as inputs;
* channels are combined as :mod:`planning._stored` says; stocking points the run lacks are planned on the
  history bootstrap and marked.

Without any stored forecast the stage plans on the history bootstrap baseline (``baseline:bootstrap``, the
policy the backtest measures), on the grid read from the sales dates, and says so.

:func:`plan_stage` runs :func:`planning._plan.plan` on those inputs and stores the run
(:func:`planning._store.save_plan`); every recommendation's evidence names the forecast run, its stage,
model version or baseline, reconciliation method, data watermark, grid and period length.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy.engine import Engine

from features.forecasts import ForecastRunMeta, infer_freq, period_days, read_forecasts, sales_watermark
from planning._exceptions import EXCEPTION_SCHEMA, exception_keys
from planning._forecast_checks import BASELINE_LABEL, MIN_STORED, past_forecasts
from planning._inputs import BOOTSTRAP_SOURCE, PlanInputs, confirmed_supply_frame, inputs_from_frames
from planning._plan import Budget, Capacity, Forecast, PlanConfig, PlanResult, plan
from planning._promotions import model_used_promotions
from planning._routing import RuleSet, load_rules
from planning._store import identity_issues, save_plan
from planning._stored import StoredForecast, read_stored_forecast, select_forecast_run

__all__ = ["DEFAULT_ROUTING", "PlanStageResult", "load_plan_inputs", "plan_stage"]

#: The routing rules shipped with the project, used when neither the caller nor the tenant's profile names
#: a file.
DEFAULT_ROUTING = Path(__file__).resolve().parents[1] / "configs" / "routing.yaml"
#: Periods of sales history read (what the bootstrap pool, the baselines' windows, the bias check and the
#: promotion lift use at most): three years of weeks, five months of days.
HISTORY_PERIODS = 156
_SALES_COLUMNS = ("sku_id", "location_id", "channel_id", "date", "qty", "promo")
#: Horizon (periods) of the bootstrap baseline when no planning unit names one.
_DEFAULT_HORIZON = 12


@dataclasses.dataclass(frozen=True)
class PlanStageResult:
    """What one plan stage produced.

    Attributes:
        run_id: the stored plan run.
        tenant: whose plan.
        result: the plan (frames, as :func:`planning._plan.plan` returned them).
        forecast: metadata of the forecast run planned on; None when planned on the history bootstrap.
        forecast_source: ``model:<name>``, a baseline label, or ``baseline:bootstrap``.
        period_days: days per period the plan ran on.
        counts: units, recommendations by kind, routed / auto-approved, exceptions by type, PO drafts, order
            value, units per policy kind, units without a forecast, horizons capped, promoted periods.
        notes: what a reader should know (bootstrap fallback, stale forecast, units planned on the baseline).
    """

    run_id: str
    tenant: str
    result: PlanResult
    forecast: ForecastRunMeta | None
    forecast_source: str
    period_days: float
    counts: dict[str, Any]
    notes: tuple[str, ...] = ()


def load_plan_inputs(
    engine: Engine,
    tenant: str,
    *,
    settings=None,
    forecast_run: str | None = None,
    units: pl.DataFrame | None = None,
    confirmed_supply: pl.DataFrame | None = None,
) -> PlanInputs:
    """The inputs :func:`plan_stage` plans on (see the module docstring), for callers that plan themselves.

    Args:
        engine: the tenant's state store (migrated).
        tenant: whose data.
        settings: ``features.settings.Settings`` (fact store location); default ``get_settings()``.
        forecast_run: plan on this stored run (either stage; the reconciled one when both have it).
        units: only these stocking points (sku_id, location_id), e.g. the units a supplier response
            touched; None: every stocking point with sales.
        confirmed_supply: sku_id, confirmed_qty of orders a supplier confirmed short
            (:func:`planning._inputs.confirmed_supply_frame`); None: all supply as asked. Per order (with
            location_id, ordered_qty, sent_date: ``workflow.confirmations``), an order the unit's snapshot
            counts in ``on_order`` is taken out of it (counted once, as the confirmed supply).

    Returns:
        :class:`planning._inputs.PlanInputs` whose ``info`` says which forecast, grid and fallbacks were used.

    Raises:
        ValueError: the tenant has no sales in the stores; ``units`` names a stocking point without sales;
            ``confirmed_supply`` is malformed.
        LookupError: ``forecast_run`` names no stored run of the tenant.
    """
    from features.contracts import CONTRACTS
    from features.profile import get_profile
    from features.tables import read_tables

    if settings is None:
        from features.settings import get_settings

        settings = get_settings()
    facts_dir = Path(settings.facts_dir)
    meta = select_forecast_run(tenant, forecast_run, facts_dir=facts_dir)
    freq = meta.freq if meta is not None else get_profile(engine, tenant).freq
    sales, freq = _recent_sales(tenant, facts_dir, freq)
    if sales.height == 0:
        raise ValueError(
            f"tenant {tenant!r} has no sales in the stores: ingest its files first "
            "(replenish ingest KIND FILE)"
        )
    tables = read_tables(
        tenant, engine=engine, settings=settings, kinds=[k for k in CONTRACTS if k != "sales"]
    )
    tables["sales"] = sales
    issues = identity_issues(engine, tenant)
    watermark = sales_watermark(tenant, facts_dir=facts_dir)
    confirmed = confirmed_supply_frame(confirmed_supply)
    if confirmed is not None:  # per order (workflow.confirmations): count each order once
        netted = _net_of_confirmed_orders(confirmed_supply, tables["inventory"])
    if meta is None:
        inputs = _bootstrap_inputs(tenant, tables, issues, watermark, freq)
        return _narrow(inputs, units, confirmed, netted if confirmed is not None else None)
    pdays = period_days(meta.freq)
    rows = read_forecasts(meta.tenant, meta.stage, meta.run_id, level=None, facts_dir=facts_dir)
    first = rows.filter(pl.col("horizon") == 1)["date"].min()
    if first is None:
        raise ValueError(f"forecast run {meta.run_id!r} of tenant {tenant!r} has no horizon-1 rows")
    inputs = inputs_from_frames(
        **tables,
        period_days=pdays,
        freq=meta.freq,
        horizon=meta.horizon,
        as_of=first,
        ingest_issues=issues,
        past_forecasts=_past_forecasts(tenant, tables["sales"], meta.freq, facts_dir),
    )
    keys = inputs.units.select("sku_id", "location_id")
    stored = read_stored_forecast(meta, keys, facts_dir=facts_dir, rows=rows)
    inputs = _with_stored_forecast(inputs, stored, watermark, facts_dir)
    return _narrow(inputs, units, confirmed, netted if confirmed is not None else None)


def _net_of_confirmed_orders(orders: pl.DataFrame, inventory: pl.DataFrame) -> pl.DataFrame | None:
    """Per stocking point, the ordered quantity of confirmed orders its inventory snapshot already counts.

    A confirmed order enters the plan once, as the confirmed quantity the plan allocates. The unit's latest
    snapshot counts the order in ``on_order`` when it was taken on or after the day the order was sent (the
    system of record knew it); that ordered quantity is then taken out of ``on_order``. Rows without
    ``location_id``, ``ordered_qty`` and ``sent_date`` (SKU totals only) net nothing.

    Returns:
        sku_id, location_id, counted (ordered quantity to take out), or None when nothing is counted twice.
    """
    if not {"location_id", "ordered_qty", "sent_date"} <= set(orders.columns) or not inventory.height:
        return None
    keys = ["sku_id", "location_id"]
    latest = inventory.group_by(keys).agg(pl.col("date").max().cast(pl.Date).alias("_snap"))
    counted = (
        orders.join(latest, on=keys, how="inner")
        .filter(pl.col("sent_date").is_not_null() & (pl.col("sent_date").cast(pl.Date) <= pl.col("_snap")))
        .group_by(keys)
        .agg(pl.col("ordered_qty").cast(pl.Float64).sum().alias("counted"))
    )
    return counted if counted.height else None


def _narrow(
    inputs: PlanInputs,
    units: pl.DataFrame | None,
    confirmed: pl.DataFrame | None,
    counted: pl.DataFrame | None = None,
) -> PlanInputs:
    """The inputs of ``units`` only (when given), carrying the confirmed supply, ``on_order`` net of it."""
    if units is not None:
        inputs = inputs.subset(units)
    if confirmed is None:
        return inputs
    info = {**inputs.info, "confirmed_supply": {k: float(v) for k, v in confirmed.iter_rows()}}
    plan_units = inputs.units
    if counted is not None:
        keys = ["sku_id", "location_id"]
        plan_units = (
            plan_units.join(counted, on=keys, how="left", maintain_order="left")
            .with_columns((pl.col("on_order") - pl.col("counted").fill_null(0.0)).clip(0.0).alias("on_order"))
            .drop("counted")
        )
        hit = counted.join(inputs.units.select(keys), on=keys, how="semi")
        info["on_order_netted"] = {f"{a}|{b}": float(q) for a, b, q in hit.iter_rows()}
    return dataclasses.replace(inputs, units=plan_units, confirmed_supply=confirmed, info=info)


def _past_forecasts(tenant: str, sales: pl.DataFrame, freq: str, facts_dir: Path) -> pl.DataFrame:
    """The tenant's stored forecasts of periods that have actuals now (what the forecast checks judge)."""
    from features.forecasts import to_grid

    keys = sales.select("sku_id", "location_id").unique().sort("sku_id", "location_id")
    last = to_grid([sales["date"].max()], freq)[0]
    return past_forecasts(tenant, keys, last, facts_dir=facts_dir)


def plan_stage(
    engine: Engine,
    tenant: str,
    *,
    run_id: str | None = None,
    forecast_run: str | None = None,
    config: PlanConfig | None = None,
    rules: RuleSet | None = None,
    settings=None,
    progress: Callable[[int, int], None] | None = None,
    budgets: tuple[Budget, ...] = (),
    capacities: tuple[Capacity, ...] = (),
    units: pl.DataFrame | None = None,
    confirmed_supply: pl.DataFrame | None = None,
    extra_exceptions: pl.DataFrame | None = None,
    planner: Callable[..., PlanResult] | None = None,
) -> PlanStageResult:
    """Plan a tenant on its stored forecasts (or the history bootstrap) and store the run.

    Args:
        engine: the tenant's state store (migrated).
        tenant: whose plan.
        run_id: id of the plan run (a cycle's run id, at most 32 characters); an existing run of the tenant
            with this id is replaced. None: a new id.
        forecast_run: plan on this stored forecast run; None: the newest (reconciled when current).
        config: simulation parameters; its ``period_days`` is replaced by the forecast grid's (an
            ``overstock_cover_periods`` given in other periods keeps its length in days). None: defaults.
        rules: routing rules; None: the tenant profile's ``routing`` file, else :data:`DEFAULT_ROUTING`.
        settings: ``features.settings.Settings``; default ``get_settings()``.
        progress: ``progress(done, total)`` after each of the steps (read inputs, plan, save; total 3).
        budgets: shared money limits (:class:`planning._plan.Budget`).
        capacities: shared room limits (:class:`planning._plan.Capacity`).
        units: re-plan only these stocking points (sku_id, location_id); None: all.
        confirmed_supply: sku_id, confirmed_qty: supply a supplier confirmed short of what was asked; the
            plan allocates it across the SKU's locations by stockout risk and customer commitments
            (``allocation`` recommendations). Rows per order (``workflow.confirmations``) also take an order
            the unit's snapshot counts out of ``on_order`` (see :func:`load_plan_inputs`).
        extra_exceptions: further exceptions in :data:`planning._exceptions.EXCEPTION_SCHEMA` (a supplier's
            short, late or rejected confirmation) stored, keyed and routed with the run's own.
        planner: what plans the inputs, with ``plan``'s signature (default ``plan``; a partitioned planner,
            ``functools.partial(planning.plan_partitioned, map_parts=...)``, gives the same plan).

    Returns:
        :class:`PlanStageResult`.

    Raises:
        ValueError: no sales for the tenant, or invalid planning units.
        LookupError: ``forecast_run`` names no stored run.
        planning.RuleError: the profile's routing file is invalid.
    """
    tick = progress or (lambda _done, _total: None)
    tick(0, 3)
    inputs = load_plan_inputs(
        engine,
        tenant,
        settings=settings,
        forecast_run=forecast_run,
        units=units,
        confirmed_supply=confirmed_supply,
    )
    tick(1, 3)
    exceptions = inputs.exceptions
    if extra_exceptions is not None and extra_exceptions.height:
        extra = extra_exceptions.select([pl.col(c).cast(t) for c, t in EXCEPTION_SCHEMA.items()])
        exceptions = pl.concat([exceptions.select(list(EXCEPTION_SCHEMA)), extra])
    config = _config_for(config or PlanConfig(), inputs.period_days)
    if rules is None:
        rules = _default_rules(engine, tenant)
    result = (planner or plan)(
        inputs.units,
        inputs.forecast,
        inputs.lead_time_pmf,
        as_of=inputs.as_of,
        lead_time_counts=inputs.lead_time_counts,
        config=config,
        rules=rules,
        budgets=budgets,
        capacities=capacities,
        confirmed_supply=inputs.confirmed_supply,
        extra_exceptions=exceptions,
    )
    result = dataclasses.replace(
        result,
        exceptions=result.exceptions.with_columns(exception_keys(result.exceptions, tenant)),
    )
    result.meta["inputs"] = {k: v for k, v in inputs.info.items() if k != "forecast_meta"}
    if inputs.info.get("forecast_meta") is not None:
        result.meta["forecast_run_meta"] = inputs.info["forecast_meta"].to_json()
    tick(2, 3)
    plan_run = save_plan(engine, tenant, result, run_id=run_id)
    tick(3, 3)
    return PlanStageResult(
        run_id=plan_run,
        tenant=tenant,
        result=result,
        forecast=inputs.info.get("forecast_meta"),
        forecast_source=inputs.forecast.source,
        period_days=config.period_days,
        counts=_counts(result, inputs),
        notes=tuple(inputs.info.get("notes", ())) + _check_notes(inputs.info.get("forecast_checks", {})),
    )


def _check_notes(counts: dict) -> tuple[str, ...]:
    """What the bias and anomaly checks were judged against, when some units had no stored past forecast."""
    n = counts.get("baseline", 0)
    if not n:
        return ()
    return (
        f"{n} unit(s) have fewer than {MIN_STORED} stored forecasts of periods with actuals: their bias "
        f"and anomaly checks compare actuals with the {BASELINE_LABEL} baseline, not a forecast planned on",
    )


def _config_for(config: PlanConfig, pdays: float) -> PlanConfig:
    """``config`` on the data's period length; the overstock cover keeps its length in days."""
    if config.period_days == pdays:
        return config
    cover = config.overstock_cover_periods * config.period_days / pdays
    return dataclasses.replace(config, period_days=pdays, overstock_cover_periods=cover)


def _default_rules(engine: Engine, tenant: str) -> RuleSet | None:
    from features.profile import get_profile

    path = get_profile(engine, tenant).routing
    if path:
        return load_rules(path)
    return load_rules(DEFAULT_ROUTING) if DEFAULT_ROUTING.exists() else None


def _recent_sales(tenant: str, facts_dir: Path, freq: str | None) -> tuple[pl.DataFrame, str | None]:
    """The last :data:`HISTORY_PERIODS` periods of the tenant's sales, and the grid (``freq``, else read).

    Only the monthly partitions that hold them are read (unsorted: planning pivots them itself).
    """
    from features.facts import list_periods, read_sales

    months = list_periods("sales", tenant, facts_dir=facts_dir)
    if not months:
        return pl.DataFrame(schema={c: pl.String for c in _SALES_COLUMNS}), freq
    tail = read_sales(
        tenant,
        start=date.fromisoformat(f"{months[-min(3, len(months))]}-01"),
        columns=["date"],
        facts_dir=facts_dir,
    )["date"]
    if freq is None:
        dates = (
            tail
            if tail.n_unique() >= 3
            else read_sales(tenant, columns=["date"], facts_dir=facts_dir)["date"]
        )
        freq = infer_freq(dates)
    cutoff = tail.max() - timedelta(days=math.ceil(HISTORY_PERIODS * period_days(freq)))
    sales = read_sales(tenant, start=cutoff, columns=_SALES_COLUMNS, facts_dir=facts_dir)
    return sales.filter(pl.col("date") > cutoff), freq


def _bootstrap_inputs(tenant, tables, issues, watermark, freq) -> PlanInputs:
    """Inputs on the history bootstrap, on the grid of the sales dates (profile's ``freq`` when set)."""
    pdays = period_days(freq)
    pu = tables["planning_units"]
    horizon = (
        int(pu["horizon_periods"].max()) if pu.height and pu["horizon_periods"].max() else _DEFAULT_HORIZON
    )
    inputs = inputs_from_frames(**tables, period_days=pdays, freq=freq, horizon=horizon, ingest_issues=issues)
    lift = np.asarray(inputs.promo_lift)
    promo = np.asarray(inputs.promo_future)
    promotions = (
        f"baseline: promoted periods scaled by each unit's lift from history ({int(promo.sum())} periods)"
        if promo.any()
        else "no promotion in the horizon"
    )
    forecast = dataclasses.replace(
        inputs.forecast,
        provenance={
            "stage": None,
            "data_watermark": watermark,
            "freq": freq,
            "aggregation": "history summed over the location's channels (bootstrap)",
            "promotions": promotions,
        },
    )
    units = inputs.units
    if "horizon_periods" not in units.columns:
        units = units.with_columns(pl.lit(None, pl.Int64).alias("horizon_periods"))
    units = units.with_columns(
        pl.lit(BOOTSTRAP_SOURCE).alias("unit_forecast_source"),
        pl.lit(False).alias("cold_start"),
        pl.lit(None, pl.Int64).alias("horizon_used"),
        pl.lit(None, pl.String).alias("horizon_note"),
        pl.Series("promotion_adjustment", _promo_notes(promo, lift), dtype=pl.String),
    )
    note = (
        f"no stored forecasts for tenant {tenant!r}: planned on the history bootstrap baseline "
        f"({BOOTSTRAP_SOURCE}); run the forecast stage to plan on a model"
    )
    info = {
        **inputs.info,
        "forecast_meta": None,
        "forecast_run": None,
        "freq": freq,
        "period_days": pdays,
        "units_without_forecast": 0,
        "horizons_capped": 0,
        "notes": [note],
    }
    return dataclasses.replace(inputs, units=units, forecast=forecast, info=info)


def _with_stored_forecast(
    inputs: PlanInputs, stored: StoredForecast, watermark: str, facts_dir: Path
) -> PlanInputs:
    """Plan inputs whose forecast is the stored run's (horizon capped, promotions shifted, gaps filled)."""
    meta = stored.meta
    levels = np.asarray(meta.levels, dtype=np.float64)
    values = stored.values.copy()
    missing = ~stored.found
    if missing.any():  # stocking points the run lacks: the history bootstrap's quantiles at the run's levels
        boot = inputs.forecast.history.rows(np.flatnonzero(missing)).quantiles(levels)
        values[missing] = boot[:, : meta.horizon]
    asked, used, capped, horizon_notes = _horizons(inputs.units, values, meta.horizon)
    src = [s if f else BOOTSTRAP_SOURCE for s, f in zip(stored.unit_source, stored.found, strict=True)]
    priced_in = model_used_promotions(stored.source, {**_base_extra(meta, facts_dir), **meta.extra})
    shift = np.array([not (priced_in and s.startswith("model:")) for s in src])
    promo = np.asarray(inputs.promo_future)[:, : meta.horizon] & shift[:, None]
    lift = np.asarray(inputs.promo_lift)
    values = values * np.where(promo, lift[:, None], 1.0)[:, :, None]
    if priced_in:
        promotions = "model: promotions were known inputs (not shifted again)"
    elif promo.any():
        promotions = f"promoted periods scaled by each unit's lift from history ({int(promo.sum())} periods)"
    else:
        promotions = "no promotion in the horizon"
    current = meta.data_watermark == watermark
    forecast = Forecast(
        levels=levels,
        values=values,
        version=meta.run_id,
        model_version=meta.model_version,
        source=stored.source,
        provenance={
            "stage": meta.stage,
            "model_name": meta.model_name,
            "reconciliation_method": meta.method,
            "base_run": meta.base_run,
            "data_watermark": meta.data_watermark,
            "freq": meta.freq,
            "aggregation": stored.aggregation,
            "promotions": promotions,
            "created_at": meta.created_at,
            "current": current,
        },
    )
    units = inputs.units.with_columns(
        pl.Series("unit_forecast_source", src, dtype=pl.String),
        pl.Series("cold_start", stored.cold_start | missing),
        pl.Series("horizon_periods", asked, dtype=pl.Int64),
        pl.Series("horizon_used", used, dtype=pl.Int64),
        pl.Series("horizon_note", horizon_notes, dtype=pl.String),
        pl.Series("promotion_adjustment", _promo_notes(promo, lift), dtype=pl.String),
    )
    notes = []
    if missing.any():
        notes.append(
            f"{int(missing.sum())} stocking point(s) not in forecast run {meta.run_id!r}: planned on the "
            f"history bootstrap ({BOOTSTRAP_SOURCE}) and marked cold_start"
        )
    if capped:
        notes.append(
            f"{capped} unit(s) ask for more than the forecast's {meta.horizon} periods: planned on what "
            "exists"
        )
    if not current:
        notes.append(
            f"forecast run {meta.run_id!r} was made from sales {meta.data_watermark}, the stores now hold "
            f"{watermark}: newer sales are not in it (re-run the forecast stage)"
        )
    info = {
        **inputs.info,
        "forecast_meta": meta,
        "forecast_run": meta.run_id,
        "forecast_stage": meta.stage,
        "forecast_current": current,
        "freq": meta.freq,
        "period_days": inputs.period_days,
        "units_without_forecast": int(missing.sum()),
        "forecast_points_not_planned": stored.n_forecast_points - int(stored.found.sum()),
        "horizons_capped": capped,
        "promoted_periods": int(promo.sum()),
        "notes": notes,
    }
    return dataclasses.replace(inputs, units=units, forecast=forecast, info=info)


def _base_extra(meta: ForecastRunMeta, facts_dir: Path) -> dict:
    """The ``extra`` of the base run a reconciled run came from (what the model's inputs were), or {}."""
    if meta.stage != "reconciled" or not meta.base_run:
        return {}
    from features.forecasts import forecast_runs

    base = [m for m in forecast_runs(meta.tenant, "base", facts_dir=facts_dir) if m.run_id == meta.base_run]
    return dict(base[0].extra) if base else {}


def _horizons(units: pl.DataFrame, values: np.ndarray, horizon: int):
    """Cap each unit's horizon at the forecast's: steps past a unit's own horizon repeat its last step.

    Returns:
        ``(asked, used, n_capped, notes)``; ``values`` is changed in place.
    """
    n = units.height
    asked = (
        units["horizon_periods"].fill_null(horizon).to_numpy().astype(np.int64)
        if "horizon_periods" in units.columns
        else np.full(n, horizon, dtype=np.int64)
    )
    used = np.clip(asked, 1, horizon)
    for h in np.unique(used[used < horizon]):
        rows = used == h
        values[rows, h:] = values[rows, h - 1 : h]
    over = asked > horizon
    notes = [
        f"asked for {a} periods, the forecast has {horizon}: planned on {horizon}, the last repeated beyond"
        if o
        else None
        for a, o in zip(asked.tolist(), over.tolist(), strict=True)
    ]
    return asked, used, int(over.sum()), notes


def _promo_notes(promo: np.ndarray, lift: np.ndarray) -> list[str | None]:
    k = promo.sum(axis=1)
    return [
        f"x{lift[i]:.2f} in {int(k[i])} promoted period(s)" if k[i] else None for i in range(promo.shape[0])
    ]


def _counts(result: PlanResult, inputs: PlanInputs) -> dict[str, Any]:
    recs, exc = result.recommendations, result.exceptions
    return {
        "units": result.meta["n_units"],
        "recommendations": recs.height,
        "by_kind": {k: n for k, n in recs.group_by("kind").len().sort("kind").iter_rows()},
        "routed_recommendations": int((recs["action"] == "route").sum()),
        "auto_approved": int((recs["action"] == "auto_approve").sum()),
        "exceptions": {
            k: n for k, n in exc.group_by("exception_type").len().sort("exception_type").iter_rows()
        },
        "routed_exceptions": int((exc["action"] == "route").sum()),
        "forecast_checks": inputs.info.get("forecast_checks", {}),
        "po_drafts": result.po_drafts.height,
        "order_value": round(float(recs["order_value"].sum()), 2) if recs.height else 0.0,
        "policy_kinds": result.meta.get("policy_kinds", {}),
        "units_without_forecast": inputs.info.get("units_without_forecast", 0),
        "horizons_capped": inputs.info.get("horizons_capped", 0),
        "promoted_periods": inputs.info.get("promoted_periods", 0),
    }
