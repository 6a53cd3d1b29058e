"""Risk and exception detectors. Each returns a frame with the common schema :data:`EXCEPTION_SCHEMA`.

* ``stockout_risk``: P(stockout before an order placed now arrives) above a threshold, or days of cover
  below the lead time;
* ``overstock``: on hand beyond ``max_cover_periods`` of mean forecast demand;
* ``ageing_stock``: stock older than ``max_age_days``;
* ``forecast_anomaly``: the actual of a period lies outside the forecast's [P1, P99];
* ``bias_drift``: tracking signal ``sum(actual - P50) / MAD`` over the last periods beyond a limit
  (Trigg 1964);
* ``late_po``: an open purchase order past its ETA;
* ``lead_time_drift``: mean observed lead time of recent deliveries beyond the promise by more than a
  tolerance;
* ``short_shipment``: a receipt below the ordered quantity by more than a tolerance;
* ``identity``: a planning unit names an unknown SKU, location or no supplier terms; a duplicate unit; an
  ingest issue.
"""

from __future__ import annotations

from datetime import date

import polars as pl

__all__ = [
    "EXCEPTION_SCHEMA",
    "EXCEPTION_TYPES",
    "bias_drift",
    "forecast_anomalies",
    "identity_exceptions",
    "late_purchase_orders",
    "lead_time_drift",
    "overstock",
    "short_shipments",
    "stockout_risk",
]

EXCEPTION_TYPES = (
    "stockout_risk",
    "overstock",
    "ageing_stock",
    "forecast_anomaly",
    "bias_drift",
    "late_po",
    "lead_time_drift",
    "short_shipment",
    "identity",
)

#: Columns of every detector's output.
EXCEPTION_SCHEMA = {
    "exception_type": pl.String,
    "severity": pl.String,
    "sku_id": pl.String,
    "location_id": pl.String,
    "supplier_id": pl.String,
    "po_id": pl.String,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "customer_impacting": pl.Boolean,
    "message": pl.String,
}


def _need(frame: pl.DataFrame, what: str, cols: set[str]) -> None:
    missing = cols - set(frame.columns)
    if missing:
        raise ValueError(f"{what}: missing column(s) {sorted(missing)}")


def _out(frame: pl.DataFrame, kind: str, **exprs: pl.Expr) -> pl.DataFrame:
    cols = []
    for name, dtype in EXCEPTION_SCHEMA.items():
        if name == "exception_type":
            expr = pl.lit(kind)
        elif name in exprs:
            expr = exprs[name]
        elif name in frame.columns:
            expr = pl.col(name)
        else:
            expr = pl.lit(None)
        cols.append(expr.cast(dtype).alias(name))
    return frame.select(cols)


def stockout_risk(units: pl.DataFrame, max_probability: float = 0.2) -> pl.DataFrame:
    """Units likely to stock out before an order placed now can arrive.

    Args:
        units: sku_id, location_id, stockout_probability, days_of_cover, lead_time_days, customer_committed.
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
    hit = units.filter(
        (pl.col("stockout_probability") > max_probability)
        | (pl.col("days_of_cover") < pl.col("lead_time_days"))
    )
    impacting = pl.col("customer_committed") > 0
    return _out(
        hit,
        "stockout_risk",
        value=pl.col("stockout_probability"),
        threshold=pl.lit(max_probability),
        customer_impacting=impacting,
        severity=pl.when(impacting | (pl.col("stockout_probability") > 0.5))
        .then(pl.lit("high"))
        .otherwise(pl.lit("medium")),
        message=pl.format(
            "P(stockout before next arrival) = {}, {} days of cover vs lead time {} days",
            pl.col("stockout_probability").round(3),
            pl.col("days_of_cover").round(1),
            pl.col("lead_time_days").round(1),
        ),
    )


def overstock(
    units: pl.DataFrame, max_cover_periods: float = 12.0, max_age_days: float | None = 180.0
) -> pl.DataFrame:
    """Excess beyond ``max_cover_periods`` of mean demand, and ageing stock (if ``stock_age_days`` is given).

    Args:
        units: sku_id, location_id, on_hand, mean_demand (per period); optional stock_age_days.
        max_cover_periods: periods of cover above which stock is excess.
        max_age_days: age above which stock is flagged as ageing (None: no ageing check).
    """
    _need(units, "overstock units", {"sku_id", "location_id", "on_hand", "mean_demand"})
    cover = pl.col("on_hand") / pl.col("mean_demand").clip(lower_bound=1e-9)
    hit = units.filter((pl.col("on_hand") > 0) & (cover > max_cover_periods))
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
                pl.lit(max_cover_periods),
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


def forecast_anomalies(actuals: pl.DataFrame) -> pl.DataFrame:
    """Actuals outside the forecast's [P1, P99] interval.

    Args:
        actuals: sku_id, location_id, period (date or int), actual, p01, p99.
    """
    _need(actuals, "forecast anomaly actuals", {"sku_id", "location_id", "period", "actual", "p01", "p99"})
    hit = actuals.filter((pl.col("actual") < pl.col("p01")) | (pl.col("actual") > pl.col("p99")))
    above = pl.col("actual") > pl.col("p99")
    return _out(
        hit,
        "forecast_anomaly",
        value=pl.col("actual"),
        threshold=pl.when(above).then(pl.col("p99")).otherwise(pl.col("p01")),
        customer_impacting=pl.lit(False),
        severity=pl.lit("medium"),
        message=pl.format(
            "actual {} in period {} outside forecast [P1 {}, P99 {}]",
            pl.col("actual"),
            pl.col("period"),
            pl.col("p01").round(2),
            pl.col("p99").round(2),
        ),
    )


def bias_drift(actuals: pl.DataFrame, last_periods: int = 8, limit: float = 4.0) -> pl.DataFrame:
    """Tracking signal over the last periods: ``sum(actual - p50) / mean|actual - p50|`` beyond +-limit.

    Args:
        actuals: sku_id, location_id, period (sortable), actual, p50.
        last_periods: window of recent periods.
        limit: absolute tracking-signal limit (4 is the usual control limit).
    """
    _need(actuals, "bias drift actuals", {"sku_id", "location_id", "period", "actual", "p50"})
    recent = (
        actuals.sort("period")
        .group_by("sku_id", "location_id", maintain_order=True)
        .tail(last_periods)
        .with_columns((pl.col("actual") - pl.col("p50")).alias("_e"))
    )
    ts = (
        recent.group_by("sku_id", "location_id")
        .agg(pl.col("_e").sum().alias("_sum"), pl.col("_e").abs().mean().alias("_mad"), pl.len().alias("_n"))
        .filter((pl.col("_n") >= min(last_periods, 4)) & (pl.col("_mad") > 0))
        .with_columns((pl.col("_sum") / pl.col("_mad")).alias("_ts"))
        .filter(pl.col("_ts").abs() > limit)
        .sort("sku_id", "location_id")
    )
    return _out(
        ts,
        "bias_drift",
        value=pl.col("_ts"),
        threshold=pl.lit(limit),
        customer_impacting=pl.lit(False),
        severity=pl.lit("medium"),
        message=pl.format(
            "tracking signal {} over {} periods: forecast {} biased",
            pl.col("_ts").round(2),
            pl.col("_n"),
            pl.when(pl.col("_ts") > 0).then(pl.lit("under")).otherwise(pl.lit("over")),
        ),
    )


def late_purchase_orders(purchase_orders: pl.DataFrame, today: date) -> pl.DataFrame:
    """Open purchase orders whose ETA has passed.

    Args:
        purchase_orders: po_id, supplier_id, sku_id, location_id, eta (date), status.
        today: the planning date.
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
    lead_times: pl.DataFrame, terms: pl.DataFrame, last_n: int = 4, tolerance: float = 0.25
) -> pl.DataFrame:
    """Supplier x SKU terms whose recent observed lead time drifts above the promise.

    Args:
        lead_times: observed deliveries: supplier_id, sku_id, order_date, lead_time_days.
        terms: supplier_id, sku_id, promised_lead_time_days.
        last_n: number of most recent deliveries averaged.
        tolerance: relative excess over the promise that is tolerated.
    """
    _need(lead_times, "lead times", {"supplier_id", "sku_id", "order_date", "lead_time_days"})
    _need(terms, "supplier terms", {"supplier_id", "sku_id", "promised_lead_time_days"})
    recent = (
        lead_times.sort("order_date")
        .group_by("supplier_id", "sku_id", maintain_order=True)
        .tail(last_n)
        .group_by("supplier_id", "sku_id")
        .agg(pl.col("lead_time_days").mean().alias("_obs"), pl.len().alias("_n"))
    )
    hit = (
        recent.join(
            terms.select("supplier_id", "sku_id", "promised_lead_time_days"), on=["supplier_id", "sku_id"]
        )
        .with_columns((pl.col("_obs") / pl.col("promised_lead_time_days") - 1.0).alias("_drift"))
        .filter(pl.col("_drift") > tolerance)
        .sort("supplier_id", "sku_id")
    )
    return _out(
        hit,
        "lead_time_drift",
        value=pl.col("_drift"),
        threshold=pl.lit(tolerance),
        customer_impacting=pl.lit(False),
        severity=pl.when(pl.col("_drift") > 2 * tolerance).then(pl.lit("high")).otherwise(pl.lit("medium")),
        message=pl.format(
            "last {} deliveries took {} days on average vs {} promised",
            pl.col("_n"),
            pl.col("_obs").round(1),
            pl.col("promised_lead_time_days"),
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
