"""Risk and exception detectors. Each returns a frame with the common schema :data:`EXCEPTION_SCHEMA`.

* ``stockout_risk``: P(stockout before an order placed now arrives) above a threshold, or days of cover
  below the lead time;
* ``overstock``: on hand beyond ``max_cover_periods`` of mean forecast demand;
* ``ageing_stock``: stock older than ``max_age_days``;
* ``forecast_anomaly``: the actual of the last period lies outside the band the forecast made for it gave
  (``lo``/``hi`` columns, [P0.5, P99.5] by default, :mod:`planning._forecast_checks`);
* ``bias_drift``: the mean error of the forecast over the last periods is both significant (a t statistic
  beyond a limit) and material (the forecast off by more than a share of the actuals);
* ``late_po``: an open purchase order past its ETA on the date of the data;
* ``lead_time_drift``: mean observed lead time of recent deliveries beyond the promise by more than a
  tolerance and, where the term has a history, significantly longer than its earlier deliveries;
* ``short_shipment``: a receipt below the ordered quantity by more than a tolerance;
* ``identity``: a planning unit names an unknown SKU, location or no supplier terms; a duplicate unit; an
  ingest issue.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from planning._exception_schema import EXCEPTION_SCHEMA, EXCEPTION_TYPES, _need, _out
from planning._rank_test import rank_sum_z

__all__ = [
    "EXCEPTION_SCHEMA",
    "EXCEPTION_TYPES",
    "bias_drift",
    "dedup_exceptions",
    "explained_by_bias",
    "exception_keys",
    "forecast_anomalies",
    "identity_exceptions",
    "late_purchase_orders",
    "lead_time_drift",
    "overstock",
    "short_shipments",
    "stockout_risk",
]


def stockout_risk(units: pl.DataFrame, max_probability: float = 0.2) -> pl.DataFrame:
    """Units likely to stock out before an order placed now can arrive.

    The probability is ``lead_time_stockout_probability`` where the plan gives it: the share of simulated
    paths whose demand over the *unrounded* mean lead time exceeds the inventory position (each path's
    lead-time demand scaled by the lead time in days over the simulated lead time in whole periods). The
    simulation draws lead times in whole periods, so on a monthly grid a 10-day lead time is priced as a
    month: the demo's plan flagged 226 of its 350 units on that month of demand. Else (frames without it)
    ``stockout_probability``. Days of cover below the (unrounded) lead time flag a unit too.

    Args:
        units: sku_id, location_id, stockout_probability, days_of_cover, lead_time_days, customer_committed;
            optional lead_time_stockout_probability.
        max_probability: probability above which a unit is flagged.
    """
    _need(
        units,
        "stockout_risk units",
        {
            "sku_id",
            "location_id",
            "stockout_probability",
            "days_of_cover",
            "lead_time_days",
            "customer_committed",
        },
    )
    p = (
        pl.col("lead_time_stockout_probability").fill_nan(None).fill_null(pl.col("stockout_probability"))
        if "lead_time_stockout_probability" in units.columns
        else pl.col("stockout_probability")
    )
    hit = units.with_columns(p.alias("_p")).filter(
        (pl.col("_p") > max_probability) | (pl.col("days_of_cover") < pl.col("lead_time_days"))
    )
    impacting = pl.col("customer_committed") > 0
    return _out(
        hit,
        "stockout_risk",
        value=pl.col("_p"),
        threshold=pl.lit(max_probability),
        customer_impacting=impacting,
        severity=pl.when(impacting | (pl.col("_p") > 0.5)).then(pl.lit("high")).otherwise(pl.lit("medium")),
        message=pl.format(
            "P(stockout before an order placed now arrives) = {}, {} days of cover vs lead time {} days",
            pl.col("_p").round(3),
            pl.col("days_of_cover").round(1),
            pl.col("lead_time_days").round(1),
        ),
    )


def overstock(
    units: pl.DataFrame,
    max_cover_periods: float = 12.0,
    max_age_days: float | None = 180.0,
    min_excess_units: float = 1.0,
) -> pl.DataFrame:
    """Excess beyond ``max_cover_periods`` of demand, and ageing stock (if ``stock_age_days`` is given).

    Demand per period is the larger of the forecast's mean (``mean_demand``) and, where given, what sold on
    average over the last periods (``recent_demand``): stock is excess only if it is on both views. A
    forecast biased low (a ``bias_drift`` exception) would otherwise make a healthy stock look like excess:
    the benchmark's units with forecasts at 40% of their level raised overstock as often as bias.

    Args:
        units: sku_id, location_id, on_hand, mean_demand (per period); optional recent_demand (per period),
            stock_age_days.
        max_cover_periods: periods of cover above which stock is excess.
        max_age_days: age above which stock is flagged as ageing (None: no ageing check).
        min_excess_units: least stock beyond the cover that is reported (whole units).
    """
    _need(units, "overstock units", {"sku_id", "location_id", "on_hand", "mean_demand"})
    rate = pl.col("mean_demand").fill_null(0.0).fill_nan(0.0).clip(lower_bound=0.0)
    if "recent_demand" in units.columns:  # excess on the forecast *and* on what sold lately
        rate = pl.max_horizontal(rate, pl.col("recent_demand").fill_null(0.0).fill_nan(0.0))
    units = units.with_columns(rate.alias("_rate"))
    cover = pl.col("on_hand") / pl.col("_rate").clip(lower_bound=1e-9)
    excess = pl.col("on_hand") - max_cover_periods * pl.col("_rate")
    # at least one whole unit beyond the cover: a slow mover's last unit is not excess worth reading
    hit = units.filter((pl.col("on_hand") > 0) & (cover > max_cover_periods) & (excess >= min_excess_units))
    out = [
        _out(
            hit,
            "overstock",
            value=cover,
            threshold=pl.lit(max_cover_periods),
            customer_impacting=pl.lit(False),
            severity=pl.when(cover > 2 * max_cover_periods).then(pl.lit("high")).otherwise(pl.lit("low")),
            message=pl.format(
                "{} units on hand = {} periods of cover (limit {})",
                pl.col("on_hand"),
                cover.round(1),
                pl.lit(round(max_cover_periods, 1)),
            ),
        )
    ]
    if max_age_days is not None and "stock_age_days" in units.columns:
        old = units.filter((pl.col("on_hand") > 0) & (pl.col("stock_age_days") > max_age_days))
        out.append(
            _out(
                old,
                "ageing_stock",
                value=pl.col("stock_age_days"),
                threshold=pl.lit(max_age_days),
                customer_impacting=pl.lit(False),
                severity=pl.lit("medium"),
                message=pl.format(
                    "stock is {} days old (limit {})", pl.col("stock_age_days"), pl.lit(max_age_days)
                ),
            )
        )
    return pl.concat(out)


def forecast_anomalies(actuals: pl.DataFrame, band: tuple[str, str] = ("P1", "P99")) -> pl.DataFrame:
    """Actuals outside the band the forecast made for their period.

    Bounds are moved to whole units (the low one down, the high one up): the band of a continuous stand-in
    for counted demand would call every week without a sale anomalous for a unit whose lower bound is 0.2.

    Args:
        actuals: sku_id, location_id, period (date or int), actual, p01, p99 (the band's bounds; the names
            are kept from the [P1, P99] band), optional ``source`` (what made the forecast).
        band: how the band's bounds are named in the message (low, high).
    """
    _need(actuals, "forecast anomaly actuals", {"sku_id", "location_id", "period", "actual", "p01", "p99"})
    # demand is counted: below a bound of 0.2 lies only 0, which a unit selling 3 a period meets often
    below, above = pl.col("actual") < pl.col("p01").floor(), pl.col("actual") > pl.col("p99").ceil()
    hit = actuals.filter(below | above)
    src = pl.col("source") if "source" in actuals.columns else pl.lit("the forecast")
    return _out(
        hit,
        "forecast_anomaly",
        value=pl.col("actual"),
        threshold=pl.when(above).then(pl.col("p99")).otherwise(pl.col("p01")),
        customer_impacting=pl.lit(False),
        severity=pl.lit("medium"),
        message=pl.format(
            "actual {} in period {} {} the forecast's band [{} {}, {} {}] ({})",
            pl.col("actual").round(2),
            pl.col("period"),
            pl.when(above).then(pl.lit("above")).otherwise(pl.lit("below")),
            pl.lit(band[0]),
            pl.col("p01").round(2),
            pl.lit(band[1]),
            pl.col("p99").round(2),
            src,
        ),
    )


def bias_drift(
    actuals: pl.DataFrame,
    last_periods: int = 8,
    limit: float = 3.0,
    min_bias: float = 0.2,
    min_periods: int = 4,
) -> pl.DataFrame:
    """Units whose forecast has been off in one direction over the last periods, significantly and materially.

    Over a unit's last ``last_periods`` periods with both an actual and a forecast (at least
    ``min_periods``), with errors ``e = actual - p50``:

    * significance: ``t = mean(e) / (sd(e) / sqrt(n))`` (Student's t of the mean error, ``n - 1`` degrees
      of freedom) beyond ``+-limit``; 3 leaves about 2% of unbiased units with independent errors over 13
      periods above it, fewer with the materiality test (the classic tracking signal ``sum(e) / mean|e|``
      is bounded by ``n`` and passes 4 by chance on about a quarter of unbiased units over 8 periods);
    * materiality: the forecast off by at least ``min_bias`` of the actuals,
      ``|sum(p50 - actual)| >= min_bias * sum(actual)`` (a 3% bias of a large steady unit is significant and
      not worth a planner's time).

    Args:
        actuals: sku_id, location_id, period (sortable), actual, p50, optional ``source`` (what made the
            forecast: named in the message).
        last_periods: window of recent periods.
        limit: absolute t limit.
        min_bias: least relative bias reported.
        min_periods: fewest periods with a forecast needed.

    Returns:
        One row per flagged unit; ``value`` is the t statistic (``+-inf`` when every error is the same).
    """
    _need(actuals, "bias drift actuals", {"sku_id", "location_id", "period", "actual", "p50"})
    src = pl.col("source").last() if "source" in actuals.columns else pl.lit("the forecast")
    recent = (
        actuals.filter(pl.col("actual").is_not_null() & pl.col("p50").is_not_null())
        .sort("period")
        .group_by("sku_id", "location_id", maintain_order=True)
        .tail(last_periods)
        .with_columns((pl.col("actual") - pl.col("p50")).alias("_e"))
    )
    stats = recent.group_by("sku_id", "location_id").agg(
        pl.col("_e").mean().alias("_mean"),
        pl.col("_e").std(ddof=1).alias("_sd"),
        pl.len().alias("_n"),
        pl.col("actual").sum().alias("_a"),
        (-pl.col("_e")).sum().alias("_over"),
        src.alias("_src"),
    )
    t = (
        pl.when(pl.col("_sd") > 1e-9 * (pl.col("_mean").abs() + 1.0))
        .then(pl.col("_mean") / (pl.col("_sd") / pl.col("_n").sqrt()))
        .when(pl.col("_mean") > 0)
        .then(float("inf"))
        .when(pl.col("_mean") < 0)
        .then(float("-inf"))
        .otherwise(0.0)
    )
    rel = pl.col("_over") / pl.col("_a").clip(lower_bound=1e-9)
    flagged = (
        stats.with_columns(t.alias("_t"), rel.alias("_rel"))
        .filter(
            (pl.col("_n") >= min_periods)
            & (pl.col("_t").abs() > limit)
            & (pl.col("_over").abs() >= min_bias * pl.col("_a"))
            & (pl.col("_over").abs() > 0)
        )
        .sort("sku_id", "location_id")
    )
    pct = (pl.col("_rel").abs() * 100).clip(upper_bound=1e6).round(0).cast(pl.Int64)
    return _out(
        flagged,
        "bias_drift",
        value=pl.col("_t"),
        threshold=pl.lit(limit),
        customer_impacting=pl.lit(False),
        severity=pl.when(pl.col("_rel").abs() >= 0.5).then(pl.lit("high")).otherwise(pl.lit("medium")),
        message=pl.format(
            "{} {}-forecasts by {}% of actuals over the last {} periods (bias t = {}, limit {})",
            pl.col("_src"),
            pl.when(pl.col("_over") > 0).then(pl.lit("over")).otherwise(pl.lit("under")),
            pct,
            pl.col("_n"),
            pl.col("_t").round(1),
            pl.lit(limit),
        ),
    )


def explained_by_bias(anomalies: pl.DataFrame, bias: pl.DataFrame) -> list[pl.DataFrame]:
    """Anomalies a bias of the same unit explains folded into the bias exception: ``[anomalies, bias]``.

    A forecast twice the demand puts an ordinary actual below its band: the anomaly is the bias seen in one
    period, and two exceptions for one cause is one too many. An anomaly in the bias's direction (actual
    below the band of an over-forecast, above that of an under-forecast) is dropped and the bias's message
    says the last period missed the band too; an anomaly against the bias's direction stays.

    Args:
        anomalies: :func:`forecast_anomalies`' rows.
        bias: :func:`bias_drift`' rows (``value`` is the t statistic: negative = over-forecast).
    """
    if not anomalies.height or not bias.height:
        return [anomalies, bias]
    key = ["sku_id", "location_id"]
    below = pl.col("value") < pl.col("threshold")
    direction = anomalies.select(*key, pl.when(below).then(-1).otherwise(1).alias("_dir"))
    signs = bias.select(*key, pl.col("value").sign().cast(pl.Int64).alias("_dir"))
    same = direction.join(signs, on=[*key, "_dir"], how="semi").select(key).unique()
    kept = anomalies.join(same, on=key, how="anti", nulls_equal=True)
    marked = bias.join(same.with_columns(pl.lit(True).alias("_also")), on=key, how="left", nulls_equal=True)
    marked = marked.with_columns(
        pl.when(pl.col("_also").fill_null(False))
        .then(pl.col("message") + pl.lit("; the last period's actual lies outside the forecast's band too"))
        .otherwise(pl.col("message"))
        .alias("message")
    ).drop("_also")
    return [kept, marked.select(bias.columns)]


def late_purchase_orders(purchase_orders: pl.DataFrame, today: date) -> pl.DataFrame:
    """Open purchase orders whose ETA has passed.

    Args:
        purchase_orders: po_id, supplier_id, sku_id, location_id, eta (date), status.
        today: the date of the data (the latest inventory snapshot or sales date), not the start of the first
            planned period: on a monthly grid that lies up to a month later and would call every order due
            this month late.
    """
    _need(
        purchase_orders, "purchase orders", {"po_id", "supplier_id", "sku_id", "location_id", "eta", "status"}
    )
    days_late = (pl.lit(today) - pl.col("eta")).dt.total_days()
    hit = purchase_orders.filter((pl.col("status") == "open") & (pl.col("eta") < pl.lit(today)))
    return _out(
        hit,
        "late_po",
        value=days_late,
        threshold=pl.lit(0.0),
        customer_impacting=pl.lit(False),
        severity=pl.when(days_late > 7).then(pl.lit("high")).otherwise(pl.lit("medium")),
        message=pl.format(
            "open PO {} is {} days late against ETA {}", pl.col("po_id"), days_late, pl.col("eta")
        ),
    )


def lead_time_drift(
    lead_times: pl.DataFrame,
    terms: pl.DataFrame,
    last_n: int = 4,
    tolerance: float = 0.5,
    limit: float = 1.96,
    min_history: int = 4,
) -> pl.DataFrame:
    """Supplier x SKU terms whose recent deliveries take longer than promised *and* than they used to.

    The median of the last ``last_n`` deliveries must exceed the promise by more than ``tolerance`` (half
    again the promise: lead times are heavy-tailed, and four deliveries of a clean term with a few 20- and
    30-day delays among its 10-day ones reach 14 days by chance on about one term in twenty) and, where the
    term has at least ``min_history`` earlier deliveries, exceed their median by more than ``tolerance`` of
    it, with the recent deliveries ranking above the earlier ones by a one-sided Wilcoxon-Mann-Whitney
    rank-sum test: ``z > limit`` (1.96: p < 0.025), ``z = (U - n1 n2 / 2 - 1/2) / sd(U)`` with the
    tie-corrected ``sd(U)`` (Hollander & Wolfe 1999, ch. 4). Ranks, because four deliveries are too few for a
    median's standard error: a doubled 3-day term (recent 4, 6, 8, 6 days after twenty of 2-5) had a median
    test of 2.96 standard errors (its MAD is one day: whole days) and was missed; all four ranking above
    nearly all earlier deliveries is strong evidence whatever the scale or the ties. Medians against history
    and the promise, because single late deliveries are common and are not a drift. A supplier that was always
    late is learnt by the plan from its observed lead times (the lead-time posterior); what the plan has not
    learnt yet is a change.

    Args:
        lead_times: observed deliveries: supplier_id, sku_id, order_date, lead_time_days.
        terms: supplier_id, sku_id, promised_lead_time_days.
        last_n: number of most recent deliveries compared.
        tolerance: relative excess over the promise (and over the earlier median) that is tolerated.
        limit: one-sided z of the rank-sum test the recent deliveries must pass.
        min_history: fewest earlier deliveries for the comparison with history (fewer: promise only).
    """
    _need(lead_times, "lead times", {"supplier_id", "sku_id", "order_date", "lead_time_days"})
    _need(terms, "supplier terms", {"supplier_id", "sku_id", "promised_lead_time_days"})
    term = ["supplier_id", "sku_id"]
    ranked = lead_times.sort("order_date").with_columns(
        (pl.int_range(pl.len()).over(term) >= pl.len().over(term) - last_n).alias("_recent"),
        pl.col("lead_time_days").cast(pl.Float64),
    )
    lt = pl.col("lead_time_days")
    recent = ranked.group_by(term).agg(
        lt.filter(pl.col("_recent")).median().alias("_obs"),
        pl.col("_recent").sum().alias("_n"),
        lt.filter(~pl.col("_recent")).median().alias("_before"),
        (~pl.col("_recent")).sum().alias("_nb"),
    )
    changed = (pl.col("_nb") < min_history) | (
        (pl.col("_z") > limit) & (pl.col("_obs") > (1.0 + tolerance) * pl.col("_before"))
    )
    hit = (
        recent.join(rank_sum_z(ranked, term), on=term, how="left")
        .join(terms.select(*term, "promised_lead_time_days"), on=term)
        .with_columns((pl.col("_obs") / pl.col("promised_lead_time_days") - 1.0).alias("_drift"))
        .filter((pl.col("_drift") > tolerance) & changed.fill_null(False))
        .sort(term)
    )
    return _out(
        hit,
        "lead_time_drift",
        value=pl.col("_drift"),
        threshold=pl.lit(tolerance),
        customer_impacting=pl.lit(False),
        severity=pl.when(pl.col("_drift") > 2 * tolerance).then(pl.lit("high")).otherwise(pl.lit("medium")),
        message=pl.format(
            "last {} deliveries took {} days (median) vs {} promised ({} before)",
            pl.col("_n"),
            pl.col("_obs").round(1),
            pl.col("promised_lead_time_days"),
            pl.when(pl.col("_nb") > 0)
            .then(pl.format("{} days over {} deliveries", pl.col("_before").round(1), pl.col("_nb")))
            .otherwise(pl.lit("no delivery")),
        ),
    )


def short_shipments(receipts: pl.DataFrame, tolerance: float = 0.02) -> pl.DataFrame:
    """Receipts short of the ordered quantity by more than ``tolerance`` (relative).

    Args:
        receipts: po_id, supplier_id, sku_id, location_id, qty (ordered), received_qty.
        tolerance: relative shortfall tolerated.
    """
    _need(receipts, "receipts", {"po_id", "supplier_id", "sku_id", "location_id", "qty", "received_qty"})
    short = 1.0 - pl.col("received_qty") / pl.col("qty")
    hit = receipts.filter((pl.col("qty") > 0) & (short > tolerance))
    return _out(
        hit,
        "short_shipment",
        value=short,
        threshold=pl.lit(tolerance),
        customer_impacting=pl.lit(False),
        severity=pl.when(short > 0.2).then(pl.lit("high")).otherwise(pl.lit("medium")),
        message=pl.format(
            "PO {} received {} of {} ordered", pl.col("po_id"), pl.col("received_qty"), pl.col("qty")
        ),
    )


def identity_exceptions(
    units: pl.DataFrame,
    skus: pl.DataFrame,
    locations: pl.DataFrame,
    terms: pl.DataFrame,
    ingest_issues: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Identity problems: unknown SKU or location, no supplier terms, duplicate units, ingest issues.

    Args:
        units: planning units with sku_id, location_id.
        skus: known sku_id.
        locations: known location_id.
        terms: supplier terms with sku_id.
        ingest_issues: optional frame with sku_id, location_id, message (identity issues found at ingest).
    """
    _need(units, "planning units", {"sku_id", "location_id"})
    out = []
    for col, known, what in (("sku_id", skus, "SKU"), ("location_id", locations, "location")):
        bad = units.join(known.select(col).unique(), on=col, how="anti")
        out.append(
            _out(
                bad,
                "identity",
                severity=pl.lit("high"),
                customer_impacting=pl.lit(False),
                message=pl.format(f"planning unit names unknown {what} {{}}", pl.col(col)),
            )
        )
    no_terms = units.join(skus.select("sku_id").unique(), on="sku_id", how="semi").join(
        terms.select("sku_id").unique(), on="sku_id", how="anti"
    )
    out.append(
        _out(
            no_terms,
            "identity",
            severity=pl.lit("high"),
            customer_impacting=pl.lit(False),
            message=pl.format("no supplier terms for SKU {}", pl.col("sku_id")),
        )
    )
    dup_key = [c for c in ("sku_id", "location_id", "channel_id") if c in units.columns]
    dups = units.filter(pl.len().over(dup_key) > 1).unique(dup_key, maintain_order=True)
    out.append(
        _out(
            dups,
            "identity",
            severity=pl.lit("medium"),
            customer_impacting=pl.lit(False),
            message=pl.format("duplicate planning unit {}", pl.concat_str(dup_key, separator="/")),
        )
    )
    if ingest_issues is not None and ingest_issues.height:
        _need(ingest_issues, "ingest issues", {"message"})
        out.append(
            _out(
                ingest_issues,
                "identity",
                severity=pl.lit("medium"),
                customer_impacting=pl.lit(False),
                message=pl.format("ingest: {}", pl.col("message")),
            )
        )
    return pl.concat(out).unique(maintain_order=True)  # duplicate unit rows report a problem once


#: Severity order of :func:`dedup_exceptions` (the worst row of a unit and type is kept).
_SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}


def _unit_part() -> pl.Expr:
    """The unit an exception is about: its location, else its supplier (supplier x SKU checks), else '-'."""
    return pl.coalesce(
        pl.col("location_id").cast(pl.String),
        pl.lit("supplier:") + pl.col("supplier_id").cast(pl.String),
        pl.lit("-"),
    )


def dedup_exceptions(exceptions: pl.DataFrame) -> pl.DataFrame:
    """One exception per unit and type: the worst row of a unit and type, the others counted in its message.

    The unit is the SKU at its location, or the supplier x SKU term for checks that have no location
    (lead-time drift). The kept row is the most severe, then the largest ``|value|`` (the latest PO of
    several late ones is not what a planner needs: the latest-by-days one is); its message says how many
    more there were. Row order otherwise follows the input.

    Args:
        exceptions: frames with at least :data:`EXCEPTION_SCHEMA`'s columns.
    """
    _need(exceptions, "exceptions", set(EXCEPTION_SCHEMA))
    if not exceptions.height:
        return exceptions
    keys = ["exception_type", "sku_id", "_unit"]
    ranked = exceptions.with_row_index("_row").with_columns(
        _unit_part().alias("_unit"),
        pl.col("severity").replace_strict(_SEVERITY_RANK, default=3, return_dtype=pl.Int64).alias("_sev"),
        pl.col("value").abs().fill_null(0.0).fill_nan(0.0).alias("_abs"),
    )
    first_row = ranked.group_by(keys).agg(pl.col("_row").min().alias("_first"), pl.len().alias("_n"))
    best = (
        ranked.sort(["_sev", "_abs"], descending=[False, True], maintain_order=True)
        .unique(keys, keep="first", maintain_order=True)
        .join(first_row, on=keys, how="left", nulls_equal=True)
        .sort("_first")
    )
    more = pl.col("_n") - 1
    return best.with_columns(
        pl.when(more > 0)
        .then(pl.format("{} (and {} more of this type here)", pl.col("message"), more))
        .otherwise(pl.col("message"))
        .alias("message")
    ).drop("_row", "_unit", "_sev", "_abs", "_first", "_n")


def exception_keys(exceptions: pl.DataFrame, tenant: str) -> pl.Series:
    """The stable key of each exception: ``tenant|sku|unit|type``.

    The unit is the location, else ``supplier:<id>`` (supplier x SKU checks), else ``-``.

    The same problem of the same unit gets the same key in every plan run, so that a workflow can keep one
    open exception per unit and type across cycles.
    """
    _need(exceptions, "exceptions", {"exception_type", "sku_id", "location_id", "supplier_id"})
    return exceptions.select(
        pl.concat_str(
            [
                pl.lit(tenant),
                pl.col("sku_id").cast(pl.String).fill_null("-"),
                _unit_part(),
                pl.col("exception_type"),
            ],
            separator="|",
        ).alias("exception_key")
    ).to_series()
