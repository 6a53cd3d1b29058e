"""Open supplier confirmations, as the plan stage takes them: one source for the cycle and the re-plan.

A purchase order sent to its supplier and confirmed short (``confirmed_quantity`` below what was ordered) and
not received yet is supply the plan must see as confirmed, not as ordered: the regular cycle's plan stage
(:mod:`serving.cycle`) and the re-plan after a response (:func:`workflow.supplier_responses.apply_responses`)
both pass :func:`confirmed_supply` to :func:`planning.plan_stage`, which allocates the confirmed quantity
across the SKU's locations and takes each order's ordered quantity out of ``on_order`` where the unit's
inventory snapshot already counts it (taken on or after the day the order was sent), so that the order is
counted once.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from sqlalchemy import and_, exists, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store import session_scope
from workflow._models import Recommendation, SupplierResponse

__all__ = ["CONFIRMATION_SCHEMA", "confirmed_supply", "open_confirmations"]

_R = Recommendation.__table__
_S = SupplierResponse.__table__

#: Columns of :func:`open_confirmations` (one row per order).
CONFIRMATION_SCHEMA = dict.fromkeys(("po_id", "sku_id", "location_id", "supplier_id"), pl.String) | {
    "ordered_qty": pl.Float64,
    "confirmed_qty": pl.Float64,
    "confirmed_date": pl.Date,
    "sent_date": pl.Date,
}


def open_confirmations(session: Session, tenant_id: str, skus: Sequence[str] | None = None) -> pl.DataFrame:
    """Open purchase orders (of ``skus``; None: all) whose supplier confirmed a quantity (sent, not received).

    Returns:
        :data:`CONFIRMATION_SCHEMA` rows: the ordered quantity is the final one (after an override), the
        sent date the day the outbox delivered the order.
    """
    received = exists().where(
        and_(_S.c.tenant_id == tenant_id, _S.c.recommendation_id == _R.c.id, _S.c.status == "received")
    )
    q = select(
        _R.c.id,
        _R.c.sku_id,
        _R.c.location_id,
        _R.c.supplier_id,
        _R.c.quantity,
        _R.c.final_quantity,
        _R.c.confirmed_quantity,
        _R.c.confirmed_date,
        _R.c.sent_at,
    ).where(
        _R.c.tenant_id == tenant_id,
        _R.c.kind == "purchase_order",
        _R.c.state.in_(("sent", "acknowledged")),
        _R.c.confirmed_quantity.is_not(None),
        ~received,
    )
    if skus is not None:
        q = q.where(_R.c.sku_id.in_(list(skus)))
    rows = [
        (
            r[0],
            r[1],
            r[2],
            r[3],
            float(r[5] if r[5] is not None else r[4]),
            float(r[6]),
            r[7],
            r[8] and r[8].date(),
        )
        for r in session.execute(q.order_by(_R.c.id))
    ]
    return pl.DataFrame(rows, schema=CONFIRMATION_SCHEMA, orient="row")


def confirmed_supply(engine: Engine, tenant: str, skus: Sequence[str] | None = None) -> pl.DataFrame | None:
    """The open orders confirmed short, for :func:`planning.plan_stage`'s ``confirmed_supply``; None if none.

    A full confirmation changes nothing the plan does not already assume (the order arrives as asked), so
    only short ones are passed.
    """
    with session_scope(engine) as s:
        open_ = open_confirmations(s, tenant, skus)
    short = open_.filter(pl.col("confirmed_qty") < pl.col("ordered_qty") - 1e-9)
    return short if short.height else None
