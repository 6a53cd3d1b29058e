"""Planner pages in-process (FastAPI TestClient over the real app and a real SQLite store)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from serving.pages._views import COOKIE


@pytest.fixture
def world():
    from features.settings import get_settings
    from tests.serving._pages_fixture import make_world

    return make_world(get_settings())


@pytest.fixture
def client(world):
    from fastapi.testclient import TestClient

    with TestClient(world.app) as c:
        yield c


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert m, "form without a csrf_token"
    return m.group(1)


def _sign_in(client, key):
    token = _token(client.get("/ui/login").text)
    r = client.post(
        "/ui/login", data={"api_key": key, "next": "/ui/queue", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/queue"
    return r


def _csrf(client, rec_id):
    return _token(client.get(f"/ui/recommendations/{rec_id}").text)


def test_pages_need_sign_in_and_refuse_bad_keys(client, world):
    r = client.get("/ui/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    token = _token(client.get("/ui/login").text)
    r = client.post("/ui/login", data={"api_key": "rpk_nope_nope", "csrf_token": token})
    assert r.status_code == 401 and "unknown, revoked or expired" in r.text
    # the sign-in form itself needs its double-submit token
    r = client.post("/ui/login", data={"api_key": world.keys["a-planner"], "csrf_token": "forged"})
    assert r.status_code == 403 and COOKIE not in r.cookies


def test_session_cookie_is_opaque_flagged_and_revoked_by_logout(client, world):
    key = world.keys["a-planner"]
    r = _sign_in(client, key)
    header = r.headers["set-cookie"]
    token = client.cookies.get(COOKIE)
    assert token and key not in header and key.split("_")[-1] not in header
    assert "HttpOnly" in header and "SameSite=strict" in header.replace("Strict", "strict")
    assert "Path=/ui" in header and "Max-Age=" in header and "Secure" not in header  # plain http here
    assert client.get("/ui/queue").status_code == 200
    # logout without the form's token does nothing; with it, the session is revoked on the server
    assert client.post("/ui/logout", data={}).status_code == 403
    q = client.get("/ui/queue").text
    r = client.post("/ui/logout", data={"csrf_token": _token(q)}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set(COOKIE, token, path="/ui")  # a copy of the old cookie is worthless now
    assert client.get("/ui/queue", follow_redirects=False).status_code == 303


def test_https_sets_secure_and_sessions_expire(world):
    from datetime import timedelta

    from fastapi.testclient import TestClient

    from features.store._db import session_scope
    from workflow import access
    from workflow._models import WebSession

    with TestClient(world.app, base_url="https://testserver") as c:
        r = _sign_in(c, world.keys["a-planner"])
        assert "Secure" in r.headers["set-cookie"]
        assert c.get("/ui/queue", follow_redirects=False).status_code == 200
        with session_scope(world.engine) as s:  # an hour without use: past the 30-minute idle limit
            for row in s.query(WebSession):
                row.last_seen_at = row.last_seen_at - timedelta(hours=1)
        assert c.get("/ui/queue", follow_redirects=False).status_code == 303
        _sign_in(c, world.keys["a-planner"])
        with session_scope(world.engine) as s:  # the absolute limit
            for row in s.query(WebSession):
                row.expires_at = row.created_at
        assert c.get("/ui/queue", follow_redirects=False).status_code == 303
        _sign_in(c, world.keys["a-planner"])
        key_id = world.keys["a-planner"].split("_")[1]
        with session_scope(world.engine) as s:  # revoking the key ends its sessions
            access.revoke_key(s, "a", key_id, actor="test")
        assert c.get("/ui/queue", follow_redirects=False).status_code == 303


def test_forms_without_the_csrf_token_change_nothing(client, world):
    from tests.serving._pages_fixture import outbox_for

    _sign_in(client, world.keys["a-planner"])
    for token in (None, "forged"):
        data = {"version": world.rec_version} | ({"csrf_token": token} if token else {})
        r = client.post(f"/ui/recommendations/{world.rec_id}/approve", data=data, follow_redirects=False)
        assert r.status_code == 403
    assert outbox_for(world.engine, "a", world.rec_id) == []
    assert 'id="state">routed' in client.get(f"/ui/recommendations/{world.rec_id}").text


def test_queue_and_recommendation_page_show_plots_and_forms(client, world):
    _sign_in(client, world.keys["a-planner"])
    q = client.get("/ui/queue")
    assert q.status_code == 200 and world.rec_id in q.text
    page = client.get(f"/ui/recommendations/{world.rec_id}").text
    assert page.count("<svg") == 2  # fan chart and inventory projection, inline
    assert "safety stock 60" in page and "reorder point 180" in page
    assert 'id="approve-form"' in page and "http://" not in page.split("<main>")[0].replace(
        'xmlns="http://www.w3.org', ""
    )  # no CDN / external asset in the head


def test_other_tenant_gets_404_and_viewer_cannot_decide(client, world):
    _sign_in(client, world.keys["b-planner"])
    assert client.get(f"/ui/recommendations/{world.rec_id}").status_code == 404
    r = client.post(
        f"/ui/recommendations/{world.rec_id}/approve",
        data={"version": world.rec_version, "csrf_token": _token(client.get("/ui/queue").text)},
    )
    assert r.status_code == 404
    _sign_in(client, world.keys["a-viewer"])
    page = client.get(f"/ui/recommendations/{world.rec_id}").text
    assert 'id="approve-form"' not in page
    r = client.post(
        f"/ui/recommendations/{world.rec_id}/approve",
        data={"version": world.rec_version, "csrf_token": _csrf(client, world.rec_id)},
        follow_redirects=True,
    )
    assert 'id="error"' in r.text and 'id="state">routed' in r.text


def test_override_form_validates_and_records(client, world):
    from tests.serving._pages_fixture import outbox_for

    _sign_in(client, world.keys["a-planner"])
    url = f"/ui/recommendations/{world.rec_id}/override"
    r = client.post(
        url,
        data={
            "version": world.rec_version,
            "reason_code": "Bad Code!",
            "quantity": "250",
            "csrf_token": _csrf(client, world.rec_id),
        },
        follow_redirects=True,
    )
    assert 'id="error"' in r.text and "reason_code" in r.text and 'id="state">routed' in r.text
    r = client.post(
        url,
        data={
            "version": world.rec_version,
            "reason_code": "promo_ends",
            "quantity": "250",
            "csrf_token": _csrf(client, world.rec_id),
        },
        follow_redirects=True,
    )
    assert 'id="state">overridden' in r.text and "final quantity 250" in r.text
    assert len(outbox_for(world.engine, "a", world.rec_id)) == 1
    # A second decision on the old version is a conflict shown on the page, not a crash.
    r = client.post(
        f"/ui/recommendations/{world.rec_id}/approve",
        data={"version": world.rec_version, "csrf_token": _csrf(client, world.rec_id)},
        follow_redirects=True,
    )
    assert r.status_code == 200 and 'id="error"' in r.text


def test_accuracy_page_shows_recorded_figures_by_level_and_version(client, world):
    from features.store._db import session_scope
    from workflow.telemetry import record_accuracy

    y = np.array([10.0, 12.0, 8.0, 100.0, 90.0])
    with session_scope(world.engine) as s:
        record_accuracy(
            s,
            "a",
            level=np.array(["sku"] * 3 + ["total"] * 2),
            model_version=np.array(["7"] * 5),
            y=y,
            y_hat=y * 1.1,
            period="2026-11",
        )
    _sign_in(client, world.keys["a-planner"])
    page = client.get("/ui/accuracy?metric=wape").text
    assert "sku / 7" in page and "total / 7" in page and "<svg" in page
    assert "0.1000" in page  # WAPE of a uniform 10% over-forecast
    assert "<pre>" not in page and 'id="by-state"' in page  # tables, not JSON dumps
    assert 'href="/ui/dashboards/accuracy"' in page
    assert client.get("/ui/exceptions").status_code == 200


def test_fan_chart_and_projection_maths():
    from serving.pages._plots import project_inventory

    q = np.array([[5.0, 10.0, 15.0]] * 4)  # (H, Q) demand quantiles
    proj = project_inventory(100.0, q, order_qty=50.0, lead_periods=2)
    np.testing.assert_allclose(proj[:, 1], [90.0, 130.0, 120.0, 110.0])  # median path, order lands at h=2
    assert np.all(proj[:, 0] <= proj[:, 1]) and np.all(proj[:, 1] <= proj[:, 2])


def test_recommendation_page_draws_the_tenants_stored_forecast(client, world):
    """With no model deployment (the shipped configs), the fan chart comes from the tenant's served run."""
    from datetime import date, timedelta

    import polars as pl

    from features.forecasts import ForecastRunMeta, sales_watermark, write_forecasts

    world.app.state.forecaster = None
    rows = []
    for channel, scale in (("store", 1.0), ("online", 2.0)):  # two channels of the recommendation's unit
        for h in range(1, 4):
            base = scale * 10 * h
            rows.append(
                {
                    "unique_id": f"SKU-9|DC-1|{channel}",
                    "level": "bottom",
                    "sku_id": "SKU-9",
                    "location_id": "DC-1",
                    "channel_id": channel,
                    "date": date(2027, 1, 1) + timedelta(days=h),
                    "horizon": h,
                    "source": "model:a-tft",
                    "model_version": "3",
                    "cold_start": False,
                    "p10": base,
                    "p25": base + 1,
                    "p50": base + 2,
                    "p75": base + 3,
                    "p90": base + 4,
                }
            )
    meta = ForecastRunMeta(
        run_id="r1",
        tenant="a",
        stage="base",
        freq="D",
        horizon=3,
        levels=(0.1, 0.25, 0.5, 0.75, 0.9),
        data_watermark=sales_watermark("a"),
        model_name="a-tft",
        model_version="3",
    )
    write_forecasts("a", pl.DataFrame(rows), meta)
    _sign_in(client, world.keys["a-planner"])
    page = client.get(f"/ui/recommendations/{world.rec_id}").text
    assert "(model 3)" in page  # the stored run's model version, not the stand-in deployment's
    assert page.count("<svg") == 2


def test_recommendation_page_without_any_forecast_shows_the_evidence_only(client, world):
    world.app.state.forecaster = None
    _sign_in(client, world.keys["a-planner"])
    page = client.get(f"/ui/recommendations/{world.rec_id}")
    assert page.status_code == 200 and "needs review" in page.text  # the evidence and history
    assert "(model" not in page.text and "<svg" not in page.text  # no chart made up


def test_monitoring_page_draws_the_newest_monitoring_run(client, world, tmp_path):
    """Stored forecasts and actuals -> POST /v1/telemetry/monitoring -> the page's plots and tables."""
    from datetime import date, timedelta

    import polars as pl

    from features.facts import write_facts
    from features.forecasts import ForecastRunMeta, write_forecasts
    from features.settings import get_settings

    fd = get_settings().facts_dir
    d0 = date(2026, 3, 1)
    sales = pl.DataFrame({"sku_id": "SKU-9", "location_id": "DC-1", "channel_id": "c",
                          "date": [d0 + timedelta(days=i) for i in range(20)], "qty": [10.0] * 20})
    write_facts("sales", "a", sales, "s1", facts_dir=fd)
    rows = [dict(unique_id="SKU-9|DC-1|c", level="bottom", sku_id="SKU-9", location_id="DC-1", channel_id="c",
                 date=d0 + timedelta(days=14 + h), horizon=h, source="model:m", model_version="v7",
                 cold_start=False, p10=6.0, p50=12.0, p90=11.0 + h) for h in range(1, 6)]
    meta = ForecastRunMeta(run_id="f1", tenant="a", stage="base", freq="D", horizon=5, levels=(0.1, 0.5, 0.9),
                           data_watermark="w", model_version="v7")
    write_forecasts("a", pl.DataFrame(rows), meta, facts_dir=fd)
    from features.store._db import session_scope
    from workflow import access

    with session_scope(world.engine) as s:
        service_key = access.create_key(s, "a", ["service"], actor="test")[1]
    _sign_in(client, world.keys["a-planner"])
    assert "No monitoring run yet" in client.get("/ui/monitoring").text
    svc = {"X-API-Key": service_key}
    r = client.post("/v1/telemetry/monitoring", headers=svc)
    assert r.status_code == 201 and r.json()["counts"]["pairs"] == 5
    planner = {"X-API-Key": world.keys["a-planner"]}
    assert client.post("/v1/telemetry/monitoring", headers=planner).status_code == 403
    html = client.get("/ui/monitoring").text
    assert r.json()["run_id"] in html and 'id="wape-chart"' in html and 'id="coverage-chart"' in html
    assert html.count("<svg") >= 2
    # WAPE of v7 at the bottom level, horizon 1: |12 - 10| / 10; coverage: 10 inside [6, 11+h] for every h
    assert re.search(r"<td>v7</td><td>bottom</td><td>1</td><td class=\"num\">1</td>", html)
    assert "0.200" in html
    api = client.get("/v1/telemetry/monitoring", headers=svc).json()
    cov = [p for p in api["points"] if p["metric"] == "forecast_coverage_p10_p90"]
    assert cov and all(p["value"] == 1.0 for p in cov)
    # another tenant sees none of it
    other = {"X-API-Key": world.keys["b-planner"]}
    assert client.get("/v1/telemetry/monitoring", headers=other).json()["points"] == []
