"""The dashboards in a real headless Chromium: each renders its plots (SVG with data points) on data from a
real monitoring job, plans and decisions, the nav between them works, and axe-core finds no serious or
critical accessibility violation on any of them at laptop (1280 px) and tablet (820 px) widths.

axe-core is fetched as in ``test_queue_browser`` (the npm build bundled in a PyPI wheel, cached)."""

from __future__ import annotations

import json

import pytest

from tests.serving.pages.test_pages_browser import browser, server  # noqa: F401 - the shared fixtures
from tests.serving.pages.test_queue_browser import _axe, _width, axe_js  # noqa: F401
from tests.serving.pages.test_whatif_browser import _shot

pytestmark = pytest.mark.slow

#: Each dashboard and the sections that must draw points (markers or bars) on the filled tenant.
SECTIONS = {
    "inventory": (
        "stockouts", "cover", "lost-excess", "service-location", "measured-location", "measured-category",
    ),
    "accuracy": ("wape-period", "coverage-period", "bias-period", "by-level", "over-runs"),
    "adoption": ("weekly", "hours", "reasons", "fva", "fva-reasons"),
}

_POINTS = (
    "(sid => { const s = document.getElementById(sid); if (!s) return -1;"
    " const svg = s.querySelector('svg[role=img]');"
    " return svg.querySelectorAll('g[id^=series-] use').length"
    " + svg.querySelectorAll('[id^=bars-]').length; })"
)


def test_each_dashboard_draws_its_plots_and_passes_axe(server, browser, axe_js):  # noqa: F811
    from features.settings import get_settings
    from features.store import session_scope
    from tests.serving._dashboard_data import fill
    from workflow import access

    world, base = server
    cdp = browser
    cdp.goto(f"{base}/ui/dashboards", "document.querySelector('#login') !== null")
    cdp.eval(f"document.querySelector('input[name=api_key]').value = {json.dumps(world.keys['a-viewer'])}")
    cdp.eval("document.querySelector('#login button[type=submit]').click()")
    cdp.wait_for("document.querySelector('#empty') !== null && document.readyState === 'complete'")
    assert "replenish monitoring run" in cdp.eval("document.querySelector('#empty').innerText")
    _width(cdp, 1280)
    assert _axe(cdp, axe_js) == [], "empty dashboard"

    with session_scope(world.engine) as s:
        planner = access.authenticate(s, world.keys["a-planner"])
    fill(world.engine, "a", get_settings().facts_dir, planner)
    for name, sections in SECTIONS.items():
        # through the dashboards' own nav
        cdp.eval(f"document.querySelector('nav.tabs a[href=\"/ui/dashboards/{name}\"]').click()")
        cdp.wait_for(
            f"location.pathname === '/ui/dashboards/{name}' && document.readyState === 'complete'"
            " && document.querySelector('#empty') === null"
        )
        for sid in sections:
            n = cdp.eval(f"{_POINTS}({json.dumps(sid)})")
            assert n >= 1, f"{name}: section {sid} draws no data point ({n})"
            label = cdp.eval(
                f"document.querySelector('#{sid} svg').getAttribute('aria-labelledby').split(' ')"
                ".map(i => document.getElementById(i).textContent).join(' | ')"
            )
            assert label.count("|") == 1 and len(label) > 20, label
        # time axes are dates, and each chart has its table behind a "Data table" toggle
        assert cdp.eval("document.querySelectorAll('main svg[role=img]').length") >= len(sections)
        assert cdp.eval("document.querySelectorAll('main details table').length") >= len(sections)
        for width in (1280, 820):
            _width(cdp, width)
            bad = _axe(cdp, axe_js)
            assert bad == [], f"{name} dashboard at {width}px: {bad}"
            scroll = cdp.eval("document.documentElement.scrollWidth")
            assert scroll <= width + 1, f"{name} dashboard scrolls sideways at {width}px ({scroll}px)"
        _width(cdp, 1280)
        _shot(cdp, f"dashboard-{name}")  # with REPLENISH_SCREENSHOTS set: the PNGs of docs/pages.md
    # the accuracy dashboard's figure and horizon selects redraw it
    cdp.goto(f"{base}/ui/dashboards/accuracy", "document.querySelector('#choose') !== null")
    cdp.eval("document.querySelector('#metric').value = 'coverage_p10_p90'")
    cdp.eval("document.querySelector('#choose button').click()")
    cdp.wait_for("location.search.includes('metric=coverage_p10_p90') && document.readyState === 'complete'")
    assert "P10-P90 coverage" in cdp.eval("document.querySelector('#by-level h2').innerText")
    assert cdp.eval(f"{_POINTS}('by-level')") >= 1
