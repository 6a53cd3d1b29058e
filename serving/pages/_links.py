"""Links between the planner pages that every page uses the same way (ids may hold any character, '/' too)."""

from __future__ import annotations

from urllib.parse import urlencode

__all__ = ["item_link"]


def item_link(sku_id: str | None, location_id: str | None) -> str:
    """The item page of ``sku_id`` at ``location_id``: ``/ui/items?sku_id=..&location_id=..``.

    A query string, not path segments: ids come from the tenant's systems and may contain '/', which a path
    parameter would split. Empty for a missing id (an exception without a location names no item).
    """
    if not sku_id or not location_id:
        return ""
    return "/ui/items?" + urlencode({"sku_id": sku_id, "location_id": location_id})
