"""Webhook targets per tenant and receiving system (ERP, WMS, OMS), and the adapter that delivers to them.

Each tenant names, per system, the URL its actions go to and the secret they are signed with
(:func:`set_target`). The secret is write-only: :func:`list_targets` never returns it. Purchase orders and
exception updates go to the ERP, transfers to the WMS, allocations to the OMS (:data:`SYSTEM_OF_KIND`).
:class:`TenantWebhookAdapter` plugs into :class:`workflow.dispatcher.Dispatcher` and signs each item with its
own tenant's secret, so one tenant's receiver can never verify (or forge) another tenant's deliveries.

In production (``https_only=True``) only ``https://`` URLs are accepted, and secrets need 32 characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store._db import session_scope, utcnow
from workflow._journal import AuditRecord, append
from workflow._models import WebhookTarget
from workflow.adapters import Delivery, WebhookAdapter
from workflow.errors import InvalidInput, NotFound
from workflow.outbox import Claimed

__all__ = [
    "SYSTEMS",
    "SYSTEM_OF_KIND",
    "TenantWebhookAdapter",
    "delete_target",
    "list_targets",
    "set_target",
]

SYSTEMS = ("erp", "wms", "oms")
SYSTEM_OF_KIND = {"purchase_order": "erp", "exception_update": "erp", "transfer": "wms", "allocation": "oms"}
MIN_SECRET_CHARS = 32


def _check(system: str, url: str, secret: str, https_only: bool) -> None:
    if system not in SYSTEMS:
        raise InvalidInput("system", f"expected one of {', '.join(SYSTEMS)}")
    parts = urlsplit(url)
    allowed = ("https",) if https_only else ("https", "http")
    if parts.scheme not in allowed or not parts.netloc:
        raise InvalidInput("url", f"expected an absolute {' or '.join(allowed)}:// URL")
    if len(secret) < MIN_SECRET_CHARS:
        raise InvalidInput("secret", f"at least {MIN_SECRET_CHARS} characters")


def set_target(
    session: Session, tenant_id: str, system: str, url: str, secret: str, *, actor: str, https_only: bool
) -> dict[str, Any]:
    """Store (or replace) the tenant's target for ``system``; returns it without the secret."""
    _check(system, url, secret, https_only)
    row = session.get(WebhookTarget, (tenant_id, system))
    before = None if row is None else {"url": row.url}
    if row is None:
        row = WebhookTarget(tenant_id=tenant_id, system=system, url=url, secret=secret, updated_at=utcnow())
        session.add(row)
    else:
        row.url, row.secret, row.updated_at = url, secret, utcnow()
    session.flush()
    append(session, tenant_id, [AuditRecord(actor, "webhook.set", "webhook", system, before, {"url": url})])
    return _public(row)


def _public(row: WebhookTarget) -> dict[str, Any]:
    return {"system": row.system, "url": row.url, "updated_at": row.updated_at, "secret_set": True}


def list_targets(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's targets (never the secrets)."""
    rows = session.scalars(
        select(WebhookTarget).where(WebhookTarget.tenant_id == tenant_id).order_by(WebhookTarget.system)
    )
    return [_public(r) for r in rows]


def delete_target(session: Session, tenant_id: str, system: str, *, actor: str) -> None:
    """Remove the tenant's target for ``system`` (404 when there is none)."""
    row = session.get(WebhookTarget, (tenant_id, system))
    if row is None:
        raise NotFound("webhook target", system)
    session.delete(row)
    session.flush()
    append(
        session, tenant_id, [AuditRecord(actor, "webhook.delete", "webhook", system, {"url": row.url}, None)]
    )


class TenantWebhookAdapter:
    """Delivers each item to its tenant's target for the item's system, signed with that tenant's secret.

    An item whose tenant has no target for its system is kept for retry (not sent anywhere else).
    """

    def __init__(self, engine: Engine, *, timeout_s: float = 10.0, https_only: bool = False):
        self.engine, self.timeout_s, self.https_only = engine, timeout_s, https_only
        self._adapters: dict[tuple[str, str], WebhookAdapter] = {}

    def close(self) -> None:
        """Close every connection pool."""
        for a in self._adapters.values():
            a.close()
        self._adapters.clear()

    def send_batch(self, items: Sequence[Claimed]) -> list[Delivery]:
        """Deliver each item to its tenant's system."""
        wanted = {(i.tenant_id, SYSTEM_OF_KIND.get(i.kind, "erp")) for i in items}
        with session_scope(self.engine) as s:
            targets = {
                (r.tenant_id, r.system): (r.url, r.secret)
                for r in s.scalars(
                    select(WebhookTarget).where(WebhookTarget.tenant_id.in_(sorted({t for t, _ in wanted})))
                )
            }
        out = []
        for item in items:
            key = (item.tenant_id, SYSTEM_OF_KIND.get(item.kind, "erp"))
            target = targets.get(key)
            if target is None or (self.https_only and not target[0].startswith("https://")):
                out.append(
                    Delivery(False, True, f"no usable webhook target for tenant {key[0]} system {key[1]}")
                )
                continue
            adapter = self._adapters.get(key)
            if adapter is None or (adapter.url, adapter.secret) != target:
                if adapter is not None:
                    adapter.close()
                adapter = self._adapters[key] = WebhookAdapter(*target, timeout_s=self.timeout_s)
            out.append(adapter.send(item))
        return out
