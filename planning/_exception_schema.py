"""The schema every exception detector of :mod:`planning._exceptions` returns, and the helpers building it."""

from __future__ import annotations

import polars as pl

__all__ = ["EXCEPTION_SCHEMA", "EXCEPTION_TYPES"]

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
