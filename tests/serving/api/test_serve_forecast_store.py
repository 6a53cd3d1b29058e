"""The per-replica cache of stored forecasts (``serving.api.routes.forecasts.ForecastStore``), no Serve.

Which run a tenant is served from (reconciled over base unless a newer base run exists), hierarchy nodes,
the checks between requests, and the 409 reasons.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import polars as pl
import pytest

from tests.serving._serve_tenants import make_tenants, store_forecasts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_tenants(tmp_path_factory.mktemp("home"), {"a": 1, "z": 2}, n_series=6, n_periods=30)
    yield w
    w.engine.dispose()


def _get(store, tenant):
    return asyncio.run(store.get(tenant))


def _with_total(frame: pl.DataFrame) -> pl.DataFrame:
    """The bottom rows plus a ``total`` node per horizon (sums), shuffled: stored order must not matter."""
    qcols = [c for c in frame.columns if c.startswith("p")]
    total = (
        frame.group_by("horizon")
        .agg(pl.col("date").first(), *[pl.col(c).sum() for c in qcols])
        .with_columns(
            pl.lit("total").alias("unique_id"),
            pl.lit("total").alias("level"),
            pl.lit(None, pl.String).alias("sku_id"),
            pl.lit(None, pl.String).alias("location_id"),
            pl.lit(None, pl.String).alias("channel_id"),
            pl.lit("model:test-tft").alias("source"),
            pl.lit("7").alias("model_version"),
            pl.lit(False).alias("cold_start"),
        )
        .select(frame.columns)
    )
    return pl.concat([frame, total]).sample(fraction=1.0, shuffle=True, seed=0)


def test_reconciled_run_with_its_nodes_is_served_and_a_newer_base_run_replaces_it(world):
    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts
    from serving.api.routes.forecasts import ForecastStore

    fd = world.settings.facts_dir
    base = store_forecasts("a", world.data["a"], scale=1.0, run_id="c1", facts_dir=fd)
    rec = _with_total(base.with_columns(pl.col("^p\\d+$") * 1.1))
    meta = ForecastRunMeta(
        run_id="c1",
        tenant="a",
        stage="reconciled",
        freq="W",
        horizon=6,
        levels=(0.1, 0.25, 0.5, 0.75, 0.9),
        data_watermark=sales_watermark("a", facts_dir=fd),
        model_name="a-tft",
        model_version="7",
        method="mint_shrink",
        base_run="c1",
    )
    write_forecasts("a", rec, meta, facts_dir=fd)
    store = ForecastStore(fd, check_interval_s=0)
    fc = _get(store, "a")
    assert (fc.meta.stage, fc.meta.method, fc.meta.run_id) == ("reconciled", "mint_shrink", "c1")
    unit = world.units["a"][0]
    body = json.loads(fc.body([unit, "total"]))
    assert body["stage"] == "reconciled" and body["method"] == "mint_shrink" and body["base_run"] == "c1"
    got = {f["unit"]: f for f in body["forecasts"]}
    want = rec.filter(pl.col("unique_id") == unit).sort("horizon")
    np.testing.assert_allclose(got[unit]["quantiles"]["p50"], want["p50"].to_list(), rtol=1e-6)
    assert got[unit]["dates"] == [str(d) for d in want["date"].to_list()]
    total = rec.filter(pl.col("unique_id") == "total").sort("horizon")
    np.testing.assert_allclose(got["total"]["quantiles"]["p90"], total["p90"].to_list(), rtol=1e-6)
    assert got["total"]["level"] == "total" and got[unit]["level"] == "bottom"
    # The forecast stage runs again (newer data), the reconcile stage not yet: the newer base run is served.
    time.sleep(0.01)
    store_forecasts("a", world.data["a"], scale=2.0, run_id="c2", facts_dir=fd)
    fc = _get(store, "a")
    assert (fc.meta.stage, fc.meta.run_id) == ("base", "c2")
    assert fc.missing(["total"]) == ["total"]


def test_between_checks_no_io_and_a_new_run_is_seen_at_the_next_check(world):
    from serving.api.routes.forecasts import ForecastStore

    fd = world.settings.facts_dir
    store_forecasts("a", world.data["a"], scale=1.0, run_id="d1", facts_dir=fd)
    store = ForecastStore(fd, check_interval_s=3600)
    assert _get(store, "a").meta.run_id == "d1"
    for _ in range(50):
        _get(store, "a")
    assert store.stats() == {"tenants": 1, "loads": 1, "checks": 1}
    time.sleep(0.01)
    store_forecasts("a", world.data["a"], scale=4.0, run_id="d2", facts_dir=fd)
    assert _get(store, "a").meta.run_id == "d1", "the interval has not passed: no check, the cached run"
    store.check_interval_s = 0
    assert _get(store, "a").meta.run_id == "d2"
    assert store.stats()["loads"] == 2
    _get(store, "a")
    assert store.stats()["loads"] == 2, "an unchanged run is not loaded again"


def test_the_reasons_a_tenant_is_not_served(world):
    from serving.api.routes.forecasts import ForecastStore, NotServable

    fd = world.settings.facts_dir
    store = ForecastStore(fd, check_interval_s=0)
    with pytest.raises(NotServable) as none:
        _get(store, "nobody")
    assert none.value.detail["command"] == "replenish cycle --tenant nobody --train"
    store_forecasts("z", world.data["z"], scale=1.0, run_id="z1", model_version=None, facts_dir=fd)
    with pytest.raises(NotServable) as baseline:
        _get(store, "z")
    assert baseline.value.detail["command"] == "replenish cycle --tenant z --train"
    assert "champion" in baseline.value.detail["msg"] and baseline.value.http().status_code == 409


def test_a_run_whose_rows_are_not_in_stored_order_is_indexed_right(world):
    """Another writer's file (a unit's rows split and shuffled): each unit still gets its rows in order."""
    from features.forecasts import latest_forecast_run
    from serving.api.routes.forecasts import StoredForecast

    fd = world.settings.facts_dir
    frame = store_forecasts("a", world.data["a"], scale=3.0, run_id="e1", facts_dir=fd)
    meta = latest_forecast_run("a", "base", facts_dir=fd)
    path = fd / "forecasts" / "tenant=a" / "stage=base" / "run=e1.parquet"
    pl.read_parquet(path).sample(fraction=1.0, shuffle=True, seed=1).write_parquet(path)
    fc = StoredForecast.load(meta, fd)
    for unit in world.units["a"]:
        got = json.loads(fc.body([unit]))["forecasts"][0]
        want = frame.filter(pl.col("unique_id") == unit).sort("horizon")
        np.testing.assert_allclose(got["quantiles"]["p25"], want["p25"].to_list(), rtol=1e-6)
        assert got["dates"] == [str(d) for d in want["date"].to_list()]
