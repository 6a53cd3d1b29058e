"""Routing of writebacks by kind and system, per tenant: webhook targets, and the adapters that deliver.

Each tenant names, per system, the URL its actions go to and the secret they are signed with
(:func:`set_target`). The secret is write-only: :func:`list_targets` never returns it. Routing
(:func:`system_of`): purchase orders go to the ERP, transfers to the WMS, allocations to the OMS, exception
updates to the tenant's ``exceptions`` target where one is set (else to its ERP), and supplier orders to the
order's supplier through that supplier's own channel (:mod:`workflow.suppliers`).

:class:`WritebackRouter` is the dispatcher's default adapter: it sends each item the way its kind and
tenant say. :class:`TenantWebhookAdapter` delivers the webhook kinds and signs each item with its own
tenant's secret, so one tenant's receiver can never verify (or forge) another tenant's deliveries. An item
whose tenant has no target for its system is not sent anywhere else: it stays pending with the reason as
its ``last_error`` (retried with backoff, so setting the target lets it leave) and dead-letters with that
reason when its attempts are spent (``replenish outbox replay`` puts it back). An item of a kind no system
takes is dead-lettered at once.

In production (``https_only=True``) only ``https://`` URLs are accepted, and secrets need 32 characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from features.store import session_scope, utcnow
from workflow._journal import AuditRecord, append
from workflow._models import WebhookTarget
from workflow.adapters import Delivery, WebhookAdapter
from workflow.errors import InvalidInput, NotFound
from workflow.outbox import Claimed

__all__ = [
    "SYSTEMS",
    "SYSTEM_OF_KIND",
    "TenantWebhookAdapter",
    "WritebackRouter",
    "delete_target",
    "list_targets",
    "set_target",
    "system_of",
]

#: Systems a tenant can set a webhook target for (``exceptions``: optional receiver of exception updates).
SYSTEMS = ("erp", "wms", "oms", "exceptions")
#: The system each webhook kind goes to (supplier orders go to their supplier's channel instead).
SYSTEM_OF_KIND = {
    "purchase_order": "erp",
    "exception_update": "exceptions",
    "transfer": "wms",
    "allocation": "oms",
}
#: Where a kind goes when its tenant has no target for its own system.
_FALLBACK = {"exceptions": "erp"}
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
        tenants = sorted({i.tenant_id for i in items})
        with session_scope(self.engine) as s:
            targets = {
                (r.tenant_id, r.system): (r.url, r.secret)
                for r in s.scalars(select(WebhookTarget).where(WebhookTarget.tenant_id.in_(tenants)))
            }
        out = []
        for item in items:
            system = SYSTEM_OF_KIND.get(item.kind)
            if system is None:
                out.append(
                    Delivery(False, False, f"no system takes kind {item.kind!r} (no route configured)")
                )
                continue
            key = (item.tenant_id, system)
            if key not in targets and system in _FALLBACK:
                key = (item.tenant_id, _FALLBACK[system])
            target = targets.get(key)
            if target is None:
                out.append(
                    Delivery(
                        False,
                        True,
                        f"no webhook target for system {system!r} (kind {item.kind}) of tenant "
                        f"{item.tenant_id!r}: set one with PUT /v1/webhooks/{system}; the item waits, then "
                        "dead-letters (replay it after)",
                    )
                )
                continue
            if self.https_only and not target[0].startswith("https://"):
                out.append(
                    Delivery(False, True, f"webhook target of system {key[1]!r} is not https:// (production)")
                )
                continue
            adapter = self._adapters.get(key)
            if adapter is None or (adapter.url, adapter.secret) != target:
                if adapter is not None:
                    adapter.close()
                adapter = self._adapters[key] = WebhookAdapter(*target, timeout_s=self.timeout_s)
            out.append(adapter.send(item))
        return out


def system_of(kind: str) -> str | None:
    """The system a kind is written back to (``supplier`` for supplier orders), or None when none takes it."""
    from workflow.outbox import SUPPLIER_ORDER

    return "supplier" if kind == SUPPLIER_ORDER else SYSTEM_OF_KIND.get(kind)


class WritebackRouter:
    """The dispatcher's adapter: each item by its kind and tenant (see the module docstring).

    Args:
        engine: the state store (targets and channels are read per batch).
        supplier_drop_root: folder of the suppliers' file drops (``<root>/<tenant>/<supplier>/``); None: file
            channels wait with a clear error.
        timeout_s: per-request timeout.
        https_only: refuse ``http://`` targets (production).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        supplier_drop_root=None,
        timeout_s: float = 10.0,
        https_only: bool = False,
    ):
        from workflow.suppliers import SupplierOrderAdapter

        self.webhooks = TenantWebhookAdapter(engine, timeout_s=timeout_s, https_only=https_only)
        self.suppliers = SupplierOrderAdapter(
            engine, drop_root=supplier_drop_root, timeout_s=timeout_s, https_only=https_only
        )

    def close(self) -> None:
        """Close every connection pool."""
        self.webhooks.close()
        self.suppliers.close()

    def send_batch(self, items: Sequence[Claimed]) -> list[Delivery]:
        """Deliver each item through the adapter of its kind; results in the order of ``items``."""
        out: list[Delivery | None] = [None] * len(items)
        groups: dict[bool, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(system_of(item.kind) == "supplier", []).append(i)
        for to_supplier, idx in groups.items():
            adapter = self.suppliers if to_supplier else self.webhooks
            for i, d in zip(idx, adapter.send_batch([items[i] for i in idx]), strict=True):
                out[i] = d
        return out
