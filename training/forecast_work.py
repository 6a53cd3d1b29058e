"""A forecast run in three steps, so that a driver can hand its units out in partitions.

:func:`forecast_work` prepares the run once (the champion, its window of history and future periods, the units
with their statics), :func:`forecast_chunk` forecasts a slice of the units (the model where it can, the
baseline elsewhere: :func:`training.stage.forecast_stage`'s rules) and :func:`commit_forecast` stores the rows
as one run. :func:`training.stage.forecast_stage` runs the three in this process;
:func:`training.distributed.forecast_stage_distributed` runs the chunks on Ray actors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from training.stage import _champion, _forecast_chunk, _grid_step, _sales_end, _Window

__all__ = ["ForecastWork", "commit_forecast", "forecast_chunk", "forecast_work", "new_forecast_counts"]


def new_forecast_counts() -> dict[str, int]:
    """The counters :func:`forecast_chunk` adds to (summed over partitions by a distributed run)."""
    names = ("model", "baseline", "unknown_to_model", "short_history", "promoted", "served_tft",
             "cold_from_peers", "cold_without_peers")
    return dict.fromkeys(names, 0)


@dataclass(frozen=True)
class ForecastWork:
    """A forecast run prepared once (by the driver of a distributed run).

    The champion's window (with the version's selection, ``training.served``), the units (keys, statics,
    ``_known``) in the run's order, the recent facts from ``start`` (None: each partition reads its own) and
    the sales watermark.
    """

    tenant: str
    window: _Window
    units: pl.DataFrame
    sales: pl.DataFrame | None
    promotions: pl.DataFrame | None
    start: date
    watermark: str

    def without_model(self) -> ForecastWork:
        """This work without the model and the facts (what a remote partition is sent; it loads its own)."""
        import dataclasses as dc

        return dc.replace(self, window=dc.replace(self.window, pred=None), sales=None, promotions=None)


def forecast_work(tenant: str, *, settings, engine=None, read_facts: bool = True) -> ForecastWork:
    """Prepare a forecast run: the champion, its window and the units (see :func:`forecast_stage`).

    Raises:
        LookupError: the tenant has no champion model.
        ValueError: the tenant has no sales facts.
    """
    from features.facts import read_promotions, read_sales
    from features.forecasts import sales_watermark
    from features.frames import LAG_PREFIX, TENANT_KEYS, grid_of, snap_dates, unit_statics
    from features.profile import get_profile, model_name_for
    from training._data import open_engine, read_master

    keys = list(TENANT_KEYS)
    with open_engine(settings, engine) as eng:
        profile = get_profile(eng, tenant)
        planning = read_master(tenant, "planning_units", settings=settings, engine=eng)
        skus = read_master(tenant, "skus", settings=settings, engine=eng)
        locations = read_master(tenant, "locations", settings=settings, engine=eng)
    name = model_name_for(tenant, profile)
    pred, baseline, selection = _champion(tenant, name)
    spec = pred.spec
    fspec = spec.frame_spec
    H = spec.horizon
    watermark = sales_watermark(tenant, facts_dir=settings.facts_dir)
    end = (
        pl.DataFrame({"d": [_sales_end(tenant, settings.facts_dir)]})
        .select(snap_dates("d", fspec.freq))
        .item()
    )
    lags = [int(c.removeprefix(LAG_PREFIX)) for c in fspec.known_reals if c.startswith(LAG_PREFIX)]
    n_hist = max(spec.encoder_length, 2 * spec.season, spec.min_encoder_length, *lags, 3)
    if selection is not None:  # the statistical models read a longer history (training.served)
        from training.served import STAT_HISTORY

        n_hist = max(n_hist, STAT_HISTORY[grid_of(fspec.freq)])
    start = _grid_step(fspec.freq, end, -(n_hist - 1))
    hist_dates = [_grid_step(fspec.freq, start, k) for k in range(n_hist)]
    future = [_grid_step(fspec.freq, end, k) for k in range(1, H + 1)]
    sales = read_sales(tenant, start=start, facts_dir=settings.facts_dir)
    promotions = read_promotions(tenant, start=start, facts_dir=settings.facts_dir) if read_facts else None

    units = pl.concat([planning.select(keys), sales.select(pl.col(k).cast(pl.String) for k in keys)])
    if not read_facts:
        sales = None
    units = unit_statics(units.unique().sort(keys), fspec, skus=skus, locations=locations)
    known = pl.lit(True)
    for c in fspec.static_categoricals:
        known = known & pl.col(c).is_in(spec.vocab[c])
    units = units.with_columns(known.alias("_known"))
    window = _Window(pred, name, baseline, end, hist_dates, future, selection)
    return ForecastWork(tenant, window, units, sales, promotions, start, watermark)


def forecast_chunk(
    work: ForecastWork, units: pl.DataFrame, counts: dict, *, settings=None
) -> list[pl.DataFrame]:
    """Forecast rows of ``units`` (a slice of ``work.units``), adding to ``counts``.

    Each unit is served through the work's selection where the version has one (the TFT, statistical
    models or an ensemble per segment, ``training.served``); else the TFT and the gate's baseline.

    A ``work`` without facts (:meth:`ForecastWork.without_model`) reads the sales and promotions of these
    units alone from the fact store; ``work.window.pred`` must hold the model.
    """
    from features.facts import scan_facts
    from features.frames import TENANT_KEYS

    sales, promotions = work.sales, work.promotions
    if sales is None or promotions is None:
        keys = units.select(list(TENANT_KEYS))
        fd = settings.facts_dir
        lazy = [scan_facts(k, work.tenant, start=work.start, facts_dir=fd) for k in ("sales", "promotions")]
        sales, promotions = (f.join(keys.lazy(), on=list(TENANT_KEYS), how="semi").collect() for f in lazy)
    return _forecast_chunk(work.window, units, sales, promotions, counts)


def commit_forecast(
    work: ForecastWork,
    run_id: str,
    parts: list[pl.DataFrame],
    counts: dict,
    *,
    settings,
    extra: dict | None = None,
):
    """Store the rows of a forecast run as one run (replacing an earlier write of ``run_id``); its meta back.

    Raises:
        ValueError: no rows (no planning units and no recent sales).
    """
    from features.forecasts import ForecastRunMeta, forecast_runs, write_forecasts
    from features.frames import grid_of

    w = work.window
    spec = w.pred.spec
    fspec = spec.frame_spec
    levels = list(spec.quantiles)
    rows = pl.concat(parts) if parts else None
    meta = ForecastRunMeta(
        run_id=run_id,
        tenant=work.tenant,
        stage="base",
        freq=grid_of(fspec.freq),
        horizon=spec.horizon,
        levels=tuple(levels),
        data_watermark=work.watermark,
        model_name=w.name,
        model_version=w.pred.version if counts["model"] else None,
        extra={
            "units": work.units.height,
            "model_units": counts["model"],
            "baseline_units": counts["baseline"],
            "cold_start": counts["baseline"],
            "unknown_to_model": counts["unknown_to_model"],
            "short_history": counts["short_history"],
            "baseline": w.baseline,
            "history_end": str(w.end),
            "first_period": str(w.future[0]),
            "promoted_future_periods": counts["promoted"],
            "champion_version": w.pred.version,
            "selection": w.selection.method if w.selection is not None else "none",
            "served_tft_units": counts["served_tft"],
            "cold_from_peers": counts["cold_from_peers"],
            "cold_without_peers": counts["cold_without_peers"],
            **(extra or {}),
        },
    )
    if rows is None:
        raise ValueError(f"tenant {work.tenant!r}: no planning units and no recent sales to forecast")
    write_forecasts(work.tenant, rows, meta, facts_dir=settings.facts_dir)
    runs = forecast_runs(work.tenant, "base", facts_dir=settings.facts_dir)
    return next(m for m in runs if m.run_id == run_id)
