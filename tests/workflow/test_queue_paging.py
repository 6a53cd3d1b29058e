"""Deep pages of the work queue (ids first, then rows; no count on a last page), SQLite and PostgreSQL."""

from __future__ import annotations

from features.store._db import session_scope
from tests.workflow.test_queue import _seed
from workflow import queue as wq


def test_every_sort_pages_through_all_items_once_in_the_full_order(engine, tenants):
    recs = _seed(engine)
    with session_scope(engine) as s:
        for sort in wq.SORTS:
            for desc in (False, True):
                f = wq.QueueFilter(q="line")
                full, total = wq.page(s, "a", f, sort=sort, descending=desc, limit=500)
                assert total == len(full) == len(recs)
                paged = []
                for offset in range(0, 45, 7):
                    rows, t = wq.page(s, "a", f, sort=sort, descending=desc, limit=7, offset=offset)
                    assert t == len(recs), (sort, desc, offset)
                    paged += rows
                assert [r.id for r in paged] == [r.id for r in full], (sort, desc)
                # keyset: each page starts after the previous page's last item, same order, same total
                seek, last = [], None
                while True:
                    rows, t = wq.page(
                        s,
                        "a",
                        f,
                        sort=sort,
                        descending=desc,
                        limit=7,
                        offset=0 if last is None else 999,
                        after=last,
                    )
                    assert t == len(recs)
                    if not rows:
                        break
                    seek += rows
                    last = rows[-1].id
                assert [r.id for r in seek] == [r.id for r in full], (sort, desc, "after")
        # an id that is not the tenant's: plain offset paging
        first, _ = wq.page(s, "a", wq.QueueFilter(), limit=5)
        assert wq.page(s, "a", wq.QueueFilter(), limit=5, after="nope")[0] == first
        assert wq.page(s, "b", wq.QueueFilter(), limit=5, after=first[0].id) == ([], 0)
        # past the end: no rows, the true total
        assert wq.page(s, "a", wq.QueueFilter(), limit=10, offset=100) == ([], 40)
        # a narrow last page counts itself
        rows, t = wq.page(s, "a", wq.QueueFilter(location_id="DC-1"), limit=50)
        assert t == len(rows) == sum(r.location_id == "DC-1" for r in recs)


def test_facets_list_each_value_once_sorted(engine, tenants):
    recs = _seed(engine)
    with session_scope(engine) as s:
        f = wq.facets(s, "a", None)
        assert f["queue"] == sorted({r.route_queue for r in recs})
        assert f["kind"] == sorted({r.kind for r in recs})
        assert f["rule"] == ["r"] and f["role"] == ["planner"]
        assert wq.facets(s, "a", "approved") == {k: [] for k in f}
        assert wq.facets(s, "b", None)["queue"] == []
