"""The planner's work queue: filtered, sorted, searched and paginated in SQL, with counts per queue and state.

:func:`page` returns one page of recommendations and the number that match; :func:`counts` the routed items
per queue and the items per state; :func:`facets` the values the filters offer. Everything runs in the
database (``WHERE`` / ``ORDER BY`` / ``LIMIT`` / ``OFFSET`` on the ``(tenant_id, state, ...)`` indexes), so a
page of 50 out of 10,000 routed items reads 50 rows, not 10,000.

Urgency is the date the supply is needed (``need_by``: when the unit runs below its protection level without
this order, the projected stockout date planning wrote on the recommendation); the most urgent sort first.
The owner of a routed item is its queue (``route_queue``) and the role it is routed to (``route_role``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from workflow._machine import _R, _out
from workflow.schemas import RecommendationOut

__all__ = ["SORTS", "STATES", "QueueFilter", "counts", "facets", "page"]

STATES = (
    "routed",
    "proposed",
    "approved",
    "overridden",
    "rejected",
    "sent",
    "acknowledged",
    "failed",
    "expired",
)

#: Sort keys and their columns; urgency puts items without a date last.
SORTS = {
    "urgency": _R.c.need_by,
    "value": _R.c.value,
    "quantity": _R.c.quantity,
    "created": _R.c.created_at,
    "kind": _R.c.kind,
    "sku": _R.c.sku_id,
    "location": _R.c.location_id,
    "supplier": _R.c.supplier_id,
    "queue": _R.c.route_queue,
    "rule": _R.c.route_rule,
}


@dataclass(frozen=True)
class QueueFilter:
    """What the planner narrowed the queue to (``None`` / empty: no condition on that field).

    ``q`` searches the id, SKU, location, supplier and routing reason (case-insensitive substring);
    ``due_by`` keeps the items needed on or before that date (the urgent ones); ``min_value`` /
    ``max_value`` bound the server-computed value.
    """

    state: str | None = "routed"
    kind: str | None = None
    sku_id: str | None = None
    location_id: str | None = None
    supplier_id: str | None = None
    queue: str | None = None
    role: str | None = None
    rule: str | None = None
    q: str | None = None
    due_by: date | None = None
    min_value: float | None = None
    max_value: float | None = None

    def active(self) -> dict[str, Any]:
        """The conditions set, by field name (for links that keep the filter)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, "")
        }


_EQUAL = {
    "state": _R.c.state,
    "kind": _R.c.kind,
    "sku_id": _R.c.sku_id,
    "location_id": _R.c.location_id,
    "supplier_id": _R.c.supplier_id,
    "queue": _R.c.route_queue,
    "role": _R.c.route_role,
    "rule": _R.c.route_rule,
}


def _like(text: str) -> str:
    esc = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{esc.lower()}%"


def _contains(col, pattern: str, dialect: str):
    # SQLite's LIKE already ignores ASCII case (as its lower() only folds ASCII): the same match, without
    # lowering every value of five columns per row; PostgreSQL's ILIKE is its case-insensitive LIKE.
    if dialect == "sqlite":
        return col.like(pattern, escape="\\")
    return col.ilike(pattern, escape="\\")


def _where(stmt: Select, tenant_id: str, f: QueueFilter, dialect: str = "sqlite") -> Select:
    stmt = stmt.where(_R.c.tenant_id == tenant_id)
    for name, col in _EQUAL.items():
        v = getattr(f, name)
        if v not in (None, ""):
            stmt = stmt.where(col == v)
    if f.due_by is not None:
        stmt = stmt.where(_R.c.need_by.is_not(None), _R.c.need_by <= f.due_by)
    if f.min_value is not None:
        stmt = stmt.where(_R.c.value >= f.min_value)
    if f.max_value is not None:
        stmt = stmt.where(_R.c.value <= f.max_value)
    if f.q:
        pat = _like(f.q.strip())
        cols = (_R.c.id, _R.c.sku_id, _R.c.location_id, _R.c.supplier_id, _R.c.route_reason)
        stmt = stmt.where(or_(*(_contains(c, pat, dialect) for c in cols)))
    return stmt


def _after(session: Session, tenant_id: str, rec_id: str, col, descending: bool, sort: str):
    """The condition "after item ``rec_id`` in :func:`page`'s order" (None when the item is not the tenant's).

    The order is ``(col IS NULL, col, [value desc,] id)``; the item's own values are read by primary key in
    the same statement (scalar subqueries), so no value travels through the URL.
    """
    if session.scalar(select(_R.c.id).where(_R.c.id == rec_id, _R.c.tenant_id == tenant_id)) is None:
        return None

    def its(c):
        return select(c).where(_R.c.id == rec_id).scalar_subquery()

    k, v, i = its(col), its(_R.c.value), its(_R.c.id)
    rest = _R.c.id > i
    if sort != "value":  # ties on the key: the bigger value first, then the id
        rest = or_(_R.c.value < v, and_(_R.c.value == v, _R.c.id > i))
    beyond = col < k if descending else col > k
    return or_(
        and_(k.is_(None), col.is_(None), rest),  # the item has no key: the rest of the no-key block
        and_(k.is_not(None), or_(col.is_(None), beyond, and_(col == k, rest))),
    )


def page(
    session: Session,
    tenant_id: str,
    f: QueueFilter,
    *,
    sort: str = "urgency",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
    after: str | None = None,
) -> tuple[list[RecommendationOut], int]:
    """One page of the tenant's recommendations matching ``f``, and how many match in all.

    ``after``: the id of the last item of the previous page (keyset paging: the page starts right after
    that item in the sort order, read without skipping ``offset`` rows; ``offset`` is then ignored). An id
    that is not the tenant's falls back to ``offset``.

    Raises:
        ValueError: ``sort`` is not one of :data:`SORTS` or ``limit`` / ``offset`` are out of range.
    """
    if sort not in SORTS:
        raise ValueError(f"sort: expected one of {', '.join(SORTS)}, got {sort!r}")
    if not 1 <= limit <= 500 or offset < 0:
        raise ValueError("limit: expected 1..500 and offset >= 0")
    col = SORTS[sort]
    order = [col.is_(None), col.desc() if descending else col.asc()]  # no value: last either way
    if sort != "value":
        order.append(_R.c.value.desc())  # ties: the bigger item first
    order.append(_R.c.id)  # a total order, so pages neither repeat nor skip an item
    dialect = session.get_bind().dialect.name
    # The page's ids first (a narrow sort: key, value and id, not every column of every match), then
    # its rows by primary key: a deep page skips thousands of narrow rows instead of full ones, and a
    # page reached by "next" skips none (it starts after the previous page's last item).
    stmt = _where(select(_R.c.id), tenant_id, f, dialect).order_by(*order).limit(limit)
    seek = _after(session, tenant_id, after, col, descending, sort) if after else None
    stmt = stmt.where(seek) if seek is not None else stmt.offset(offset)
    ids = list(session.scalars(stmt))
    if seek is None and len(ids) < limit and (ids or offset == 0):
        total = offset + len(ids)  # the last page: no count needed
    else:
        total = session.execute(
            _where(select(func.count()).select_from(_R), tenant_id, f, dialect)
        ).scalar_one()
    if not ids:
        return [], int(total)
    by_id = {r["id"]: r for r in session.execute(select(_R).where(_R.c.id.in_(ids))).mappings()}
    return [_out(by_id[i]) for i in ids if i in by_id], int(total)


def counts(session: Session, tenant_id: str) -> dict[str, dict[str, int]]:
    """Items per state, and routed items per queue (``"-"`` for routed items without a queue)."""
    by_state = dict(
        session.execute(
            select(_R.c.state, func.count()).where(_R.c.tenant_id == tenant_id).group_by(_R.c.state)
        ).all()
    )
    by_queue: dict[str, int] = {}
    for q, n in session.execute(
        select(_R.c.route_queue, func.count())
        .where(_R.c.tenant_id == tenant_id, _R.c.state == "routed")
        .group_by(_R.c.route_queue)
    ).all():
        by_queue["-" if q is None else q] = by_queue.get("-" if q is None else q, 0) + int(n)
    return {
        "by_state": {s: int(by_state.get(s, 0)) for s in STATES},
        "by_queue": dict(sorted(by_queue.items())),
    }


def facets(session: Session, tenant_id: str, state: str | None) -> dict[str, list[str]]:
    """Distinct kinds, queues, roles, rules and suppliers among the tenant's items in ``state``.

    One grouped scan for the five (their combinations are few: a kind, queue, role and rule per routing
    rule, times the suppliers), at most 500 values each.
    """
    cols = {
        "kind": _R.c.kind,
        "queue": _R.c.route_queue,
        "role": _R.c.route_role,
        "rule": _R.c.route_rule,
        "supplier_id": _R.c.supplier_id,
    }
    stmt = select(*cols.values()).where(_R.c.tenant_id == tenant_id).group_by(*cols.values())
    if state:
        stmt = stmt.where(_R.c.state == state)
    seen: dict[str, set[str]] = {name: set() for name in cols}
    for row in session.execute(stmt.limit(20_000)):
        for name, v in zip(cols, row, strict=True):
            if v is not None:
                seen[name].add(str(v))
    return {name: sorted(v)[:500] for name, v in seen.items()}
