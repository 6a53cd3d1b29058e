"""Decision rights: server-side valuation, approval limits, four-eyes and capped auto-approval.

What a decision is worth is never taken from the caller. :func:`unit_costs` reads the tenant's stored
supplier terms (``supplier_terms``, written by ingest): a purchase order is valued at its supplier's unit cost
for the SKU; a transfer, allocation or exception update at the SKU's highest unit cost over its suppliers
(the catalogue cost). A recommendation whose cost is unknown is refused (``unknown_cost="refuse"``) or
routed to the highest role (``"route"``: only an admin without an explicit limit may decide it).

:class:`DecisionPolicy` holds the configurable parts (from :class:`features.settings.Settings`):

* ``four_eyes_above``: above this value the decider must be another principal than the proposer
  (``None`` turns four-eyes off); ``four_eyes_rules`` overrides it per routing rule;
* ``auto_approve_max_value``: a server-side auto-approval (planning's routing rules, through the trusted
  :func:`workflow.lifecycle.propose_many`) above this value is routed to approvers instead;
* ``unknown_cost``: refuse or route, as above; ``max_value``: larger values are refused (422).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from features.store import SupplierTerm
from workflow.access import DECIDER_RANK, Principal
from workflow.errors import Forbidden, InvalidInput

__all__ = [
    "UNKNOWN",
    "DecisionPolicy",
    "check_decider",
    "current_policy",
    "unit_costs",
    "valuation",
]

UNKNOWN = "unknown"
_ST = SupplierTerm.__table__


@dataclass(frozen=True)
class DecisionPolicy:
    """Configurable decision rights (see the module docstring)."""

    four_eyes_above: float | None = 0.0
    four_eyes_rules: Mapping[str, float | None] = field(default_factory=dict)
    auto_approve_max_value: float = 10_000.0
    unknown_cost: Literal["refuse", "route"] = "route"
    max_value: float = 1e15
    reason_codes: tuple[str, ...] | None = None  # the catalogue of override/reject codes (None: any code)

    @classmethod
    def from_settings(cls, settings: Any) -> DecisionPolicy:
        """The policy configured in :class:`features.settings.Settings`."""
        return cls(
            four_eyes_above=settings.four_eyes_above,
            four_eyes_rules=dict(settings.four_eyes_rules),
            auto_approve_max_value=settings.auto_approve_max_value,
            unknown_cost=settings.unknown_cost,
            reason_codes=tuple(settings.reason_codes) if getattr(settings, "reason_codes", None) else None,
        )

    def check_reason(self, code: str) -> None:
        """Raise :class:`InvalidInput` (422, ``reason_code``) when a catalogue is set and lacks ``code``."""
        if self.reason_codes is not None and code not in self.reason_codes:
            from workflow.errors import InvalidInput

            raise InvalidInput("reason_code", f"expected one of {', '.join(self.reason_codes)}, got {code!r}")

    def four_eyes_threshold(self, rule: str | None) -> float | None:
        """Value above which proposer and decider must differ for items routed by ``rule`` (None: off)."""
        if rule is not None and rule in self.four_eyes_rules:
            return self.four_eyes_rules[rule]
        return self.four_eyes_above


def current_policy() -> DecisionPolicy:
    """The policy of this process's settings."""
    from features.settings import get_settings

    return DecisionPolicy.from_settings(get_settings())


def unit_costs(
    session: Session, tenant_id: str, items: Iterable[tuple[str, str, str | None]]
) -> dict[tuple[str, str | None], float]:
    """Stored unit costs for ``(kind, sku_id, supplier_id)`` items, in two queries at most.

    Returns:
        ``{(sku_id, supplier_id): cost}`` for purchase orders and ``{(sku_id, None): highest cost}`` for the
        other kinds; items without a stored cost are absent.
    """
    pairs, skus = set(), set()
    for kind, sku, supplier in items:
        if kind == "purchase_order":
            if supplier is not None:
                pairs.add((sku, supplier))
        else:
            skus.add(sku)
    out: dict[tuple[str, str | None], float] = {}
    if pairs:
        rows = session.execute(
            select(_ST.c.sku_id, _ST.c.supplier_id, _ST.c.unit_cost).where(
                _ST.c.tenant_id == tenant_id, _ST.c.sku_id.in_(sorted({p[0] for p in pairs}))
            )
        )
        for sku, sup, cost in rows:
            if (sku, sup) in pairs and cost is not None:
                out[(sku, sup)] = float(cost)
    if skus:
        rows = session.execute(
            select(_ST.c.sku_id, func.max(_ST.c.unit_cost))
            .where(_ST.c.tenant_id == tenant_id, _ST.c.sku_id.in_(sorted(skus)))
            .group_by(_ST.c.sku_id)
        )
        for sku, cost in rows:
            if cost is not None:
                out[(sku, None)] = float(cost)
    return out


def cost_key(kind: str, sku_id: str, supplier_id: str | None) -> tuple[str, str | None]:
    """The key of :func:`unit_costs`' result for one item."""
    return (sku_id, supplier_id if kind == "purchase_order" else None)


def valuation(
    costs: Mapping[tuple[str, str | None], float],
    kind: str,
    sku_id: str,
    supplier_id: str | None,
    quantity: float,
    policy: DecisionPolicy,
) -> tuple[float | None, float, str]:
    """``(unit_cost, value, cost_source)`` of ``quantity`` units; ``(None, 0.0, "unknown")`` without a cost.

    Raises:
        InvalidInput: the cost is unknown and the policy refuses such items, or the value is not finite or
            above ``policy.max_value``.
    """
    cost = costs.get(cost_key(kind, sku_id, supplier_id))
    if cost is None:
        if policy.unknown_cost == "refuse":
            where = f"from supplier {supplier_id!r}" if kind == "purchase_order" else "from any supplier"
            raise InvalidInput(
                "sku_id",
                f"no unit cost for SKU {sku_id!r} {where} in the tenant's supplier terms; ingest "
                "supplier_terms first (values are computed on the server, never taken from the request)",
            )
        return None, 0.0, UNKNOWN
    value = quantity * cost
    if not math.isfinite(value) or value > policy.max_value:
        raise InvalidInput(
            "quantity",
            f"quantity {quantity:g} x unit cost {cost:g} exceeds the largest value {policy.max_value:g}",
        )
    return cost, value, "supplier_terms" if kind == "purchase_order" else "catalogue"


def check_decider(
    p: Principal,
    row: Mapping[str, Any],
    *,
    value: float | None,
    unknown_cost: bool,
    policy: DecisionPolicy,
    four_eyes: bool = True,
) -> None:
    """Raise :class:`Forbidden` unless ``p`` may decide ``row`` at ``value`` (None: no value check).

    Checks the route's role, the approval limit (an unknown cost needs an admin without a limit) and, when
    ``four_eyes``, that the decider is not the proposer above the policy's threshold.
    """
    need = row["route_role"] or "planner"
    if unknown_cost:
        need = "admin"
    if p.decider_rank < DECIDER_RANK[need]:
        why = f"is routed to role {need!r}"
        if unknown_cost:
            why = f"needs role {need!r} (its unit cost is unknown)"
        raise Forbidden(f"recommendation {row['id']} {why}; your key has {', '.join(sorted(p.roles))}")
    if value is not None:
        limit = p.effective_limit
        if unknown_cost and limit is not None:
            raise Forbidden(
                f"recommendation {row['id']} has no known unit cost; only a key without an approval limit "
                f"may decide it (yours is {limit:.2f})"
            )
        if limit is not None and value > limit:
            raise Forbidden(f"value {value:.2f} exceeds your approval limit {limit:.2f}")
    if four_eyes:
        threshold = policy.four_eyes_threshold(row.get("route_rule"))
        over = unknown_cost or (value is not None and threshold is not None and value > threshold)
        if threshold is not None and over and row.get("proposed_by") == p.principal_id:
            raise Forbidden(
                f"recommendation {row['id']}: the proposer may not decide it (four-eyes above "
                f"{threshold:.2f}); another key must approve"
            )
