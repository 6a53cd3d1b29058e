"""What-if, latest plan and risk per caller tenant (in-process app, real SQLite and Parquet stores).

Tenants' data enter through the real ingest, their forecasts are stored with ``features.forecasts`` (no model
training) and their plan runs made by ``planning.plan_stage``; the app checks the stored forecasts on every
request here (check interval 0), so a stale answer can never slip through between checks.
"""

from __future__ import annotations

import pytest

from tests.serving._serve_tenants import make_tenants, store_forecasts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fastapi.testclient import TestClient

    from planning import plan_stage
    from serving.api.main import build_decision_app

    home = tmp_path_factory.mktemp("home")
    w = make_tenants(home, {"a": 1, "b": 2, "n": 3, "s": 4})
    fd = w.settings.facts_dir
    for tenant, scale in (("a", 1.0), ("b", 3.0), ("s", 1.0)):
        store_forecasts(tenant, w.data[tenant], scale=scale, run_id=f"{tenant}-1", facts_dir=fd)
    runs = {t: plan_stage(w.engine, t, settings=w.settings) for t in ("a", "b", "s")}
    app = build_decision_app(w.settings, forecast_check_interval_s=0)
    with TestClient(app) as c:
        c.w, c.runs = w, runs
        c.h = {t: {"X-API-Key": w.keys[f"{t}-viewer"]} for t in ("a", "b", "n", "s")}
        yield c
    w.engine.dispose()


def _points(c, tenant: str, n: int) -> list[str]:
    return sorted({"|".join(u.split("|")[:2]) for u in c.w.units[tenant]})[:n]


def test_latest_plan_and_risk_are_the_callers_tenants(world):
    c = world
    for tenant in ("a", "b"):
        r = c.get("/v1/plans/latest", headers=c.h[tenant])
        assert r.status_code == 200 and r.json()["run"]["run_id"] == c.runs[tenant].run_id
        assert r.json()["counts"]["recommendations"] == c.runs[tenant].result.recommendations.height
        risk = c.get("/v1/risk", headers=c.h[tenant])
        assert risk.status_code == 200, risk.text
        body = risk.json()
        assert body["tenant"] == tenant and body["run_id"] == c.runs[tenant].run_id
        assert body["forecast_run"] == f"{tenant}-1" and body["model_version"] == "7"
        assert body["data_watermark"]
        exc = c.runs[tenant].result.exceptions
        want = exc.filter(exc["exception_type"].is_in(["stockout_risk", "overstock"])).height
        assert len(body["items"]) == min(want, 200)
    assert c.runs["a"].run_id != c.runs["b"].run_id
    # n has no plan run: 409 naming the command, never another tenant's run.
    for path in ("/v1/plans/latest", "/v1/risk"):
        r = c.get(path, headers=c.h["n"])
        assert r.status_code == 409 and r.json()["detail"]["command"] == "replenish cycle --tenant n"
    assert c.get("/v1/risk").status_code == 401


def test_what_if_plans_the_callers_tenant_and_moves_the_right_way(world):
    c = world
    points = _points(c, "a", 4)
    up = c.post("/v1/plans/what-if", json={"units": points, "fill_target": 0.99}, headers=c.h["a"])
    assert up.status_code == 200, up.text
    body = up.json()
    assert body["tenant"] == "a" and body["forecast_run"] == "a-1" and body["model_version"] == "7"
    assert body["forecast_source"].startswith("model:")
    assert [u["unit"] for u in body["base"]] == points
    for b, s in zip(body["base"], body["scenario"], strict=True):
        assert s["order_up_to"] >= b["order_up_to"] - 1e-6 and s["fill_rate"] >= b["fill_rate"] - 1e-3
    slow = c.post(
        "/v1/plans/what-if", json={"units": points, "lead_time_factor": 3.0}, headers=c.h["a"]
    ).json()
    assert sum(s["order_up_to"] for s in slow["scenario"]) > sum(b["order_up_to"] for b in slow["base"])
    # A bottom unit id names its stocking point.
    unit = next(u for u in c.w.units["a"] if u.startswith(points[0] + "|"))
    one = c.post("/v1/plans/what-if", json={"units": [unit], "fill_target": 0.99}, headers=c.h["a"]).json()
    assert one["base"][0]["order_up_to"] == pytest.approx(body["base"][0]["order_up_to"])
    before = c.get("/v1/plans/latest", headers=c.h["a"]).json()["run"]["count"]
    c.post("/v1/plans/what-if", json={"units": points, "budget": 1.0}, headers=c.h["a"])
    assert c.get("/v1/plans/latest", headers=c.h["a"]).json()["run"]["count"] == before, "what-if saved a run"


def test_what_if_never_reads_another_tenants_forecasts(world):
    c = world
    shared = sorted(set(_points(c, "a", 50)) & set(_points(c, "b", 50)))[:3]
    assert shared, "the synthetic tenants share stocking-point ids"
    ask = {"units": shared, "fill_target": 0.98}
    a1 = c.post("/v1/plans/what-if", json=ask, headers=c.h["a"]).json()
    b1 = c.post("/v1/plans/what-if", json=ask, headers=c.h["b"]).json()
    assert a1["forecast_run"] == "a-1" and b1["forecast_run"] == "b-1"
    # b's forecasts change: a's answer does not move; b's does (its own forecasts are what it plans on).
    store_forecasts("b", c.w.data["b"], scale=9.0, run_id="b-2", facts_dir=c.w.settings.facts_dir)
    a2 = c.post("/v1/plans/what-if", json=ask, headers=c.h["a"]).json()
    b2 = c.post("/v1/plans/what-if", json=ask, headers=c.h["b"]).json()
    assert a2 == a1
    assert b2["forecast_run"] == "b-2"
    assert sum(u["order_up_to"] for u in b2["base"]) > sum(u["order_up_to"] for u in b1["base"])
    # n has no forecasts: 409 naming the command, nothing planned on someone else's.
    r = c.post("/v1/plans/what-if", json=ask, headers=c.h["n"])
    assert r.status_code == 409 and r.json()["detail"]["command"] == "replenish cycle --tenant n --train"


def test_what_if_rejects_bad_input_with_the_field_named(world):
    c = world
    points = _points(c, "a", 2)
    r = c.post("/v1/plans/what-if", json={"units": points, "fill_target": 1.5}, headers=c.h["a"])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "fill_target"]
    r = c.post("/v1/plans/what-if", json={"units": points}, headers=c.h["a"])
    assert r.status_code == 422
    r = c.post("/v1/plans/what-if", json={"units": ["Nowhere|SKU_99"], "budget": 1}, headers=c.h["a"])
    assert r.status_code == 404 and r.json()["detail"]["units"] == ["Nowhere|SKU_99"]


def test_newer_sales_refuse_forecasts_what_if_and_risk(world, tmp_path):
    import polars as pl

    from features.ingest import ingest

    c = world
    points = _points(c, "s", 2)
    assert c.get("/v1/risk", headers=c.h["s"]).status_code == 200
    ok = c.post("/v1/plans/what-if", json={"units": points, "fill_target": 0.99}, headers=c.h["s"])
    assert ok.status_code == 200
    sales = c.w.data["s"].sales
    later = sales.filter(pl.col("date") == pl.col("date").max()).with_columns(
        pl.col("date") + pl.duration(days=7)
    )
    later.write_csv(tmp_path / "next.csv")
    assert (
        ingest("sales", tmp_path / "next.csv", tenant="s", engine=c.w.engine, settings=c.w.settings).exit_code
        == 0
    )
    r = c.post("/v1/forecasts", json={"units": c.w.units["s"][:1]}, headers=c.h["s"])
    assert r.status_code == 409 and r.json()["detail"]["command"] == "replenish cycle --tenant s"
    r = c.post("/v1/plans/what-if", json={"units": points, "fill_target": 0.99}, headers=c.h["s"])
    assert r.status_code == 409 and "base" not in r.json()
    r = c.get("/v1/risk", headers=c.h["s"])
    assert r.status_code == 409 and r.json()["detail"]["command"] == "replenish cycle --tenant s"
