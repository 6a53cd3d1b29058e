"""The hand-off from planning to the workflow: a stored plan run becomes proposed recommendations.

One function, :func:`propose_plan`, used by every caller (the cycle, ``replenish plan --propose``, the demo).
It reads the plan run from the state store through planning's public API (``planning.load_run``), so the
plan it proposes is exactly the one stored, builds one :class:`workflow.schemas.RecommendationIn` per
recommendation and proposes them all in one transaction (:func:`workflow.lifecycle.propose_many`):

* the decision is planning's: a recommendation its routing rules sent to a queue is routed there (queue, least
  role, rule, reason), one they let through is auto-approved by that rule;
* the evidence names what the recommendation rests on: the forecast (version, model version or baseline,
  forecast run, reconciliation method, data watermark), the simulation, the constraints that bound the order,
  the assumptions; every section of planning's evidence document appears once (``forecast``, ``inventory``,
  ``lead_time``, ``simulation``, ``order``; ``supplier`` and ``allocation`` under ``constraints``;
  ``transfer`` and ``policy`` under ``assumptions``);
* proposing is idempotent: the proposal key is derived from the plan run, the kind and the unit, so proposing
  the same run twice adds nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from features.store import session_scope
from workflow.exceptions import sync_plan_exceptions
from workflow.lifecycle import _existing_by_key, propose_many
from workflow.schemas import AutoApprove, EvidenceIn, RecommendationIn, Route

__all__ = ["ProposeResult", "build_recommendations", "propose_plan"]

#: Planning's recommendation kinds as the workflow names them.
WORKFLOW_KIND = {"purchase": "purchase_order", "transfer": "transfer", "allocation": "allocation"}

#: Where the forecast's provenance may be found: evidence ``forecast`` section keys, then the run's params.
_PROVENANCE = {
    "forecast_run": ("run", "run_id", "forecast_run"),
    "reconciliation_method": ("method", "reconciliation_method", "reconciliation"),
    "data_watermark": ("data_watermark", "watermark"),
    "forecast_stage": ("stage", "forecast_stage"),
}


@dataclass(frozen=True)
class ProposeResult:
    """What a hand-off did.

    Attributes:
        plan_run_id: the plan run proposed.
        tenant: its tenant.
        total: recommendations in the plan run.
        created: proposed now for the first time.
        existing: already proposed earlier (same proposal keys): returned unchanged.
        by_state: workflow state of every recommendation of the run after the hand-off.
        by_kind: recommendations by workflow kind.
    """

    plan_run_id: str
    tenant: str
    total: int
    created: int
    existing: int
    by_state: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "plan_run_id": self.plan_run_id,
            "tenant": self.tenant,
            "total": self.total,
            "created": self.created,
            "existing": self.existing,
            "by_state": dict(self.by_state),
            "by_kind": dict(self.by_kind),
        }


def _proposal_key(plan_run_id: str, row: dict[str, Any]) -> str:
    unit = "|".join(
        str(row.get(c) or "") for c in ("sku_id", "location_id", "from_location_id", "supplier_id")
    )
    key = f"plan:{plan_run_id}:{row['kind']}:{unit}"
    if len(key) <= 200:
        return key
    return f"plan:{plan_run_id}:{row['kind']}:sha256:{hashlib.sha256(unit.encode()).hexdigest()}"


def _evidence_doc(row: dict[str, Any]) -> dict[str, Any]:
    """Planning's nested evidence of a stored recommendation (nested here from flat columns if needed)."""
    from planning import evidence_record

    doc = row.get("evidence")
    if not isinstance(doc, dict) or not isinstance(doc.get("forecast"), dict):
        doc = evidence_record(row)
    # A stored run read as a frame gives every row every section; a section absent from a kind is all null.
    return {k: v for k, v in doc.items() if v is not None}


def _first(sources: list[dict[str, Any]], names: tuple[str, ...]) -> Any:
    for src in sources:
        for n in names:
            if src.get(n) is not None:
                return src[n]
    return None


def _forecast_provenance(doc: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Forecast version, model version, source, forecast run, reconciliation method and data watermark."""
    fc = dict(doc.get("forecast") or {})
    params = dict(run.get("params") or {})
    sources = [fc, params, params.get("forecast") or {}]
    out = {
        "version": fc.get("version") or run.get("forecast_version"),
        "model_version": fc.get("model_version") or run.get("model_version"),
        "source": fc.get("source") or run.get("forecast_source"),
    }
    for key, names in _PROVENANCE.items():
        out[key] = _first(sources, names)
    if out["forecast_run"] is None and out["forecast_stage"] is not None:
        out["forecast_run"] = out["version"]  # a stored forecast's version is its run id
    merged = {**fc, **{k: v for k, v in out.items() if v is not None}}
    return {k: v for k, v in merged.items() if v is not None}


def _decision(row: dict[str, Any]) -> dict[str, Any]:
    """Planning's decision for the workflow: a route, or an auto-approval by the rule that passed it."""
    if row.get("action") == "route":
        return {
            "route": Route(
                queue=row.get("route_queue") or "default",
                role=row.get("route_role") or "planner",
                rule=row.get("rule") or "default",
                reason=row.get("reason") or "routed by planning",
            )
        }
    return {
        "auto_approve": AutoApprove(
            rule=row.get("rule") or "default", reason=row.get("reason") or "within policy"
        )
    }


def _unit_cost(row: dict[str, Any], doc: dict[str, Any]) -> float | None:
    cost = (doc.get("supplier") or {}).get("unit_cost")
    if cost is not None:
        return float(cost)
    qty, value = float(row.get("order_qty") or 0.0), row.get("order_value")
    return float(value) / qty if value is not None and qty > 0 else None


def build_recommendations(run: dict[str, Any]) -> list[RecommendationIn]:
    """One :class:`RecommendationIn` per recommendation of a stored plan run (``planning.load_run``'s dict).

    Args:
        run: ``{"run": {...}, "recommendations": DataFrame, ...}`` as :func:`planning.load_run` returns it.

    Returns:
        The proposals, in the run's order, each with planning's decision, evidence and a proposal key.
    """
    meta = run["run"]
    plan_run_id = meta["run_id"]
    recs = run["recommendations"]
    out = []
    for row in recs.iter_rows(named=True) if recs.height else ():
        doc = _evidence_doc(row)
        forecast = _forecast_provenance(doc, meta)
        sim = dict(doc.get("simulation") or {})
        order = dict(doc.get("order") or {})
        evidence = EvidenceIn(
            forecast_version=forecast.get("version"),
            model_version=forecast.get("model_version"),
            quantiles={
                k: float(v)
                for k, v in (
                    ("p05", sim.get("protection_demand_p05")),
                    ("p50", sim.get("protection_demand_p50")),
                    ("p95", sim.get("protection_demand_p95")),
                )
                if isinstance(v, int | float)
            }
            or None,
            inventory_position=(doc.get("inventory") or {}).get("position"),
            lead_time=doc.get("lead_time"),
            simulation=sim or None,
            constraints={
                "bound_by": order.get("bound_by"),
                "lot_size": order.get("lot_size"),
                **({"supplier": doc["supplier"]} if "supplier" in doc else {}),
                **({"allocation": doc["allocation"]} if "allocation" in doc else {}),
            },
            assumptions={
                "forecast_source": forecast.get("source"),
                "plan_run": plan_run_id,
                "as_of": str(meta.get("as_of")),
                **({"transfer": doc["transfer"]} if "transfer" in doc else {}),
                **({"policy": doc["policy"]} if "policy" in doc else {}),
            },
            forecast=forecast,
            reconciliation_method=forecast.get("reconciliation_method"),
            data_watermark=forecast.get("data_watermark"),
            plan_run=plan_run_id,
            order=order or None,
            inventory=doc.get("inventory"),
            planning_kind=doc.get("kind"),
        )
        kind = row["kind"]
        out.append(
            RecommendationIn(
                kind=WORKFLOW_KIND.get(kind, kind),
                sku_id=row["sku_id"],
                location_id=row["location_id"],
                from_location_id=row.get("from_location_id") if kind == "transfer" else None,
                supplier_id=row.get("supplier_id") if kind != "transfer" else None,
                quantity=float(row["order_qty"]),
                unit_cost=_unit_cost(row, doc),
                need_by=row.get("expected_arrival"),
                evidence=evidence,
                proposal_key=_proposal_key(plan_run_id, row),
                **_decision(row),
            )
        )
    return out


def propose_plan(
    engine: Engine, tenant: str, plan_run_id: str | None, *, actor: str | None = None
) -> ProposeResult:
    """Propose every recommendation of a stored plan run to the workflow, in one transaction.

    Args:
        engine: a migrated state store.
        tenant: the plan run's tenant.
        plan_run_id: a plan run of ``tenant`` (``planning.save_plan``'s id); None: the tenant's newest.
        actor: who proposes, as the audit log shows it (default ``planning:<plan_run_id>``).

    Returns:
        Counts: created now, already there, and the workflow state of each recommendation of the run.

    Raises:
        LookupError: no such plan run for this tenant.
    """
    from planning import load_run

    run = load_run(engine, tenant, plan_run_id)
    plan_run_id = run["run"]["run_id"]
    recs = build_recommendations(run)
    with session_scope(engine) as s:  # the whole plan in one transaction
        keys = [r.proposal_key for r in recs if r.proposal_key is not None]
        before = len(_existing_by_key(s, tenant, keys)) if keys else 0
        stored = propose_many(s, tenant, recs, actor=actor or f"planning:{plan_run_id}") if recs else []
    # the run's exceptions into their lifecycle, linked to the recommendations just proposed
    sync_plan_exceptions(engine, tenant)
    return ProposeResult(
        plan_run_id=plan_run_id,
        tenant=tenant,
        total=len(recs),
        created=len(recs) - before,
        existing=before,
        by_state=dict(sorted(Counter(r.state for r in stored).items())),
        by_kind=dict(sorted(Counter(r.kind for r in recs).items())),
    )
