"""Per-tenant exception rules: SLA hours per type, where overdue exceptions escalate, writeback on change."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from features.store import utcnow
from workflow._exception_tables import ExceptionRule
from workflow._journal import AuditRecord, append
from workflow.errors import InvalidInput

__all__ = ["DEFAULT_SLA_HOURS", "RuleOut", "get_rule", "set_rule"]

#: Hours from opening to the due time, per type (``*``: any other type); half for ``high`` severity.
#: A coming stockout is a same-day matter; a biased forecast or a drifting supplier a matter of the week.
DEFAULT_SLA_HOURS = {
    "stockout_risk": 8.0,
    "late_po": 24.0,
    "short_shipment": 24.0,
    "identity": 48.0,
    "forecast_anomaly": 72.0,
    "bias_drift": 120.0,
    "lead_time_drift": 120.0,
    "overstock": 168.0,
    "ageing_stock": 168.0,
    "*": 48.0,
}


class RuleOut(BaseModel):
    """The rule in force for one exception type of a tenant (defaults filled in)."""

    exception_type: str
    sla_hours: float
    escalate_to: str | None
    writeback: bool


def get_rule(session: Session, tenant_id: str, exception_type: str) -> RuleOut:
    """The rule in force for a type: the tenant's rule for it, else its ``*`` rule, else the defaults."""
    rows = {
        r.exception_type: r
        for r in session.execute(
            select(ExceptionRule).where(
                ExceptionRule.tenant_id == tenant_id, ExceptionRule.exception_type.in_([exception_type, "*"])
            )
        ).scalars()
    }
    own, star = rows.get(exception_type), rows.get("*")
    default = DEFAULT_SLA_HOURS.get(exception_type, DEFAULT_SLA_HOURS["*"])

    def pick(name: str, fallback):
        for r in (own, star):
            if r is not None and getattr(r, name) is not None:
                return getattr(r, name)
        return fallback

    return RuleOut(
        exception_type=exception_type,
        sla_hours=float(pick("sla_hours", default)),
        escalate_to=pick("escalate_to", None),
        writeback=bool(pick("writeback", False)),
    )


def set_rule(
    session: Session,
    tenant_id: str,
    exception_type: str,
    *,
    sla_hours: float | None = None,
    escalate_to: str | None = None,
    writeback: bool = False,
    actor: str,
) -> RuleOut:
    """Set a tenant's rule for a type (``*``: every type without its own rule); audited."""
    if exception_type != "*" and not (
        exception_type.replace("_", "").isalnum() and len(exception_type) <= 32
    ):
        raise InvalidInput("exception_type", "expected a type name (letters, digits, _) or '*'")
    if sla_hours is not None and not (0 < sla_hours <= 24 * 365):
        raise InvalidInput("sla_hours", f"expected 0 < hours <= 8760, got {sla_hours}")
    now = utcnow()
    existing = session.get(ExceptionRule, (tenant_id, exception_type))
    before = None
    if existing is None:
        session.add(
            ExceptionRule(
                tenant_id=tenant_id,
                exception_type=exception_type,
                sla_hours=sla_hours,
                escalate_to=escalate_to,
                writeback=writeback,
                updated_at=now,
            )
        )
    else:
        before = {
            "sla_hours": existing.sla_hours,
            "escalate_to": existing.escalate_to,
            "writeback": existing.writeback,
        }
        existing.sla_hours, existing.escalate_to, existing.writeback = sla_hours, escalate_to, writeback
        existing.updated_at = now
    session.flush()
    after = {"sla_hours": sla_hours, "escalate_to": escalate_to, "writeback": writeback}
    append(
        session,
        tenant_id,
        [AuditRecord(actor, "exception.rule_set", "exception_rule", exception_type, before, after)],
    )
    return get_rule(session, tenant_id, exception_type)


def _due(opened: datetime, rule: RuleOut, severity: str) -> datetime:
    return opened + timedelta(hours=rule.sla_hours * (0.5 if severity == "high" else 1.0))
