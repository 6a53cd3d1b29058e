"""The supplier pages in-process (FastAPI TestClient over the real app and a real SQLite store)."""

from __future__ import annotations

import re
from urllib.parse import unquote

import numpy as np
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


def _sent(world) -> None:
    """The world's purchase order approved by a second planner and delivered to the ERP (a file drop here)."""
    import tempfile

    from features.store._db import session_scope
    from workflow import access, lifecycle
    from workflow.adapters import FileDropAdapter
    from workflow.dispatcher import Dispatcher
    from workflow.schemas import ApproveIn

    with session_scope(world.engine) as s:
        key = access.create_key(s, "a", ["approver"], actor="test")[1]
    with session_scope(world.engine) as s:
        lifecycle.approve(s, access.authenticate(s, key), world.rec_id, ApproveIn(version=world.rec_version))
    with tempfile.TemporaryDirectory() as tmp:
        Dispatcher(world.engine, FileDropAdapter(tmp), rng=np.random.default_rng(0)).run(until_idle=True)


def _msg(r) -> str:
    return unquote(r.headers["location"].split("=", 1)[1]) if "=" in r.headers["location"] else ""


def test_a_planner_records_a_supplier_response_in_the_pages(client, world):
    from features.store._db import session_scope
    from workflow import lifecycle

    _sent(world)
    _sign_in(client, world.keys["a-planner"])
    listing = client.get("/ui/suppliers").text
    assert world.rec_id in listing and "none yet" in listing
    url = f"/ui/suppliers/orders/{world.rec_id}"
    page = client.get(url).text
    assert 'id="response-form"' in page and "No response recorded yet" in page
    token = _token(page)
    post = f"{url}/responses"
    # bad input: the page says which field, nothing is stored
    for form, field in (
        ({"status": "partial", "quantity": "400"}, "quantity"),
        ({"status": "partial", "quantity": "-1"}, "quantity"),
        ({"status": "new_date", "on_date": "2026-02-30"}, "on_date"),
        ({"status": "partial"}, "quantity"),
    ):
        r = client.post(post, data={**form, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303 and "error=" in r.headers["location"], form
        assert field in _msg(r), (form, _msg(r))
    with session_scope(world.engine) as s:
        assert lifecycle.get(s, "a", world.rec_id).confirmed_quantity is None
    # a forged form changes nothing
    assert client.post(post, data={"status": "partial", "quantity": "180"}).status_code == 403
    r = client.post(
        post, data={"status": "partial", "quantity": "180", "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers["location"]
    said = _msg(r)
    assert "recorded partial" in said and "exception short_shipment" in said
    shown = client.get(r.headers["location"]).text
    assert re.search(r'id="confirmed">180<', shown) and "<td>partial</td>" in shown
    with session_scope(world.engine) as s:
        assert lifecycle.get(s, "a", world.rec_id).confirmed_quantity == 180.0


def test_a_viewer_sees_no_form_and_cannot_post_one(client, world):
    _sent(world)
    _sign_in(client, world.keys["a-viewer"])
    page = client.get(f"/ui/suppliers/orders/{world.rec_id}").text
    assert 'id="response-form"' not in page
    r = client.post(
        f"/ui/suppliers/orders/{world.rec_id}/responses",
        data={"status": "confirmed", "csrf_token": _token(page)},
        follow_redirects=False,
    )
    assert r.status_code == 403
    # another tenant's order is not found
    assert client.get("/ui/suppliers/orders/nope").status_code == 404
