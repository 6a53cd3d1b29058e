"""A planner records a supplier's response in the pages, in a real headless Chromium (DevTools protocol).

Same server and browser set-up as ``test_pages_browser.py``; skipped, visibly, where no Chromium is installed.
"""

from __future__ import annotations

import json

import pytest

from tests.serving.pages.test_pages_browser import browser, server  # noqa: F401 - the shared fixtures
from tests.serving.pages.test_supplier_pages import _sent

pytestmark = pytest.mark.slow


def test_a_planner_records_a_partial_confirmation_through_the_form(server, browser):  # noqa: F811
    from features.store._db import session_scope
    from workflow import lifecycle

    world, base = server
    cdp = browser
    _sent(world)
    cdp.goto(f"{base}/ui/suppliers", "document.querySelector('#login') !== null")
    cdp.eval(f"document.querySelector('input[name=api_key]').value = {json.dumps(world.keys['a-planner'])}")
    cdp.eval("document.querySelector('#login button[type=submit]').click()")
    # signed in, the browser lands on the page it asked for
    cdp.wait_for("document.querySelector('#orders') !== null && document.readyState === 'complete'")
    cdp.eval(f"document.querySelector('a[href=\"/ui/suppliers/orders/{world.rec_id}\"]').click()")
    cdp.wait_for("document.querySelector('#response-form') !== null && document.readyState === 'complete'")

    # A quantity above the order is refused, and the page says which field.
    cdp.eval("document.querySelector('#response-status').value = 'partial'")
    cdp.eval("document.querySelector('#response-quantity').value = '400'")
    cdp.eval("document.querySelector('#record-response').click()")
    cdp.wait_for("document.querySelector('#error') !== null && document.readyState === 'complete'")
    assert "quantity" in cdp.eval("document.querySelector('#error').innerText")

    # 60% of the 300 ordered.
    cdp.eval("document.querySelector('#response-status').value = 'partial'")
    cdp.eval("document.querySelector('#response-quantity').value = '180'")
    cdp.eval("document.querySelector('input[name=comment]').value = 'short of cans, by phone'")
    cdp.eval("document.querySelector('#record-response').click()")
    cdp.wait_for("document.querySelector('#msg') !== null && document.readyState === 'complete'")
    msg = cdp.eval("document.querySelector('#msg').innerText")
    assert "recorded partial" in msg and "short_shipment" in msg, msg
    assert cdp.eval("document.querySelector('#confirmed').innerText") == "180"
    assert "partial" in cdp.eval("document.querySelector('#responses').innerText")
    with session_scope(world.engine) as s:
        assert lifecycle.get(s, "a", world.rec_id).confirmed_quantity == 180.0
