"""The monitoring job on real stores (SQLite and PostgreSQL, Parquet facts, stored forecast runs).

Every figure asserted is recomputed here from the same inputs with plain loops, independently of the Polars
code under test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sqlalchemy import update

from features.facts import write_facts
from features.forecasts import ForecastRunMeta, write_forecasts
from features.store._db import session_scope
from tests.workflow._helpers import propose
from workflow import events, lifecycle, telemetry
from workflow._models import Recommendation
from workflow.monitoring import run_monitoring, run_points
from workflow.schemas import OverrideIn

D0 = date(2026, 1, 1)
UNITS = [("S1", "L1", "c"), ("S2", "L1", "c"), ("S1", "L2", "c")]
DAYS = 30  # sales on days 0..29


def _qty(u: int, d: int) -> float:
    return float((3 * u + d) % 7 + 2 * u)


def _sales(tmp) -> pl.DataFrame:
    rows = [
        (s, loc, ch, D0 + timedelta(days=d), _qty(u, d))
        for u, (s, loc, ch) in enumerate(UNITS)
        for d in range(DAYS)
        if not (u == 1 and d == 22)  # no row: zero demand that day
    ]
    return pl.DataFrame(rows, schema=["sku_id", "location_id", "channel_id", "date", "qty"], orient="row")


def _forecast(
    run: str, version: str, origin: int, horizon: int, bias: float, fd, created: str
) -> pl.DataFrame:
    rows = []
    for u, (s, loc, ch) in enumerate(UNITS):
        for h in range(1, horizon + 1):
            p50 = 3.0 + u + 0.5 * h + bias
            rows.append(
                dict(
                    unique_id=f"{s}|{loc}|{ch}",
                    level="bottom",
                    sku_id=s,
                    location_id=loc,
                    channel_id=ch,
                    date=D0 + timedelta(days=origin + h),
                    horizon=h,
                    source=f"model:{version}",
                    model_version=version,
                    cold_start=False,
                    p10=p50 - 2.0,
                    p50=p50,
                    p90=p50 + 2.0,
                )
            )
    frame = pl.DataFrame(rows)
    meta = ForecastRunMeta(
        run_id=run,
        tenant="a",
        stage="base",
        freq="D",
        horizon=horizon,
        levels=(0.1, 0.5, 0.9),
        data_watermark="w",
        model_name="m",
        model_version=version,
        created_at=created,
    )
    write_forecasts("a", frame, meta, facts_dir=fd)
    return frame


def _actual(u: int, day: date) -> float:
    d = (day - D0).days
    if d >= DAYS:
        return np.nan
    return 0.0 if (u == 1 and d == 22) else _qty(u, d)


@pytest.fixture
def stores(engine, tenants, tmp_path):
    fd = tmp_path / "facts"
    write_facts("sales", "a", _sales(tmp_path), "b1", facts_dir=fd)
    inv = pl.DataFrame(
        [
            ("S1", "L1", D0 + timedelta(days=27), 0.0),
            ("S1", "L1", D0 + timedelta(days=29), 10.0),
            ("S2", "L1", D0 + timedelta(days=29), 500.0),
        ],
        schema=["sku_id", "location_id", "date", "on_hand"],
        orient="row",
    ).with_columns(pl.lit(0.0).alias("on_order"), pl.lit(0.0).alias("backorders"))
    write_facts("inventory", "a", inv, "b2", facts_dir=fd)
    f1 = _forecast("r1", "v1", 19, 6, 0.0, fd, "2026-01-20T00:00:00")  # targets days 20..25
    f2 = _forecast("r2", "v2", 25, 8, 1.0, fd, "2026-01-26T00:00:00")  # days 26..33: 26..29 have actuals
    return fd, {"v1": f1, "v2": f2}


def _expected_accuracy(frame: pl.DataFrame):
    """Per horizon bucket at the bottom level: WAPE, bias, MAE, coverage, pinball, MASE (loops)."""
    buckets = {}
    for r in frame.iter_rows(named=True):
        u = UNITS.index((r["sku_id"], r["location_id"], r["channel_id"]))
        y = _actual(u, r["date"])
        if np.isnan(y):
            continue
        h = r["horizon"]
        b = "1" if h == 1 else "2-3" if h <= 3 else "4-6" if h <= 6 else "7-12"
        buckets.setdefault(b, []).append((u, y, r["p10"], r["p50"], r["p90"]))
    out = {}
    for b, rows in buckets.items():
        ys = np.array([r[1] for r in rows])
        f = np.array([r[3] for r in rows])
        lo, hi = np.array([r[2] for r in rows]), np.array([r[4] for r in rows])
        pin = np.mean(
            [
                np.mean([max(q * (y - x), (q - 1) * (y - x)) for q, x in ((0.1, a), (0.5, m), (0.9, c))])
                for y, a, m, c in zip(ys, lo, f, hi, strict=True)
            ]
        )
        scale = {}
        for u in range(len(UNITS)):
            hist = [_actual(u, D0 + timedelta(days=d)) for d in range(DAYS) if not (u == 1 and d == 22)]
            scale[u] = np.mean(np.abs(np.diff(hist)))
        mase = np.mean([abs(r[1] - r[3]) / scale[r[0]] for r in rows])
        out[b] = dict(
            n=len(rows),
            wape=np.abs(ys - f).sum() / np.abs(ys).sum(),
            bias=(f - ys).sum() / ys.sum(),
            mae=np.abs(ys - f).mean(),
            coverage=np.mean((ys >= lo) & (ys <= hi)),
            pinball=pin,
            mase=mase,
        )
    return out


def test_monitoring_joins_stored_forecasts_with_actuals(engine, tenants, stores):
    fd, frames = stores
    res = run_monitoring(engine, "a", facts_dir=fd)
    acc = {
        (r["model_version"], r["level"], r["horizon_bucket"]): r for r in res.accuracy.iter_rows(named=True)
    }
    for version, frame in frames.items():
        for b, exp in _expected_accuracy(frame).items():
            got = acc[(version, "bottom", b)]
            assert got["n"] == exp["n"]
            for k in ("wape", "bias", "mae", "pinball"):
                assert got[k] == pytest.approx(exp[k], rel=1e-9), (version, b, k)
            assert got["coverage_p10_p90"] == pytest.approx(exp["coverage"])
            # MASE: the scale is over consecutive recorded periods, as documented (unit 1 lacks day 22)
            assert got["mase"] == pytest.approx(exp["mase"], rel=0.2)
    # v2's targets after the last sales day have no actual yet: 4 of its 8 horizons counted, per unit
    assert sum(r["n"] for k, r in acc.items() if k[0] == "v2" and k[1] == "bottom") == 4 * len(UNITS)
    # total level: sums per target day
    f1 = frames["v1"].filter(pl.col("horizon") == 1)
    ys = sum(
        _actual(UNITS.index((r["sku_id"], r["location_id"], r["channel_id"])), r["date"])
        for r in f1.iter_rows(named=True)
    )
    assert acc[("v1", "total", "1")]["wape"] == pytest.approx(abs(f1["p50"].sum() - ys) / ys)
    assert res.counts["pairs"] == 6 * 3 + 4 * 3

    # inventory: rate = sales of days 2..29 / 28 per (sku, location)
    rate = {u: sum(_actual(u, D0 + timedelta(days=d)) for d in range(2, 30)) / 28 for u in range(2)}
    inv = res.inventory
    assert inv["stockout_snapshots"] == 1 and inv["stockout_rate"] == pytest.approx(1 / 3)
    assert inv["lost_sales_units"] == pytest.approx(rate[0] * 2)  # out on day 27, next snapshot day 29
    assert inv["excess_units"] == pytest.approx(500 - 90 * rate[1])
    assert inv["days_of_cover_median"] == pytest.approx(np.median([10 / rate[0], 500 / rate[1]]))
    assert inv["under_7_days_share"] == 0.5 and inv["units"] == 2

    with session_scope(engine) as s:
        pts = run_points(s, "a")
        text = telemetry.tenant_prometheus_text(s, "a")
        ev = events.read(s, "a", topics=["monitoring"]).events
    assert {p["metric"] for p in pts} >= {
        "forecast_wape",
        "forecast_coverage_p10_p90",
        "inventory_excess_units",
        "forecast_wape_by_period",
        "monitoring_pairs",
    }
    assert 'replenish_forecast_wape{model_version="v1",level="bottom",horizon="1"}' in text
    # by location: both measured units are at L1, so L1's group figures are the tenant's
    by_loc = {
        p["metric"].removeprefix("inventory_group_"): p["value"]
        for p in pts
        if p["labels"] == {"group_kind": "location", "group": "L1"}
    }
    assert by_loc["lost_sales_units"] == pytest.approx(inv["lost_sales_units"])
    assert by_loc["excess_units"] == pytest.approx(inv["excess_units"]) and by_loc["units"] == 2
    assert 0 < by_loc["fill_rate"] < 1 and by_loc["stockout_rate"] == pytest.approx(1 / 3)
    assert len([ln for ln in text.splitlines() if ln and not ln.startswith("#")]) <= 500
    # the group figures stay out of the scrape (bounded labels); the tenant-wide ones are in it
    assert "inventory_group_" not in text and "group_kind" not in text
    assert "replenish_inventory_excess_units" in text and "replenish_series_truncated 0" in text
    assert [e.key for e in ev] == [res.run_id] and ev[0].payload["pairs"] == 30


def test_adoption_and_override_value_added(engine, tenants, stores):
    fd, _ = stores
    admin = tenants[("a", "admin")][0]
    # S1 at L1 over days 20..25: actual and the newest p50 there (r1 only covers those days)
    ids = []
    for qty, final, reason in ((50.0, 40.0, "x"), (30.0, 45.0, "y")):
        rec = propose(
            engine, "a", sku_id="S1", location_id="L1", quantity=qty, need_by=str(D0 + timedelta(25))
        )
        with session_scope(engine) as s:
            lifecycle.override(
                s, admin, rec.id, OverrideIn(version=rec.version, quantity=final, reason_code=reason)
            )
        ids.append(rec.id)
    with session_scope(engine) as s:  # the recommendations were made on day 20 (the time axis of the test)
        s.execute(
            update(Recommendation)
            .where(Recommendation.id.in_(ids))
            .values(created_at=datetime(2026, 1, 21, tzinfo=UTC))
        )
    res = run_monitoring(engine, "a", facts_dir=fd)
    actual = sum(_actual(0, D0 + timedelta(days=d)) for d in range(20, 26))
    forecast = sum(3.0 + 0.5 * h for h in range(1, 7))  # r1, unit 0, days 20..25
    right = [max(0.0, q + actual - forecast) for q in (50.0, 30.0)]
    mae_p = np.mean([abs(50 - right[0]), abs(30 - right[1])])
    mae_f = np.mean([abs(40 - right[0]), abs(45 - right[1])])
    a = res.adoption
    assert a["overrides_evaluated"] == 2
    assert a["fva"] == pytest.approx(1 - mae_f / mae_p)
    # per reason code: one override each
    by_reason = {r["reason"]: r for r in a["fva_by_reason"]}
    assert by_reason["x"]["n"] == 1 and by_reason["y"]["n"] == 1
    assert by_reason["x"]["fva"] == pytest.approx(1 - abs(40 - right[0]) / abs(50 - right[0]))
    assert by_reason["y"]["fva"] == pytest.approx(1 - abs(45 - right[1]) / abs(30 - right[1]))
    with session_scope(engine) as s:
        stored = {
            p["labels"]["reason"]: p["value"]
            for p in run_points(s, "a", res.run_id)
            if p["metric"] == "override_fva_by_reason"
        }
    assert stored == pytest.approx({k: r["fva"] for k, r in by_reason.items()})
    assert (
        a["override_rate"] == 1.0
        and a["acceptance_rate"] == 1.0
        and a["hours_to_decision_median"] is not None
    )


def test_exception_counts_and_ages_per_type_and_state(engine, tenants, stores):
    from workflow import exceptions as exc
    from workflow._exception_schemas import ExceptionIn

    fd, _ = stores
    opened = datetime.now(UTC) - timedelta(hours=5)
    with session_scope(engine) as s:
        for sku in ("S1", "S2"):
            exc.open_exception(
                s,
                "a",
                ExceptionIn(exception_type="late_po", message="late", sku_id=sku, location_id="L1"),
                actor="test",
                now=opened,
            )
        done, _ = exc.open_exception(
            s,
            "a",
            ExceptionIn(exception_type="overstock", message="o", sku_id="S1"),
            actor="test",
            now=opened,
        )
        exc.dismiss(s, "a", done.id, expected_version=done.version, reason="seasonal build-up", actor="test")
        exc.open_exception(  # another tenant's exception is not counted
            s, "b", ExceptionIn(exception_type="late_po", message="late", sku_id="S9"), actor="test"
        )
    res = run_monitoring(engine, "a", facts_dir=fd)
    by = {(e["type"], e["state"]): e for e in res.exceptions}
    assert set(by) == {("late_po", "open"), ("overstock", "dismissed")}
    assert by[("late_po", "open")]["count"] == 2
    assert by[("late_po", "open")]["max_age_hours"] == pytest.approx(5.0, abs=0.05)
    assert (
        by[("overstock", "dismissed")]["count"] == 1
        and by[("overstock", "dismissed")]["max_age_hours"] is None
    )
