"""The train and forecast stages on synthetic tenants: real SQLite store, Parquet facts and MLflow backend.

The session fixture ``trained`` (conftest) ingests and trains a daily, a weekly and a monthly (month-end
dates) tenant once; these tests check what the stages stored.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.training.conftest import SHORT_SERIES


def _sales_end(data) -> object:
    return data.sales["date"].max()


@pytest.mark.parametrize(
    "tenant, grid, step",
    [("daily", "D", timedelta(days=1)), ("weekly", "W", timedelta(days=7)), ("monthly", "MS", None)],
)
def test_grid_is_read_from_the_data_and_forecasts_carry_their_meta(shared_home, tenant, grid, step):
    from features.forecasts import quantile_columns, read_forecasts, sales_watermark
    from training.registry import client
    from training.stage import forecast_stage

    r = shared_home.results[tenant]
    assert (r.tenant, r.freq, r.model_name) == (tenant, grid, f"{tenant}-tft")
    c = client()
    mv = c.get_model_version(r.model_name, r.version)
    assert mv.tags["tenant"] == tenant and mv.tags["freq"] == grid
    assert c.get_registered_model(r.model_name).tags["tenant"] == tenant
    assert str(c.get_model_version_by_alias(r.model_name, "champion").version) == r.version

    meta = forecast_stage(tenant, run_id=f"grid-{tenant}")
    assert (meta.stage, meta.freq, meta.model_name, meta.model_version) == (
        "base",
        grid,
        r.model_name,
        r.version,
    )
    assert meta.data_watermark == sales_watermark(tenant) != "none"
    assert meta.horizon == r.horizon and meta.created_at
    rows = read_forecasts(tenant, "base", meta.run_id)
    units = shared_home.data[tenant].planning_units.height
    assert rows["unique_id"].n_unique() >= units and rows.height == meta.extra["units"] * meta.horizon
    q = rows.select(quantile_columns(meta.levels)).to_numpy()
    assert (np.diff(q, axis=1) >= -1e-9).all() and (q >= 0).all()
    one = rows.filter(pl.col("unique_id") == rows["unique_id"][0]).sort("horizon")
    dates = one["date"].to_list()
    last = _sales_end(shared_home.data[tenant])
    if step is None:  # month-end sales dates: forecasts on the month-start grid
        assert all(d.day == 1 for d in dates) and dates[0] > last.replace(day=1)
        assert (dates[0].year * 12 + dates[0].month) - (last.year * 12 + last.month) == 1
    else:
        assert dates[0] == last + step and all(b - a == step for a, b in zip(dates, dates[1:], strict=False))
    # every unit the version knows is served through its selection (TFT, statsforecast model or ensemble)
    served = rows.filter(~pl.col("cold_start"))
    assert served.height and (served["model_version"] == r.version).all()
    assert served["source"].str.contains(r"^(model:|baseline:|ensemble:)").all()
    assert meta.extra["selection"] == "ensemble" and r.served in ("with_tft", "statistical_only")


def test_backtest_residuals_are_stored_per_version(shared_home):
    from features.forecasts import read_residuals

    r = shared_home.results["daily"]
    res = read_residuals("daily", r.version)
    assert res.height == r.residuals > 0
    assert set(res.columns) == {"unique_id", "origin", "horizon", "residual"}
    assert res["horizon"].min() == 1 and res["horizon"].max() == r.horizon
    assert res["unique_id"].str.count_matches(r"\|").min() == 2  # sku|location|channel


def test_short_series_are_named_not_silently_dropped(shared_home):
    r = shared_home.results["daily"]
    assert r.short_series == ["|".join(SHORT_SERIES)]


def test_new_skus_are_forecast_from_similar_items_and_marked(shared_home, tmp_path):
    """A new SKU with five days of sales and one with none (master data only), in an existing product
    family: both are forecast from the warm units of that family (scaled to the five days' level, or the
    spread of the peers' medians); marked cold start, no model version, no unit skipped."""
    from features.forecasts import quantile_columns, read_forecasts
    from features.ingest import ingest
    from training.stage import forecast_stage

    data = shared_home.data["daily"]
    last = _sales_end(data)
    new = {"sku_id": "SKU_NEW", "location_id": "STORE_001", "channel_id": "store"}
    skus = pl.concat([data.skus.head(1).with_columns(pl.lit(s).alias("sku_id"))
                      for s in ("SKU_NEW", "SKU_NONE")])
    first = data.skus.row(0, named=True)
    units = pl.concat([data.planning_units.head(1).with_columns(*[pl.lit(v).alias(k) for k, v in u.items()])
                       for u in (new, {**new, "sku_id": "SKU_NONE"})])
    sales = pl.DataFrame(
        {
            **{k: [v] * 5 for k, v in new.items()},
            "date": [last - timedelta(days=k) for k in range(4, -1, -1)],
            "qty": [4.0, 6.0, 5.0, 7.0, 5.0],
        }
    )
    for kind, frame in (("skus", skus), ("planning_units", units), ("sales", sales)):
        path = tmp_path / f"{kind}.parquet"
        frame.write_parquet(path)
        assert ingest(kind, path, tenant="daily").status == "stored"

    meta = forecast_stage("daily", run_id="new-sku")
    rows = read_forecasts("daily", "base", "new-sku")
    for sku in ("SKU_NEW", "SKU_NONE"):
        fresh = rows.filter(pl.col("sku_id") == sku)
        assert fresh.height == meta.horizon, sku
        assert fresh["cold_start"].all() and fresh["model_version"].is_null().all()
        # the SKU is sold nowhere else: its peers share one of its product attributes
        assert fresh["source"].n_unique() == 1, fresh["source"].to_list()
        attr = fresh["source"][0].removeprefix("similar:")
        assert attr in ("family", "category", "brand"), attr
        q = fresh.select(quantile_columns([0.1, 0.25, 0.5, 0.75, 0.9])).to_numpy()
        assert (np.diff(q, axis=1) >= -1e-9).all() and q[:, 2].min() > 0  # monotone, not a zero placeholder
    peers = rows.join(data.skus.select("sku_id", attr), on="sku_id").filter(
        (pl.col(attr) == first[attr]) & ~pl.col("sku_id").is_in(["SKU_NEW", "SKU_NONE"]))
    assert peers.height
    # the SKU without history: its P50 is the median of its peers' P50s, period by period
    none = rows.filter(pl.col("sku_id") == "SKU_NONE").sort("horizon")["p50"].to_numpy()
    expect = peers.group_by("horizon").agg(pl.col("p50").median()).sort("horizon")["p50"].to_numpy()
    np.testing.assert_allclose(none, expect, rtol=1e-4)
    assert meta.extra["cold_from_peers"] >= 2 and meta.extra["cold_without_peers"] == 0
    assert meta.extra["unknown_to_model"] >= 2 and meta.extra["baseline_units"] >= 2
    short = rows.filter(pl.col("unique_id") == "|".join(SHORT_SERIES))
    assert short.height == meta.horizon  # too short to train on, still forecast (by the model or baseline)
    known = rows.filter(~pl.col("cold_start"))
    assert known.height and (known["model_version"] == shared_home.results["daily"].version).all()


def test_rerun_with_the_same_run_id_replaces_the_rows(shared_home):
    from features.forecasts import forecast_runs, read_forecasts
    from training.stage import forecast_stage

    first = forecast_stage("weekly", run_id="again")
    n = read_forecasts("weekly", "base", "again").height
    calls = []
    second = forecast_stage("weekly", run_id="again", progress=lambda d, t: calls.append((d, t)))
    assert read_forecasts("weekly", "base", "again").height == n == first.extra["rows"]
    assert [m.run_id for m in forecast_runs("weekly", "base")].count("again") == 1
    assert second.created_at >= first.created_at
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] == second.extra["units"]


def test_holdout_shorter_than_the_horizon_is_refused_before_training(shared_home):
    from training.config import TrainConfigError
    from training.registry import list_versions
    from training.stage import train_tenant

    before = list_versions("daily-tft")
    with pytest.raises(TrainConfigError, match=r"holdout = 3 is shorter than fit.horizon = 7"):
        train_tenant("daily", overrides={"fit": {"horizon": 7}, "holdout": 3})
    assert list_versions("daily-tft") == before


def test_encoder_longer_than_any_series_is_refused(shared_home):
    from training.config import TrainConfigError
    from training.registry import list_versions
    from training.stage import train_tenant

    before = list_versions("monthly-tft")
    with pytest.raises(
        TrainConfigError, match=r"fit.encoder_length = 60: longer than the longest series \(40"
    ):
        train_tenant("monthly", overrides={"fit": {"encoder_length": 60, "horizon": 3}, "holdout": 3})
    assert list_versions("monthly-tft") == before


def test_tenant_without_a_champion_gets_a_clear_lookup_error(shared_home):
    from training.stage import forecast_stage

    with pytest.raises(
        LookupError, match=r"replenish cycle --tenant ghost --train.*replenish train --tenant ghost"
    ):
        forecast_stage("ghost", run_id="x")


def test_future_promotions_are_known_inputs(shared_home):
    """A promotions-calendar row after the history reaches the model frame as a known input."""
    from features.frames import tenant_frame, tenant_spec

    data = shared_home.data["daily"]
    last = _sales_end(data)
    unit = data.sales.select("sku_id", "location_id", "channel_id").row(0)
    promo = pl.DataFrame(
        {
            "sku_id": unit[0],
            "location_id": unit[1],
            "channel_id": unit[2],
            "date": [last + timedelta(days=3)],
            "price": [1.0],
            "regular_price": [2.0],
            "discount": [0.5],
            "promo": [True],
        }
    )
    spec = tenant_spec("D")
    frame = tenant_frame(data.sales, spec, promotions=promo, future=5)
    fut = frame.filter(
        pl.col("qty").is_null()
        & (pl.col("sku_id") == unit[0])
        & (pl.col("location_id") == unit[1])
        & (pl.col("channel_id") == unit[2])
    ).sort("date")
    assert fut["promo"].to_list() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert fut["discount"].to_list()[2] == pytest.approx(0.5)
    assert fut["price_ratio"][2] < fut["price_ratio"][0]


def test_training_sample_covers_every_sku_location_and_channel():
    from features.synth import generate
    from training._data import sample_series

    sales = generate(3000, 2, "D", seed=0).sales
    keys = sample_series(sales, 300, seed=1)
    assert keys.height == 300 and keys.unique().height == 300
    for k in ("sku_id", "location_id", "channel_id"):
        assert keys[k].n_unique() == sales[k].n_unique()
    assert sample_series(sales, 300, seed=1).equals(keys)  # seeded
