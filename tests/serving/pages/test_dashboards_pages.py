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
