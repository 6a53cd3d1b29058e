"""The dashboards (``/ui/dashboards/...``) in-process over the real app, a real SQLite store and real
monitoring runs: empty states, plots with data points, tables, tenant scoping, parameter errors."""

from __future__ import annotations

import re

import pytest

from tests.serving.pages.test_pages_views import _sign_in, client, world  # noqa: F401  (fixtures)

PAGES = ("inventory", "accuracy", "adoption")


@pytest.fixture
def filled(world):  # noqa: F811
    from features.settings import get_settings
    from features.store import session_scope
    from tests.serving._dashboard_data import fill
    from workflow import access

    with session_scope(world.engine) as s:
        planner = access.authenticate(s, world.keys["a-planner"])
    return fill(world.engine, "a", get_settings().facts_dir, planner)


def _points(html: str, sid: str) -> int:
    """Data points drawn in section ``sid``: line markers and bars."""
    sec = html.split(f'id="{sid}"', 1)[1].split("</section>", 1)[0]
    markers = sum(g.count("<use ") for g in re.findall(r'<g id="series-\d+">(.*?)</g>\s*</g>', sec, re.S))
    return markers + len(re.findall(r'id="bars-\d+-\d+"', sec))


def _row(name: str, *cells: str) -> str:
    return f'<th scope="row">{name}</th>' + "".join(f'<td class="num">{v}</td>' for v in cells)


def test_dashboards_say_how_to_fill_them_when_empty(client, world):  # noqa: F811
    _sign_in(client, world.keys["a-viewer"])
    r = client.get("/ui/dashboards", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/dashboards/inventory"
    for name in PAGES:
        html = client.get(f"/ui/dashboards/{name}").text
        assert 'id="empty"' in html and "replenish monitoring run --tenant a" in html, name
        assert "<svg" not in html


def test_dashboards_draw_the_monitoring_runs_plans_and_decisions(client, world, filled):  # noqa: F811
    _sign_in(client, world.keys["a-viewer"])  # read role is enough
    inv = client.get("/ui/dashboards/inventory").text
    assert filled["runs"][-1] in inv and "dash-plan" in inv
    for sid in ("stockouts", "cover", "lost-excess"):
        assert _points(inv, sid) >= 2, sid  # one point per monitoring run and series
    # service vs target: DC-1 and DC-2, with and without the order, targets 95% / 90% in the table
    assert _points(inv, "service-location") == 4
    table = inv.split('id="service-location"')[1].split("</section>")[0]
    assert re.search(r'<th scope="row">DC-1</th><td class="num">4</td><td class="num">95.0%</td>', table)
    assert re.search(r'<th scope="row">DC-2</th><td class="num">2</td><td class="num">90.0%</td>', table)
    assert 'role="img"' in inv and "<title id=" in inv and "<desc id=" in inv
    # measured by the monitoring job: SKU-8 at DC-1 (10/day over the last 28 days of sales) stood at zero
    # for the 3 days after day 30: lost 30 units; sold there on days 28-39: 84 (SKU-9) + 122 (SKU-8)
    # -> fill 206 / 236; SKU-9 at DC-2: 1600 on hand, 362/28 a day -> excess 1600 - 90 x 362/28 = 436.4
    # units, valued at SKU-9's cheapest supplier cost 2.0 -> 872.9
    assert _points(inv, "measured-location") == 2 and _points(inv, "measured-category") == 2
    measured = inv.split('id="measured-location"')[1].split("</section>")[0]
    assert _row("DC-1", "2", "87.3%", "95.0%", "12.5%", "30") in measured
    assert _row("DC-2", "1", "100.0%", "90.0%") in measured
    assert "".join(f'<td class="num">{v}</td>' for v in ("436", "873", "0")) + "</tr>" in measured
    assert "fill target" in measured  # the target is marked on the bars (legend)
    category = inv.split('id="measured-category"')[1].split("</section>")[0]
    assert _row("snacks", "2", "100.0%", "92.5%") in category
    assert _row("(none)", "1", "80.3%", "95.0%") in category
    kpis = inv.split('id="kpis"')[1].split("</ul>")[0]
    assert re.search(r"Excess value \(at unit cost\)</span> <strong class=\"v\">873</strong>", kpis)
    acc = client.get("/ui/dashboards/accuracy").text
    for sid in ("wape-period", "coverage-period", "bias-period", "by-level", "over-runs"):
        assert _points(acc, sid) >= 2, sid
    assert "model v1" in acc and "model v2" in acc
    level = client.get("/ui/dashboards/accuracy?metric=mae&horizon=2-3").text
    assert "MAE (units) by hierarchy level and model version, horizon 2-3" in level
    ado = client.get("/ui/dashboards/adoption").text
    for sid in ("weekly", "hours", "reasons", "fva"):
        assert _points(ado, sid) >= 1, sid
    reasons = ado.split('id="reasons"')[1].split("</section>")[0]
    # promotion: 110 -> 150 and 120 -> 60 (one raised); capacity: 130 -> 90
    assert re.search(
        r'<th scope="row">promotion</th><td class="num">2</td><td class="num">1</td>'
        r'<td class="num">230</td><td class="num">210</td>',
        reasons,
    )
    assert '<th scope="row">capacity</th><td class="num">1</td><td class="num">0</td>' in reasons
    # FVA per reason against the quantity right in hindsight (proposed + actual, no forecast in the windows):
    # promotion: SKU-8 110 -> 150, right 230; SKU-9/DC-2 120 -> 60, right 290: 1 - 155/145;
    # capacity: SKU-9/DC-1 130 -> 90, right 227: 1 - 137/97
    assert _points(ado, "fva-reasons") == 2
    fva = ado.split('id="fva-reasons"')[1].split("</section>")[0]
    assert '<th scope="row">promotion</th><td class="num">2</td><td class="num">-6.9%</td>' in fva
    assert '<th scope="row">capacity</th><td class="num">1</td><td class="num">-41.2%</td>' in fva
    weekly = ado.split('id="weekly"')[1].split("</section>")[0]
    assert re.search(
        r'<td class="num">1</td><td class="num">3</td><td class="num">1</td><td class="num">80.0%</td>',
        weekly,
    )
    # another tenant sees none of it
    client.post(
        "/ui/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]*)"', ado).group(1)}
    )
    _sign_in(client, world.keys["b-planner"])
    for name in PAGES:
        html = client.get(f"/ui/dashboards/{name}").text
        assert 'id="empty"' in html and "dash-plan" not in html, name


def test_accuracy_dashboard_refuses_unknown_figures_naming_the_field(client, world, filled):  # noqa: F811
    _sign_in(client, world.keys["a-planner"])
    r = client.get("/ui/dashboards/accuracy?metric=rmse")
    assert r.status_code == 422 and "metric: expected one of" in r.text
    r = client.get("/ui/dashboards/accuracy?horizon=99")
    assert r.status_code == 422 and "horizon: expected one of" in r.text
