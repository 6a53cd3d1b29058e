"""The reconcile stage on a tenant's ingested data: hierarchy from master data, coherent monotone levels.

Real stores throughout: master data and sales go through ``features.ingest.ingest`` into the SQL store and the
Parquet fact store, base forecasts are written with ``features.forecasts.write_forecasts`` (noisy quantiles
around recent sales, the shape the forecast stage writes), and the stored reconciled run is read back and
checked against sums made here from the master data, not from the stage's own summing matrix.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.forecasts import (
    ForecastRunMeta,
    forecast_runs,
    read_forecasts,
    write_forecasts,
    write_residuals,
)
from features.ingest import ingest
from features.profile import update_profile
from features.synth import generate
from training.reconcile_stage import NONE, UNKNOWN, HierarchyError, reconcile_stage

TENANT = "t1"
H = 14
LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)
QCOLS = ["p10", "p25", "p50", "p75", "p90"]
KEYS = ["sku_id", "location_id", "channel_id"]


@pytest.fixture
def settings():
    from features.settings import get_settings

    s = get_settings()
    s.ensure_home()
    return s


def _data(n_periods: int = 120, freq: str = "D"):
    """48 units (12 SKUs x 2 stores x 2 channels) with two categories (one SKU without), two regions."""
    data = generate(n_series=48, n_periods=n_periods, freq=freq, seed=5)
    skus = data.skus.with_columns(
        pl.when(pl.col("sku_id") == "SKU_001")
        .then(None)
        .when(pl.col("sku_id").str.slice(-1).cast(pl.Int64) % 2 == 0)
        .then(pl.lit("DRINKS"))
        .otherwise(pl.lit("SNACKS"))
        .alias("category"),
        pl.lit(None, pl.String).alias("brand"),
    )
    stores = data.locations.filter(pl.col("kind") == "store")["location_id"].to_list()
    locations = data.locations.with_columns(
        pl.when(pl.col("location_id") == stores[0])
        .then(pl.lit("NORTH"))
        .when(pl.col("kind") == "store")
        .then(pl.lit("SOUTH"))
        .otherwise(pl.col("region"))
        .alias("region")
    )
    return data, skus, locations


def _ingest(engine, settings, tmp_path, data, skus, locations) -> None:
    frames = {"channels": data.channels, "locations": locations, "skus": skus, "sales": data.sales}
    for kind, frame in frames.items():
        path = tmp_path / f"{kind}.parquet"
        frame.write_parquet(path)
        result = ingest(kind, path, tenant=TENANT, engine=engine, settings=settings)
        assert result.exit_code == 0, result.summary()


def _write_base(
    sales: pl.DataFrame,
    run_id: str = "b1",
    *,
    extra_units: pl.DataFrame | None = None,
    model_version: str | None = "7",
    seed: int = 0,
    freq: str = "D",
) -> ForecastRunMeta:
    """Noisy quantile forecasts around each unit's recent mean sales, stored as a base run."""
    rng = np.random.default_rng(seed)
    last = sales["date"].max()
    units = (
        sales.filter(pl.col("date") > last - pl.duration(days=90))
        .group_by(KEYS)
        .agg(pl.col("qty").mean().alias("mu"))
        .sort(KEYS)
    )
    if extra_units is not None:
        units = pl.concat([units, extra_units.with_columns(pl.lit(1.0).alias("mu"))], how="vertical_relaxed")
    m = units.height
    mu = units["mu"].to_numpy()[:, None] * rng.lognormal(0.0, 0.3, (m, H))
    z = np.array([-1.2816, -0.6745, 0.0, 0.6745, 1.2816])
    q = np.maximum(mu[:, :, None] + (np.sqrt(mu) + 0.2)[:, :, None] * z, 0.0)
    rep = np.repeat(np.arange(m), H)
    frame = pl.DataFrame(
        {
            "unique_id": units.select(pl.concat_str(KEYS, separator="|")).to_series().gather(rep),
            "level": "bottom",
            **{k: units[k].gather(rep) for k in KEYS},
            "horizon": np.tile(np.arange(1, H + 1), m),
            "source": "model:tft",
            "model_version": model_version,
            "cold_start": False,
            **{c: q[:, :, i].ravel() for i, c in enumerate(QCOLS)},
        }
    )
    step = {"D": "d", "W": "w", "MS": "mo"}[freq]
    dates = pl.Series([last] * H).dt.offset_by(pl.Series([f"{h}{step}" for h in range(1, H + 1)]))
    frame = frame.with_columns(dates.gather(np.tile(np.arange(H), m)).alias("date"))
    meta = ForecastRunMeta(
        run_id=run_id,
        tenant=TENANT,
        stage="base",
        freq=freq,
        horizon=H,
        levels=LEVELS,
        data_watermark="w0",
        model_name="t1-tft",
        model_version=model_version,
    )
    write_forecasts(TENANT, frame, meta)
    return meta


@pytest.fixture
def tenant(engine, settings, tmp_path):
    """Tenant t1 with master data, 120 days of sales and a base forecast run ``b1``."""
    data, skus, locations = _data()
    _ingest(engine, settings, tmp_path, data, skus, locations)
    _write_base(data.sales)
    return data, skus, locations


def _attributes(skus: pl.DataFrame, locations: pl.DataFrame) -> pl.DataFrame:
    return (
        read_forecasts(TENANT, "base", "b1")
        .select("unique_id", *KEYS)
        .unique("unique_id")
        .join(skus.select("sku_id", "category", "family", "brand"), on="sku_id", how="left")
        .join(locations.select("location_id", "region", "kind", "parent_id"), on="location_id", how="left")
        .with_columns(pl.exclude("unique_id").fill_null(NONE))
    )


def _check_stored(
    run_id: str, attrs: pl.DataFrame, levels: list[dict], tenant: str = TENANT, horizon: int = H
) -> pl.DataFrame:
    """Every stored aggregate equals the sum of its units (rebuilt from master data); quantiles monotone."""
    rec = read_forecasts(tenant, "reconciled", run_id, level=None)
    q = rec.select(QCOLS).to_numpy()
    assert (np.diff(q, axis=1) >= -1e-9).all(), "quantiles not monotone"
    assert (q >= 0).all()
    bottom = rec.filter(pl.col("level") == "bottom").join(attrs.drop(KEYS), on="unique_id")
    assert bottom["unique_id"].n_unique() == attrs.height
    assert {lv["name"] for lv in levels} == set(rec["level"].unique())
    scale = float(np.abs(q).max())
    for lv in levels:
        cols = lv["columns"]
        if lv["name"] == "bottom":
            continue
        if cols:
            ids = pl.concat_str([pl.lit(f"{c}=") + pl.col(c) for c in cols], separator="/")
        else:
            ids = pl.lit("total")
        sums = bottom.with_columns(ids.alias("node")).group_by("node", "horizon").agg(pl.col(QCOLS).sum())
        got = rec.filter(pl.col("level") == lv["name"]).join(
            sums, left_on=["unique_id", "horizon"], right_on=["node", "horizon"], how="full", suffix="_sum"
        )
        assert got.height == lv["nodes"] * horizon and got["unique_id"].null_count() == 0, lv
        err = np.abs(got.select(QCOLS).to_numpy() - got.select([f"{c}_sum" for c in QCOLS]).to_numpy()).max()
        assert err <= 1e-6 * scale, (lv["name"], err)
    return rec


def test_default_hierarchy_from_master_data_is_coherent_and_monotone(engine, settings, tenant):
    _, skus, locations = tenant
    calls = []
    meta = reconcile_stage(
        TENANT, run_id="r1", engine=engine, settings=settings, progress=lambda d, t: calls.append((d, t))
    )
    names = [lv["name"] for lv in meta.extra["levels"]]
    print("levels", [(lv["name"], lv["nodes"], lv["role"]) for lv in meta.extra["levels"]])
    print("method", meta.method, "coherence", meta.extra["coherence"], "base", meta.extra["aggregate_base"])
    # brand is null everywhere and family has one value: skipped; several channels: the stocking points.
    assert names == ["total", "category", "region", "channel_id", "sku_id/location_id", "bottom"]
    assert meta.method == "wls_struct" and meta.base_run == "b1" and meta.stage == "reconciled"
    assert meta.extra["coherence"]["max_rel"] <= 1e-9 and meta.extra["monotone"] is True
    assert meta.extra["aggregate_base"]["kind"] == "rolling_origin_baseline"
    assert calls[-1] == (6, 6) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    rec = _check_stored("r1", _attributes(skus, locations), meta.extra["levels"])
    # SKU_001 has no category: its units are under an explicit (none) node, not dropped.
    assert f"category={NONE}" in rec.filter(pl.col("level") == "category")["unique_id"].to_list()
    # The aggregates' own forecasts were combined in: the total is not the plain sum of the base units.
    base_total = (
        read_forecasts(TENANT, "base", "b1").group_by("horizon").agg(pl.col("p50").sum()).sort("horizon")
    )
    total = rec.filter(pl.col("unique_id") == "total").sort("horizon")
    assert np.abs(total["p50"].to_numpy() - base_total["p50"].to_numpy()).max() > 1e-3
    stock = rec.filter(pl.col("level") == "sku_id/location_id")
    assert stock["channel_id"].null_count() == stock.height and stock["sku_id"].null_count() == 0


def test_hierarchy_without_attributes(engine, settings, tmp_path):
    data, skus, locations = _data()
    skus = skus.select("sku_id")
    locations = locations.select("location_id", "kind").filter(pl.col("kind") == "store")
    _ingest(engine, settings, tmp_path, data, skus, locations)
    _write_base(data.sales)
    meta = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    print("levels", [(lv["name"], lv["nodes"]) for lv in meta.extra["levels"]])
    names = [lv["name"] for lv in meta.extra["levels"]]
    assert names == ["total", "channel_id", "sku_id/location_id", "bottom"]
    blank = [pl.lit(None, pl.String).alias(c) for c in ("category", "family", "brand")]
    full_skus = skus.with_columns(blank)
    full_locs = locations.with_columns([pl.lit(None, pl.String).alias(c) for c in ("region", "parent_id")])
    _check_stored("r1", _attributes(full_skus, full_locs), meta.extra["levels"])


def test_profile_levels_and_unknown_column(engine, settings, tenant):
    _, skus, locations = tenant
    update_profile(engine, TENANT, hierarchy=[[], ["region"], ["category", "region"]])
    meta = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    assert [lv["name"] for lv in meta.extra["levels"]] == ["total", "region", "category/region", "bottom"]
    _check_stored("r1", _attributes(skus, locations), meta.extra["levels"])
    update_profile(engine, TENANT, hierarchy=[[], ["colour"]])
    with pytest.raises(
        HierarchyError,
        match=r"'colour'.*allowed columns: sku_id, location_id, channel_id, "
        r"category, family, brand, region, kind, parent_id",
    ):
        reconcile_stage(TENANT, run_id="r2", engine=engine, settings=settings)
    assert [m.run_id for m in forecast_runs(TENANT, "reconciled")] == ["r1"]


def test_method_default_switches_with_residuals(engine, settings, tenant):
    without = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    assert without.method == "wls_struct" and without.extra["residual_units"] == 0
    base = read_forecasts(TENANT, "base", "b1")
    units = base["unique_id"].unique().sort()
    rng = np.random.default_rng(1)
    res = pl.DataFrame(
        {
            "unique_id": units.gather(np.repeat(np.arange(units.len()), 20)),
            "origin": np.tile(np.repeat([0, 1], 10), units.len()),
            "horizon": np.tile(np.arange(1, 11), 2 * units.len()),
            "residual": rng.normal(0.0, 2.0, 20 * units.len()),
        }
    )
    write_residuals(TENANT, "7", res)
    with_res = reconcile_stage(TENANT, run_id="r2", engine=engine, settings=settings)
    print("without", without.method, "with", with_res.method, with_res.extra["residual_units"])
    assert with_res.method == "wls_var" and with_res.extra["residual_units"] == units.len()
    a = read_forecasts(TENANT, "reconciled", "r1", level="bottom").sort("unique_id", "horizon")
    b = read_forecasts(TENANT, "reconciled", "r2", level="bottom").sort("unique_id", "horizon")
    assert np.abs(a["p50"].to_numpy() - b["p50"].to_numpy()).max() > 1e-6  # the weights changed the answer
    update_profile(engine, TENANT, reconcile_method="ols")
    assert reconcile_stage(TENANT, run_id="r3", engine=engine, settings=settings).method == "ols"
    shrink = reconcile_stage(TENANT, run_id="r4", engine=engine, settings=settings, method="mint_shrink")
    assert shrink.method == "mint_shrink" and shrink.extra["coherence"]["max_rel"] <= 1e-9
    _, skus, locations = tenant
    _check_stored("r4", _attributes(skus, locations), shrink.extra["levels"])
    with pytest.raises(ValueError, match="expected one of bottom_up, top_down, ols"):
        reconcile_stage(TENANT, run_id="r5", engine=engine, settings=settings, method="magic")


def test_rerun_replaces_the_run(engine, settings, tenant):
    first = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    rows = read_forecasts(TENANT, "reconciled", "r1", level=None)
    second = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    again = read_forecasts(TENANT, "reconciled", "r1", level=None)
    assert [m.run_id for m in forecast_runs(TENANT, "reconciled")] == ["r1"]
    assert again.height == rows.height == first.extra["rows"] == second.extra["rows"]
    assert again.drop("run_id").equals(rows.drop("run_id"))  # same inputs, same numbers


def test_unknown_unit_and_short_history(engine, settings, tmp_path):
    data, skus, locations = _data(n_periods=10)
    _ingest(engine, settings, tmp_path, data, skus, locations)
    ghost = pl.DataFrame(
        {
            "sku_id": ["GHOST"],
            "location_id": [data.sales["location_id"][0]],
            "channel_id": [data.sales["channel_id"][0]],
        }
    )
    _write_base(data.sales, extra_units=ghost)
    meta = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    assert meta.extra["unknown_units"] == 1
    # Ten days of sales are too few for one backtest origin: the aggregates start from the bottom sums,
    # which are coherent, so the reconciled forecasts are the base forecasts.
    assert meta.extra["aggregate_base"]["kind"] == "bottom_sum"
    rec = read_forecasts(TENANT, "reconciled", "r1", level=None)
    assert f"category={UNKNOWN}" in rec["unique_id"].to_list()
    base = read_forecasts(TENANT, "base", "b1").sort("unique_id", "horizon")
    got = rec.filter(pl.col("level") == "bottom").sort("unique_id", "horizon")
    assert np.abs(got.select(QCOLS).to_numpy() - base.select(QCOLS).to_numpy()).max() <= 1e-6
    attrs = _attributes(skus, locations).with_columns(
        pl.when(pl.col("sku_id") == "GHOST").then(pl.lit(UNKNOWN)).otherwise(pl.col(c)).alias(c)
        for c in ("category", "family", "brand")
    )
    _check_stored("r1", attrs, meta.extra["levels"])


@pytest.mark.parametrize(("freq", "periods", "history"), [("D", 120, 91), ("W", 110, 110), ("MS", 40, 40)])
def test_daily_weekly_and_monthly_grids(engine, settings, tmp_path, freq, periods, history):
    data, skus, locations = _data(n_periods=periods, freq="M" if freq == "MS" else freq)
    _ingest(engine, settings, tmp_path, data, skus, locations)
    _write_base(data.sales, freq=freq)
    meta = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    print(freq, meta.extra["aggregate_base"])
    # 8 backtest origins; the history read is H + 7 origin steps + the longest baseline window, or all of it.
    assert meta.freq == freq and meta.extra["aggregate_base"]["origins"] == 8
    assert meta.extra["aggregate_base"]["history_periods"] == history
    _check_stored("r1", _attributes(skus, locations), meta.extra["levels"])
    # The history is aligned on the grid: period T-1 is the last one sold, period T-2 the one before.
    from training.reconcile_stage import _history

    base = read_forecasts(TENANT, "base", "b1").filter(pl.col("horizon") == 1).sort("unique_id")
    units = base.select(*KEYS, pl.col("date").alias("__d1"))
    Y = _history(TENANT, units, freq, 5, settings.facts_dir)
    dates = data.sales["date"].unique().sort()
    for k in (1, 2):
        sold = units.join(data.sales.filter(pl.col("date") == dates[-k]), on=KEYS, how="left")["qty"]
        assert np.array_equal(Y[:, -k], sold.fill_null(0).to_numpy().astype(float)), (freq, k)


def test_no_base_run_names_the_command(engine, settings):
    with pytest.raises(LookupError, match="replenish cycle --tenant t1 --stage forecast"):
        reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)


@pytest.mark.parametrize("tenant", ["daily", "weekly", "monthly"])
def test_reconciles_the_forecast_stage_output(shared_home, tenant):
    """The trained tenants of the session: the forecast stage's run and residuals, reconciled."""
    from features.forecasts import read_residuals
    from training.stage import forecast_stage

    base = forecast_stage(tenant, run_id=f"rec-{tenant}")
    meta = reconcile_stage(tenant, run_id=f"rec-{tenant}")
    residuals = read_residuals(tenant, base.model_version)
    print(
        tenant,
        meta.method,
        meta.extra["residual_units"],
        meta.extra["aggregate_base"],
        [(lv["name"], lv["nodes"]) for lv in meta.extra["levels"]],
    )
    assert meta.base_run == base.run_id and meta.model_version == base.model_version
    assert meta.freq == base.freq and meta.data_watermark == base.data_watermark
    assert meta.method == ("wls_var" if residuals.height else "wls_struct")
    assert meta.extra["coherence"]["max_rel"] <= 1e-9 and meta.extra["monotone"]
    data = shared_home.data[tenant]
    rec = read_forecasts(tenant, "reconciled", meta.run_id, level=None)
    bottom = rec.filter(pl.col("level") == "bottom")
    assert bottom["unique_id"].n_unique() == base.extra["units"]
    stored = read_forecasts(tenant, "base", base.run_id)
    # the units keep their base columns (source, cold start, dates); only the quantiles are reconciled
    keep = ["unique_id", "horizon", "date", "source", "model_version", "cold_start"]
    assert (
        bottom.select(keep)
        .sort("unique_id", "horizon")
        .equals(stored.select(keep).sort("unique_id", "horizon"))
    )
    attrs = (
        bottom.select("unique_id", *KEYS)
        .unique("unique_id")
        .join(data.skus.select("sku_id", "category", "family", "brand"), on="sku_id", how="left")
        .join(
            data.locations.select("location_id", "region", "kind", "parent_id"), on="location_id", how="left"
        )
        .with_columns(pl.exclude("unique_id").fill_null(NONE))
    )
    _check_stored(meta.run_id, attrs, meta.extra["levels"], tenant=tenant, horizon=base.horizon)


def test_bottom_only_profile_and_top_down_on_a_grouped_hierarchy(engine, settings, tenant):
    # a profile naming only the units themselves: no aggregate, the base forecasts stored as they are
    update_profile(engine, TENANT, hierarchy=[["channel_id", "sku_id", "location_id"]])
    meta = reconcile_stage(TENANT, run_id="r1", engine=engine, settings=settings)
    assert [lv["name"] for lv in meta.extra["levels"]] == ["bottom"]
    base = read_forecasts(TENANT, "base", "b1").sort("unique_id", "horizon")
    got = read_forecasts(TENANT, "reconciled", "r1", level=None).sort("unique_id", "horizon")
    assert got.height == base.height
    assert np.abs(got.select(QCOLS).to_numpy() - base.select(QCOLS).to_numpy()).max() <= 1e-9
    update_profile(engine, TENANT, hierarchy=[])
    with pytest.raises(ValueError, match="strict tree"):  # region and category cross: a grouped structure
        reconcile_stage(TENANT, run_id="r2", engine=engine, settings=settings, method="top_down")
    update_profile(engine, TENANT, hierarchy=[[], ["category"], ["category", "family"]])
    tree = reconcile_stage(TENANT, run_id="r3", engine=engine, settings=settings, method="top_down")
    assert tree.method == "top_down" and tree.extra["coherence"]["max_rel"] <= 1e-9
