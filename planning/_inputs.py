"""Planning inputs from the data layer's frames.

The frames follow the ingest contracts: sales, skus, locations, supplier terms, observed lead times, inventory
snapshots, purchase orders, planning units. Builds, per SKU x location stocking point: the baseline demand
source (where no model forecast is given: a bootstrap of the unit's own last :data:`POOL_PERIODS`
non-promoted periods, the policy the backtest measures, reported as empirical quantiles of that pool), the
chosen supplier (:func:`planning._supplier.choose_supplier`) with its lead-time statistics, the Dirichlet
counts of its lead-time distribution (its deliveries per period bin plus :data:`LT_PRIOR` pseudo-deliveries
of the pooled distribution of all terms) and their posterior predictive distribution, the inventory position
components and the service target; and the exceptions that come from the data rather than the plan (late
purchase orders on the date of the data, lead-time drift, identity problems, and forecast anomalies and bias
drift of the stored past forecasts against the actuals, the baseline where a unit has none:
:mod:`planning._forecast_checks`).
"""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl

from kernels import HistoryDemand
from planning._baseline import DEFAULT_LEVELS
from planning._bootstrap import history_pool
from planning._exceptions import (
    bias_drift,
    explained_by_bias,
    forecast_anomalies,
    identity_exceptions,
    late_purchase_orders,
    lead_time_drift,
)
from planning._forecast_checks import BAND_LEVEL, check_periods, forecast_pairs
from planning._history import (
    demand_matrix,
    dirichlet_strength,
    lead_time_bin_counts,
    lead_time_pmf,
    lead_time_stats,
)
from planning._kinds import DEFAULT_KIND, POLICY_KINDS
from planning._plan import Forecast
from planning._promotions import future_periods, promotion_calendar, promotion_lift
from planning._supplier import choose_supplier

__all__ = [
    "BOOTSTRAP_SOURCE",
    "LT_PRIOR",
    "POOL_PERIODS",
    "PlanInputs",
    "confirmed_supply_frame",
    "inputs_from_frames",
    "lead_time_prior_strength",
]

#: Evidence label of the baseline demand source built here.
BOOTSTRAP_SOURCE = "baseline:bootstrap"
#: Periods of history (non-promoted ones) a unit's demand is resampled from (two years of weeks).
POOL_PERIODS = 104
#: Weight of the pooled lead-time distribution of all terms, in deliveries (the Dirichlet prior), where too
#: few terms have deliveries to estimate it (:func:`planning._history.dirichlet_strength`).
LT_PRIOR = 4.0


@dataclasses.dataclass(frozen=True)
class PlanInputs:
    """Arguments of :func:`planning._plan.plan` built from frames.

    Attributes:
        units: planning-unit frame (:data:`planning._plan.UNIT_COLUMNS` plus region, lead_time_source, ...).
        forecast: the forecast distribution (baseline here, with its history source).
        lead_time_pmf: (N, K) lead-time distribution per unit (the posterior predictive of
            ``lead_time_counts`` where those are given).
        as_of: the planning date (start of the first future period).
        exceptions: data exceptions (supplier, identity, forecast anomalies) to route with the plan's own.
        lead_time_counts: (N, K) Dirichlet parameters of each unit's lead-time distribution, for
            :func:`planning._plan.plan`'s ``lead_time_counts``; None when no delivery was observed at all.
        period_days: days per period of the demand (the grid the plan runs on).
        promo_future: (N, H) bool, future period of each unit with a known promotion.
        promo_lift: (N,) promotion lift of each unit (its history shrunk to its category's,
            :func:`planning._promotions.promotion_lift`).
        info: how the inputs were made (forecast run, grid, counts), written to the plan run's meta by
            :func:`planning._stage.plan_stage`.
        confirmed_supply: sku_id, confirmed_qty: what suppliers confirmed of open orders short of what was
            asked (:func:`confirmed_supply_frame`); :func:`planning._plan.plan` splits it across the SKU's
            locations by stockout risk and customer commitments. None: every order is confirmed in full.
    """

    units: pl.DataFrame
    forecast: Forecast
    lead_time_pmf: np.ndarray
    as_of: date
    exceptions: pl.DataFrame
    lead_time_counts: np.ndarray | None = None
    period_days: float = 7
    promo_future: np.ndarray | None = None
    promo_lift: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)
    confirmed_supply: pl.DataFrame | None = None

    def subset(self, units: pl.DataFrame) -> PlanInputs:
        """These inputs for the stocking points of ``units`` (sku_id, location_id) only, in their row order.

        A re-plan of the units a supplier response touched runs on the rows a full plan would have given them
        (same forecast, lead-time distribution, position); the simulation's random streams follow the row
        order, so its figures match the full plan's up to sampling noise.

        Raises:
            ValueError: ``units`` lacks the key columns or names a stocking point not in these inputs.
        """
        missing = {"sku_id", "location_id"} - set(units.columns)
        if missing:
            raise ValueError(f"units: missing column(s) {sorted(missing)}")
        rows = self.units.select("sku_id", "location_id").with_row_index("_i")
        want = units.select("sku_id", "location_id").unique(maintain_order=True)
        hit = want.join(rows, on=["sku_id", "location_id"], how="left", maintain_order="left")
        unknown = hit.filter(pl.col("_i").is_null())
        if unknown.height:
            r = unknown.row(0, named=True)
            raise ValueError(
                f"units: no stocking point sku_id={r['sku_id']!r} location_id={r['location_id']!r} in the "
                "tenant's plan inputs (no sales there)"
            )
        idx = np.sort(hit["_i"].to_numpy().astype(np.int64))
        f = self.forecast
        forecast = dataclasses.replace(
            f,
            values=np.asarray(f.values)[idx],
            history=None if f.history is None else f.history.rows(idx),
        )
        keys = self.units[idx].select("sku_id", "location_id")
        exc = self.exceptions
        if exc.height:  # data exceptions of these units (and of their SKUs' suppliers)
            exc = exc.filter(
                pl.col("sku_id").is_in(keys["sku_id"].implode())
                & (
                    pl.col("location_id").is_null()
                    | pl.col("location_id").is_in(keys["location_id"].implode())
                )
            )
        pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
        return dataclasses.replace(
            self,
            units=self.units[idx],
            forecast=forecast,
            lead_time_pmf=self.lead_time_pmf[idx],
            lead_time_counts=pick(self.lead_time_counts),
            promo_future=pick(self.promo_future),
            promo_lift=pick(self.promo_lift),
            exceptions=exc,
            info={**self.info, "units_subset": int(idx.size)},
        )


def confirmed_supply_frame(confirmed: pl.DataFrame | None) -> pl.DataFrame | None:
    """Validate and total confirmed supply per SKU (one row per sku_id with ``confirmed_qty``).

    Args:
        confirmed: sku_id, confirmed_qty (>= 0, finite); several rows of a SKU (several purchase-order lines)
            add up. None or empty: None.

    Raises:
        ValueError: a column is missing or a quantity is negative, NaN or infinite (naming the row).
    """
    if confirmed is None or not confirmed.height:
        return None
    missing = {"sku_id", "confirmed_qty"} - set(confirmed.columns)
    if missing:
        raise ValueError(f"confirmed_supply: missing column(s) {sorted(missing)}")
    q = confirmed.with_row_index("_row").with_columns(pl.col("confirmed_qty").cast(pl.Float64))
    bad = q.filter(
        pl.col("sku_id").is_null()
        | pl.col("confirmed_qty").is_null()
        | ~pl.col("confirmed_qty").is_finite()
        | (pl.col("confirmed_qty") < 0)
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise ValueError(
            f"confirmed_supply row {r['_row']}: sku_id={r['sku_id']!r} confirmed_qty={r['confirmed_qty']!r}, "
            "expected a SKU and a finite quantity >= 0"
        )
    return q.group_by("sku_id").agg(pl.col("confirmed_qty").sum()).sort("sku_id")


def inputs_from_frames(
    *,
    sales: pl.DataFrame,
    skus: pl.DataFrame,
    locations: pl.DataFrame,
    supplier_terms: pl.DataFrame,
    lead_times: pl.DataFrame,
    inventory: pl.DataFrame,
    purchase_orders: pl.DataFrame,
    planning_units: pl.DataFrame,
    period_days: float = 7,
    horizon: int = 12,
    forecast_version: str | None = None,
    ingest_issues: pl.DataFrame | None = None,
    customer_commitments: pl.DataFrame | None = None,
    promotions: pl.DataFrame | None = None,
    freq: str | None = None,
    as_of: date | None = None,
    past_forecasts: pl.DataFrame | None = None,
    **_ignored: pl.DataFrame,
) -> PlanInputs:
    """Build planning inputs from data-layer frames (as ``features.synth`` makes or the stores hold them).

    Args:
        sales: sku_id, location_id, date, qty, promo (channels are summed per SKU x location).
        skus: sku_id (known SKUs).
        locations: location_id, region.
        supplier_terms: supplier_id, sku_id, unit_cost, moq, pack_size, max_order_qty,
            promised_lead_time_days.
        lead_times: observed deliveries: supplier_id, sku_id, order_date, receipt_date, lead_time_days.
        inventory: snapshots: sku_id, location_id, date, on_hand, on_order, backorders (the latest counts).
        purchase_orders: po_id, kind, supplier_id, sku_id, location_id, eta, status.
        planning_units: sku_id, location_id, channel_id, service_target, review_period_days (and, when
            present, policy_kind, horizon_periods, owner_team: per stocking point the most restrictive kind
            of its channels, :mod:`planning._kinds`, the longest horizon and the first owner team by name).
        period_days: days per period of ``sales`` (7 for weekly, 1 daily, 30.44 monthly).
        horizon: forecast periods.
        promotions: promotions facts; those dated in the horizon (on or after ``as_of``) lift the baseline's
            promoted periods by the unit's lift (:mod:`planning._promotions`).
        freq: grid of ``sales`` (``D``, ``W``, ``MS``), for the future period dates; None: from
            ``period_days``.
        as_of: the planning date (start of the first future period); default the period after the last
            sales date.
        customer_commitments: commitment_id, sku_id, location_id, qty, due_date, status: open commitments
            due before the end of the horizon count as ``committed`` (they reduce the inventory position and
            make a stockout customer-impacting).
        ingest_issues: identity problems found at ingest (sku_id, location_id, message), e.g. from
            :func:`planning._store.identity_issues`; reported as ``identity`` exceptions.
        forecast_version: label of the baseline forecast (default ``baseline-<last sales date>``).
        past_forecasts: stored forecasts of periods that have actuals
            (:func:`planning._forecast_checks.past_forecasts`): the bias and anomaly checks judge them; units
            without enough of them are judged against the moving-average baseline (and counted so).

    Returns:
        :class:`PlanInputs`; stocking points are the SKU x location pairs with sales, sorted.
    """
    dm = demand_matrix(sales)
    last = dm.dates[-1].astype("datetime64[D]").item()
    snapshot = inventory["date"].max() if inventory.height else None
    data_date = max(last, snapshot) if snapshot is not None else last  # "today" of the data
    starts = future_periods(last, period_days, 1, freq)
    as_of = as_of or starts[1]
    starts = future_periods(as_of, period_days, horizon, freq)
    keys = dm.keys
    stats = lead_time_stats(lead_times, supplier_terms, period_days)
    chosen = choose_supplier(stats)
    units = keys.join(chosen, on="sku_id", how="left", maintain_order="left")
    no_terms = units["supplier_id"].is_null().to_numpy()
    if no_terms.any():  # reported as identity exceptions; planned with a promised lead time of one period
        units = units.with_columns(
            pl.col("supplier_id").fill_null("UNKNOWN"),
            pl.col("unit_cost").fill_null(0.0),
            pl.col("moq").fill_null(0),
            pl.col("pack_size").fill_null(1),
            pl.col("max_order_qty").fill_null(None),
            pl.col("promised_lead_time_days").fill_null(period_days),
            pl.col("lead_time_mean").fill_null(1.0),
            pl.col("lead_time_std").fill_null(0.0),
            pl.col("lead_time_source").fill_null("assumed"),
        )
    n_bins = (
        int(max(4, np.ceil(lead_times["lead_time_days"].max() / period_days) + 2)) if lead_times.height else 4
    )
    pmf = lead_time_pmf(units, lead_times, period_days, n_bins=n_bins)
    counts = _lead_time_counts(units, lead_times, pmf, period_days)
    if counts is not None:
        pmf = counts / counts.sum(axis=1, keepdims=True)
    inv = (
        inventory.sort("date")
        .group_by("sku_id", "location_id")
        .agg(pl.all().last())
        .select("sku_id", "location_id", "on_hand", "on_order", "backorders")
    )
    target = _unit_policies(planning_units, period_days)
    region = locations.select("location_id", "region")
    horizon_end = starts[-1]
    if customer_commitments is not None and customer_commitments.height:
        open_ = customer_commitments.filter(
            (pl.col("status").is_null() | (pl.col("status") == "open"))
            & (pl.col("due_date") < pl.lit(horizon_end))
        )
        committed = open_.group_by("sku_id", "location_id").agg(pl.col("qty").sum().alias("committed"))
    else:
        committed = pl.DataFrame(
            schema={"sku_id": pl.String, "location_id": pl.String, "committed": pl.Float64}
        )
    units = (
        units.join(inv, on=["sku_id", "location_id"], how="left", maintain_order="left")
        .join(committed, on=["sku_id", "location_id"], how="left", maintain_order="left")
        .join(target, on=["sku_id", "location_id"], how="left", maintain_order="left")
        .join(region, on="location_id", how="left", maintain_order="left")
        .with_columns(
            pl.col("on_hand").fill_null(0.0),
            pl.col("on_order").fill_null(0.0),
            pl.col("backorders").fill_null(0.0),
            pl.col("committed").fill_null(0.0),
            pl.col("fill_target").fill_null(0.95).clip(0.5, 0.999),
            pl.col("review_periods").fill_null(1).clip(lower_bound=1),
            pl.col("policy_kind").fill_null(DEFAULT_KIND),
        )
    )
    # what sold lately, per period (the overstock check's second opinion beside the forecast)
    recent = dm.qty[:, -check_periods(freq, period_days) :].astype(np.float64)
    units = units.with_columns(pl.Series("recent_demand", recent.mean(axis=1) if recent.size else 0.0))
    promo_future = promotion_calendar(keys, promotions, starts[:-1], starts[-1])
    group = _sku_group(keys, skus)
    lift = promotion_lift(dm.qty, dm.promo, group)
    pool, pool_len = history_pool(dm.qty, dm.promo, POOL_PERIODS)
    history = HistoryDemand(pool, pool_len, np.where(promo_future, lift[:, None], 1.0))
    forecast = Forecast(
        levels=DEFAULT_LEVELS,
        values=history.quantiles(DEFAULT_LEVELS),
        version=forecast_version or f"baseline-{last}",
        model_version=None,
        source=BOOTSTRAP_SOURCE,
        history=history,
    )

    exc = [
        late_purchase_orders(purchase_orders.filter(pl.col("kind") == "purchase"), data_date)
        if "kind" in purchase_orders.columns
        else late_purchase_orders(purchase_orders, data_date),
        lead_time_drift(lead_times, supplier_terms),
        identity_exceptions(planning_units, skus, locations, supplier_terms, ingest_issues),
    ]
    grid = dm.dates.astype("datetime64[D]").tolist()
    if freq is not None:
        from features.forecasts import to_grid

        grid = to_grid(pl.Series("date", grid, dtype=pl.Date), freq).to_list()
    window = check_periods(freq, period_days)
    pairs = forecast_pairs(keys, grid, dm.qty, dm.promo, past_forecasts, periods=window)
    anomalies = forecast_anomalies(
        pairs.anomaly, band=(f"P{BAND_LEVEL * 100:g}", f"P{100 - BAND_LEVEL * 100:g}")
    )
    bias = bias_drift(pairs.bias, last_periods=window)
    exc.extend(explained_by_bias(anomalies, bias))
    exceptions = pl.concat(exc)
    return PlanInputs(
        units,
        forecast,
        pmf,
        as_of,
        exceptions,
        lead_time_counts=counts,
        period_days=period_days,
        promo_future=promo_future,
        promo_lift=lift,
        info={
            "last_sales_date": last.isoformat(),
            "data_date": data_date.isoformat(),
            "promoted_periods": int(promo_future.sum()),
            "forecast_checks": pairs.counts,
        },
    )


def _unit_policies(planning_units: pl.DataFrame, period_days: float) -> pl.DataFrame:
    """Per stocking point: fill target, review periods, policy kind, horizon, owner team of its channels."""
    cols = planning_units.columns
    agg = [
        pl.col("service_target").max().alias("fill_target"),
        (pl.col("review_period_days").min() / period_days).ceil().cast(pl.Int64).alias("review_periods"),
    ]
    if "policy_kind" in cols:  # the most restrictive kind of the channels holds
        code = pl.col("policy_kind").fill_null(DEFAULT_KIND)
        code = code.replace_strict(list(POLICY_KINDS), list(range(len(POLICY_KINDS))), default=None)
        agg.append(code.max().alias("_kind"))
    if "horizon_periods" in cols:
        agg.append(pl.col("horizon_periods").max().cast(pl.Int64))
    if "owner_team" in cols:
        agg.append(pl.col("owner_team").drop_nulls().sort().first().cast(pl.String))
    out = planning_units.group_by("sku_id", "location_id").agg(agg)
    if "_kind" in out.columns:
        out = out.with_columns(
            pl.col("_kind")
            .replace_strict(list(range(len(POLICY_KINDS))), list(POLICY_KINDS), default=None)
            .alias("policy_kind")
        ).drop("_kind")
    else:
        out = out.with_columns(pl.lit(DEFAULT_KIND).alias("policy_kind"))
    return out


def _sku_group(keys: pl.DataFrame, skus: pl.DataFrame) -> np.ndarray | None:
    """Each stocking point's SKU category (the pool of its promotion lift), or None without categories."""
    if "category" not in skus.columns:
        return None
    cat = keys.join(skus.select("sku_id", "category"), on="sku_id", how="left", maintain_order="left")
    return cat["category"].fill_null("").cast(pl.String).to_numpy().astype(str)


def _lead_time_counts(
    units: pl.DataFrame, lead_times: pl.DataFrame, pmf: np.ndarray, period_days: int
) -> np.ndarray | None:
    """Dirichlet parameters of each unit's lead-time distribution in periods, (N, K), or None.

    A unit's observed deliveries per period bin (``lead_time_n`` x its empirical ``pmf``) plus ``a``
    pseudo-deliveries of the pooled distribution of all observed deliveries (the prior of
    :func:`planning._history.shrink_pmf`), ``a`` estimated from how much the terms differ
    (:func:`lead_time_prior_strength`). A unit whose term has no observed delivery counts its promised lead
    time (``pmf``'s point mass) as ``a`` deliveries beside the pooled prior. None when no delivery was
    observed at all (nothing to pool).
    """
    terms = _term_counts(lead_times, pmf.shape[1], period_days)
    if terms is None:
        return None
    pooled = terms.sum(axis=0) / terms.sum()
    strength = dirichlet_strength(terms, default=LT_PRIOR)
    n_obs = (
        units["lead_time_n"].fill_null(0).to_numpy().astype(np.float64)
        if "lead_time_n" in units.columns
        else np.zeros(units.height)
    )
    n_obs = np.where(n_obs > 0, n_obs, strength)  # no observation: the promise, as strong as the prior
    return n_obs[:, None] * pmf + strength * pooled[None, :]


def _term_counts(lead_times: pl.DataFrame, n_bins: int, period_days: int) -> np.ndarray | None:
    """(M, n_bins) observed deliveries per supplier x SKU term and period bin; None when there are none."""
    per = lead_time_bin_counts(lead_times, period_days, n_bins)
    if not per.height:
        return None
    term = per.select(pl.struct("supplier_id", "sku_id").rank("dense").cast(pl.Int64) - 1).to_series()
    counts = np.zeros((int(term.max()) + 1, n_bins))
    np.add.at(counts, (term.to_numpy(), per["_p"].to_numpy()), per["len"].to_numpy().astype(np.float64))
    return counts


def lead_time_prior_strength(lead_times: pl.DataFrame, n_bins: int, period_days: int) -> float:
    """The pooled prior's weight in deliveries, estimated from the spread between supplier x SKU terms.

    See :func:`planning._history.dirichlet_strength`; :data:`LT_PRIOR` when too few terms have deliveries.
    """
    terms = _term_counts(lead_times, n_bins, period_days)
    return LT_PRIOR if terms is None else dirichlet_strength(terms, default=LT_PRIOR)
