"""The plan stage on a tenant's stores: stored forecasts in, a stored plan run out (issue 12, point 3).

Every test ingests ``features.synth`` data into a real SQLite state store and Parquet fact store (the
per-test ``REPLENISH_HOME``), writes forecasts through ``features.forecasts.write_forecasts`` (the contract
the forecast and reconcile stages write) and runs ``planning.plan_stage``.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts
from features.synth import SynthData, generate
from planning import load_plan_inputs, load_run, missing_evidence, parse_rules, plan_stage

#: Quantile of each level as a multiple of the mean (monotone; a made-up but fixed spread).
_SPREAD = {"p10": 0.55, "p25": 0.75, "p50": 0.97, "p75": 1.2, "p90": 1.5}
_LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)


@pytest.fixture
def store(tmp_path):
    """A migrated SQLite state store in the test's home, and that home's settings."""
    from features.settings import get_settings
    from features.store._db import make_engine
    from serving.migrations import migrate_store

    settings = get_settings()
    settings.ensure_home()
    eng = make_engine(settings.database_url)
    migrate_store(eng)
    yield eng, settings
    eng.dispose()


def _ingest(store, tenant: str, data: SynthData, tmp_path, kinds=None) -> None:
    from features.ingest import ingest

    eng, settings = store
    paths = data.write(tmp_path / f"files-{tenant}-{len(list(tmp_path.iterdir()))}", fmt="csv")
    for kind in kinds or SynthData.INGEST_ORDER:
        if not getattr(data, kind).height:  # nothing of this kind (e.g. no open purchase order)
            continue
        res = ingest(kind, paths[kind], tenant=tenant, engine=eng, settings=settings)
        assert res.status in ("stored", "partial"), (kind, res.status, res.message)


def _forecast_frame(
    data: SynthData,
    horizon: int,
    step: timedelta,
    *,
    source="baseline:moving_average",
    model_version=None,
    recent: int = 28,
) -> pl.DataFrame:
    """Bottom forecasts: each series' mean of its last ``recent`` periods, spread by :data:`_SPREAD`."""
    sales = data.sales
    last = sales["date"].max()
    mean = (
        sales.filter(pl.col("date") > last - step * recent)
        .group_by("sku_id", "location_id", "channel_id")
        .agg(pl.col("qty").cast(pl.Float64).mean().alias("mean"))
    )
    steps = pl.DataFrame(
        {"horizon": list(range(1, horizon + 1)), "date": [last + step * h for h in range(1, horizon + 1)]}
    )
    return (
        mean.join(steps, how="cross")
        .with_columns(
            pl.concat_str("sku_id", "location_id", "channel_id", separator="|").alias("unique_id"),
            pl.lit("bottom").alias("level"),
            pl.lit(source).alias("source"),
            pl.lit(model_version, dtype=pl.String).alias("model_version"),
            pl.lit(False).alias("cold_start"),
            *[(pl.col("mean") * f).alias(c) for c, f in _SPREAD.items()],
        )
        .drop("mean")
    )


def _meta(tenant, run_id, freq, horizon, settings, **kw) -> ForecastRunMeta:
    return ForecastRunMeta(
        run_id=run_id,
        tenant=tenant,
        stage=kw.pop("stage", "base"),
        freq=freq,
        horizon=horizon,
        levels=_LEVELS,
        data_watermark=sales_watermark(tenant, facts_dir=settings.facts_dir),
        **kw,
    )


def _units(staged) -> pl.DataFrame:
    return staged.result.units


def test_a_daily_tenant_is_planned_in_daily_periods(store, tmp_path):
    eng, settings = store
    data = generate(8, 200, freq="D", seed=3)
    _ingest(store, "daily", data, tmp_path)
    frame = _forecast_frame(data, 14, timedelta(days=1))
    write_forecasts(
        "daily", frame, _meta("daily", "fc-daily", "D", 14, settings), facts_dir=settings.facts_dir
    )

    ticks = []
    staged = plan_stage(eng, "daily", progress=lambda done, total: ticks.append((done, total)))
    assert ticks == [(0, 3), (1, 3), (2, 3), (3, 3)]
    run = load_run(eng, "daily", staged.run_id)
    print("counts", staged.counts, "notes", staged.notes)
    assert run["run"]["params"]["period_days"] == 1.0 and staged.period_days == 1.0
    assert run["run"]["forecast_version"] == "fc-daily"
    u = _units(staged)
    # lead times and review periods in days: the synth terms promise 1-8 weeks, reviews every 7 days
    assert (u["review_periods"] == 7).all()
    assert np.allclose(u["lead_time_days"].to_numpy(), u["lead_time_mean"].to_numpy())
    # levels sized to daily demand: S covers about (lead time + review) days of it, not weeks
    daily = u["mean_demand"].to_numpy()
    days = u["lead_time_mean"].to_numpy() + u["review_periods"].to_numpy()
    ratio = u["order_up_to"].to_numpy() / (daily * days)
    print("S / (daily demand x (L + R) days):", np.round(ratio, 2))
    assert np.all((ratio > 0.8) & (ratio < 2.5)), ratio
    # daily demand of a stocking point: the sum of its channels' forecast (the channels were summed)
    fc = frame.group_by("sku_id", "location_id").agg((pl.col("p50").sum() / 14).alias("p50_day"))
    joined = u.join(fc, on=["sku_id", "location_id"])
    assert np.allclose(joined["forecast_p50_period0"], joined["p50_day"], rtol=0.05)
    # every unit asks 28 days, the forecast has 14: planned on what exists, and said so
    assert staged.counts["horizons_capped"] == u.height
    recs = run["recommendations"]
    assert recs.height > 0
    for ev in recs["evidence"].to_list():
        assert missing_evidence(ev) == []
        f = ev["forecast"]
        assert f["period_days"] == 1.0 and f["freq"] == "D" and f["run_id"] == "fc-daily"
        assert "the forecast has 14" in f["horizon_note"] and f["horizon_used"] == 14
        assert "summed over the location's channels" in f["aggregation"]


def test_without_stored_forecasts_the_stage_plans_on_the_bootstrap_on_the_sales_grid(store, tmp_path):
    eng, _settings = store
    _ingest(store, "boot", generate(8, 150, freq="D", seed=4), tmp_path)
    staged = plan_stage(eng, "boot")
    run = load_run(eng, "boot", staged.run_id)
    assert staged.forecast is None and staged.forecast_source == "baseline:bootstrap"
    assert run["run"]["forecast_source"] == "baseline:bootstrap"
    assert run["run"]["params"]["period_days"] == 1.0  # the grid of the sales dates, not a weekly default
    assert any("history bootstrap" in n for n in staged.notes)


def _set_units(data: SynthData, **by_sku) -> SynthData:
    """Planning units with column values per SKU: ``policy_kind={"SKU_001": "manual"}``."""
    pu = data.planning_units
    for col, mapping in by_sku.items():
        pu = pu.with_columns(
            pl.col("sku_id").replace_strict(mapping, default=pl.col(col), return_dtype=pl.String).alias(col)
        )
    return dataclasses.replace(data, planning_units=pu)


def _set_inventory(data: SynthData, on_hand: dict[str, float]) -> SynthData:
    """The latest snapshot of each named SKU (every location) with this on hand and nothing on order."""
    inv = data.inventory
    last = inv["date"].max()
    hit = pl.col("sku_id").is_in(list(on_hand)) & (pl.col("date") == last)
    inv = inv.with_columns(
        pl.when(hit)
        .then(pl.col("sku_id").replace_strict(on_hand, default=None, return_dtype=pl.Float64))
        .otherwise(pl.col("on_hand"))
        .alias("on_hand"),
        pl.when(hit).then(0.0).otherwise(pl.col("on_order")).alias("on_order"),
        pl.when(hit).then(0.0).otherwise(pl.col("backorders")).alias("backorders"),
    )
    po = data.purchase_orders.filter(~pl.col("sku_id").is_in(list(on_hand)))
    return dataclasses.replace(data, inventory=inv, purchase_orders=po)


def test_manual_units_get_no_order_but_keep_their_risks(store, tmp_path):
    eng, settings = store
    data = generate(8, 120, freq="W", seed=5)
    data = _set_units(data, policy_kind={"SKU_001": "manual", "SKU_002": "periodic_review"})
    data = _set_inventory(data, {"SKU_001": 0.0, "SKU_002": 0.0})  # both empty: both at risk
    _ingest(store, "man", data, tmp_path)
    write_forecasts(
        "man",
        _forecast_frame(data, 13, timedelta(days=7), recent=13),
        _meta("man", "fc-w", "W", 13, settings),
        facts_dir=settings.facts_dir,
    )
    staged = plan_stage(eng, "man")
    u = _units(staged)
    manual = u.filter(pl.col("sku_id") == "SKU_001")
    periodic = u.filter(pl.col("sku_id") == "SKU_002")
    assert (manual["policy_kind"] == "manual").all() and staged.counts["policy_kinds"][
        "manual"
    ] == manual.height
    assert (manual["order_qty"] == 0).all() and (manual["raw_qty"] > 0).all()  # needed, but not ordered
    assert (periodic["order_qty"] > 0).all()  # the same situation under a periodic policy orders
    recs = load_run(eng, "man", staged.run_id)["recommendations"]
    assert "SKU_001" not in set(recs["sku_id"]) and "SKU_002" in set(recs["sku_id"])
    exc = staged.result.exceptions.filter(
        (pl.col("sku_id") == "SKU_001") & (pl.col("exception_type") == "stockout_risk")
    )
    assert exc.height == manual.height  # the risk is still reported (and routed)
    assert exc["action"].null_count() == 0


def test_min_max_orders_only_at_or_below_min_and_up_to_max(store, tmp_path):
    eng, settings = store
    data = generate(8, 120, freq="W", seed=6)
    data = _set_units(data, policy_kind={s: "min_max" for s in data.skus["sku_id"]})
    _ingest(store, "mm", data, tmp_path)
    write_forecasts(
        "mm",
        _forecast_frame(data, 13, timedelta(days=7), recent=13),
        _meta("mm", "fc-mm", "W", 13, settings),
        facts_dir=settings.facts_dir,
    )
    first = _units(plan_stage(eng, "mm")).sort("sku_id", "location_id")
    assert (first["max_level"] == first["order_up_to"]).all()
    assert (first["reorder_point"] < first["max_level"]).all()
    # a new snapshot: SKU_001 empty (below min), SKU_002 between min and max
    b = first.filter(pl.col("sku_id") == "SKU_002").row(0, named=True)
    between = (b["reorder_point"] + b["max_level"]) / 2 + b["committed"] + b["backorders"]
    snap = _set_inventory(data, {"SKU_001": 0.0, "SKU_002": between})
    snap = dataclasses.replace(
        snap,
        inventory=snap.inventory.filter(pl.col("date") == pl.col("date").max()).with_columns(
            pl.col("date") + timedelta(days=1)
        ),
    )
    _ingest(store, "mm", snap, tmp_path, kinds=["inventory", "purchase_orders"])
    staged = plan_stage(eng, "mm")
    u = _units(staged)
    print(u.select("sku_id", "inventory_position", "reorder_point", "max_level", "raw_qty", "order_qty"))
    below = u.filter(pl.col("inventory_position") <= pl.col("reorder_point"))
    above = u.filter(pl.col("inventory_position") > pl.col("reorder_point"))
    assert below.height and above.height
    assert (below["order_qty"] > 0).all()
    assert (below["inventory_position"] + below["order_qty"] >= below["max_level"] - 1e-9).all()
    assert (above["order_qty"] == 0).all()
    mid = u.filter(pl.col("sku_id") == "SKU_002")
    assert (mid["order_qty"] == 0).all() and (mid["raw_qty"] > 0).all()  # periodic review would order here
    ev = load_run(eng, "mm", staged.run_id)["recommendations"]["evidence"].to_list()
    assert ev and all(
        e["policy"]["kind"] == "min_max" and e["policy"]["reorder_point"] is not None for e in ev
    )


def _future_promotion(data: SynthData, sku: str, first_date, n_periods: int, step: timedelta) -> SynthData:
    rows = data.planning_units.filter(pl.col("sku_id") == sku).select("sku_id", "location_id", "channel_id")
    dates = pl.DataFrame({"date": [first_date + step * k for k in range(n_periods)]})
    promo = rows.join(dates, how="cross").with_columns(
        pl.lit(8.0).alias("price"),
        pl.lit(10.0).alias("regular_price"),
        pl.lit(0.2).alias("discount"),
        pl.lit(True).alias("promo"),
    )
    return dataclasses.replace(data, promotions=pl.concat([data.promotions, promo], how="diagonal_relaxed"))


@pytest.mark.parametrize("source", ["baseline", "bootstrap", "model_with_promotions", "reconciled_model"])
def test_a_promoted_period_raises_the_level_unless_the_model_priced_it_in(store, tmp_path, source):
    eng, settings = store
    step = timedelta(days=7)
    data = generate(8, 120, freq="W", seed=7, promo_rate=0.15)
    first = data.sales["date"].max() + step
    promoted = _future_promotion(data, "SKU_003", first, 3, step)
    model = source in ("model_with_promotions", "reconciled_model")
    kw = {}
    if source == "model_with_promotions":
        kw = {"model_name": "p-tft", "model_version": "4", "extra": {"promotions_as_inputs": True}}
    elif source == "reconciled_model":  # as training.stage.forecast_stage writes its base run's extra
        kw = {"model_name": "p-tft", "model_version": "4", "extra": {"promoted_future_periods": 3}}
    fsource = "baseline:moving_average" if source == "baseline" else "model:p-tft"
    levels = {}
    for tenant, d in (("plain", data), ("promo", promoted)):
        _ingest(store, tenant, d, tmp_path)
        frame = _forecast_frame(d, 13, step, recent=13, source=fsource, model_version=kw.get("model_version"))
        if source != "bootstrap":  # bootstrap: no stored forecast, the history baseline is planned on
            write_forecasts(
                tenant, frame, _meta(tenant, "fc", "W", 13, settings, **kw), facts_dir=settings.facts_dir
            )
        if source == "reconciled_model":  # the reconciled run says nothing of inputs: its base run does
            rec = {**kw, "extra": {}, "stage": "reconciled", "method": "wls_struct", "base_run": "fc"}
            write_forecasts(
                tenant,
                _reconciled(frame),
                _meta(tenant, "fc", "W", 13, settings, **rec),
                facts_dir=settings.facts_dir,
            )
        staged = plan_stage(eng, tenant)
        levels[tenant] = _units(staged).sort("sku_id", "location_id")
        levels[tenant + "_run"] = staged
    plain, promo = levels["plain"], levels["promo"]
    hit = pl.col("sku_id") == "SKU_003"
    print(
        source,
        "S without / with the promotion:",
        plain.filter(hit)["order_up_to"].to_list(),
        promo.filter(hit)["order_up_to"].to_list(),
    )
    assert plain.filter(~hit)["order_up_to"].equals(promo.filter(~hit)["order_up_to"])  # others unchanged
    if not model:
        assert levels["promo_run"].forecast_source == (
            "baseline:bootstrap" if source == "bootstrap" else fsource
        )
        assert (promo.filter(hit)["order_up_to"] > plain.filter(hit)["order_up_to"]).all()
        assert promo.filter(hit)["promotion_adjustment"].str.contains("3 promoted period").all()
        assert levels["promo_run"].counts["promoted_periods"] == 3 * promo.filter(hit).height
    else:  # the model had the promotions as known inputs: not shifted twice
        assert promo.filter(hit)["order_up_to"].equals(plain.filter(hit)["order_up_to"])
        assert "not shifted again" in levels["promo_run"].result.meta["forecast"]["promotions"]


def test_owner_team_reaches_the_routed_recommendation_and_exceptions(store, tmp_path):
    eng, settings = store
    data = generate(8, 120, freq="W", seed=8)
    data = _set_units(data, owner_team={"SKU_001": "fresh", "SKU_002": "fresh"})
    data = _set_inventory(data, {"SKU_001": 0.0, "SKU_002": 0.0})
    _ingest(store, "own", data, tmp_path)
    write_forecasts(
        "own",
        _forecast_frame(data, 13, timedelta(days=7), recent=13),
        _meta("own", "fc-own", "W", 13, settings),
        facts_dir=settings.facts_dir,
    )
    rules = parse_rules(
        "rules:\n"
        "  - name: team_buys\n    applies_to: [purchase, stockout_risk]\n"
        "    when: {owner_team: {eq: fresh}}\n"
        "    route: {queue: 'buyers-{owner_team}', role: planner}\n"
        "    reason: 'owned by {owner_team}'\n"
    )
    staged = plan_stage(eng, "own", rules=rules)
    run = load_run(eng, "own", staged.run_id)
    recs = run["recommendations"]
    fresh = recs.filter(pl.col("sku_id").is_in(["SKU_001", "SKU_002"]))
    assert fresh.height > 0
    assert (fresh["owner_team"] == "fresh").all() and (fresh["route_queue"] == "buyers-fresh").all()
    assert (fresh["rule"] == "team_buys").all() and (fresh["reason"] == "owned by fresh").all()
    assert all(e["policy"]["owner_team"] == "fresh" for e in fresh["evidence"].to_list())
    others = recs.filter(~pl.col("sku_id").is_in(["SKU_001", "SKU_002"]))
    assert (others["rule"] != "team_buys").all() and others["owner_team"].str.starts_with("team_").all()
    exc = run["exceptions"].filter(pl.col("sku_id").is_in(["SKU_001", "SKU_002"]))
    risk = exc.filter(pl.col("exception_type") == "stockout_risk")
    assert (
        risk.height and (risk["route_queue"] == "buyers-fresh").all() and (exc["owner_team"] == "fresh").all()
    )


def _reconciled(frame: pl.DataFrame) -> pl.DataFrame:
    """A reconciled run: the bottom rows plus the sku_id/location_id level (channels summed)."""
    q = list(_SPREAD)
    node = (
        frame.group_by("sku_id", "location_id", "date", "horizon")
        .agg(
            *[(pl.col(c).sum() * 1.1).alias(c) for c in q],
            pl.col("source").first(),
            pl.col("model_version").first(),
        )
        .with_columns(
            pl.format("sku_id={}/location_id={}", "sku_id", "location_id").alias("unique_id"),
            pl.lit("sku_id/location_id").alias("level"),
            pl.lit(None, dtype=pl.String).alias("channel_id"),
            pl.lit(False).alias("cold_start"),
        )
    )
    return pl.concat([frame, node.select(frame.columns)])


def test_evidence_names_the_forecast_run_model_version_and_reconciliation(store, tmp_path):
    eng, settings = store
    step = timedelta(days=7)
    data = generate(8, 120, freq="W", seed=9)
    _ingest(store, "rec", data, tmp_path)
    base = _forecast_frame(data, 13, step, recent=13, source="model:rec-tft", model_version="7")
    kw = {"model_name": "rec-tft", "model_version": "7"}
    write_forecasts("rec", base, _meta("rec", "cyc-1", "W", 13, settings, **kw), facts_dir=settings.facts_dir)
    write_forecasts(
        "rec",
        _reconciled(base),
        _meta(
            "rec",
            "cyc-1",
            "W",
            13,
            settings,
            stage="reconciled",
            method="mint_shrink",
            base_run="cyc-1",
            **kw,
        ),
        facts_dir=settings.facts_dir,
    )
    staged = plan_stage(eng, "rec", run_id="plan-cyc-1")
    assert staged.run_id == "plan-cyc-1" and staged.forecast.stage == "reconciled"
    run = load_run(eng, "rec", "plan-cyc-1")
    assert run["run"]["model_version"] == "7" and run["run"]["forecast_source"] == "model:rec-tft"
    assert run["run"]["params"]["forecast"]["reconciliation_method"] == "mint_shrink"
    recs = run["recommendations"]
    assert recs.height > 0
    watermark = sales_watermark("rec", facts_dir=settings.facts_dir)
    for ev in recs["evidence"].to_list():
        f = ev["forecast"]
        assert (f["run_id"], f["stage"], f["model_version"], f["model_name"]) == (
            "cyc-1",
            "reconciled",
            "7",
            "rec-tft",
        )
        assert f["reconciliation_method"] == "mint_shrink" and f["data_watermark"] == watermark
        assert f["freq"] == "W" and f["period_days"] == 7.0
        assert "sku_id/location_id level" in f["aggregation"]  # the reconciled stocking point, not a sum
    # planned on the reconciled stocking-point quantiles (10% above the channel sum here)
    node = _reconciled(base).filter((pl.col("level") != "bottom") & (pl.col("horizon") == 1))
    u = _units(staged).join(node.select("sku_id", "location_id", "p50"), on=["sku_id", "location_id"])
    assert np.allclose(u["forecast_p50_period0"], u["p50"], rtol=1e-6)
    # the base stage when asked for, and a re-run under the same plan run id replaces it (no duplicates)
    again = plan_stage(eng, "rec", run_id="plan-cyc-1")
    assert load_run(eng, "rec", "plan-cyc-1")["recommendations"].height == again.result.recommendations.height
    with eng.connect() as c:
        import sqlalchemy as sa

        assert c.execute(sa.text("select count(*) from plan_runs where tenant_id='rec'")).scalar_one() == 1
    with pytest.raises(LookupError, match="no forecast run 'nope'"):
        plan_stage(eng, "rec", forecast_run="nope")


def test_units_missing_from_the_forecast_are_planned_on_the_bootstrap_and_marked(store, tmp_path):
    eng, settings = store
    data = generate(8, 120, freq="W", seed=10)
    _ingest(store, "gap", data, tmp_path)
    frame = _forecast_frame(data, 13, timedelta(days=7), recent=13).filter(pl.col("sku_id") != "SKU_004")
    write_forecasts("gap", frame, _meta("gap", "fc-gap", "W", 13, settings), facts_dir=settings.facts_dir)
    inputs = load_plan_inputs(eng, "gap")
    u = inputs.units
    gap = u.filter(pl.col("sku_id") == "SKU_004")
    assert (
        gap.height and (gap["unit_forecast_source"] == "baseline:bootstrap").all() and gap["cold_start"].all()
    )
    assert inputs.info["units_without_forecast"] == gap.height
    assert np.isfinite(np.asarray(inputs.forecast.values)).all()


def test_evidence_documents_built_column_wise_equal_the_row_by_row_ones(store, tmp_path):
    from planning import evidence_record
    from planning._evidence import evidence_records

    eng, _settings = store
    _ingest(store, "docs", generate(60, 60, freq="W", seed=11), tmp_path)
    recs = plan_stage(eng, "docs").result.recommendations
    assert recs.height >= 3
    recs = recs.with_columns(  # a NaN and an infinity among the values, as plans can have
        pl.when(pl.int_range(pl.len()) == 0).then(float("nan")).otherwise(pl.col("raw_qty")).alias("raw_qty"),
        pl.when(pl.int_range(pl.len()) == 1)
        .then(float("inf"))
        .otherwise(pl.col("lot_size"))
        .alias("lot_size"),
    )
    recs = recs.with_columns(  # and a transfer row (its order section is trimmed)
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("transfer")).otherwise(pl.col("kind")).alias("kind")
    )
    assert evidence_records(recs) == [evidence_record(r) for r in recs.iter_rows(named=True)]
