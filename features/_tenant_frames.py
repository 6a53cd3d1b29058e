"""Any tenant's facts (sales, the promotions calendar, SKU and location master data) as a model frame.

Internal to :mod:`features`; other packages import these names from :mod:`features.frames`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from features._grids import (
    _TENANT_REALS,
    CALENDAR_INPUTS,
    GRIDS,
    LAG_PREFIX,
    MASTER_ATTRIBUTES,
    TENANT_KEYS,
    FrameSpec,
    pandas_freq,
    snap_dates,
)


def master_attributes(skus=None, locations=None) -> tuple[str, ...]:
    """The attributes of :data:`MASTER_ATTRIBUTES` that the master data fills for at least one row."""
    out = []
    for table, frame in (("skus", skus), ("locations", locations)):
        if frame is None or frame.height == 0:
            continue
        out += [
            c for c in MASTER_ATTRIBUTES[table] if c in frame.columns and frame[c].null_count() < frame.height
        ]
    return tuple(out)


def tenant_spec(
    freq: str, *, attributes: Sequence[str] = (), lags: Sequence[int] = (), weekday: int = 0
) -> FrameSpec:
    """The column roles of :func:`tenant_frame` on a grid.

    Args:
        freq: ``"D"``, ``"W"`` or ``"MS"``.
        attributes: master-data attributes (:func:`master_attributes`) used as static categoricals beside the
            SKU, location and channel ids.
        lags: seasonal target lags k (``log_qty_lag<k>`` known inputs; each must be >= the horizon).
        weekday: first day of the weekly periods (``W`` only), 0 = Monday.

    Raises:
        ValueError: unknown grid or attribute.
    """
    if freq not in GRIDS:
        raise ValueError(f"freq={freq!r}: expected one of {GRIDS} (daily, weekly, month starts)")
    known_attrs = {a for v in MASTER_ATTRIBUTES.values() for a in v}
    bad = [a for a in attributes if a not in known_attrs]
    if bad:
        raise ValueError(f"attributes {bad}: expected some of {sorted(known_attrs)}")
    return FrameSpec(
        series_keys=TENANT_KEYS,
        time="date",
        target="qty",
        known_reals=(*_TENANT_REALS, *(f"{LAG_PREFIX}{int(k)}" for k in lags)),
        known_categoricals=CALENDAR_INPUTS[freq],
        static_categoricals=(*TENANT_KEYS, *attributes),
        freq=pandas_freq(freq, weekday),
    )


def _lag_offset(freq: str, k: int) -> str:
    if freq == "MS":
        return f"{k}mo"
    return f"{7 * k}d" if freq.startswith("W") else f"{k}d"


def _future_dates(end, freq: str, periods: int) -> list:
    grid = pd.date_range(pd.Timestamp(end), periods=periods + 1, freq=freq)
    return [d.date() for d in grid[1:]]


def tenant_frame(
    sales,
    spec: FrameSpec,
    *,
    promotions=None,
    skus=None,
    locations=None,
    future: int = 0,
    end=None,
) -> pd.DataFrame:
    """A tenant's facts as the long model frame of ``spec`` (from :func:`tenant_spec` or a trained model).

    Dates are moved onto the grid (:func:`snap_dates`; rows falling into one period are summed). Known inputs:
    ``promo`` (0/1: the sales row's flag or a promotions calendar row), ``discount`` (the calendar's discount
    depth, 0 without one) and ``price_ratio`` (price over the series' median price; a period without a price
    takes the calendar's price, else the series' usual unpromoted price). With ``future`` > 0 every series
    gets that many periods after ``end`` with the target missing and the known inputs from the promotions
    calendar; a future period without a calendar row is unpromoted at the usual price (the price carried
    forward). Calendar inputs come from the dates, lags from the target history, static attributes from
    the master data (:func:`unit_statics`).

    Args:
        sales: polars frame with the sales contract's columns (sku_id, location_id, channel_id, date, qty,
            price, promo).
        spec: the column roles.
        promotions: polars frame with the promotions contract's columns (past or planned), or None.
        skus: SKU master data (sku_id + attributes), or None.
        locations: location master data (location_id + attributes), or None.
        future: periods to add after ``end``.
        end: last period of the history (default: the latest sales date on the grid).

    Returns:
        A polars frame: the series keys, ``date``, ``qty`` (Float32, null in the future) and the known reals
        (Float32). Calendar inputs come from the grid and the static attributes from :func:`unit_statics`
        when :func:`build_panel` is given ``statics``.
    """
    import polars as pl

    keys = list(TENANT_KEYS)
    freq = spec.freq
    s = sales.select(
        *[pl.col(k).cast(pl.String) for k in keys],
        snap_dates(pl.col("date").cast(pl.Date), freq).alias("date"),
        pl.col("qty").cast(pl.Float64),
        (pl.col("price").cast(pl.Float64) if "price" in sales.columns else pl.lit(None, pl.Float64)).alias(
            "price"
        ),
        (pl.col("promo").cast(pl.Boolean) if "promo" in sales.columns else pl.lit(False))
        .fill_null(False)
        .alias("promo"),
    )
    if freq != "D":  # several dated rows can fall into one week or month
        s = s.group_by(*keys, "date").agg(pl.col("qty").sum(), pl.col("price").mean(), pl.col("promo").any())
    end = s["date"].max() if end is None else pd.Timestamp(end).date()
    stats = s.group_by(keys).agg(
        pl.col("price").median().alias("_median_price"),
        pl.col("price").filter(~pl.col("promo")).median().alias("_usual_price"),
    )
    if future > 0:
        fut = pl.DataFrame({"date": _future_dates(end, freq, future)}, schema={"date": pl.Date})
        rows = (
            stats.select(keys)
            .join(fut, how="cross")
            .with_columns(
                pl.lit(None, pl.Float64).alias("qty"),
                pl.lit(None, pl.Float64).alias("price"),
                pl.lit(False).alias("promo"),
            )
        )
        s = pl.concat([s, rows.select(s.columns)])
    if promotions is not None and promotions.height:
        cal = (
            promotions.select(
                *[pl.col(k).cast(pl.String) for k in keys],
                snap_dates(pl.col("date").cast(pl.Date), freq).alias("date"),
                pl.col("price").cast(pl.Float64).alias("_cal_price"),
                pl.col("discount").cast(pl.Float64).fill_null(0.0).alias("_cal_discount"),
                pl.col("promo").cast(pl.Boolean).fill_null(True).alias("_cal_promo"),
            )
            .group_by(*keys, "date")
            .agg(pl.col("_cal_price").min(), pl.col("_cal_discount").max(), pl.col("_cal_promo").any())
        )
        s = s.join(cal, on=[*keys, "date"], how="left")
    else:
        s = s.with_columns(
            pl.lit(None, pl.Float64).alias("_cal_price"),
            pl.lit(None, pl.Float64).alias("_cal_discount"),
            pl.lit(None, pl.Boolean).alias("_cal_promo"),
        )
    s = s.join(stats, on=keys, how="left").with_columns(
        (pl.col("promo") | pl.col("_cal_promo").fill_null(False)).cast(pl.Float32).alias("promo"),
        pl.when(pl.col("_cal_promo").fill_null(False))
        .then(pl.col("_cal_discount"))
        .otherwise(0.0)
        .fill_null(0.0)
        .cast(pl.Float32)
        .alias("discount"),
        pl.coalesce("price", "_cal_price", "_usual_price", "_median_price").alias("price"),
    )
    s = s.with_columns(
        (pl.col("price") / pl.col("_median_price"))
        .fill_nan(1.0)
        .fill_null(1.0)
        .clip(0.0, 10.0)
        .cast(pl.Float32)
        .alias("price_ratio")
    )
    lags = [int(c.removeprefix(LAG_PREFIX)) for c in spec.known_reals if c.startswith(LAG_PREFIX)]
    own = pl.col("qty").clip(lower_bound=0).log1p()
    for k in lags:
        lagged = s.filter(pl.col("qty").is_not_null()).select(
            *keys, pl.col("date").dt.offset_by(_lag_offset(freq, k)), own.alias("_lag")
        )
        s = (
            s.join(lagged, on=[*keys, "date"], how="left")
            .with_columns(pl.coalesce("_lag", own, pl.lit(0.0)).cast(pl.Float32).alias(f"{LAG_PREFIX}{k}"))
            .drop("_lag")
        )
    cols = [*keys, "date", "qty", *spec.known_reals]
    return s.select(*cols).with_columns(pl.col("qty").cast(pl.Float32))


def unit_statics(units, spec: FrameSpec, *, skus=None, locations=None):
    """The static categoricals of ``spec`` per unit: the ids and the master-data attributes.

    Args:
        units: polars frame with the series keys (one row per unit).
        spec: the column roles (its ``static_categoricals`` beyond the keys are attributes).
        skus: SKU master data (sku_id + attributes), or None.
        locations: location master data (location_id + attributes), or None.

    Returns:
        ``units`` with one String column per attribute (``"unknown"`` where the master data lacks it).
    """
    import polars as pl

    keys = list(TENANT_KEYS)
    out = units.select(*[pl.col(k).cast(pl.String) for k in keys])
    attrs = [c for c in spec.static_categoricals if c not in keys]
    for table, key, frame in (("skus", "sku_id", skus), ("locations", "location_id", locations)):
        cols = [c for c in attrs if c in MASTER_ATTRIBUTES[table]]
        if not cols:
            continue
        if frame is None or frame.height == 0:
            out = out.with_columns(*[pl.lit("unknown").alias(c) for c in cols])
            continue
        m = frame.select(pl.col(key).cast(pl.String), *[pl.col(c).cast(pl.String) for c in cols]).unique(key)
        out = out.join(m, on=key, how="left", maintain_order="left")
        out = out.with_columns(*[pl.col(c).fill_null("unknown") for c in cols])
    return out
