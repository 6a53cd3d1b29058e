"""The exceptions page in a real headless Chromium: a planner acknowledges and resolves an exception.

Same set-up as ``test_pages_browser`` (uvicorn on loopback, a real SQLite store, Chromium over the DevTools
protocol); skipped, visibly, where no Chromium is installed.
"""

from __future__ import annotations

import json

import pytest

from tests.serving.pages.test_pages_browser import browser, serve_in_thread  # noqa: F401  (the Chromium fixture)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exc_server(tmp_path_factory):
    import os

    from features.settings import load_settings
    from features.store._db import session_scope
    from tests.serving._pages_fixture import make_world
    from workflow import exceptions as wx

    home = tmp_path_factory.mktemp("pages-exc-home")
    os.environ["REPLENISH_HOME"] = str(home)
    world = make_world(load_settings(home=home))
    with session_scope(world.engine) as s:
        exc, _ = wx.open_exception(
            s,
            "a",
            wx.ExceptionIn(
                exception_type="stockout_risk",
                severity="high",
                sku_id="SKU-9",
                location_id="DC-1",
                message="P(stockout before an order placed now arrives) = 0.62",
                owner_team="buyers",
                recommendation_ids=[world.rec_id],
            ),
            actor="planning:test",
            source="plan",
        )
        late = wx.ExceptionIn(exception_type="late_po", sku_id="SKU-8", location_id="DC-2", message="late")
        other, _ = wx.open_exception(s, "b", late, actor="planning:test", source="plan")
    with serve_in_thread(world.app) as base:
        yield world, base, exc.id, other.id


def test_a_planner_acknowledges_and_resolves_an_exception_in_the_page(exc_server, browser):  # noqa: F811
    from features.store._db import session_scope
    from workflow import events
    from workflow import exceptions as wx

    world, base, exc_id, other_id = exc_server
    cdp = browser
    cdp.goto(f"{base}/ui/exceptions", "document.querySelector('#login') !== null")
    cdp.eval(f"document.querySelector('input[name=api_key]').value = {json.dumps(world.keys['a-planner'])}")
    cdp.eval("document.querySelector('#login button[type=submit]').click()")
    cdp.wait_for("document.querySelector('#exceptions') !== null && document.readyState === 'complete'")
    row = f"document.querySelector('#x-{exc_id}')"
    assert cdp.eval(f"{row}.dataset.state") == "open"
    assert cdp.eval(f"document.querySelector('#x-{other_id}') === null")  # tenant b's is not shown
    assert world.rec_id[:8] in cdp.eval(f"{row}.innerText")  # the linked recommendation

    cdp.eval(f"{row}.querySelector('form.acknowledge button').click()")
    cdp.wait_for(
        f"document.querySelector('#msg') !== null && {row} !== null && document.readyState === 'complete'"
    )
    assert cdp.eval(f"{row}.dataset.state") == "acknowledged"
    assert cdp.eval(f"{row}.querySelector('form.acknowledge') === null")

    cdp.eval(f"{row}.querySelector('form.resolve input[name=reason]').value = 'expedited the open PO'")
    cdp.eval("document.querySelector('#msg').remove()")  # so that only the next page's message counts
    cdp.eval(f"{row}.querySelector('form.resolve button').click()")
    cdp.wait_for("document.querySelector('#msg') !== null && document.readyState === 'complete'")
    assert "resolved" in cdp.eval("document.querySelector('#msg').innerText")
    assert cdp.eval(f"{row} === null")  # gone from the active view
    cdp.goto(f"{base}/ui/exceptions?view=resolved", f"{row} !== null")
    assert cdp.eval(f"{row}.dataset.state") == "resolved"
    assert "expedited the open PO" in cdp.eval(f"{row}.innerText")

    with session_scope(world.engine) as s:
        done = wx.get(s, "a", exc_id)
        trail = [(e.action, e.reason) for e in wx.history(s, "a", exc_id)]
        page = events.read(s, "a", after=0, limit=1000)
    assert (done.state, done.resolution) == ("resolved", "resolved") and done.assignee.startswith("key:")
    assert trail[1:] == [("exception.acknowledged", None), ("exception.resolved", "expedited the open PO")]
    assert [e.type for e in page.events if e.topic == "exception"] == [
        "exception.opened", "exception.acknowledged", "exception.resolved",
    ]  # fmt: skip
