"""Shared data of the cycle tests: a weekly synthetic tenant ingested file by file, and stored forecasts.

The forecast facts are written through ``features.forecasts`` as the forecast/reconcile stages write them, so
the stages downstream of them run on real stores without a model pass.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

TENANT = "acme"


@pytest.fixture
def settings(db_url, monkeypatch):
    """Settings whose state store is the test's (SQLite file, or the PostgreSQL database of ``db_url``)."""
    from features.settings import get_settings

    monkeypatch.setenv("REPLENISH_DATABASE_URL", db_url)
    s = get_settings()
    s.ensure_home()
    return s


@pytest.fixture
def ingested(settings, engine, tmp_path):
    """A weekly synthetic tenant ingested file by file, master data first (features.synth's order)."""
    from features.ingest import ingest
    from features.synth import SynthData, generate

    data = generate(24, 60, freq="W", seed=5)
    paths = data.write(tmp_path / "files", fmt="parquet")
    for kind in SynthData.INGEST_ORDER:
        ingest(kind, paths[kind], tenant=TENANT, engine=engine, settings=settings)
    return engine, data


def store_forecast(settings, data, *, run_id="fc1", stage="reconciled", method="wls_struct"):
    """Stored forecasts of every planning unit as the forecast/reconcile stages write them (no model pass)."""
    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts

    sales = data.sales
    last = sales["date"].max()
    H = 8
    mean = sales.group_by("sku_id", "location_id", "channel_id").agg(pl.col("qty").tail(12).mean().alias("m"))
    rows = []
    for r in mean.iter_rows(named=True):
        m = float(r["m"] or 0.0)
        for h in range(1, H + 1):
            rows.append({
                "unique_id": f"{r['sku_id']}|{r['location_id']}|{r['channel_id']}", "level": "bottom",
                "sku_id": r["sku_id"], "location_id": r["location_id"], "channel_id": r["channel_id"],
                "date": last + np.timedelta64(7 * h, "D").item(), "horizon": h, "source": "model:acme-tft",
                "model_version": "3", "cold_start": False,
                "p10": 0.5 * m, "p25": 0.75 * m, "p50": m, "p75": 1.25 * m, "p90": 1.6 * m,
            })
    frame = pl.DataFrame(rows)
    meta = ForecastRunMeta(
        run_id=run_id, tenant=TENANT, stage=stage, freq="W", horizon=H, levels=(0.1, 0.25, 0.5, 0.75, 0.9),
        data_watermark=sales_watermark(TENANT, facts_dir=settings.facts_dir), model_name="acme-tft",
        model_version="3", method=method if stage == "reconciled" else None,
        base_run=run_id if stage == "reconciled" else None,
    )
    write_forecasts(TENANT, frame, meta, facts_dir=settings.facts_dir)
    return meta
