"""The queue page's "next" links page by keyset (after the previous page's last item): the same items in
the same order as numbered pages, none twice, none skipped; a malformed cursor is refused naming it."""

from __future__ import annotations

import html as htmllib
import re

from tests.serving.pages.test_pages_views import _sign_in
from tests.serving.pages.test_queue_page import _ids, client, seed_queue, world  # noqa: F401  (fixtures)


def test_next_links_walk_the_queue_by_keyset_in_the_numbered_pages_order(client, world):  # noqa: F811
    seed_queue(world.engine, "a", 60)
    _sign_in(client, world.keys["a-planner"])
    for query in (
        "sort=location&dir=asc",
        "sort=urgency&dir=desc&q=needs",
        "sort=value&dir=desc&queue=buyers",
    ):
        numbered, pages = [], 1
        while True:
            page = client.get(f"/ui/queue?{query}&size=25&page={pages}").text
            numbered += _ids(page)
            total = int(re.search(r"page \d+ of (\d+)", page).group(1))
            if pages >= total:
                break
            pages += 1
        walked, url, seen_pages = [], f"/ui/queue?{query}&size=25", 0
        while url:
            page = client.get(url).text
            walked += _ids(page)
            seen_pages += 1
            nxt = re.search(r'<a href="([^"]+)" rel="next">', page)
            url = htmllib.unescape(nxt.group(1)) if nxt else None
            if url:
                assert "after=" in url and f"page={seen_pages + 1}" in url
        assert walked == numbered and len(set(walked)) == len(walked), query
        assert seen_pages == pages
    r = client.get("/ui/queue?after=x%27%20or%201=1")
    assert r.status_code == 422 and "after: expected a recommendation id" in r.text
