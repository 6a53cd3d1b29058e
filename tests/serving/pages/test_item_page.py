"""The item page (SKU x location) and the recommendation page's what-if, in-process (real SQLite and Parquet
stores, the tenant's data through the real ingest, stored forecast runs of two model versions, a plan run
proposed into the workflow; no browser: ``test_whatif_browser.py`` drives the same pages in Chromium)."""

from __future__ import annotations

import re

import pytest

from tests.serving._workspace_fixture import REASONS, make_workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from fastapi.testclient import TestClient

    w = make_workspace(tmp_path_factory.mktemp("workspace"))
    with TestClient(w.app) as c:
        c.w = w
        yield c
    w.engine.dispose()


def _sign_in(c, key: str) -> None:
    c.cookies.clear()
    tok = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/ui/login").text).group(1)
    r = c.post("/ui/login", data={"api_key": key, "csrf_token": tok}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _item(c, sku: str, loc: str):
    return c.get("/ui/items", params={"sku_id": sku, "location_id": loc})


def _section(html: str, id_: str) -> str:
    start = html.index(f'id="{id_}"')
    nxt = html.find('<div class="card"', start)
    return html[start : nxt if nxt > 0 else len(html)]


def test_item_page_shows_history_forecasts_inventory_and_decisions(ws):
    from features.facts import read_sales
    from serving.pages._links import item_link

    c, w = ws, ws.w
    _sign_in(c, w.keys["a-viewer"])  # a read role is enough
    r = _item(c, w.sku_id, w.location_id)
    assert r.status_code == 200, r.text
    html = r.text
    history = _section(html, "history")
    assert "<svg" in history and "sales and forecasts" in history
    # dates on the axis (tick labels are SVG text; the concise date formatter labels years and months)
    svg = history.split("<svg", 1)[1].split("</svg>", 1)[0]
    ticks = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
    assert any(re.fullmatch(r"20\d\d", t.strip()) for t in ticks), ticks
    assert "period starting" in ticks
    # both stored runs listed with their model versions; the newest first
    runs = _section(html, "history").split('id="runs"', 1)[1]
    assert runs.index("a-2") < runs.index("a-1") and "a-tft 7" in runs and "a-tft 6" in runs
    # the item's sales total is the stored facts' total
    sales = read_sales("a", facts_dir=w.settings.facts_dir)
    mine = sales.filter((sales["sku_id"] == w.sku_id) & (sales["location_id"] == w.location_id))
    assert f"{mine['qty'].sum():,.0f} units" in history
    assert "<svg" in _section(html, "stock") and "Latest snapshot" in _section(html, "stock")
    decisions = _section(html, "decisions")
    assert f'href="/ui/recommendations/{w.rec_id}"' in decisions and "routed" in decisions
    assert "Audit of" in decisions
    assert 'id="orders"' in html and 'id="item-exceptions"' in html
    # the recommendation page links its item, the queue links every row's
    link = item_link(w.sku_id, w.location_id)
    assert link.replace("&", "&amp;") in c.get(f"/ui/recommendations/{w.rec_id}").text
    assert link.replace("&", "&amp;") in c.get("/ui/queue").text


def test_item_page_is_tenant_scoped_and_checks_its_query(ws):
    c, w = ws, ws.w
    _sign_in(c, w.keys["a-viewer"])
    sku, loc = w.other_item  # only tenant b has it
    assert _item(c, sku, loc).status_code == 404
    assert _item(c, w.sku_id, "NO-SUCH-LOC").status_code == 404
    r = c.get("/ui/items", params={"sku_id": w.sku_id})
    assert r.status_code == 422 and "location_id" in r.text
    c.cookies.clear()
    r = c.get("/ui/items", params={"sku_id": w.sku_id, "location_id": w.location_id}, follow_redirects=False)
    assert r.status_code == 303 and "/ui/login" in r.headers["location"]


def test_item_link_survives_ids_with_slashes_and_ampersands():
    from urllib.parse import parse_qs, urlsplit

    from serving.pages._links import item_link

    url = item_link("SKU/7&x", "DC 1/north")
    q = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == "/ui/items" and q == {"sku_id": ["SKU/7&x"], "location_id": ["DC 1/north"]}
    assert item_link("SKU", None) == ""


def test_what_if_without_script_and_its_override_needs_a_catalogue_reason(ws):
    from features.store import session_scope
    from workflow.lifecycle import get

    c, w = ws, ws.w
    _sign_in(c, w.keys["a-planner"])
    page = c.get(f"/ui/recommendations/{w.rec_id}").text
    assert 'id="whatif-form"' in page and 'name="demand_factor"' in page
    csrf = _csrf(page)
    url = f"/ui/recommendations/{w.rec_id}/what-if"
    plain = c.post(url, data={"csrf_token": csrf, "lead_time_factor": "1"})
    more = c.post(url, data={"csrf_token": csrf, "demand_factor": "2"})
    assert plain.status_code == 200 and more.status_code == 200, more.text
    assert 'id="fan"' in more.text, "the plain form post answers the whole page"
    q0 = float(re.search(r'data-qty="([^"]+)"', plain.text).group(1))
    q2 = float(re.search(r'data-qty="([^"]+)"', more.text).group(1))
    assert q2 > q0, (q0, q2)  # twice the demand: a bigger order
    assert "<svg" in more.text.split('id="whatif-chart"', 1)[1]
    # the script's request answers the fragment only
    frag = c.post(url, data={"csrf_token": csrf, "fill_target": "0.99"}, headers={"X-Fragment": "1"})
    assert frag.status_code == 200 and 'id="whatif-qty"' in frag.text and "<html" not in frag.text
    # bad input names the field; no CSRF token: refused
    bad = c.post(url, data={"csrf_token": csrf, "demand_factor": "abc", "fill_target": "1.5"})
    assert bad.status_code == 422 and "demand factor: expected a number" in bad.text
    bad = c.post(url, data={"csrf_token": csrf, "fill_target": "1.5"}, headers={"X-Fragment": "1"})
    assert bad.status_code == 422 and "service target" in bad.text
    assert c.post(url, data={"demand_factor": "2"}).status_code == 403
    # "use as override" (no script): the page comes back with the override form pre-filled
    pre = c.get(f"/ui/recommendations/{w.rec_id}", params={"override_qty": q2, "override_comment": "wi"}).text
    form = pre.split('id="override-form"', 1)[1].split("</form>", 1)[0]
    assert f'name="quantity" step="any" min="0" value="{q2}"' in form and 'value="wi"' in form
    # an unknown reason is refused and nothing changes; a catalogue reason stores the what-if's quantity
    with session_scope(w.engine) as s:
        version = get(s, "a", w.rec_id).version
    r = c.post(
        f"/ui/recommendations/{w.rec_id}/override",
        data={"csrf_token": csrf, "version": version, "quantity": q2, "reason_code": "because"},
    )
    assert "reason_code" in r.text and "expected one of" in r.text
    with session_scope(w.engine) as s:
        assert get(s, "a", w.rec_id).state == "routed"
    assert REASONS[0] in pre


def test_api_what_if_demand_factor_moves_the_order(ws):
    c, w = ws, ws.w
    h = {"X-API-Key": w.keys["a-viewer"]}
    unit = f"{w.sku_id}|{w.location_id}"
    up = c.post("/v1/plans/what-if", json={"units": [unit], "demand_factor": 1.5}, headers=h)
    down = c.post("/v1/plans/what-if", json={"units": [unit], "demand_factor": 0.5}, headers=h)
    assert up.status_code == 200 and down.status_code == 200, up.text
    b, s_up, s_down = up.json()["base"][0], up.json()["scenario"][0], down.json()["scenario"][0]
    assert s_down["order_up_to"] < b["order_up_to"] < s_up["order_up_to"]
    assert up.json()["change"] == {"demand_factor": 1.5}
    r = c.post("/v1/plans/what-if", json={"units": [unit], "demand_factor": 0}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "demand_factor"]


def test_what_if_without_forecasts_says_why_and_stays_in_the_tenant(ws):
    from features.store import session_scope
    from workflow import queue as wq

    c, w = ws, ws.w
    with session_scope(w.engine) as s:
        (b_rec,), _ = wq.page(s, "b", wq.QueueFilter(sku_id=w.other_item[0]), limit=1)
    # tenant a cannot run a what-if on b's recommendation
    _sign_in(c, w.keys["a-viewer"])
    csrf = _csrf(c.get(f"/ui/recommendations/{w.rec_id}").text)
    r = c.post(f"/ui/recommendations/{b_rec.id}/what-if", data={"csrf_token": csrf, "demand_factor": "2"})
    assert r.status_code == 404
    # a viewer runs one (read-only) but is not offered "use as override"
    r = c.post(f"/ui/recommendations/{w.rec_id}/what-if", data={"csrf_token": csrf, "demand_factor": "2"})
    assert r.status_code == 200 and 'id="whatif-qty"' in r.text and 'id="use-whatif"' not in r.text
    # tenant b has no stored forecasts: the page says so and names the command, nothing is planned
    _sign_in(c, w.keys["b-viewer"])
    csrf = _csrf(c.get(f"/ui/recommendations/{b_rec.id}").text)
    r = c.post(
        f"/ui/recommendations/{b_rec.id}/what-if",
        data={"csrf_token": csrf, "lead_time_factor": "2"},
        headers={"X-Fragment": "1"},
    )
    assert r.status_code == 409 and 'id="whatif-error"' in r.text and "replenish cycle --tenant b" in r.text
