"""The planner's workspace in a real headless Chromium: open an item page from the queue (its sections and
dated plots render), run a what-if on a recommendation without reloading the page and turn it into an
override with a reason from the catalogue (stored with the what-if's quantity and the reason, audited), and
axe-core finds no serious or critical violation on the item page and on the recommendation page with the
what-if shown, at laptop (1280 px) and tablet (820 px) widths.

With ``REPLENISH_SCREENSHOTS=<folder>`` (e.g. ``docs/img``) the test saves a PNG of each page it visits there
(queue, item, recommendation, what-if, exceptions, suppliers): the screenshots of ``docs/pages.md``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tests.serving._workspace_fixture import REASONS, make_workspace
from tests.serving.pages.test_pages_browser import browser, serve_in_thread  # noqa: F401 - the shared fixture
from tests.serving.pages.test_queue_browser import _axe, _width, axe_js  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.slow

SHOT_HEIGHT = 1400  # px: the top of each page, enough for its first sections


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("workspace-home")
    w = make_workspace(home)
    with serve_in_thread(w.app) as base:
        yield w, base
    w.engine.dispose()


def _shot(cdp, name: str) -> None:
    """A PNG of the page's top at 1280 px into ``$REPLENISH_SCREENSHOTS`` (nothing without it)."""
    folder = os.environ.get("REPLENISH_SCREENSHOTS")
    if not folder:
        return
    _width(cdp, 1280, 1000)
    height = min(int(cdp.eval("document.documentElement.scrollHeight")), SHOT_HEIGHT)
    clip = {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}
    data = cdp.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
    png = base64.b64decode(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out = Path(folder) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    print(f"screenshot {out}: {len(png) // 1024} KB")


def _shot_of(cdp, name: str, selector: str) -> None:
    """A PNG of one element (e.g. the what-if card) at 1280 px."""
    folder = os.environ.get("REPLENISH_SCREENSHOTS")
    if not folder:
        return
    _width(cdp, 1280, 1000)
    box = cdp.eval(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
        " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"
    )
    clip = {
        "x": 0,
        "y": max(box["y"] - 10, 0),
        "width": 1280,
        "height": min(box["height"] + 20, 1600),
        "scale": 1,
    }
    png = base64.b64decode(
        cdp.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
    )
    out = Path(folder) / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    print(f"screenshot {out}: {len(png) // 1024} KB")


def _no_serious(cdp, js: str, what: str) -> None:
    for width in (1280, 820):
        _width(cdp, width)
        bad = _axe(cdp, js)
        assert bad == [], f"{what} at {width}px: {bad}"
        scroll = cdp.eval("document.documentElement.scrollWidth")
        wide = cdp.eval(
            "[...document.querySelectorAll('body *')]"
            f".filter(e => e.getBoundingClientRect().right > {width} + 1)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className.baseVal ?? e.className)"
        )
        assert scroll <= width + 1, f"{what} scrolls sideways at {width}px ({scroll}px): {wide}"
    _width(cdp, 1280, 1600)


def _sign_in(cdp, base: str, key: str) -> None:
    cdp.goto(f"{base}/ui/login?next=/ui/queue", "document.querySelector('#login') !== null")
    cdp.eval(f"document.querySelector('input[name=api_key]').value = {json.dumps(key)}")
    cdp.eval("document.querySelector('#login button[type=submit]').click()")
    cdp.wait_for("document.querySelector('#queue') !== null && document.readyState === 'complete'")


def test_item_page_from_the_queue(server, browser, axe_js):  # noqa: F811
    from serving.pages._links import item_link

    w, base = server
    cdp = browser
    _sign_in(cdp, base, w.keys["a-planner"])
    _width(cdp, 1280, 1600)
    _shot(cdp, "queue")
    link = item_link(w.sku_id, w.location_id)
    cdp.eval(f"document.querySelector('#queue a.item-link[href={json.dumps(link)}]').click()")
    cdp.wait_for("document.querySelector('#decisions') !== null && document.readyState === 'complete'")
    assert cdp.eval("location.pathname + location.search") == link
    assert f"Item {w.sku_id} at {w.location_id}" in cdp.eval("document.querySelector('h1').innerText")
    for section in ("history", "stock", "orders", "item-exceptions", "decisions"):
        assert cdp.eval(f"document.querySelector('#{section} h2') !== null"), section
    for chart in ("#history svg", "#stock svg"):
        width = cdp.eval(f"document.querySelector('{chart}').getBoundingClientRect().width")
        assert width > 300, f"{chart} rendered {width} px wide"
    assert cdp.eval("document.querySelectorAll('#runs tbody tr').length") == 2
    assert w.rec_id[:8] in cdp.eval("document.querySelector('#item-recs').innerText")
    _no_serious(cdp, axe_js, "item page")
    _shot(cdp, "item")


def test_what_if_becomes_an_override_with_a_catalogue_reason(server, browser, axe_js):  # noqa: F811
    from features.store import session_scope
    from workflow.lifecycle import get, history

    w, base = server
    cdp = browser
    _sign_in(cdp, base, w.keys["a-planner"])
    cdp.goto(f"{base}/ui/recommendations/{w.rec_id}", "document.querySelector('#whatif-form') !== null")
    _width(cdp, 1280, 1600)
    _shot(cdp, "recommendation")
    cdp.eval("window.__samePage = true")  # survives only if the what-if does not reload the page
    cdp.eval("document.querySelector('#wi-lead').value = '1.5'")
    cdp.eval("document.querySelector('#wi-demand').value = '1.2'")
    cdp.eval("document.querySelector('#wi-target').value = '0.97'")
    cdp.eval("document.querySelector('#run-whatif').click()")
    cdp.wait_for("document.querySelector('#whatif-qty') !== null || document.querySelector('#whatif-error')")
    assert cdp.eval("document.querySelector('#whatif-error')") is None, cdp.eval(
        "document.querySelector('#whatif-error').innerText"
    )
    assert cdp.eval("window.__samePage === true"), "the what-if reloaded the page"
    qty = float(cdp.eval("document.querySelector('#whatif-qty').dataset.qty"))
    assert qty > 0
    assert cdp.eval("document.querySelector('#whatif-chart svg') !== null")
    summary = cdp.eval("document.querySelector('#whatif-summary').innerText")
    assert "lead time x1.5" in summary and "demand x1.2" in summary and "service target 0.97" in summary
    _no_serious(cdp, axe_js, "recommendation page with the what-if")
    _shot_of(cdp, "whatif", "#whatif")

    # Use as override: the override form is pre-filled in place, a reason from the catalogue is required.
    cdp.eval("document.querySelector('#use-whatif').click()")
    cdp.wait_for("document.querySelector('#override-form input[name=quantity]').value !== ''")
    assert cdp.eval("window.__samePage === true")
    assert float(cdp.eval("document.querySelector('#override-form input[name=quantity]').value")) == qty
    assert cdp.eval("document.activeElement.name") == "reason_code"
    options = cdp.eval("[...document.querySelectorAll('#override-form select option')].map(o => o.value)")
    assert options == ["", *REASONS]
    # without a reason the browser refuses to submit (required select); with one, it goes through
    assert cdp.eval("document.querySelector('#override-form').checkValidity()") is False
    cdp.eval("document.querySelector('#override-form select[name=reason_code]').value = 'demand_shift'")
    cdp.eval("document.querySelector('#override').click()")
    cdp.wait_for("document.querySelector('#msg') !== null && document.readyState === 'complete'")
    assert cdp.eval("document.querySelector('#state').innerText") == "overridden"
    with session_scope(w.engine) as s:
        rec = get(s, "a", w.rec_id)
        assert rec.state == "overridden" and rec.final_quantity == pytest.approx(qty)
        assert rec.override_reason_code == "demand_shift"
        audit = [h for h in history(s, "a", w.rec_id) if h.action == "recommendation.override"]
        assert len(audit) == 1 and audit[0].actor and "what-if lead time x1.5" in (audit[0].reason or "")
        assert audit[0].after["override_reason_code"] == "demand_shift"
        assert audit[0].after["final_quantity"] == pytest.approx(qty)

    # the other pages that name items, for the screenshots and their links
    cdp.goto(f"{base}/ui/exceptions", "document.querySelector('#exceptions') !== null")
    assert cdp.eval("document.querySelectorAll('#exceptions a.item-link').length") > 0
    _shot(cdp, "exceptions")
    cdp.goto(f"{base}/ui/suppliers")
    _shot(cdp, "suppliers")


def test_every_other_page_passes_axe_at_both_widths(server, browser, axe_js):  # noqa: F811
    """The pages the flows above do not check: sign-in, exceptions (open and closed), suppliers, a sent
    order, accuracy, monitoring, forecast quality; each at 1280 and 820 px, zero serious or critical."""
    w, base = server
    cdp = browser
    cdp.call("Network.clearBrowserCookies")  # signed out: the sign-in page first
    cdp.goto(f"{base}/ui/login", "document.querySelector('#login') !== null")
    _no_serious(cdp, axe_js, "sign-in page")
    _shot(cdp, "sign-in")
    _sign_in(cdp, base, w.keys["a-planner"])
    pages = ["/ui/exceptions", "/ui/exceptions?view=resolved", "/ui/suppliers", "/ui/accuracy"]
    pages.append("/ui/monitoring")
    cdp.goto(f"{base}/ui/suppliers", "document.readyState === 'complete'")
    order = cdp.eval(
        "(document.querySelector('a[href^=\"/ui/suppliers/orders/\"]') || {}).pathname || null"
    )
    assert order, "the workspace has a sent supplier order"
    pages.append(order)
    if cdp.eval(f"fetch('{base}/ui/forecast-quality').then(r => r.status)") != 404:
        pages.append("/ui/forecast-quality")
    for path in pages:
        ready = "document.querySelector('main') !== null && document.readyState === 'complete'"
        cdp.goto(f"{base}{path}", ready)
        assert cdp.eval("document.querySelector('h1') !== null"), path
        _no_serious(cdp, axe_js, path)
        if path == order:
            _shot(cdp, "supplier-order")
