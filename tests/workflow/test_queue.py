"""The work queue's SQL (``workflow.queue``) on SQLite and PostgreSQL: filters, search, sort orders, pages."""

from __future__ import annotations

from datetime import date, timedelta

from features.store._db import session_scope
from tests.workflow._helpers import CATALOGUE_SKUS, rec_in
from workflow import lifecycle
from workflow import queue as wq
from workflow.schemas import Route


def _seed(engine, n: int = 40):
    skus = list(CATALOGUE_SKUS)[:3]
    recs = [
        rec_in(
            sku_id=skus[i % 3],
            location_id=f"DC-{i % 4}",
            quantity=float(5 + (i * 13) % 97),
            need_by=None if i % 10 == 9 else date(2027, 1, 1) + timedelta(days=(i * 5) % 40),
            route=Route(queue=("buyers", "fresh_50%")[i % 2], role="planner", rule="r", reason=f"Line {i}"),
            proposal_key=f"k{i}",
        )
        for i in range(n)
    ]
    with session_scope(engine) as s:
        return lifecycle.propose_many(s, "a", recs, actor="planning:test")


def test_queue_sql_filters_sorts_and_pages(engine, tenants):
    recs = _seed(engine)
    with session_scope(engine) as s:
        # urgency: dated items first, earliest first, undated last; total order over pages
        pages = [wq.page(s, "a", wq.QueueFilter(), limit=15, offset=o) for o in (0, 15, 30)]
        assert [t for _, t in pages] == [40, 40, 40]
        ids = [r.id for rows, _ in pages for r in rows]
        assert len(ids) == len(set(ids)) == 40
        got = [r for rows, _ in pages for r in rows]
        dated = [r.need_by for r in got if r.need_by is not None]
        assert dated == sorted(dated) and all(r.need_by is None for r in got[len(dated) :])
        # value descending within a filter; the search treats % and _ literally, case-insensitively
        rows, total = wq.page(
            s, "a", wq.QueueFilter(queue="buyers", location_id="DC-0"), sort="value", descending=True
        )
        want = [r for r in recs if r.route_queue == "buyers" and r.location_id == "DC-0"]
        assert total == len(want) and [r.value for r in rows] == sorted((r.value for r in want), reverse=True)
        rows, total = wq.page(s, "a", wq.QueueFilter(q="LINE 7"))
        assert {r.id for r in rows} == {recs[7].id}
        assert wq.page(s, "a", wq.QueueFilter(q="50%"))[1] == 0  # queue names are not searched
        assert wq.page(s, "a", wq.QueueFilter(queue="fresh_50%"))[1] == 20
        assert wq.page(s, "a", wq.QueueFilter(q="l_ne"))[1] == 0  # "_" is not a wildcard
        rows, total = wq.page(s, "a", wq.QueueFilter(due_by=date(2027, 1, 10), min_value=50))
        want = [r for r in recs if r.need_by and r.need_by <= date(2027, 1, 10) and r.value >= 50]
        assert total == len(want) and {r.id for r in rows} == {r.id for r in want}
        assert wq.page(s, "b", wq.QueueFilter())[1] == 0  # another tenant sees none of them
        c = wq.counts(s, "a")
        assert c["by_state"]["routed"] == 40 and c["by_queue"] == {"buyers": 20, "fresh_50%": 20}
        assert wq.facets(s, "a", "routed")["queue"] == ["buyers", "fresh_50%"]
