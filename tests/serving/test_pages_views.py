"""Planner pages in-process (FastAPI TestClient over the real app and a real SQLite store)."""

from __future__ import annotations

import numpy as np
import pytest


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


def _sign_in(client, key):
    r = client.post("/ui/login", data={"api_key": key, "next": "/ui/queue"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/queue"
    return r


def test_pages_need_sign_in_and_refuse_bad_keys(client, world):
    r = client.get("/ui/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    r = client.post("/ui/login", data={"api_key": "rpk_nope_nope"})
    assert r.status_code == 401 and "unknown or revoked" in r.text


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
    r = client.post(f"/ui/recommendations/{world.rec_id}/approve", data={"version": world.rec_version})
    assert r.status_code == 404
    _sign_in(client, world.keys["a-viewer"])
    page = client.get(f"/ui/recommendations/{world.rec_id}").text
    assert 'id="approve-form"' not in page
    r = client.post(
        f"/ui/recommendations/{world.rec_id}/approve",
        data={"version": world.rec_version},
        follow_redirects=True,
    )
    assert 'id="error"' in r.text and 'id="state">routed' in r.text


def test_override_form_validates_and_records(client, world):
    from tests.serving._pages_fixture import outbox_for

    _sign_in(client, world.keys["a-planner"])
    url = f"/ui/recommendations/{world.rec_id}/override"
    r = client.post(
        url,
        data={"version": world.rec_version, "reason_code": "Bad Code!", "quantity": "250"},
        follow_redirects=True,
    )
    assert 'id="error"' in r.text and "reason_code" in r.text and 'id="state">routed' in r.text
    r = client.post(
        url,
        data={"version": world.rec_version, "reason_code": "promo_ends", "quantity": "250"},
        follow_redirects=True,
    )
    assert 'id="state">overridden' in r.text and "final quantity 250" in r.text
    assert len(outbox_for(world.engine, "a", world.rec_id)) == 1
    # A second decision on the old version is a conflict shown on the page, not a crash.
    r = client.post(
        f"/ui/recommendations/{world.rec_id}/approve",
        data={"version": world.rec_version},
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
    assert client.get("/ui/exceptions").status_code == 200


def test_fan_chart_and_projection_maths():
    from serving.pages._plots import project_inventory

    q = np.array([[5.0, 10.0, 15.0]] * 4)  # (H, Q) demand quantiles
    proj = project_inventory(100.0, q, order_qty=50.0, lead_periods=2)
    np.testing.assert_allclose(proj[:, 1], [90.0, 130.0, 120.0, 110.0])  # median path, order lands at h=2
    assert np.all(proj[:, 0] <= proj[:, 1]) and np.all(proj[:, 1] <= proj[:, 2])
