"""Stored forecasts (``features.forecasts``) as planning's demand: one distribution per SKU x location.

Planning stocks SKU x location points; forecasts are made per SKU x location x channel and reconciled over a
hierarchy. Where a reconciled run has the ``sku_id/location_id`` level, its quantiles are the stocking
point's (coherent with the channels by construction); otherwise the bottom quantiles are summed over the
location's channels. A sum of quantiles is the quantile of the sum only for comonotone channels, so it is an
upper bound on the spread of the stocking point's demand (safe for stocking, and said in the evidence).

Which run: the one asked for; else the newest reconciled run when it is at least as new as the newest base
run (or made from it), else the newest base run.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from features.forecasts import ForecastRunMeta, forecast_runs, read_forecasts

__all__ = ["STOCKING_LEVEL", "StoredForecast", "read_stored_forecast", "select_forecast_run"]

#: Level name of the SKU x location nodes in a reconciled run.
STOCKING_LEVEL = "sku_id/location_id"


@dataclasses.dataclass(frozen=True)
class StoredForecast:
    """A stored run's quantiles aligned to planning's stocking points.

    Attributes:
        meta: the run's metadata.
        values: (N, H, Q) float64 quantiles per stocking point (row order of ``keys``), NaN where missing.
        found: (N,) the run has the stocking point.
        unit_source: (N,) source per stocking point (``model:<name>``, ``baseline:<name>``, or several
            joined by ``+`` when channels differ; None where missing).
        cold_start: (N,) any of its series was cold-started.
        aggregation: how channels were combined (for the evidence).
        period_starts: (H,) start date of each horizon step.
        n_forecast_points: stocking points in the run (planned or not).
    """

    meta: ForecastRunMeta
    values: np.ndarray
    found: np.ndarray
    unit_source: list[str | None]
    cold_start: np.ndarray
    aggregation: str
    period_starts: list[date]
    n_forecast_points: int

    @property
    def source(self) -> str:
        """The run's source: ``model:<name>`` when a model made it, else its baseline's label."""
        if self.meta.model_version is not None:
            return f"model:{self.meta.model_name or 'unnamed'}"
        labels = sorted({s for u in self.unit_source if u for s in u.split("+")})
        return labels[0] if len(labels) == 1 else "baseline:" + "+".join(x.split(":", 1)[-1] for x in labels)


def select_forecast_run(
    tenant: str, forecast_run: str | None = None, *, facts_dir: Path | None = None
) -> ForecastRunMeta | None:
    """The run to plan on (see the module docstring); None when the tenant has no stored forecast.

    Raises:
        LookupError: ``forecast_run`` names no run of the tenant (the message lists the runs there are).
    """
    runs = forecast_runs(tenant, facts_dir=facts_dir)
    if forecast_run is not None:
        hits = [m for m in runs if m.run_id == forecast_run]
        if not hits:
            have = ", ".join(f"{m.run_id} ({m.stage})" for m in runs[:10]) or "none"
            raise LookupError(f"no forecast run {forecast_run!r} for tenant {tenant!r}; stored runs: {have}")
        return next((m for m in hits if m.stage == "reconciled"), hits[0])
    rec = next((m for m in runs if m.stage == "reconciled"), None)
    base = next((m for m in runs if m.stage == "base"), None)
    if rec is not None and (base is None or rec.base_run == base.run_id or rec.created_at >= base.created_at):
        return rec
    return base


def read_stored_forecast(
    meta: ForecastRunMeta,
    keys: pl.DataFrame,
    *,
    facts_dir: Path | None = None,
    rows: pl.DataFrame | None = None,
) -> StoredForecast:
    """The run's quantiles per stocking point of ``keys`` (sku_id, location_id, in row order).

    Args:
        meta: the run.
        keys: the stocking points, in row order.
        facts_dir: fact store root (default: settings).
        rows: the run's rows at every level when already read (``read_forecasts(..., level=None)``).

    Raises:
        ValueError: the run has no rows at the bottom or at the stocking level.
    """
    if rows is None:
        rows = read_forecasts(meta.tenant, meta.stage, meta.run_id, level=None, facts_dir=facts_dir)
    qcols = meta.quantile_columns
    part = rows.filter(pl.col("level") == STOCKING_LEVEL)
    if part.height:
        aggregation = f"{meta.stage} forecast at the {STOCKING_LEVEL} level"
    else:
        part = rows.filter(pl.col("level") == "bottom")
        if not part.height:
            raise ValueError(
                f"forecast run {meta.run_id!r} ({meta.stage}) of tenant {meta.tenant!r} has no rows at level "
                f"'bottom' or {STOCKING_LEVEL!r}; levels there: {sorted(rows['level'].unique().to_list())}"
            )
        several = part.filter(pl.col("horizon") == 1).group_by("sku_id", "location_id").len()["len"].max()
        aggregation = (
            f"{meta.stage} bottom forecasts summed over the location's channels (quantiles added: "
            "comonotone, an upper bound on the spread)"
            if several > 1
            else f"{meta.stage} bottom forecast (one channel per location)"
        )
    n, h, q = keys.height, meta.horizon, len(qcols)
    k = keys.select("sku_id", "location_id").with_row_index("_i")
    hit = part.join(k, on=["sku_id", "location_id"], how="inner")
    # channel rows of a stocking point add up (numpy scatter-add instead of a group-by on the string ids)
    i, t = hit["_i"].to_numpy().astype(np.int64), hit["horizon"].to_numpy().astype(np.int64) - 1
    cell = i * h + t
    sums = np.stack(
        [np.bincount(cell, weights=hit[c].to_numpy(), minlength=n * h) for c in qcols], axis=1
    ).reshape(n, h, q)
    seen = np.bincount(cell, minlength=n * h).reshape(n, h) > 0
    values = _fill_forward(np.where(seen[:, :, None], sums, np.nan))
    found = seen.any(axis=1)
    first = hit.filter(pl.col("horizon") == pl.col("horizon").min().over("_i"))
    per_unit = first.group_by("_i").agg(
        pl.col("source").unique().sort().str.join("+").alias("source"),
        pl.col("cold_start").fill_null(False).any().alias("cold_start"),
    )
    src: list[str | None] = [None] * n
    cold = np.zeros(n, dtype=bool)
    for ii, sc, c in per_unit.iter_rows():
        src[ii], cold[ii] = sc, bool(c)
    dates = part.group_by("horizon").agg(pl.col("date").min()).sort("horizon")
    return StoredForecast(
        meta=meta,
        values=values,
        found=found,
        unit_source=src,
        cold_start=cold,
        aggregation=aggregation,
        period_starts=dates["date"].to_list(),
        n_forecast_points=part.filter(pl.col("horizon") == 1).select("sku_id", "location_id").unique().height,
    )


def _fill_forward(values: np.ndarray) -> np.ndarray:
    """Missing horizon steps of a stocking point take the step before them (or the first one present)."""
    v = values.copy()
    for t in range(1, v.shape[1]):
        gap = np.isnan(v[:, t, 0])
        v[gap, t] = v[gap, t - 1]
    for t in range(v.shape[1] - 2, -1, -1):
        gap = np.isnan(v[:, t, 0])
        v[gap, t] = v[gap, t + 1]
    return v
