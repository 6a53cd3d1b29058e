"""Orders to suppliers: each supplier's channel (signed webhook or file drop) and the order document sent.

A purchase order approved in the workflow goes to the tenant's ERP first (``purchase_order`` outbox item, see
:mod:`workflow.webhooks`). When the ERP has taken it, and the tenant has set a channel for the order's
supplier (:func:`set_channel`), a ``supplier_order`` item carrying the order document (:func:`order_document`)
is queued in the same transaction (:func:`queue_after_delivery`); :func:`queue_order` queues it by hand (a
resend after the supplier lost it, or a supplier whose channel was set later). :class:`SupplierOrderAdapter`
delivers those items: by webhook (signed like every other webhook, with the channel's own secret) or as a file
in ``<drop root>/<tenant>/<supplier>/`` (CSV or JSON, written to a temporary name and renamed).

The document is a flat, EDI-like order (``docs/suppliers.md`` maps each field to its UN/EDIFACT ORDERS
segment): ``message_type`` (``ORDERS``), ``order_number`` (the purchase order's id, quoted back in the
response), ``order_version``, ``order_date``, ``buyer`` (tenant), ``supplier_id``, ``ship_to`` (location),
``line_number``, ``item_number`` (SKU), ``quantity``, ``unit_price``, ``line_amount``,
``requested_delivery_date`` and ``idempotency_key``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store import session_scope, utcnow
from workflow._journal import AuditRecord, EventRecord, append
from workflow._models import OutboxItem, Recommendation, SupplierChannel
from workflow.adapters import Delivery, WebhookAdapter
from workflow.errors import IllegalTransition, InvalidInput, NotFound
from workflow.outbox import SUPPLIER_ORDER, Claimed

__all__ = [
    "CHANNELS",
    "FILE_FORMATS",
    "ORDER_FIELDS",
    "SUPPLIER_ORDER",
    "SupplierOrderAdapter",
    "delete_channel",
    "list_channels",
    "order_document",
    "queue_after_delivery",
    "queue_order",
    "set_channel",
]

CHANNELS = ("webhook", "file")
FILE_FORMATS = ("json", "csv")
#: Fields of an order document, in the order of a CSV file's columns.
ORDER_FIELDS = (
    "message_type",
    "order_number",
    "order_version",
    "order_date",
    "buyer",
    "supplier_id",
    "ship_to",
    "line_number",
    "item_number",
    "quantity",
    "unit_price",
    "line_amount",
    "currency",
    "requested_delivery_date",
    "idempotency_key",
)
MIN_SECRET_CHARS = 32
#: States of a purchase order that may be (re)sent to its supplier.
_SENDABLE = ("approved", "overridden", "sent", "acknowledged")
_R = Recommendation.__table__
_C = SupplierChannel.__table__


def _public(row: SupplierChannel) -> dict[str, Any]:
    return {
        "supplier_id": row.supplier_id,
        "channel": row.channel,
        "url": row.url,
        "file_format": row.file_format,
        "secret_set": bool(row.secret),
        "updated_at": row.updated_at,
    }


def set_channel(
    session: Session,
    tenant_id: str,
    supplier_id: str,
    channel: str,
    *,
    url: str | None = None,
    secret: str | None = None,
    file_format: str = "json",
    actor: str,
    https_only: bool,
) -> dict[str, Any]:
    """Store (or replace) how the tenant's orders reach ``supplier_id``; returns it without the secret.

    Args:
        session: the transaction.
        tenant_id: whose channel.
        supplier_id: the supplier.
        url: the webhook's URL.
        secret: the webhook's signing secret (write-only).
        file_format: ``json`` or ``csv`` (file drops).
        actor: who sets it (audit).
        https_only: refuse ``http://`` URLs (production).
        channel: ``webhook`` (needs ``url`` and a ``secret`` of 32+ characters; https only when
            ``https_only``) or ``file`` (a file drop under the dispatcher's drop root, ``file_format`` json or
            csv; no url).

    Raises:
        InvalidInput: naming the field that is wrong (channel, url, secret, file_format, supplier_id).
    """
    if not supplier_id or len(supplier_id) > 128:
        raise InvalidInput("supplier_id", "1 to 128 characters")
    if channel not in CHANNELS:
        raise InvalidInput("channel", f"expected one of {', '.join(CHANNELS)}")
    if file_format not in FILE_FORMATS:
        raise InvalidInput("file_format", f"expected one of {', '.join(FILE_FORMATS)}")
    if channel == "webhook":
        parts = urlsplit(url or "")
        allowed = ("https",) if https_only else ("https", "http")
        if parts.scheme not in allowed or not parts.netloc:
            raise InvalidInput("url", f"expected an absolute {' or '.join(allowed)}:// URL for a webhook")
        if not secret or len(secret) < MIN_SECRET_CHARS:
            raise InvalidInput("secret", f"at least {MIN_SECRET_CHARS} characters for a webhook")
    elif url or secret:
        raise InvalidInput("url", "a file channel takes no url or secret (files go under the drop root)")
    row = session.get(SupplierChannel, (tenant_id, supplier_id))
    before = None if row is None else {"channel": row.channel, "url": row.url, "file_format": row.file_format}
    values = dict(channel=channel, url=url, secret=secret, file_format=file_format, updated_at=utcnow())
    if row is None:
        row = SupplierChannel(tenant_id=tenant_id, supplier_id=supplier_id, **values)
        session.add(row)
    else:
        for k, v in values.items():
            setattr(row, k, v)
    session.flush()
    after = {"channel": channel, "url": url, "file_format": file_format}
    append(
        session,
        tenant_id,
        [AuditRecord(actor, "supplier_channel.set", "supplier", supplier_id, before, after)],
    )
    return _public(row)


def list_channels(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's supplier channels (never the secrets)."""
    rows = session.scalars(
        select(SupplierChannel)
        .where(SupplierChannel.tenant_id == tenant_id)
        .order_by(SupplierChannel.supplier_id)
    )
    return [_public(r) for r in rows]


def delete_channel(session: Session, tenant_id: str, supplier_id: str, *, actor: str) -> None:
    """Remove the tenant's channel for ``supplier_id`` (404 when there is none)."""
    row = session.get(SupplierChannel, (tenant_id, supplier_id))
    if row is None:
        raise NotFound("supplier channel", supplier_id)
    before = {"channel": row.channel, "url": row.url}
    session.delete(row)
    session.flush()
    append(
        session, tenant_id, [AuditRecord(actor, "supplier_channel.delete", "supplier", supplier_id, before)]
    )


def order_document(rec: dict[str, Any]) -> dict[str, Any]:
    """The order document of a purchase order (a recommendation row as stored), see the module docstring."""
    qty = rec["final_quantity"] if rec.get("final_quantity") is not None else rec["quantity"]
    need_by = rec.get("final_need_by") or rec.get("need_by")
    sent = rec.get("sent_at") or rec.get("decided_at") or utcnow()
    price = rec.get("unit_cost")
    return {
        "message_type": "ORDERS",
        "order_number": rec["id"],
        "order_version": int(rec["version"]),
        "order_date": sent.date().isoformat(),
        "buyer": rec["tenant_id"],
        "supplier_id": rec["supplier_id"],
        "ship_to": rec["location_id"],
        "line_number": 1,
        "item_number": rec["sku_id"],
        "quantity": float(qty),
        "unit_price": None if price is None else float(price),
        "line_amount": None if price is None else round(float(price) * float(qty), 2),
        "currency": rec.get("currency"),
        "requested_delivery_date": need_by.isoformat() if need_by else None,
        "idempotency_key": _order_key(rec),
    }


def _order_key(rec: dict[str, Any]) -> str:
    return f"{rec['id']}-v{rec['version']}-orders"


def _queue(session: Session, rec: dict[str, Any], actor: str) -> tuple[int, bool]:
    """Insert the supplier_order item of ``rec`` unless its key is there; returns (item id, created)."""
    doc = order_document(rec)
    key = doc["idempotency_key"]
    have = session.execute(select(OutboxItem.id).where(OutboxItem.idempotency_key == key)).scalar()
    if have is not None:
        return int(have), False
    now = utcnow()
    new_id = session.execute(
        insert(OutboxItem.__table__)
        .values(
            tenant_id=rec["tenant_id"],
            recommendation_id=rec["id"],
            idempotency_key=key,
            kind=SUPPLIER_ORDER,
            payload=doc,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(OutboxItem.__table__.c.id)
    ).scalar_one()
    return int(new_id), True


def queue_order(session: Session, tenant_id: str, rec_id: str, *, actor: str) -> dict[str, Any]:
    """Queue the order document of purchase order ``rec_id`` for its supplier's channel (idempotent).

    Returns:
        ``{"outbox_item_id", "idempotency_key", "created"}``; ``created`` is False when the same version of
        the order was queued before (it is not queued twice).

    Raises:
        NotFound: no such recommendation in this tenant.
        InvalidInput: not a purchase order, no supplier, or the supplier has no channel.
        IllegalTransition: the order is not approved (or already sent).
    """
    rec = session.execute(select(_R).where(_R.c.id == rec_id, _R.c.tenant_id == tenant_id)).mappings().first()
    if rec is None:
        raise NotFound("purchase order", rec_id)
    rec = dict(rec)
    if rec["kind"] != "purchase_order" or not rec["supplier_id"]:
        raise InvalidInput("order_number", f"{rec_id} is a {rec['kind']}, not a purchase order to a supplier")
    if rec["state"] not in _SENDABLE:
        raise IllegalTransition(rec_id, "send to the supplier", rec["state"], _SENDABLE)
    if session.get(SupplierChannel, (tenant_id, rec["supplier_id"])) is None:
        raise InvalidInput(
            "supplier_id",
            f"supplier {rec['supplier_id']!r} has no channel: set one (PUT /v1/suppliers/"
            f"{rec['supplier_id']}/channel) before sending it orders",
        )
    item_id, created = _queue(session, rec, actor)
    if created:
        append(
            session,
            tenant_id,
            [AuditRecord(actor, "supplier.order_queued", "recommendation", rec_id, None, {"item": item_id})],
            [EventRecord("supplier", "supplier.order_queued", rec_id, _event(rec, item_id))],
        )
    return {"outbox_item_id": item_id, "idempotency_key": _order_key(rec), "created": created}


def _event(rec: dict[str, Any], item_id: int) -> dict[str, Any]:
    doc = order_document(rec)
    return {
        "order_number": rec["id"],
        "supplier_id": rec["supplier_id"],
        "sku_id": rec["sku_id"],
        "location_id": rec["location_id"],
        "quantity": doc["quantity"],
        "outbox_item_id": item_id,
    }


def queue_after_delivery(
    session: Session, tenant_id: str, rec_ids: Sequence[str], *, actor: str
) -> tuple[list[AuditRecord], list[EventRecord]]:
    """Queue the supplier orders of purchase orders just delivered to the ERP whose supplier has a channel.

    Called by :mod:`workflow.outbox` inside the transaction that records the ERP delivery; returns the journal
    records for that transaction's append (the caller appends them).
    """
    if not rec_ids:
        return [], []
    recs = session.execute(
        select(_R).where(
            _R.c.tenant_id == tenant_id, _R.c.id.in_(list(rec_ids)), _R.c.kind == "purchase_order"
        )
    ).mappings()
    recs = [dict(r) for r in recs if r["supplier_id"]]
    if not recs:
        return [], []
    have = set(
        session.scalars(
            select(_C.c.supplier_id).where(
                _C.c.tenant_id == tenant_id, _C.c.supplier_id.in_({r["supplier_id"] for r in recs})
            )
        )
    )
    audits, events = [], []
    for rec in recs:
        if rec["supplier_id"] not in have:
            continue
        item_id, created = _queue(session, rec, actor)
        if created:
            audits.append(
                AuditRecord(
                    actor, "supplier.order_queued", "recommendation", rec["id"], None, {"item": item_id}
                )
            )
            events.append(EventRecord("supplier", "supplier.order_queued", rec["id"], _event(rec, item_id)))
    return audits, events


class SupplierOrderAdapter:
    """Delivers ``supplier_order`` items through each supplier's channel.

    Args:
        engine: the state store (channels are read per batch, so a changed channel applies at once).
        drop_root: folder of file drops; a file channel writes under ``<drop_root>/<tenant>/<supplier>/``.
            None: file channels fail with a clear error (and are retried).
        timeout_s: per-request timeout of webhooks.
        https_only: refuse ``http://`` webhook URLs (production).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        drop_root: str | os.PathLike | None = None,
        timeout_s: float = 10.0,
        https_only: bool = False,
    ):
        self.engine, self.timeout_s, self.https_only = engine, timeout_s, https_only
        self.drop_root = None if drop_root is None else Path(drop_root)
        self._hooks: dict[tuple[str, str], WebhookAdapter] = {}

    def close(self) -> None:
        """Close the webhook connection pools."""
        for a in self._hooks.values():
            a.close()
        self._hooks.clear()

    def send_batch(self, items: Sequence[Claimed]) -> list[Delivery]:
        """Deliver each item to its supplier's channel; a missing channel is retried (it may be set later)."""
        wanted = {(i.tenant_id, str(i.payload.get("supplier_id"))) for i in items}
        with session_scope(self.engine) as s:
            rows = s.scalars(
                select(SupplierChannel).where(SupplierChannel.tenant_id.in_(sorted({t for t, _ in wanted})))
            )
            channels = {
                (r.tenant_id, r.supplier_id): (r.channel, r.url, r.secret, r.file_format) for r in rows
            }
        out = []
        for item in items:
            key = (item.tenant_id, str(item.payload.get("supplier_id")))
            ch = channels.get(key)
            if item.kind != SUPPLIER_ORDER:
                out.append(Delivery(False, False, f"kind {item.kind!r} is not a supplier order"))
            elif ch is None:
                out.append(
                    Delivery(
                        False,
                        True,
                        f"no channel for supplier {key[1]!r} of tenant {key[0]!r}: set one with PUT "
                        f"/v1/suppliers/{key[1]}/channel (the order waits, then dead-letters)",
                    )
                )
            elif ch[0] == "webhook":
                out.append(self._webhook(key, ch[1], ch[2], item))
            else:
                out.append(self._file(key, ch[3], item))
        return out

    def _webhook(self, key: tuple[str, str], url: str, secret: str, item: Claimed) -> Delivery:
        if self.https_only and not url.startswith("https://"):
            return Delivery(False, False, f"supplier {key[1]!r} channel url is not https:// (production)")
        hook = self._hooks.get(key)
        if hook is None or (hook.url, hook.secret) != (url, secret):
            if hook is not None:
                hook.close()
            hook = self._hooks[key] = WebhookAdapter(url, secret, timeout_s=self.timeout_s, production=False)
        return hook.send(item)

    def _file(self, key: tuple[str, str], fmt: str, item: Claimed) -> Delivery:
        if self.drop_root is None:
            return Delivery(False, True, "file channel but the dispatcher has no supplier drop folder")
        folder = self.drop_root / key[0] / key[1]
        doc = item.payload
        name = f"ORDERS-{doc['order_number']}-v{doc['order_version']}.{fmt}"
        if fmt == "json":
            data = json.dumps(doc, indent=1, sort_keys=True).encode()
        else:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=ORDER_FIELDS, extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            w.writerow({c: "" if doc.get(c) is None else doc.get(c) for c in ORDER_FIELDS})
            data = buf.getvalue().encode()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, folder / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            return Delivery(False, True, f"{type(exc).__name__}: {exc}")
        return Delivery(True, False, f"file {name}", name)
