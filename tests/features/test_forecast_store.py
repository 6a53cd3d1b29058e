"""Stored forecasts: versioned runs, idempotent re-writes, validation, watermark and grids."""

from datetime import date

import polars as pl
import pytest

from features.forecasts import (
    ForecastRunMeta,
    forecast_runs,
    infer_freq,
    latest_forecast_run,
    period_days,
    quantile_column,
    read_forecasts,
    read_residuals,
    sales_watermark,
    to_grid,
    write_forecasts,
    write_residuals,
)

LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9)


def _meta(run="r1", stage="base", horizon=3, **kw):
    return ForecastRunMeta(
        run_id=run,
        tenant="t1",
        stage=stage,
        freq="D",
        horizon=horizon,
        levels=LEVELS,
        data_watermark="w",
        **kw,
    )


def _frame(units=("a|x|c", "b|x|c"), horizon=3, scale=1.0):
    rows = []
    for u in units:
        sku, loc, ch = u.split("|")
        for h in range(1, horizon + 1):
            base = scale * (h + len(u))
            rows.append(
                {
                    "unique_id": u,
                    "level": "bottom",
                    "sku_id": sku,
                    "location_id": loc,
                    "channel_id": ch,
                    "date": date(2024, 1, h),
                    "horizon": h,
                    "source": "model:m",
                    "model_version": "1",
                    "cold_start": False,
                    "p10": base,
                    "p25": base + 1,
                    "p50": base + 2,
                    "p75": base + 3,
                    "p90": base + 4,
                }
            )
    return pl.DataFrame(rows)


def test_write_read_and_rewrite_same_run_replaces(tmp_path):
    write_forecasts("t1", _frame(), _meta(), facts_dir=tmp_path)
    write_forecasts("t1", _frame(scale=2.0), _meta(), facts_dir=tmp_path)
    out = read_forecasts("t1", "base", facts_dir=tmp_path)
    assert out.height == 6  # replaced, not appended
    assert out.filter(pl.col("unique_id") == "a|x|c", pl.col("horizon") == 1)["p50"].item() == 2.0 * 6 + 2
    assert len(forecast_runs("t1", facts_dir=tmp_path)) == 1


def test_latest_run_and_lookup_by_id(tmp_path):
    write_forecasts("t1", _frame(), _meta("r1"), facts_dir=tmp_path)
    write_forecasts("t1", _frame(scale=3.0), _meta("r2", model_version="7"), facts_dir=tmp_path)
    assert latest_forecast_run("t1", "base", facts_dir=tmp_path).run_id == "r2"
    assert latest_forecast_run("t1", "base", facts_dir=tmp_path).model_version == "7"
    assert read_forecasts("t1", "base", facts_dir=tmp_path)["run_id"].unique().to_list() == ["r2"]
    assert read_forecasts("t1", "base", "r1", facts_dir=tmp_path).height == 6
    with pytest.raises(LookupError, match="no base forecast run 'nope'"):
        read_forecasts("t1", "base", "nope", facts_dir=tmp_path)
    assert read_forecasts("t1", "reconciled", facts_dir=tmp_path).height == 0
    assert read_forecasts("other", "base", facts_dir=tmp_path).height == 0  # tenants never mix


def test_units_and_level_filters(tmp_path):
    fr = _frame()
    agg = fr.filter(pl.col("unique_id") == "a|x|c").with_columns(
        unique_id=pl.lit("total"), level=pl.lit("total"), sku_id=None, location_id=None, channel_id=None
    )
    write_forecasts("t1", pl.concat([fr, agg]), _meta(stage="reconciled", method="ols"), facts_dir=tmp_path)
    assert read_forecasts("t1", facts_dir=tmp_path).height == 6
    assert read_forecasts("t1", level=None, facts_dir=tmp_path).height == 9
    assert read_forecasts("t1", level="total", facts_dir=tmp_path)["unique_id"].unique().to_list() == [
        "total"
    ]
    assert read_forecasts("t1", units=["b|x|c"], facts_dir=tmp_path).height == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("p90"), "missing column"),
        (lambda f: f.with_columns(p10=pl.lit(100.0)), "must be monotone"),
        (lambda f: f.with_columns(horizon=pl.lit(9, pl.Int64)), "horizon outside 1..3"),
        (lambda f: f.with_columns(horizon=pl.lit(1, pl.Int64)), "duplicated"),
        (lambda f: f.with_columns(p50=pl.lit(float("nan"))), "NaN, infinite"),
        (lambda f: f.with_columns(p75=pl.lit(None, pl.Float64)), "NaN, infinite or empty"),
        (lambda f: f.with_columns(source=pl.lit(None, pl.String)), "'source' has 6 empty"),
    ],
)
def test_bad_frames_are_refused_and_keep_the_stored_run(tmp_path, change, message):
    write_forecasts("t1", _frame(), _meta(), facts_dir=tmp_path)
    with pytest.raises(ValueError, match=message):
        write_forecasts("t1", change(_frame(scale=5.0)), _meta(), facts_dir=tmp_path)
    assert read_forecasts("t1", "base", facts_dir=tmp_path)["p10"].max() == 1.0 * (3 + 5)  # untouched


def test_meta_validation():
    with pytest.raises(ValueError, match="stage"):
        _meta(stage="final")
    with pytest.raises(ValueError, match="run_id"):
        _meta(run="../etc")
    with pytest.raises(ValueError, match="levels"):
        ForecastRunMeta(
            run_id="r", tenant="t", stage="base", freq="D", horizon=1, levels=(0.9, 0.1), data_watermark="w"
        )


def test_residuals_round_trip(tmp_path):
    fr = pl.DataFrame(
        {
            "unique_id": ["a", "a", "b"],
            "origin": [1, 2, 1],
            "horizon": [1, 1, 1],
            "residual": [0.5, float("nan"), -1.0],
        }
    )
    write_residuals("t1", "3", fr, facts_dir=tmp_path)
    out = read_residuals("t1", "3", facts_dir=tmp_path)
    assert out.height == 2 and sorted(out["residual"].to_list()) == [-1.0, 0.5]
    assert read_residuals("t1", "4", facts_dir=tmp_path).height == 0


def test_sales_watermark_changes_when_sales_are_ingested(tmp_path):
    from features.ingest import ingest
    from features.settings import get_settings
    from features.synth import generate

    settings = get_settings()
    settings.ensure_home()
    assert sales_watermark("t1") == "none"
    data = generate(3, 20, freq="D", seed=1)
    data.write(tmp_path / "files", fmt="parquet")
    for kind in ("channels", "locations", "skus"):
        ingest(kind, tmp_path / "files" / f"{kind}.parquet", tenant="t1", settings=settings)
    data.sales.head(30).write_parquet(tmp_path / "s1.parquet")
    data.sales.tail(10).write_parquet(tmp_path / "s2.parquet")
    ingest("sales", tmp_path / "s1.parquet", tenant="t1", settings=settings)
    w1 = sales_watermark("t1")
    assert w1 != "none" and sales_watermark("t1") == w1  # stable while nothing changes
    ingest("sales", tmp_path / "s1.parquet", tenant="t1", settings=settings)  # re-sent: nothing new
    assert sales_watermark("t1") == w1
    ingest("sales", tmp_path / "s2.parquet", tenant="t1", settings=settings)
    assert sales_watermark("t1") != w1
    assert sales_watermark("t2") == "none"


def test_grids():
    assert infer_freq([date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)]) == "MS"
    assert infer_freq([date(2024, 1, 1), date(2024, 2, 1)]) == "MS"
    assert infer_freq([date(2024, 1, 3), date(2024, 1, 10), date(2024, 1, 24)]) == "W"
    assert infer_freq([date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 5)]) == "D"
    with pytest.raises(ValueError, match="no dates"):
        infer_freq([])
    assert to_grid([date(2024, 1, 31), date(2024, 2, 29)], "MS").to_list() == [
        date(2024, 1, 1),
        date(2024, 2, 1),
    ]
    assert period_days("W") == 7.0 and period_days("D") == 1.0 and 30 < period_days("MS") < 31
    assert quantile_column(0.1) == "p10" and quantile_column(0.05) == "p05"


def test_rows_come_back_one_block_per_node_in_horizon_order(tmp_path):
    shuffled = _frame(units=("b|x|c", "a|x|c")).sample(fraction=1.0, shuffle=True, seed=3)
    write_forecasts("t1", shuffled, _meta(), facts_dir=tmp_path)
    out = read_forecasts("t1", "base", facts_dir=tmp_path)
    assert out["unique_id"].to_list() == ["a|x|c"] * 3 + ["b|x|c"] * 3
    assert out["horizon"].to_list() == [1, 2, 3, 1, 2, 3]
    grouped = _frame(units=("b|x|c", "a|x|c"))  # already one block per node: kept as written
    write_forecasts("t1", grouped, _meta("r2"), facts_dir=tmp_path)
    assert read_forecasts("t1", "base", "r2", facts_dir=tmp_path)["unique_id"].to_list()[0] == "b|x|c"
