"""The exceptions page in-process (TestClient, the real app, a real SQLite store): roles, CSRF, errors."""

from __future__ import annotations

import pytest

from tests.serving.pages.test_pages_views import _sign_in, _token


@pytest.fixture
def world_exc():
    from features.settings import get_settings
    from features.store._db import session_scope
    from tests.serving._pages_fixture import make_world
    from workflow import exceptions as wx

    world = make_world(get_settings())
    with session_scope(world.engine) as s:
        late = wx.ExceptionIn(exception_type="late_po", sku_id="SKU-9", location_id="DC-1", message="late PO")
        exc, _ = wx.open_exception(s, "a", late, actor="planning:test", source="plan")
    return world, exc


def test_viewers_see_no_forms_planners_act_with_the_csrf_token(world_exc):
    from fastapi.testclient import TestClient

    world, exc = world_exc
    with TestClient(world.app) as viewer:
        _sign_in(viewer, world.keys["a-viewer"])
        page = viewer.get("/ui/exceptions").text
        assert f'id="x-{exc.id}"' in page and "late PO" in page
        assert f"/ui/exceptions/{exc.id}/acknowledge" not in page  # no forms for viewers
        r = viewer.post(
            f"/ui/exceptions/{exc.id}/acknowledge", data={"csrf_token": _token(page), "version": 1}
        )
        assert r.status_code == 403
    with TestClient(world.app) as planner:
        _sign_in(planner, world.keys["a-planner"])
        page = planner.get("/ui/exceptions").text
        url = f"/ui/exceptions/{exc.id}/acknowledge"
        assert url in page
        assert planner.post(url, data={"csrf_token": "forged", "version": 1}).status_code == 403
        r = planner.post(url, data={"csrf_token": _token(page), "version": 1}, follow_redirects=False)
        assert r.status_code == 303 and "acknowledged" in r.headers["location"]
        # the same form again (stale version): an error on the page, not a 500
        r = planner.post(url, data={"csrf_token": _token(page), "version": 1})
        assert r.status_code == 200 and 'id="error"' in r.text and "version conflict" in r.text
        dismiss = f"/ui/exceptions/{exc.id}/dismiss"
        r = planner.post(dismiss, data={"csrf_token": _token(page), "version": 2, "reason": ""})
        assert r.status_code == 200 and "a dismissal needs a reason" in r.text
        assert (
            planner.post(
                f"/ui/exceptions/{'0' * 32}/resolve", data={"csrf_token": _token(page), "version": 1}
            ).status_code
            == 404
        )
        other = planner.get("/ui/exceptions?view=all&exception_type=stockout_risk").text
        assert f'id="x-{exc.id}"' not in other
