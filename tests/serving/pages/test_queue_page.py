"""The review queue page in-process (TestClient over the real app and a real SQLite store): filter, sort,
search, pages, counts, and bulk approval through the one decision path."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from tests.serving.pages.test_pages_views import _sign_in, _token


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


def seed_queue(engine, tenant: str, n: int, *, big: int = 0) -> list:
    """``n`` routed purchase orders over 2 SKUs x 3 locations, 2 queues, need-by dates spread over 60 days;
    the last ``big`` are above a planner's 10,000 limit (5,000 units at 2.50)."""
    from features.store._db import session_scope
    from workflow import lifecycle
    from workflow.schemas import RecommendationIn, Route

    start = date(2027, 1, 1)
    recs = []
    for i in range(n):
        recs.append(
            RecommendationIn(
                kind="purchase_order",
                sku_id=("SKU-8", "SKU-9")[i % 2],
                location_id=f"DC-{i % 3 + 1}",
                supplier_id="SUP-1",
                quantity=5000.0 if i >= n - big else float(10 + (i * 37) % 400),
                need_by=start + timedelta(days=(i * 7) % 60),
                route=Route(
                    queue=("buyers", "transfers")[i % 2 if i < n - big else 0],
                    role="planner",
                    rule=("value>100", "new_sku")[i % 2],
                    reason=f"item {i} needs review",
                ),
                evidence={"model_version": "7", "i": i},
                proposal_key=f"q-{tenant}-{i}",
            )
        )
    with session_scope(engine) as s:
        return lifecycle.propose_many(s, tenant, recs, actor="planning:test")


def _ids(html: str) -> list[str]:
    return re.findall(r'<td><a href="/ui/recommendations/([^"]+)">', html)


def test_queue_filters_sorts_searches_and_pages_in_sql(client, world):
    from features.store._db import session_scope
    from workflow import lifecycle
    from workflow import queue as wq

    recs = seed_queue(world.engine, "a", 60)
    _sign_in(client, world.keys["a-planner"])
    html = client.get("/ui/queue?size=25").text
    assert "1–25 of 61" in html  # 60 seeded plus the fixture's routed one
    page1 = _ids(html)
    page2 = _ids(client.get("/ui/queue?size=25&page=2").text)
    page3 = _ids(client.get("/ui/queue?size=25&page=3").text)
    assert len(page1) == 25 and len(page2) == 25 and len(page3) == 11
    assert not set(page1) & set(page2) and len(set(page1 + page2 + page3)) == 61
    # urgency: earliest need-by first; nothing later on page 1 than the first item of page 2
    with session_scope(world.engine) as s:
        recs = [*recs, lifecycle.get(s, "a", world.rec_id)]  # the fixture's item, needed by 2026-12-20
    by_id = {r.id: r for r in recs}
    dates = [by_id[i].need_by for i in page1 + page2]
    assert dates == sorted(dates)
    # filter to the urgent ones (needed by Jan 10) in one queue, sort by value descending
    html = client.get("/ui/queue?due_by=2027-01-10&queue=buyers&sort=value&dir=desc").text
    got = [by_id[i] for i in _ids(html)]
    want = [r for r in recs if r.need_by <= date(2027, 1, 10) and r.route_queue == "buyers"]
    assert len(got) == len(want) > 0
    assert [r.value for r in got] == sorted((r.value for r in want), reverse=True)
    # search (case-insensitive) on the routing reason; SKU and location filters
    assert _ids(client.get("/ui/queue?q=ITEM 17 needs").text) == [recs[17].id]
    got = _ids(client.get("/ui/queue?sku_id=SKU-8&location_id=DC-2&size=100").text)
    assert sorted(got) == sorted(r.id for r in recs if r.sku_id == "SKU-8" and r.location_id == "DC-2")
    # counts per state and per queue
    with session_scope(world.engine) as s:
        c = wq.counts(s, "a")
    assert c["by_state"]["routed"] == 61 and sum(c["by_queue"].values()) == 61
    assert c["by_queue"]["transfers"] == 30
    assert 'transfers <span class="n">30</span>' in html


def test_queue_refuses_malformed_parameters_naming_the_field(client, world):
    _sign_in(client, world.keys["a-planner"])
    for qs, field in (
        ("state=nope", "state"),
        ("due_by=tomorrow", "due_by"),
        ("sort=colour", "sort"),
        ("size=7", "size"),
        ("page=0", "page"),
        ("min_value=lots", "min_value"),
    ):
        r = client.get(f"/ui/queue?{qs}")
        assert r.status_code == 422 and field in r.text, (qs, r.status_code, r.text[:200])


def test_bulk_approve_within_the_limit_refuses_the_one_above_it(client, world):
    from features.store._db import session_scope
    from tests.serving._pages_fixture import outbox_for
    from workflow.lifecycle import get, history

    recs = seed_queue(world.engine, "a", 6, big=1)
    big = recs[-1]
    assert big.value > 10_000
    _sign_in(client, world.keys["a-planner"])
    html = client.get("/ui/queue?sort=value&dir=desc").text
    assert "above your limit" in html and "10,000.00" in html
    picks = [f"{r.id}:{r.version}" for r in recs[:3]] + [f"{big.id}:{big.version}"]
    r = client.post(
        "/ui/queue/approve",
        data={"csrf_token": _token(html), "pick": picks, "back": "state=routed&sort=value&dir=desc"},
    )
    assert r.status_code == 200
    assert "Approved 3" in r.text and "Refused 1 (still routed)" in r.text
    assert f"{big.id}</a>: value 12500.00 exceeds your approval limit 10000.00" in r.text
    with session_scope(world.engine) as s:
        for rec in recs[:3]:
            assert get(s, "a", rec.id).state == "approved"
            assert [h.action for h in history(s, "a", rec.id)][-1] == "recommendation.approve"
        assert get(s, "a", big.id).state == "routed"
        assert get(s, "a", recs[3].id).state == "routed"  # not selected
    for rec in recs[:3]:
        assert len(outbox_for(world.engine, "a", rec.id)) == 1
    assert outbox_for(world.engine, "a", big.id) == []
    # the remaining routed items are listed again, the approved ones are gone
    left = _ids(r.text)
    assert big.id in left and not {rec.id for rec in recs[:3]} & set(left)
    # a stale version is refused on its own as well; without the CSRF token nothing changes
    r = client.post("/ui/queue/approve", data={"csrf_token": _token(r.text), "pick": [f"{recs[3].id}:99"]})
    assert "Refused 1" in r.text and "version" in r.text.lower()
    assert client.post("/ui/queue/approve", data={"pick": [f"{recs[4].id}:1"]}).status_code == 403
    with session_scope(world.engine) as s:
        assert get(s, "a", recs[3].id).state == "routed" and get(s, "a", recs[4].id).state == "routed"


def test_viewer_sees_the_queue_without_bulk_approval(client, world):
    seed_queue(world.engine, "a", 3)
    _sign_in(client, world.keys["a-viewer"])
    html = client.get("/ui/queue").text
    assert 'id="queue"' in html and "bulk-approve" not in html and 'name="pick"' not in html


def test_reason_codes_come_from_the_configured_catalogue(tmp_path):
    from fastapi.testclient import TestClient

    from features.settings import load_settings
    from features.store._db import session_scope
    from tests.serving._pages_fixture import make_world
    from workflow.lifecycle import get

    world = make_world(
        load_settings(home=tmp_path, reason_codes=["promo_end", "supplier_short", "data_error"])
    )
    h = {"X-API-Key": world.keys["a-planner"]}
    with TestClient(world.app) as c:
        rid = world.rec_id
        r = c.post(
            f"/v1/recommendations/{rid}/override",
            json={"version": 2, "reason_code": "gut", "quantity": 7},
            headers=h,
        )
        assert r.status_code == 422 and "reason_code" in r.text and "promo_end" in r.text, r.text
        r = c.post(f"/v1/recommendations/{rid}/reject", json={"version": 2, "reason_code": "gut"}, headers=h)
        assert r.status_code == 422 and "reason_code" in r.text, r.text
        with session_scope(world.engine) as s:
            assert get(s, "a", rid).state == "routed"
        _sign_in(c, world.keys["a-planner"])
        html = c.get(f"/ui/recommendations/{rid}").text
        assert '<select name="reason_code" required>' in html and '<option value="supplier_short">' in html
        r = c.post(
            f"/v1/recommendations/{rid}/override",
            json={"version": 2, "reason_code": "promo_end", "quantity": 7},
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert r.json()["override_reason_code"] == "promo_end"
