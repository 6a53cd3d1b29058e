"""Shared set-up of the per-tenant serving tests: tenants whose data entered through the real ingest, with
stored forecasts written through :func:`features.forecasts.write_forecasts` (no model training), and keys."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
HORIZON = 6


@dataclasses.dataclass
class Tenants:
    home: Path
    settings: object
    engine: object
    keys: dict[str, str]
    units: dict[str, list[str]]  # tenant -> bottom unit ids (sku|location|channel)
    data: dict[str, object]  # tenant -> features.synth.SynthData


def ingest_tenant(settings, engine, tenant: str, data, folder: Path) -> None:
    """Every table of ``data`` through ``features.ingest.ingest`` (identities first)."""
    from features.ingest import ingest

    tables = data.tables()
    for kind, path in data.write(folder).items():
        if tables[kind].height == 0:  # e.g. no open purchase orders drawn for a small tenant
            continue
        result = ingest(kind, path, tenant=tenant, engine=engine, settings=settings)
        assert result.exit_code == 0, result.summary()


def forecast_frame(data, scale: float, horizon: int = HORIZON) -> pl.DataFrame:
    """Monotone quantile rows per bottom unit after the last sales date, ``scale`` times the unit's mean."""
    from features.forecasts import quantile_column

    sales = data.sales
    last = sales["date"].max()
    step = timedelta(days=7)
    means = sales.group_by("sku_id", "location_id", "channel_id").agg(pl.col("qty").mean().alias("m"))
    rows = []
    for r in means.sort("sku_id", "location_id", "channel_id").iter_rows(named=True):
        uid = f"{r['sku_id']}|{r['location_id']}|{r['channel_id']}"
        for h in range(1, horizon + 1):
            mid = scale * (float(r["m"]) + 1.0) * (1.0 + 0.05 * h)
            row = {
                "unique_id": uid,
                "level": "bottom",
                "sku_id": r["sku_id"],
                "location_id": r["location_id"],
                "channel_id": r["channel_id"],
                "date": last + h * step,
                "horizon": h,
                "source": "model:test-tft",
                "model_version": "7",
                "cold_start": False,
            }
            for q in LEVELS:
                row[quantile_column(q)] = mid * (0.5 + q)
            rows.append(row)
    return pl.DataFrame(rows)


def store_forecasts(
    tenant: str,
    data,
    *,
    scale: float,
    run_id: str,
    stage: str = "base",
    model_version: str | None = "7",
    facts_dir=None,
    base_run: str | None = None,
) -> pl.DataFrame:
    """Write one forecast run of ``tenant`` made from its current sales; returns the rows written."""
    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts

    frame = forecast_frame(data, scale)
    if model_version is None:
        frame = frame.with_columns(
            pl.lit("baseline:seasonal_naive").alias("source"), pl.lit(None, pl.String).alias("model_version")
        )
    else:
        frame = frame.with_columns(pl.lit(model_version).alias("model_version"))
    meta = ForecastRunMeta(
        run_id=run_id,
        tenant=tenant,
        stage=stage,
        freq="W",
        horizon=HORIZON,
        levels=LEVELS,
        data_watermark=sales_watermark(tenant, facts_dir=facts_dir),
        model_name=f"{tenant}-tft",
        model_version=model_version,
        method="wls_struct" if stage == "reconciled" else None,
        base_run=base_run,
    )
    write_forecasts(tenant, frame, meta, facts_dir=facts_dir)
    return frame


def make_tenants(home: Path, tenants: dict[str, int], *, n_series: int = 8, n_periods: int = 60) -> Tenants:
    """Tenants (name -> synth seed) ingested into ``home``, with one viewer key each (``<t>-viewer``)."""
    from features import synth
    from features.settings import load_settings
    from features.store._db import make_engine, session_scope
    from serving.migrations import migrate_store
    from workflow import access

    settings = load_settings(home=home)
    settings.ensure_home()
    engine = make_engine(settings.database_url)
    migrate_store(engine)
    keys, units, datas = {}, {}, {}
    for tenant, seed in tenants.items():
        data = synth.generate(n_series=n_series, n_periods=n_periods, freq="W", seed=seed, start="2024-01-01")
        ingest_tenant(settings, engine, tenant, data, home / f"files-{tenant}")
        with session_scope(engine) as s:
            access.ensure_tenant(s, tenant)
            keys[f"{tenant}-viewer"] = access.create_key(s, tenant, ["viewer"], actor="test")[1]
        pu = data.planning_units
        units[tenant] = [
            f"{s}|{loc}|{c}"
            for s, loc, c in zip(pu["sku_id"], pu["location_id"], pu["channel_id"], strict=True)
        ]
        datas[tenant] = data
    return Tenants(home=home, settings=settings, engine=engine, keys=keys, units=units, data=datas)


def quantile_matrix(body: dict, labels=("p10", "p50", "p90")) -> np.ndarray:
    """``(n_units, len(labels), H)`` from a forecast response body."""
    return np.array([[f["quantiles"][k] for k in labels] for f in body["forecasts"]])


def stored_matrix(frame: pl.DataFrame, units: list[str], labels=("p10", "p50", "p90")) -> np.ndarray:
    """The same shape from the rows written, for ``units`` in order."""
    out = []
    for u in units:
        rows = frame.filter(pl.col("unique_id") == u).sort("horizon")
        out.append([rows[k].to_list() for k in labels])
    return np.array(out)
